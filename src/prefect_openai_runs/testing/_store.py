"""Where the emulator keeps its objects, with id lookups that answer the API's 404s and list paging."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from . import _errors as errors
from ._objects import Assistant, Message, RunStep, Thread
from ._state import RunState

T = TypeVar("T")
Order = Literal["asc", "desc"]


def _position(items: Sequence[T], key: Callable[[T], str], wanted: str) -> int | None:
    for i, item in enumerate(items):
        if key(item) == wanted:
            return i
    return None


def paginate(
    items: Sequence[T],
    key: Callable[[T], str],
    *,
    limit: int,
    order: Order,
    after: str | None,
    before: str | None,
) -> tuple[list[T], bool]:
    """Cut one page out of ``items`` (oldest first) the way the API's cursor lists do.

    An unknown cursor gives an empty page.

    Args:
        items: Every object, oldest first.
        key: The object's id.
        limit: Page size.
        order: ``asc`` (oldest first) or ``desc`` (newest first).
        after: Only objects after this id in ``order``.
        before: Only objects before this id in ``order``.

    Returns:
        The page and whether more objects follow it (in the direction being paged).
    """
    ordered = list(items) if order == "asc" else list(reversed(items))
    if after is not None:
        at = _position(ordered, key, after)
        ordered = [] if at is None else ordered[at + 1 :]
    if before is not None:
        at = _position(ordered, key, before)
        ordered = [] if at is None else ordered[:at]
        return ordered[-limit:], len(ordered) > limit
    return ordered[:limit], len(ordered) > limit


@dataclass
class Store:
    """Every assistant, thread, message, run and step the emulator holds."""

    default_assistant_id: str = "asst_default"
    assistants: dict[str, Assistant] = field(default_factory=dict)
    threads: dict[str, Thread] = field(default_factory=dict)
    runs: dict[str, RunState] = field(default_factory=dict)
    steps: dict[str, list[RunStep]] = field(default_factory=dict)
    active_run_ids: dict[str, None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything but the default assistant."""
        self.assistants.clear()
        self.threads.clear()
        self.runs.clear()
        self.steps.clear()
        self.active_run_ids.clear()
        self.assistants[self.default_assistant_id] = Assistant(
            id=self.default_assistant_id,
            created_at=int(time.time()),
            name="Emulator default assistant",
            instructions="You are a helpful assistant.",
        )

    def assistant(self, assistant_id: str) -> Assistant:
        """The assistant, or a 404 ApiError."""
        found = self.assistants.get(assistant_id)
        if found is None:
            raise errors.not_found("assistant", assistant_id)
        return found

    def thread(self, thread_id: str) -> Thread:
        """The thread, or a 404 ApiError."""
        found = self.threads.get(thread_id)
        if found is None:
            raise errors.not_found("thread", thread_id)
        return found

    def run(self, thread_id: str, run_id: str) -> RunState:
        """The run of that thread, or a 404 ApiError (thread first, then run)."""
        self.thread(thread_id)
        found = self.runs.get(run_id)
        if found is None or found.thread_id != thread_id:
            raise errors.not_found("run", run_id)
        return found

    def step(self, run: RunState, step_id: str) -> RunStep:
        """The step of that run, or a 404 ApiError."""
        for step in self.steps.get(run.id, ()):
            if step.id == step_id:
                return step
        raise errors.not_found("run step", step_id)

    def add_message(self, message: Message) -> Message:
        """Append a message to its thread."""
        self.threads[message.thread_id].messages.append(message)
        return message

    def add_step(self, step: RunStep) -> RunStep:
        """Append a step to its run."""
        self.steps.setdefault(step.run_id, []).append(step)
        return step
