"""What the Prefect UI shows of a job (an Assistants run, a background response, a batch), and the
record of every job a flow run created.

- :class:`JobView` is what this layer knows of a job, whatever its kind (:func:`run_view` for runs).
- The **job artifact** (:func:`write_job_artifact`): one card per job and flow run, with a stable key,
  written when the job is created (:func:`record_created`) and updated as it ends; every text from
  outside is escaped or fenced.
- The **registry** (:func:`registered_jobs`): the artifacts' metadata, read back from the server, so
  cancel hooks find the jobs from any process.
- **Events** (:func:`emit_status_event`, ``openai.<kind>.created``) and **progress**
  (:class:`ProgressReporter`).
- Every write to the Prefect API goes through a non-blocking writer (:func:`flush` waits for it).
"""

from prefect_openai_runs._recording._artifacts import (
    artifact_key,
    describe,
    job_artifact,
    job_artifact_key,
    metadata,
    record_created,
    write_fan_out_summary,
    write_job_artifact,
)
from prefect_openai_runs._recording._compat import (
    ArtifactWriter,
    render_markdown,
    run_artifact,
    run_json,
    write_run_artifact,
)
from prefect_openai_runs._recording._context import current_flow_run_id, current_task_run_id
from prefect_openai_runs._recording._events import emit_job_event, emit_status_event, reason_kind
from prefect_openai_runs._recording._markdown import code, fenced, inline, render_fan_out, render_job
from prefect_openai_runs._recording._progress import ProgressReporter
from prefect_openai_runs._recording._registry import (
    ARTIFACT_KEY_PREFIX,
    JobRef,
    RunRef,
    flow_usage,
    labelled_jobs,
    registered_jobs,
    registered_runs,
)
from prefect_openai_runs._recording._view import ArtifactExtras, JobView, TimelineEntry, ToolCallRecord, run_view
from prefect_openai_runs._recording._writer import PrefectWriter, flush, get_writer, submit

__all__ = [
    "ARTIFACT_KEY_PREFIX",
    "ArtifactExtras",
    "ArtifactWriter",
    "JobRef",
    "JobView",
    "PrefectWriter",
    "ProgressReporter",
    "RunRef",
    "TimelineEntry",
    "ToolCallRecord",
    "artifact_key",
    "code",
    "current_flow_run_id",
    "current_task_run_id",
    "describe",
    "emit_job_event",
    "emit_status_event",
    "fenced",
    "flow_usage",
    "flush",
    "get_writer",
    "inline",
    "job_artifact",
    "job_artifact_key",
    "labelled_jobs",
    "metadata",
    "reason_kind",
    "record_created",
    "registered_jobs",
    "registered_runs",
    "render_fan_out",
    "render_job",
    "render_markdown",
    "run_artifact",
    "run_json",
    "run_view",
    "submit",
    "write_fan_out_summary",
    "write_job_artifact",
    "write_run_artifact",
]
