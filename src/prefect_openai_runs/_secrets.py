"""Keeping the API key out of every message, log line and artifact."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import SecretStr

FRAGMENT = 8
"""Length of the shortest piece of a secret that is masked wherever it appears (servers echo keys partially,
``sk-abc***xyz``, and transport errors print them escaped or cut)."""


def secret_values(*secrets: SecretStr | str | None) -> list[str]:
    """The plain values of the given secrets, longest first (stripped of surrounding whitespace too)."""
    values: set[str] = set()
    for secret in secrets:
        raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        for value in (raw, raw.strip()) if raw else ():
            if len(value) >= 6:
                values.add(value)
    return sorted(values, key=len, reverse=True)


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """Replace each secret in ``text``, and every piece of one that is 8 characters or longer, with ``***``.

    Example:
        ```python
        mask_secrets("key sk-abcdefghijkl... rejected", ["sk-abcdefghijklmnop"])  # 'key ***... rejected'
        ```
    """
    values = [secret for secret in secrets if secret]
    for secret in values:
        text = text.replace(secret, "***")
    pieces = {secret[i : i + FRAGMENT] for secret in values for i in range(len(secret) - FRAGMENT + 1)}
    if not pieces:
        return text
    hidden = [False] * len(text)
    for start in range(len(text) - FRAGMENT + 1):
        if text[start : start + FRAGMENT] in pieces:
            hidden[start : start + FRAGMENT] = [True] * FRAGMENT
    if not any(hidden):
        return text
    out: list[str] = []
    for index, char in enumerate(text):
        if not hidden[index]:
            out.append(char)
        elif index == 0 or not hidden[index - 1]:
            out.append("***")
    return "".join(out)


def clean_secret(value: str, what: str) -> str:
    """``value`` without surrounding whitespace (a trailing newline from a secrets file or a paste).

    Args:
        value: The key or header value.
        what: What it is, for the message (``"the API key"``, ``"header 'api-key'"``).

    Raises:
        ValueError: When a control or non-ASCII character is left inside; the message gives its position,
            never the value.
    """
    cleaned = value.strip()
    for position, char in enumerate(cleaned):
        if ord(char) < 32 or ord(char) >= 127:
            kind = "a control character (line break, tab, ...)" if ord(char) < 32 or ord(char) == 127 else (
                "a non-ASCII character"
            )
            raise ValueError(
                f"{what} has {kind} at position {position + 1} of {len(cleaned)}: copy it again without it "
                "(keys are plain ASCII)"
            )
    return cleaned
