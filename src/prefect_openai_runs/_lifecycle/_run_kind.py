"""The runs API as a kind of job: a run's address, statuses and outcomes (no I/O)."""

from __future__ import annotations

from prefect_openai_runs._lifecycle._kinds import JobRef
from prefect_openai_runs.exceptions import JobOutcomeError, RunCancelled, RunExpired, RunFailed, RunIncomplete
from prefect_openai_runs.models import Run, RunStatus


class RunKind:
    """Assistants runs: terminal when cancelled, failed, completed, incomplete or expired; following stops
    at ``requires_action`` (the run waits for tool outputs)."""

    name = "run"
    recheck_cancelled = False

    def ref(self, job: Run) -> JobRef:
        """``JobRef("run", run.id, run.thread_id)``."""
        return JobRef(self.name, job.id, job.thread_id)

    def status(self, job: Run) -> str:
        """The run's status."""
        return str(job.status)

    def is_terminal(self, job: Run) -> bool:
        """Whether the run can no longer change."""
        return job.status.is_terminal

    def needs_action(self, job: Run) -> bool:
        """Whether the run waits for tool outputs."""
        return job.status.needs_action

    def is_cancelling(self, job: Run) -> bool:
        """Whether the run is ``cancelling``."""
        return job.status is RunStatus.CANCELLING

    def is_cancelled(self, job: Run) -> bool:
        """Whether the run ended ``cancelled``."""
        return job.status is RunStatus.CANCELLED

    def is_completed(self, job: Run) -> bool:
        """Whether the run ended ``completed``."""
        return job.status is RunStatus.COMPLETED

    def outcome_error(self, job: Run, reason: str | None = None) -> JobOutcomeError | None:
        """``RunFailed``, ``RunIncomplete``, ``RunExpired`` or ``RunCancelled`` (``None`` once completed or active)."""
        status = job.status
        if status is RunStatus.FAILED:
            detail = f"{job.last_error.code}: {job.last_error.message}" if job.last_error else "no error given"
            return RunFailed(job, reason or detail)
        if status is RunStatus.INCOMPLETE:
            why = job.incomplete_details.reason if job.incomplete_details else None
            return RunIncomplete(job, reason or f"incomplete ({why or 'no reason given'})")
        if status is RunStatus.EXPIRED:
            return RunExpired(job, reason or "expired before it finished (expires_at passed)")
        if status is RunStatus.CANCELLED:
            return RunCancelled(job, reason or "cancelled")
        return None


RUN = RunKind()
"""The runs kind."""
