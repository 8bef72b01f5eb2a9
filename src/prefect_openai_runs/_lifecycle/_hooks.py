"""The core's reports made visible in Prefect, for every kind of job: log lines through the run logger,
``openai.<kind>.<status>`` events (the end's with the reason it ended), the job's artifact (written when
it is created and updated when it ends) and a progress artifact. Every write goes through the recording
layer's non-blocking writer: following, the deadline and the cancel never wait on the Prefect server."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Generic, TypeVar
from uuid import UUID

from prefect_openai_runs._intents import Intent, record_intent
from prefect_openai_runs._lifecycle._follower import StatusChange
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import (
    ArtifactExtras,
    JobView,
    ProgressReporter,
    ToolCallRecord,
    emit_status_event,
    flush,
    record_created,
    run_view,
    write_job_artifact,
)
from prefect_openai_runs.models import Run, RunStatus

J = TypeVar("J")

FLUSH_SECONDS = 5.0
"""How long the end of a job waits for its records to reach the Prefect server (then they are written in
the background, and logged locally if they cannot be)."""

FAN_OUT_FLUSH_SECONDS = 120.0
"""How long the end of a fan-out waits at most for its jobs' records, as long as the server keeps taking
them (it gives up after :data:`FLUSH_SECONDS` without one written): see :func:`flush_fan_out`."""


def flush_fan_out() -> bool:
    """Wait for the records of jobs followed together (their hooks do not flush one by one): as long as the
    Prefect server keeps writing them, at most :data:`FAN_OUT_FLUSH_SECONDS`, and no more than
    :data:`FLUSH_SECONDS` once it stops. Returns whether all were written."""
    return flush(FAN_OUT_FLUSH_SECONDS, stall=FLUSH_SECONDS)


class PrefectJobHooks(Generic[J]):
    """Reports one kind of job to Prefect (the core's ``JobHooks``).

    Args:
        view: What the recording layer shows of a job (e.g. :func:`~prefect_openai_runs._recording.run_view`).
        max_wait_seconds: The deadline, for the progress artifact (0: no progress artifact).
        progress: Whether to keep a progress artifact while waiting.
        flow_run_id: The flow run the records belong to (default: the current one; hooks and the
            orphan sweep, which run outside it, name it).
        record_intents: Whether a create's intent is recorded on the Prefect server before it is sent.
        final_view: The view written when the job ends (e.g. a run's with its reply), default ``view``.
        extras: What the artifact shows beyond the job (prompt, deadline, tool calls).
        flush_on_end: Whether the end of a job waits (at most :data:`FLUSH_SECONDS`) for its records to
            reach the Prefect server. Off for jobs followed together in one event loop: the wait would hold
            every sibling's following up; their task flushes once, after all have ended.
    """

    def __init__(
        self,
        view: Callable[[J], JobView],
        max_wait_seconds: float = 0.0,
        *,
        progress: bool = True,
        flow_run_id: UUID | None = None,
        record_intents: bool = True,
        final_view: Callable[[J], JobView] | None = None,
        extras: ArtifactExtras | None = None,
        flush_on_end: bool = True,
    ) -> None:
        self.view = view
        self.final_view = final_view or view
        self.max_wait_seconds = max_wait_seconds
        self.progress_enabled = progress and max_wait_seconds > 0
        self.flow_run_id = flow_run_id
        self.record_intents = record_intents
        self.extras = extras
        self.flush_on_end = flush_on_end
        self.progress: ProgressReporter | None = None
        self.jobs_created = 0
        """How many jobs these hooks saw created (or re-attached to)."""

    def intent(self, kind: str, key: str, parent_id: str | None) -> None:
        """Record the create about to be sent, with its idempotency key (what finds it if the answer is lost)."""
        if self.record_intents:
            record_intent(Intent(kind, key, parent_id))

    def created(self, job: J) -> None:
        """Log the new job's ids and record it at once."""
        self.jobs_created += 1
        view = self.view(job)
        record_created(view, flow_run_id=self.flow_run_id, extra=self.extras)
        self._start_progress(view)

    def _start_progress(self, view: JobView) -> None:
        if self.progress_enabled and self.progress is None:
            self.progress = ProgressReporter(
                view.id, self.max_wait_seconds, kind=view.kind, flow_run_id=self.flow_run_id
            )

    def changed(self, change: StatusChange, job: J) -> None:
        """Log the change and emit its event (a terminal status's event is emitted by :meth:`ended`, with
        the reason the job ended)."""
        view = self.view(job)
        self._start_progress(view)
        get_logger().info("OpenAI %s %s is %s after %.2fs", view.kind, view.id, change.status, change.elapsed)
        if not _terminal(view):
            emit_status_event(view, change, flow_run_id=self.flow_run_id)
        self.tick(change.elapsed)

    def tick(self, elapsed: float) -> None:
        """Update the progress artifact (throttled)."""
        if self.progress is not None:
            self.progress.update(elapsed)

    def ended(self, job: J, timeline: list[StatusChange], reason: str) -> None:
        """Write the job's final record, emit its final status event with the reason, finish the progress."""
        view = self.final_view(job)
        write_job_artifact(view, timeline, reason, self.extras, self.flow_run_id)
        if timeline and _terminal(view):
            emit_status_event(view, timeline[-1], reason=reason, flow_run_id=self.flow_run_id)
        if self.progress is not None:
            self.progress.finish(view.status, timeline[-1].elapsed if timeline else None)
        if self.flush_on_end:
            flush(FLUSH_SECONDS)


_TERMINAL = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})


def _terminal(view: JobView) -> bool:
    return view.status in _TERMINAL


class RunHooks(PrefectJobHooks[Run]):
    """Reports a run to Prefect; its final record shows the reply of a completed run.

    Args:
        max_wait_seconds: The deadline, for the progress artifact.
        progress: Whether to keep a progress artifact while waiting.
        reply: Reads a completed run's reply text for its artifact.
        **options: See :class:`PrefectJobHooks`.
    """

    def __init__(
        self,
        max_wait_seconds: float = 0.0,
        progress: bool = True,
        reply: Callable[[Run], str | None] | None = None,
        **options: Any,
    ) -> None:
        if max_wait_seconds > 0 and "extras" not in options:  # one followed run: its time against the deadline
            options["extras"] = ArtifactExtras(deadline_seconds=max_wait_seconds, sum_flow_usage=True)
        super().__init__(run_view, max_wait_seconds, progress=progress, final_view=self._final_view, **options)
        self.reply = reply

    def answered(self, run: Run, outputs: Mapping[str, str]) -> None:
        """Note ``run``'s tool calls with the outputs sent back (by call id), for its final card."""
        earlier = self.extras or ArtifactExtras()
        calls = [ToolCallRecord(c.function.name, c.function.arguments, outputs.get(c.id), c.id) for c in run.tool_calls]
        self.extras = replace(earlier, tool_calls=[*earlier.tool_calls, *calls])

    def _final_view(self, job: Run) -> JobView:
        text = None
        if self.reply is not None and job.status is RunStatus.COMPLETED:
            try:
                text = self.reply(job)
            except Exception as exc:
                get_logger().warning("Could not read the reply of run %s: %s", job.id, exc)
        return run_view(job, text)


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
