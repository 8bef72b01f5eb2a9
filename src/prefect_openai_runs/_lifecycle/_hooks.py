"""The core's reports made visible in Prefect: logs through the run logger, ``openai.<kind>.<status>``
events, the job's artifact (written when it is created and when it ends) and a progress artifact."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect_openai_runs._lifecycle._follower import StatusChange
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import ProgressReporter, emit_status_event, record_created, write_run_artifact
from prefect_openai_runs.models import Run, RunStatus


class RunHooks:
    """Reports a run to Prefect (the core's :class:`~prefect_openai_runs._lifecycle._async._api.JobHooks`).

    Args:
        max_wait_seconds: The deadline, for the progress artifact.
        progress: Whether to keep a progress artifact while waiting.
        reply: Reads a completed run's reply text for its artifact.
    """

    def __init__(
        self, max_wait_seconds: float, progress: bool = True, reply: Callable[[Run], str | None] | None = None
    ) -> None:
        self.max_wait_seconds = max_wait_seconds
        self.progress_enabled = progress
        self.progress: ProgressReporter | None = None
        self.reply = reply

    def intent(self, kind: str, key: str, parent_id: str | None) -> None:
        """Log the create about to be sent, with its idempotency key (what finds it if the answer is lost)."""
        get_logger().debug("Creating an OpenAI %s on %s with idempotency key %s", kind, parent_id or "-", key)

    def created(self, job: Run) -> None:
        """Log and record the new run at once."""
        record_created(job)
        self._start_progress(job)

    def _start_progress(self, job: Run) -> None:
        if self.progress_enabled and self.progress is None:
            self.progress = ProgressReporter(job.id, self.max_wait_seconds)

    def changed(self, change: StatusChange, job: Run) -> None:
        """Log and emit the change."""
        self._start_progress(job)
        get_logger().info("OpenAI run %s is %s after %.2fs", job.id, change.status, change.elapsed)
        emit_status_event(change, job)
        self.tick(change.elapsed)

    def tick(self, elapsed: float) -> None:
        """Update the progress artifact (throttled)."""
        if self.progress is not None:
            self.progress.update(elapsed)

    def ended(self, job: Run, timeline: list[StatusChange], reason: str) -> None:
        """Write the run's final artifact."""
        text = None
        if self.reply is not None and job.status is RunStatus.COMPLETED:
            try:
                text = self.reply(job)
            except Exception as exc:
                get_logger().warning("Could not read the reply of run %s: %s", job.id, exc)
        write_run_artifact(job, timeline, reason, text)
        if self.progress is not None and timeline:
            self.progress.update(timeline[-1].elapsed, force=True)


def no_reply(job: Any) -> None:
    """A reply reader for contexts that do not read replies."""
    return None


class SilentHooks:
    """Hooks that report nothing (benchmarks, and code that records by other means)."""

    def intent(self, kind: str, key: str, parent_id: str | None) -> None:
        """Nothing."""

    def created(self, job: Any) -> None:
        """Nothing."""

    def changed(self, change: StatusChange, job: Any) -> None:
        """Nothing."""

    def tick(self, elapsed: float) -> None:
        """Nothing."""

    def ended(self, job: Any, timeline: list[StatusChange], reason: str) -> None:
        """Nothing."""
