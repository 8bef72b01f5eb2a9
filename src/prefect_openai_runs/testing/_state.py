"""The run state machine's vocabulary: statuses, the transition table, and the run entity.

Every status a run can have and every move between statuses is declared here, and only
:meth:`RunState.move_to` changes a run's status. *When* moves happen is the scheduler's job
(:mod:`._machine`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

from prefect_openai_runs.models.status import RunStatus


def status_event(status: RunStatus) -> str:
    """The stream event announcing a status, e.g. ``thread.run.completed``."""
    return f"thread.run.{status.value}"


S = RunStatus

#: Every allowed move. A status missing from the right-hand sides can only be entered at creation.
TRANSITIONS: Final[dict[RunStatus, frozenset[RunStatus]]] = {
    S.QUEUED: frozenset({S.IN_PROGRESS, S.CANCELLING, S.EXPIRED}),
    S.IN_PROGRESS: frozenset({S.COMPLETED, S.FAILED, S.INCOMPLETE, S.REQUIRES_ACTION, S.CANCELLING, S.EXPIRED}),
    S.REQUIRES_ACTION: frozenset({S.QUEUED, S.CANCELLING, S.EXPIRED}),
    # `completed` when the script ignores the cancel.
    S.CANCELLING: frozenset({S.CANCELLED, S.COMPLETED}),
    S.CANCELLED: frozenset(),
    S.FAILED: frozenset(),
    S.COMPLETED: frozenset(),
    S.INCOMPLETE: frozenset(),
    S.EXPIRED: frozenset(),
}

TERMINAL: Final = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
ACTIVE: Final = frozenset(TRANSITIONS) - TERMINAL
CANCELLABLE: Final = frozenset(s for s in ACTIVE if S.CANCELLING in TRANSITIONS[s])
#: Statuses that the expiry timer may still catch (a `cancelling` run finishes on its own).
EXPIRABLE: Final = frozenset(s for s in ACTIVE if S.EXPIRED in TRANSITIONS[s])
#: A stream ends right after announcing one of these.
STREAM_END: Final = TERMINAL | {S.REQUIRES_ACTION}
#: The timestamp field each status sets on entry.
STAMPS: Final = {
    S.IN_PROGRESS: "started_at",
    S.COMPLETED: "completed_at",
    S.FAILED: "failed_at",
    S.CANCELLED: "cancelled_at",
}


class IllegalTransition(RuntimeError):
    """A move the transition table forbids (an emulator bug, never an API error)."""


@dataclass
class RunState:
    """A run as the emulator holds it: its echo of the request plus the machine's bookkeeping.

    Attributes:
        id: ``run_...``.
        thread_id: The thread.
        assistant_id: The assistant.
        created_precise: ``time.time()`` at creation.
        expires_after: Seconds after creation an active run expires.
        params: The echoed request fields (model, instructions, tools, metadata, ...).
        status: The current status.
        history: ``(status, time.time())`` for every status entered, creation included.
    """

    id: str
    thread_id: str
    assistant_id: str
    created_precise: float
    expires_after: float
    params: dict[str, Any]
    status: RunStatus = S.QUEUED
    history: list[tuple[str, float]] = field(default_factory=list)
    stamps: dict[str, float] = field(default_factory=dict)
    cancel_requested_at: float | None = None
    terminal_at: float | None = None
    last_error: dict[str, str] | None = None
    incomplete_details: dict[str, str] | None = None
    usage: dict[str, int] | None = None
    required_action: dict[str, Any] | None = None
    tool_step_id: str | None = None

    def __post_init__(self) -> None:
        if not self.history:
            self.history.append((self.status.value, self.created_precise))

    @property
    def created_at(self) -> int:
        """Creation time in integer seconds, as the API reports it."""
        return int(self.created_precise)

    @property
    def expires_at_precise(self) -> float:
        """The ``time.time()`` at which an active run expires."""
        return self.created_precise + self.expires_after

    @property
    def is_active(self) -> bool:
        """Whether the run is queued, in progress, waiting for tool outputs or cancelling."""
        return self.status in ACTIVE

    def move_to(self, status: RunStatus, at: float) -> None:
        """Enter ``status`` at ``at``, recording history and the status' timestamp.

        Raises:
            IllegalTransition: If the table does not allow the move.
        """
        if status not in TRANSITIONS[self.status]:
            raise IllegalTransition(f"{self.id}: {self.status.value} -> {status.value}")
        self.status = status
        self.history.append((status.value, at))
        stamp = STAMPS.get(status)
        if stamp is not None and stamp not in self.stamps:
            self.stamps[stamp] = at
        if status in TERMINAL:
            self.terminal_at = at
        if status is not S.REQUIRES_ACTION:
            self.required_action = None

    def to_api(self) -> dict[str, Any]:
        """The run object as the API returns it (RunObject)."""
        stamps = {name: int(self.stamps[name]) if name in self.stamps else None for name in STAMPS.values()}
        return {
            "id": self.id,
            "object": "thread.run",
            "created_at": self.created_at,
            "assistant_id": self.assistant_id,
            "thread_id": self.thread_id,
            "status": self.status.value,
            "required_action": self.required_action,
            "last_error": self.last_error,
            "expires_at": None if self.status in TERMINAL else self.created_at + math.ceil(self.expires_after),
            **stamps,
            "incomplete_details": self.incomplete_details,
            "usage": self.usage,
            **self.params,
        }
