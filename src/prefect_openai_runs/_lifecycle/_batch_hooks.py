"""A batch's reports made visible in Prefect: logs, ``openai.batch.<status>`` events, one markdown artifact
per batch (written when it is created and when it ends, its id and ``kind="batch"`` in the metadata so
guard hooks and the orphan sweep find it: :func:`~prefect_openai_runs._recording.registered_jobs`) and a
progress artifact of the requests done so far."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.events import emit_event

from prefect_openai_runs._intents import Intent, record_intent
from prefect_openai_runs._lifecycle._batch_kind import describe_errors
from prefect_openai_runs._lifecycle._follower import StatusChange
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import (
    ProgressReporter,
    _current_task_run_id,
    artifact_key,
    current_flow_run_id,
    stamp,
    timeline_section,
)
from prefect_openai_runs.models import Batch, BatchLineError

BATCH_ARTIFACT_PREFIX = "openai-batch-"
FIRST_LINE_ERRORS = 10
"""Failed requests quoted in a batch's artifact."""


def batch_percent(batch: Batch) -> float:
    """Requests done (completed or failed) as a percentage of the total (0 while unknown)."""
    counts = batch.request_counts
    if counts is None or counts.total <= 0:
        return 0.0
    return 100.0 * (counts.completed + counts.failed) / counts.total


def render_batch(
    batch: Batch,
    timeline: Sequence[StatusChange],
    reason: str,
    line_errors: Sequence[tuple[str, BatchLineError]] = (),
) -> str:
    """The batch artifact's markdown: outcome, ids, timeline, request counts, usage, files, first errors."""
    counts, usage = batch.request_counts, batch.usage
    lines = [
        f"# OpenAI batch `{batch.id}`: **{batch.status}**",
        "",
        f"**Why it ended this way:** {reason}",
        "",
        "| Field | Value |",
        "|---|---|",
        f"| Batch | `{batch.id}` |",
        f"| Endpoint | `{batch.endpoint}` |",
        f"| Input file | `{batch.input_file_id}` |",
        f"| Output file | `{batch.output_file_id or '-'}` |",
        f"| Error file | `{batch.error_file_id or '-'}` |",
        f"| Created | {stamp(batch.created_at)} |",
        f"| Expires | {stamp(batch.expires_at)} |",
        "",
        *timeline_section(timeline),
        "",
        "## Requests",
        "",
        f"total {counts.total}, completed {counts.completed}, failed {counts.failed}" if counts else "not reported",
        "",
        "## Token usage",
        "",
        f"input {usage.input_tokens}, output {usage.output_tokens}, total **{usage.total_tokens}**"
        if usage
        else "not reported",
    ]
    validation = describe_errors(batch, FIRST_LINE_ERRORS)
    if validation:
        lines += ["", "## Batch errors", "", validation]
    if line_errors:
        lines += ["", "## First failed requests", "", "| custom_id | code | message |", "|---|---|---|"]
        lines += [f"| `{cid}` | `{e.code or '-'}` | {e.message or '-'} |" for cid, e in line_errors[:FIRST_LINE_ERRORS]]
    lines += ["", "## Batch object", "", "```json", batch.model_dump_json(indent=2), "```"]
    return "\n".join(lines)


class BatchHooks:
    """Reports a batch to Prefect (the core's :class:`~prefect_openai_runs._lifecycle._async._api.JobHooks`).

    Args:
        progress: Whether to keep a progress artifact (requests done / total) while the batch runs.
        stopped: Once set, nothing more is recorded (the code that set it ends the batch and records why).
    """

    def __init__(self, progress: bool = True, stopped: threading.Event | None = None) -> None:
        self.progress_enabled = progress
        self.progress: ProgressReporter | None = None
        self.stopped = stopped or threading.Event()
        self.timeline: list[StatusChange] = []
        self.reason = "created; being followed"

    def intent(self, kind: str, key: str, parent_id: str | None) -> None:
        """Record the create about to be sent (its input file is the parent) on the Prefect server."""
        record_intent(Intent(kind, key, parent_id))

    def created(self, job: Batch) -> None:
        """Log and record the new batch at once."""
        get_logger().info(
            "Created OpenAI batch %s on file %s (%s, status %s)", job.id, job.input_file_id, job.endpoint, job.status
        )
        self.write(job)
        self.watch(job.id)

    def watch(self, batch_id: str) -> None:
        """Start the progress artifact of the requests done (once, when enabled)."""
        if self.progress_enabled and self.progress is None:
            self.progress = ProgressReporter(batch_id, 1.0, description=f"Requests done in OpenAI batch {batch_id}")

    def changed(self, change: StatusChange, job: Batch) -> None:
        """Log and emit the change."""
        if self.stopped.is_set():
            return
        get_logger().info("OpenAI batch %s is %s after %.2fs", job.id, change.status, change.elapsed)
        _emit(change, job)
        self.polled(job)

    def tick(self, elapsed: float) -> None:
        """Nothing: progress follows the request counts (:meth:`polled`), not the time."""

    def polled(self, job: Batch) -> None:
        """Show the request counts on the progress artifact (throttled)."""
        if self.progress is not None and not self.stopped.is_set():
            self.progress.set(batch_percent(job))

    def ended(self, job: Batch, timeline: list[StatusChange], reason: str) -> None:
        """Write the batch's final artifact."""
        if self.stopped.is_set():
            return
        self.timeline, self.reason = list(timeline), reason
        self.write(job)
        if self.progress is not None:
            self.progress.set(batch_percent(job), force=True)

    def write(self, job: Batch, line_errors: Sequence[tuple[str, BatchLineError]] = ()) -> None:
        """Write (a new version of) the batch's artifact, with the first failed requests when known."""
        flow_run_id = current_flow_run_id()
        artifact = ArtifactCreate(
            key=artifact_key(job.id, BATCH_ARTIFACT_PREFIX),
            type="markdown",
            description=f"OpenAI batch {job.id}: {job.status} ({self.reason})",
            data=render_batch(job, self.timeline, self.reason, line_errors),
            metadata_={"kind": "batch", "job_id": job.id, "parent_id": job.input_file_id, "status": str(job.status)},
            flow_run_id=flow_run_id,
            task_run_id=_current_task_run_id(),
        )
        try:
            with get_client(sync_client=True) as client:
                client.create_artifact(artifact=artifact)
        except Exception as exc:
            get_logger().error("Could not write the artifact of OpenAI batch %s (%s): %s", job.id, job.status, exc)


def _emit(change: StatusChange, batch: Batch) -> None:
    """Emit ``openai.batch.<status>`` about resource ``openai.batch.<id>`` (inside a flow or task run only)."""
    flow_run_id = current_flow_run_id()
    if flow_run_id is None:
        return
    counts: dict[str, Any] = batch.request_counts.model_dump() if batch.request_counts else {}
    emit_event(
        event=f"openai.batch.{change.status}",
        resource={
            "prefect.resource.id": f"openai.batch.{batch.id}",
            "prefect.resource.name": batch.id,
            "openai.file.id": batch.input_file_id,
        },
        related=[{"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"}],
        payload={"elapsed_seconds": round(change.elapsed, 3), "status": str(batch.status), "request_counts": counts},
    )
