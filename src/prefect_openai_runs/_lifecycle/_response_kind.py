"""Background responses as a kind of job: a response's address, statuses and outcomes (no I/O)."""

from __future__ import annotations

from prefect_openai_runs._lifecycle._kinds import JobRef
from prefect_openai_runs.exceptions import JobCancelled, JobFailed, JobIncomplete, JobOutcomeError
from prefect_openai_runs.models import Response, ResponseStatus


class ResponseKind:
    """Background responses: terminal when completed, failed, cancelled or incomplete.

    Nothing waits for the caller: a completed response that asks for function calls is *completed*
    (its answer is a new response, ``previous_response_id``), so ``needs_action`` is always false and
    the function-tool loop lives in the flow. A cancel is best effort (a response seen ``cancelled`` has
    turned ``completed``), so a ``cancelled`` response is read once more before its end is recorded.
    """

    name = "response"
    recheck_cancelled = True

    def ref(self, job: Response) -> JobRef:
        """``JobRef("response", response.id)``."""
        return JobRef(self.name, job.id)

    def status(self, job: Response) -> str:
        """The response's status (``unknown`` when it has none)."""
        return str(job.status) if job.status is not None else "unknown"

    def is_terminal(self, job: Response) -> bool:
        """Whether the response can no longer change (cancelled included: see the class docstring)."""
        return job.is_terminal

    def needs_action(self, job: Response) -> bool:
        """Always ``False``: a response never waits for the caller."""
        return False

    def is_cancelling(self, job: Response) -> bool:
        """Always ``False``: responses have no ``cancelling`` status."""
        return False

    def is_cancelled(self, job: Response) -> bool:
        """Whether the response is ``cancelled``."""
        return job.status is ResponseStatus.CANCELLED

    def is_completed(self, job: Response) -> bool:
        """Whether the response is ``completed``."""
        return job.status is ResponseStatus.COMPLETED

    def outcome_error(self, job: Response, reason: str | None = None) -> JobOutcomeError | None:
        """``JobFailed``, ``JobIncomplete`` or ``JobCancelled`` (``None`` once completed or active)."""
        status = job.status
        if status is ResponseStatus.FAILED:
            detail = f"{job.error.code}: {job.error.message}" if job.error else "no error given"
            return JobFailed(job, reason or detail)
        if status is ResponseStatus.INCOMPLETE:
            why = job.incomplete_details.reason if job.incomplete_details else None
            return JobIncomplete(job, reason or f"incomplete ({why or 'no reason given'})")
        if status is ResponseStatus.CANCELLED:
            return JobCancelled(job, reason or "cancelled")
        return None


RESPONSE = ResponseKind()
"""The background responses kind."""
