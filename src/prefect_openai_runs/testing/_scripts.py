"""Run scripts: what a run does, chosen on the emulator side and never through request fields."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Generic, Literal, Protocol, TypeVar

Outcome = Literal["completed", "failed", "incomplete", "requires_action", "never"]
OUTCOMES: tuple[Outcome, ...] = ("completed", "failed", "incomplete", "requires_action", "never")


@dataclass(frozen=True)
class ToolCallSpec:
    """A function call a ``requires_action`` run asks the client to perform.

    Attributes:
        name: The function name.
        arguments: The JSON-encoded arguments string.
    """

    name: str
    arguments: str = "{}"


@dataclass(frozen=True)
class RunScript:
    """What a run does once created.

    Attributes:
        queued_seconds: How long the run stays ``queued``.
        in_progress_seconds: How long it stays ``in_progress`` before its outcome.
        outcome: ``completed``, ``failed``, ``incomplete``, ``requires_action`` or ``never`` (stays
            ``in_progress`` until it expires).
        reply_text: The assistant message a completed run appends to the thread.
        usage: ``(prompt_tokens, completion_tokens)`` reported once the run is terminal.
        error_code: ``last_error.code`` of a failed run (``server_error``, ``rate_limit_exceeded``,
            ``invalid_prompt``).
        error_message: ``last_error.message`` of a failed run.
        incomplete_reason: ``incomplete_details.reason`` of an incomplete run.
        tool_calls: The function calls of a ``requires_action`` run.
        then: What the run does after its tool outputs are submitted (default: completes with
            ``reply_text``).
        ignore_cancel: A cancel is accepted (the run shows ``cancelling``) but the run then completes.
        cancelling_delay: Seconds the run stays ``cancelling``; None uses the emulator-wide delay.
    """

    queued_seconds: float = 0.01
    in_progress_seconds: float = 0.05
    outcome: Outcome = "completed"
    reply_text: str = "Hello from the emulator."
    usage: tuple[int, int] = (12, 8)
    error_code: str = "server_error"
    error_message: str = "The emulator was scripted to fail this run."
    incomplete_reason: str = "max_completion_tokens"
    tool_calls: tuple[ToolCallSpec, ...] | list[ToolCallSpec] = (
        ToolCallSpec(name="get_weather", arguments='{"city": "Paris"}'),
    )
    then: RunScript | None = None
    ignore_cancel: bool = False
    cancelling_delay: float | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {self.outcome!r}")
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))
        object.__setattr__(self, "usage", tuple(self.usage))

    def continuation(self) -> RunScript:
        """The script a run follows after its tool outputs are submitted."""
        if self.then is not None:
            return self.then
        return replace(self, outcome="completed", then=None)

    def to_dict(self) -> dict[str, Any]:
        """Serialise to JSON-ready data (the control surface's wire format)."""
        data = asdict(self)
        data["usage"] = list(self.usage)
        data["then"] = self.then.to_dict() if self.then is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunScript:
        """Build a script from :meth:`to_dict` output (unknown keys raise ``TypeError``)."""
        values = dict(data)
        if values.get("tool_calls") is not None:
            values["tool_calls"] = tuple(ToolCallSpec(**tc) for tc in values["tool_calls"])
        if values.get("usage") is not None:
            values["usage"] = tuple(values["usage"])
        if values.get("then") is not None:
            values["then"] = cls.from_dict(values["then"])
        return cls(**values)


@dataclass(frozen=True)
class CreateContext:
    """What a script rule can look at when a run is created.

    Attributes:
        assistant_id: The run's assistant.
        thread_id: The run's thread.
        instructions: The run's effective instructions.
        metadata: The run's metadata.
        model: The run's effective model.
        last_user_message: Text of the thread's last user message ("" if none).
    """

    assistant_id: str
    thread_id: str
    instructions: str
    metadata: Mapping[str, str]
    model: str
    last_user_message: str


Matcher = Callable[[CreateContext], bool]


@dataclass(frozen=True)
class ScriptRule:
    """A script with the conditions under which a new run follows it."""

    script: RunScript
    assistant_id: str | None = None
    match: Matcher | None = None

    def applies_to(self, ctx: CreateContext) -> bool:
        """Whether a run created in ``ctx`` follows this rule."""
        if self.assistant_id is not None and self.assistant_id != ctx.assistant_id:
            return False
        return self.match is None or bool(self.match(ctx))


def simple_matcher(metadata: Mapping[str, str] | None, last_user_message_contains: str | None) -> Matcher | None:
    """A matcher expressible over HTTP: a metadata subset and/or a substring of the last user message."""
    if not metadata and last_user_message_contains is None:
        return None
    wanted = dict(metadata or {})

    def match(ctx: CreateContext) -> bool:
        if any(ctx.metadata.get(k) != v for k, v in wanted.items()):
            return False
        return last_user_message_contains is None or last_user_message_contains in ctx.last_user_message

    return match


ScriptT = TypeVar("ScriptT")
ScriptT_co = TypeVar("ScriptT_co", covariant=True)
ContextT = TypeVar("ContextT")
ContextT_contra = TypeVar("ContextT_contra", contravariant=True)


class Rule(Protocol[ScriptT_co, ContextT_contra]):
    """A script and the condition under which a new object follows it."""

    @property
    def script(self) -> ScriptT_co:
        """The script."""
        ...

    def applies_to(self, ctx: ContextT_contra) -> bool:
        """Whether an object created in ``ctx`` follows the script."""
        ...


class ScriptBook(Generic[ScriptT, ContextT]):
    """Script rules, checked newest first; the first that applies wins, else the default.

    Args:
        default: The script when no rule applies.
    """

    def __init__(self, default: ScriptT) -> None:
        self.default = default
        self._rules: list[Rule[ScriptT, ContextT]] = []
        self._lock = threading.Lock()

    def add(self, rule: Rule[ScriptT, ContextT]) -> None:
        """Add a rule that takes precedence over every earlier one."""
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        """Forget every rule (the default script stays)."""
        with self._lock:
            self._rules.clear()

    def choose(self, ctx: ContextT) -> ScriptT:
        """The script an object created in ``ctx`` follows."""
        with self._lock:
            rules = list(reversed(self._rules))
        for rule in rules:
            if rule.applies_to(ctx):
                return rule.script
        return self.default


RunScriptBook = ScriptBook[RunScript, CreateContext]
"""The run scripts."""
