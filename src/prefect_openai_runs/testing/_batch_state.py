"""The batch state machine's vocabulary: statuses, the transition table, and the batch and file entities.

Every status a batch can have and every move between statuses is declared here, and only
:meth:`BatchState.move_to` changes a batch's status. *When* moves happen is the scheduler's job
(:mod:`._batch_machine`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

from prefect_openai_runs.models.batches import BatchStatus

from ._state import IllegalTransition

B = BatchStatus

#: Every allowed move. ``validating`` can only be entered at creation.
BATCH_TRANSITIONS: Final[dict[BatchStatus, frozenset[BatchStatus]]] = {
    B.VALIDATING: frozenset({B.IN_PROGRESS, B.FAILED, B.CANCELLING, B.EXPIRED}),
    B.IN_PROGRESS: frozenset({B.FINALIZING, B.CANCELLING, B.EXPIRED}),
    B.FINALIZING: frozenset({B.COMPLETED, B.CANCELLING}),
    B.CANCELLING: frozenset({B.CANCELLED}),
    B.FAILED: frozenset(),
    B.COMPLETED: frozenset(),
    B.EXPIRED: frozenset(),
    B.CANCELLED: frozenset(),
}

BATCH_TERMINAL: Final = frozenset(s for s, nxt in BATCH_TRANSITIONS.items() if not nxt)
BATCH_CANCELLABLE: Final = frozenset(s for s, nxt in BATCH_TRANSITIONS.items() if B.CANCELLING in nxt)
BATCH_EXPIRABLE: Final = frozenset(s for s, nxt in BATCH_TRANSITIONS.items() if B.EXPIRED in nxt)
#: The timestamp field each status sets on entry.
BATCH_STAMPS: Final = {
    B.IN_PROGRESS: "in_progress_at",
    B.FINALIZING: "finalizing_at",
    B.COMPLETED: "completed_at",
    B.FAILED: "failed_at",
    B.EXPIRED: "expired_at",
    B.CANCELLING: "cancelling_at",
    B.CANCELLED: "cancelled_at",
}


@dataclass
class FileState:
    """A file as the emulator holds it.

    Attributes:
        id: ``file-...``.
        filename: The uploaded name.
        purpose: ``batch`` for inputs, ``batch_output`` for outputs and error files.
        content: The bytes.
        created_precise: ``time.time()`` at upload.
        ready_at: ``time.time()`` from which the file is ``processed`` (Azure's ``pending`` before it).
        error: When set, processing fails: from :attr:`ready_at` the file is ``error`` with this as its
            ``status_details``.
    """

    id: str
    filename: str
    purpose: str
    content: bytes
    created_precise: float
    ready_at: float
    error: str | None = None

    def status(self, now: float | None = None) -> str:
        """``pending`` until :attr:`ready_at`, then ``processed`` (or ``error`` when processing fails)."""
        if (time.time() if now is None else now) < self.ready_at:
            return "pending"
        return "processed" if self.error is None else "error"

    def to_api(self) -> dict[str, Any]:
        """The file object as the API returns it (OpenAIFile)."""
        status = self.status()
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": int(self.created_precise),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": status,
            "status_details": self.error if status == "error" else None,
        }


NO_USAGE: Final = (0, 0, 0, 0)
"""The tokens of a request that failed."""


@dataclass
class LineResult:
    """The result of one batch request: which file it goes to and the JSONL object written there."""

    custom_id: str
    ok: bool
    line: dict[str, Any]
    usage: tuple[int, int, int, int] = (0, 0, 0, 0)
    """``(input, output, cached input, reasoning output)`` tokens."""


@dataclass
class BatchState:
    """A batch as the emulator holds it.

    Attributes:
        id: ``batch_...``.
        endpoint: The requests' endpoint.
        input_file_id: The input file.
        created_precise: ``time.time()`` at creation.
        completion_window: Seconds until the batch expires.
        metadata: The caller's metadata.
        requests: ``(custom_id, body)`` of every valid input line (filled once validated).
        results: The results so far, in processing order.
    """

    id: str
    endpoint: str
    input_file_id: str
    created_precise: float
    completion_window: float
    metadata: dict[str, str] | None = None
    model: str | None = None
    status: BatchStatus = B.VALIDATING
    history: list[tuple[str, float]] = field(default_factory=list)
    stamps: dict[str, float] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    results: list[LineResult] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None
    terminal_at: float | None = None
    cancel_requested_at: float | None = None

    def __post_init__(self) -> None:
        if not self.history:
            self.history.append((self.status.value, self.created_precise))

    @property
    def is_active(self) -> bool:
        """Whether the batch may still change."""
        return self.status not in BATCH_TERMINAL

    def move_to(self, status: BatchStatus, at: float) -> None:
        """Enter ``status`` at ``at``, recording history and the status' timestamp.

        Raises:
            IllegalTransition: If the table does not allow the move.
        """
        if status not in BATCH_TRANSITIONS[self.status]:
            raise IllegalTransition(f"{self.id}: {self.status.value} -> {status.value}")
        self.status = status
        self.history.append((status.value, at))
        self.stamps.setdefault(BATCH_STAMPS[status], at)
        if status in BATCH_TERMINAL:
            self.terminal_at = at

    def counts(self) -> dict[str, int]:
        """``request_counts``: total, and completed and failed so far."""
        completed = sum(1 for r in self.results if r.ok)
        return {"total": len(self.requests), "completed": completed, "failed": len(self.results) - completed}

    def usage(self) -> dict[str, Any]:
        """Tokens of every processed request, summed."""
        tokens_in, tokens_out, cached, reasoning = (sum(r.usage[n] for r in self.results) for n in range(4))
        return {
            "input_tokens": tokens_in,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": tokens_out,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": tokens_in + tokens_out,
        }

    def to_api(self) -> dict[str, Any]:
        """The batch object as the API returns it (Batch)."""
        stamps = {name: int(self.stamps[name]) if name in self.stamps else None for name in BATCH_STAMPS.values()}
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            **({"model": self.model} if self.model else {}),
            "errors": {"object": "list", "data": list(self.errors)} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status.value,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": int(self.created_precise),
            "expires_at": int(self.created_precise + self.completion_window),
            **stamps,
            "request_counts": self.counts(),
            "usage": self.usage(),
            "metadata": self.metadata,
        }
