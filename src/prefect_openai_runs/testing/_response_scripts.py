"""Response scripts: what a background response does, chosen on the emulator side (never through
request fields), by model, metadata or input."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from ._scripts import ScriptBook, ToolCallSpec

ResponseOutcome = Literal["completed", "failed", "incomplete", "never"]
RESPONSE_OUTCOMES: tuple[ResponseOutcome, ...] = ("completed", "failed", "incomplete", "never")


@dataclass(frozen=True)
class ResponseScript:
    """What a response does once created.

    Attributes:
        queued_seconds: How long a background response stays ``queued``.
        in_progress_seconds: How long it stays ``in_progress`` before its outcome.
        outcome: ``completed``, ``failed``, ``incomplete`` or ``never`` (stays ``in_progress`` until
            cancelled; the community-reported stuck response).
        output_text: The text of the assistant message a completed response outputs ("" for none);
            an incomplete one outputs its first half.
        function_calls: Function calls a completed response outputs (each gets a ``call_id``). A
            follow-up (``previous_response_id``) must answer every one with a ``function_call_output``.
        then: What the follow-up answering the function calls does (default: this script without
            function calls), whatever the script rules say.
        usage: ``(input_tokens, output_tokens)`` reported once terminal.
        cached_tokens: ``usage.input_tokens_details.cached_tokens``.
        reasoning_tokens: ``usage.output_tokens_details.reasoning_tokens``.
        error_code: ``error.code`` of a failed response.
        error_message: ``error.message`` of a failed response.
        incomplete_reason: ``incomplete_details.reason`` of an incomplete response.
        ignore_cancel: A cancel answers ``cancelled``, then the response completes anyway when its
            time comes (the observed best-effort cancel).
    """

    queued_seconds: float = 0.01
    in_progress_seconds: float = 0.05
    outcome: ResponseOutcome = "completed"
    output_text: str = "Hello from the emulator."
    function_calls: tuple[ToolCallSpec, ...] | list[ToolCallSpec] = ()
    then: ResponseScript | None = None
    usage: tuple[int, int] = (12, 8)
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    error_code: str = "server_error"
    error_message: str = "The emulator was scripted to fail this response."
    incomplete_reason: str = "max_output_tokens"
    ignore_cancel: bool = False

    def __post_init__(self) -> None:
        if self.outcome not in RESPONSE_OUTCOMES:
            raise ValueError(f"outcome must be one of {RESPONSE_OUTCOMES}, not {self.outcome!r}")
        object.__setattr__(self, "function_calls", tuple(self.function_calls))
        object.__setattr__(self, "usage", tuple(self.usage))

    def continuation(self) -> ResponseScript:
        """The script of the follow-up that answers this script's function calls."""
        if self.then is not None:
            return self.then
        return replace(self, function_calls=(), then=None)

    def to_dict(self) -> dict[str, Any]:
        """Serialise to JSON-ready data (the control surface's wire format)."""
        data = asdict(self)
        data["usage"] = list(self.usage)
        data["then"] = self.then.to_dict() if self.then is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResponseScript:
        """Build a script from :meth:`to_dict` output (unknown keys raise ``TypeError``)."""
        values = dict(data)
        if values.get("function_calls") is not None:
            values["function_calls"] = tuple(ToolCallSpec(**call) for call in values["function_calls"])
        if values.get("usage") is not None:
            values["usage"] = tuple(values["usage"])
        if values.get("then") is not None:
            values["then"] = cls.from_dict(values["then"])
        return cls(**values)


@dataclass(frozen=True)
class ResponseContext:
    """What a response script rule can look at when a response is created.

    Attributes:
        model: The requested model.
        metadata: The request's metadata.
        input_text: The text of the input (a string input, or the text parts of its items).
        instructions: The instructions ("" if none).
        background: Whether it is a background response.
        previous_response_id: The response it follows, or None.
    """

    model: str
    metadata: Mapping[str, str]
    input_text: str
    instructions: str
    background: bool
    previous_response_id: str | None


ResponseMatcher = Callable[[ResponseContext], bool]


@dataclass(frozen=True)
class ResponseScriptRule:
    """A response script with the conditions under which a new response follows it."""

    script: ResponseScript
    model: str | None = None
    match: ResponseMatcher | None = None

    def applies_to(self, ctx: ResponseContext) -> bool:
        """Whether a response created in ``ctx`` follows this rule."""
        if self.model is not None and self.model != ctx.model:
            return False
        return self.match is None or bool(self.match(ctx))


def response_matcher(metadata: Mapping[str, str] | None, input_contains: str | None) -> ResponseMatcher | None:
    """A matcher expressible over HTTP: a metadata subset and/or a substring of the input text."""
    if not metadata and input_contains is None:
        return None
    wanted = dict(metadata or {})

    def match(ctx: ResponseContext) -> bool:
        if any(ctx.metadata.get(k) != v for k, v in wanted.items()):
            return False
        return input_contains is None or input_contains in ctx.input_text

    return match


ResponseScriptBook = ScriptBook[ResponseScript, ResponseContext]
"""The response scripts."""
