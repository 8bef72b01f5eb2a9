"""The Batch API as a kind of job: a batch's address, statuses and outcomes (no I/O).

A batch lives for hours: ``validating``, ``in_progress``, ``finalizing``, then ``completed``, ``failed``,
``expired`` or ``cancelled``. ``cancelling`` (up to 10 minutes) is not terminal: partial results are still
being written. :data:`BATCH_SCHEDULE` polls at a cadence fit for hours.
"""

from __future__ import annotations

from prefect_openai_runs._lifecycle._follower import PollSchedule
from prefect_openai_runs._lifecycle._kinds import JobRef
from prefect_openai_runs.exceptions import JobCancelled, JobExpired, JobFailed, JobOutcomeError
from prefect_openai_runs.models import Batch, BatchStatus

BATCH_SCHEDULE = PollSchedule(initial=2.0, factor=1.3, cap=60.0, steady_polls=5)
"""Polling a batch without a server hint: every 2 s for the first five polls, then waits growing by 30%
up to a minute (2.6, 3.4, 4.4, ... 60 s): a batch of minutes is seen ending within seconds, one of hours
costs one request a minute (Azure asks for no more)."""
DEFAULT_BATCH_CANCEL_WAIT_SECONDS = 600.0
"""How long the end of a batch waits for ``cancelling`` to become ``cancelled`` (the API: up to 10 minutes)."""
FIRST_ERRORS = 5
"""Validation errors quoted in a failed batch's outcome."""


def describe_errors(batch: Batch, limit: int = FIRST_ERRORS) -> str:
    """The batch's first validation errors in words, with their lines (``""`` when it has none)."""
    errors = batch.errors.data if batch.errors is not None else []
    parts = [
        (f"line {e.line}: " if e.line is not None else "") + f"{e.code or 'error'}: {e.message or '-'}"
        for e in errors[:limit]
    ]
    more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(parts) + more


class BatchKind:
    """Batches: terminal when failed, completed, expired or cancelled; never waiting for the caller."""

    name = "batch"
    recheck_cancelled = False

    def ref(self, job: Batch) -> JobRef:
        """``JobRef("batch", batch.id)``."""
        return JobRef(self.name, job.id)

    def status(self, job: Batch) -> str:
        """The batch's status."""
        return str(job.status)

    def is_terminal(self, job: Batch) -> bool:
        """Whether the batch can no longer change (``cancelling`` is not terminal)."""
        return job.status.is_terminal

    def needs_action(self, job: Batch) -> bool:
        """Never: a batch does not wait for the caller."""
        return False

    def is_cancelling(self, job: Batch) -> bool:
        """Whether the batch is ``cancelling``."""
        return job.status is BatchStatus.CANCELLING

    def is_cancelled(self, job: Batch) -> bool:
        """Whether the batch ended ``cancelled``."""
        return job.status is BatchStatus.CANCELLED

    def is_completed(self, job: Batch) -> bool:
        """Whether the batch ended ``completed``."""
        return job.status is BatchStatus.COMPLETED

    def outcome_error(self, job: Batch, reason: str | None = None) -> JobOutcomeError | None:
        """``JobFailed`` (with the validation errors and their lines), ``JobExpired`` or ``JobCancelled``."""
        status = job.status
        if status is BatchStatus.FAILED:
            return JobFailed(job, reason or describe_errors(job) or "failed (no error given)")
        if status is BatchStatus.EXPIRED:
            return JobExpired(job, reason or "expired: the completion window passed before every request ran")
        if status is BatchStatus.CANCELLED:
            return JobCancelled(job, reason or "cancelled")
        return None


BATCH = BatchKind()
"""The batches kind."""
