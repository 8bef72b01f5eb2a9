"""Keeping the API key out of every message, log line and artifact."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import SecretStr


def secret_values(*secrets: SecretStr | str | None) -> list[str]:
    """The plain values of the given secrets, longest first, with the forms that could leak.

    Besides the whole key, the part after ``sk-`` and its first 8 characters count, since
    servers echo keys partially (``sk-abc***xyz``).
    """
    values: set[str] = set()
    for secret in secrets:
        raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        if not raw or len(raw) < 6:
            continue
        values.add(raw)
        body = raw[3:] if raw.startswith("sk-") else raw
        values.add(body)
        if len(body) >= 8:
            values.add(body[:8])
    return sorted(values, key=len, reverse=True)


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret in ``text`` with ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
