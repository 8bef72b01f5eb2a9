"""The background response's state machine vocabulary: statuses, the transition table, the entity.

Every status a response can have and every move between them is declared here, and only
:meth:`ResponseState.move_to` changes a response's status. *When* moves happen is the scheduler's
job (:mod:`._responses_machine`). The stream a response writes (its events with their sequence
numbers, kept for resuming) lives on the entity too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from prefect_openai_runs.models.responses import ResponseStatus

S = ResponseStatus

#: Every allowed move. ``cancelled -> completed`` is the observed best-effort cancel: a response seen
#: ``cancelled`` that later completes anyway (only when its script says ``ignore_cancel``).
TRANSITIONS: Final[dict[ResponseStatus, frozenset[ResponseStatus]]] = {
    S.QUEUED: frozenset({S.IN_PROGRESS, S.CANCELLED}),
    S.IN_PROGRESS: frozenset({S.COMPLETED, S.FAILED, S.INCOMPLETE, S.CANCELLED}),
    S.CANCELLED: frozenset({S.COMPLETED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.INCOMPLETE: frozenset(),
}

#: The spec's terminal statuses (``cancelled`` included, even though a late completion may follow).
TERMINAL: Final = frozenset({S.COMPLETED, S.FAILED, S.CANCELLED, S.INCOMPLETE})
ACTIVE: Final = frozenset(TRANSITIONS) - TERMINAL
CANCELLABLE: Final = frozenset(s for s in ACTIVE if S.CANCELLED in TRANSITIONS[s])
#: The stream event announcing each status. ``cancelled`` has none: the spec defines no such stream event.
STATUS_EVENTS: Final[dict[ResponseStatus, str]] = {
    S.QUEUED: "response.queued",
    S.IN_PROGRESS: "response.in_progress",
    S.COMPLETED: "response.completed",
    S.FAILED: "response.failed",
    S.INCOMPLETE: "response.incomplete",
}
#: A stream ends right after one of these events.
STREAM_END_EVENTS: Final = frozenset({"response.completed", "response.failed", "response.incomplete", "error"})


class IllegalTransition(RuntimeError):
    """A move the transition table forbids (an emulator bug, never an API error)."""


@dataclass
class ResponseState:
    """A response as the emulator holds it.

    Attributes:
        id: ``resp_...``.
        created_precise: ``time.time()`` at creation.
        background: Whether it was created with ``background: true``.
        stored: Whether it is stored (``store`` not false).
        params: The echoed request fields (model, instructions, tools, metadata, ...).
        status: The current status.
        history: ``(status, time.time())`` for every status entered, creation included.
        events: Every stream event written so far, ``sequence_number`` ascending from 0.
        output: The output items.
        function_call_ids: The ``call_id`` of every function call it made (a follow-up must answer them).
    """

    id: str
    created_precise: float
    background: bool
    stored: bool
    params: dict[str, Any]
    status: ResponseStatus = S.QUEUED
    history: list[tuple[str, float]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    output: list[dict[str, Any]] = field(default_factory=list)
    function_call_ids: list[str] = field(default_factory=list)
    completed_at: float | None = None
    cancel_requested_at: float | None = None
    terminal_at: float | None = None
    error: dict[str, str] | None = None
    incomplete_details: dict[str, str] | None = None
    usage: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.history:
            self.history.append((self.status.value, self.created_precise))

    @property
    def is_active(self) -> bool:
        """Whether the response is queued or in progress."""
        return self.status in ACTIVE

    def move_to(self, status: ResponseStatus, at: float) -> None:
        """Enter ``status`` at ``at``, recording history and timestamps.

        Raises:
            IllegalTransition: If the table does not allow the move.
        """
        if status not in TRANSITIONS[self.status]:
            raise IllegalTransition(f"{self.id}: {self.status.value} -> {status.value}")
        self.status = status
        self.history.append((status.value, at))
        if status is S.COMPLETED:
            self.completed_at = at
        if status in TERMINAL:
            self.terminal_at = at

    def record_event(self, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Number the next stream event, keep it for resuming, and return it."""
        event = {"type": event_type, "sequence_number": len(self.events), **payload}
        self.events.append(event)
        return event

    def events_after(self, starting_after: int | None) -> list[dict[str, Any]]:
        """The kept events whose sequence number is greater than ``starting_after`` (all when None)."""
        start = 0 if starting_after is None else max(starting_after + 1, 0)
        return self.events[start:]

    def to_api(self) -> dict[str, Any]:
        """The response object as the API returns it (``usage``, not nullable in the spec, appears once
        the response is terminal)."""
        return {
            "id": self.id,
            "object": "response",
            "created_at": int(self.created_precise),
            "status": self.status.value,
            "background": self.background,
            "completed_at": int(self.completed_at) if self.completed_at is not None else None,
            "error": self.error,
            "incomplete_details": self.incomplete_details,
            "output": [dict(item) for item in self.output],
            **({"usage": self.usage} if self.usage is not None else {}),
            **self.params,
        }
