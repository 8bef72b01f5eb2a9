"""A background response made visible in Prefect through the generic recording layer: its
:class:`~prefect_openai_runs._recording.JobView`, logs, ``openai.response.<status>`` events, and one
job artifact per response (written when it is created and when it ends) whose metadata
(``kind="response"``, ``id``) is the record the guard hooks read back to cancel it."""

from __future__ import annotations

from uuid import UUID

from prefect_openai_runs._intents import Intent, record_intent
from prefect_openai_runs._lifecycle._follower import StatusChange
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import (
    ArtifactExtras,
    JobView,
    ToolCallRecord,
    emit_status_event,
    job_artifact_key,
    record_created,
    registered_jobs,
    write_job_artifact,
)
from prefect_openai_runs._recording._markdown import stamp
from prefect_openai_runs._recording._writer import WRITE_TIMEOUT_SECONDS
from prefect_openai_runs.client import IDEMPOTENCY_METADATA_KEY
from prefect_openai_runs.models import Response

RESPONSE_KIND = "response"


def response_artifact_key(response_id: str) -> str:
    """The stable artifact key of a response: ``openai-response-<id without resp_>-<6 hex>``."""
    return job_artifact_key(RESPONSE_KIND, response_id)


def response_view(response: Response) -> JobView:
    """The view of a background response: ids, token usage (cached and reasoning tokens included), the
    output text and the function calls it asked for."""
    usage = response.usage
    rows = (
        (
            ("input", usage.input_tokens),
            ("cached", usage.cached_tokens),
            ("output", usage.output_tokens),
            ("reasoning", usage.reasoning_tokens),
            ("total", usage.total_tokens),
        )
        if usage is not None
        else None
    )
    error = f"{response.error.code}: {response.error.message}" if response.error is not None else None
    if error is None and response.incomplete_details is not None and response.incomplete_details.reason:
        error = f"incomplete: {response.incomplete_details.reason}"
    calls = "\n".join(f"{c.name}({c.arguments}) call {c.call_id}" for c in response.function_calls)
    sections = tuple(
        (title, text) for title, text in (("Output", response.output_text), ("Function calls", calls)) if text
    )
    return JobView(
        kind=RESPONSE_KIND,
        id=response.id,
        status=str(response.status) if response.status is not None else "unknown",
        title_rows=(
            ("Response", response.id),
            ("Previous response", response.previous_response_id or "-"),
            ("Model", response.model or "-"),
            ("Idempotency key", (response.metadata or {}).get(IDEMPOTENCY_METADATA_KEY, "-")),
            ("Created", stamp(response.created_at)),
            ("Completed", stamp(response.completed_at)),
        ),
        usage=rows,
        sections=sections,
        raw_json=response.model_dump_json(indent=2),
        summary=response.summary(),
        model=response.model or None,
        error=error,
    )


def tool_call_records(response: Response, outputs: dict[str, str]) -> list[ToolCallRecord]:
    """The function calls of a response with the outputs answered (by ``call_id``), for its artifact."""
    return [ToolCallRecord(c.name, c.arguments, outputs.get(c.call_id), c.call_id) for c in response.function_calls]


class ResponseHooks:
    """Reports a background response to Prefect (the core's ``JobHooks``): the intent, logs, events and
    the job artifact.

    Args:
        flow_run_id: The flow run the records belong to (default: the current one; given by hooks).
        record_intent: Whether the intent is written to the Prefect server before the create is sent.
        rewrite_ended: Whether a response found already ended has its artifact written again (the guard
            and ``cancel_response`` leave it as it was).
        deadline_seconds: The deadline it is followed against, for the artifact.
        wait_for_writes: Whether the final artifact's write is waited for (bounded); off where the hooks
            run on an event loop (the caller then flushes the writer once).
    """

    def __init__(
        self,
        flow_run_id: UUID | None = None,
        record_intent: bool = True,
        rewrite_ended: bool = True,
        deadline_seconds: float | None = None,
        wait_for_writes: bool = True,
    ) -> None:
        self.flow_run_id = flow_run_id
        self.record_intent = record_intent
        self.rewrite_ended = rewrite_ended
        self.deadline_seconds = deadline_seconds
        self.wait_for_writes = wait_for_writes
        self._ends: dict[str, tuple[list[StatusChange], str]] = {}

    def intent(self, kind: str, key: str, parent_id: str | None) -> None:
        """Record the create about to be sent, with the key put in its metadata (its only trace if lost)."""
        if self.record_intent:
            record_intent(Intent(kind, key, parent_id))

    def created(self, job: Response) -> None:
        """Log the new response's id and record it on the Prefect server at once."""
        record_created(response_view(job), flow_run_id=self.flow_run_id)

    def changed(self, change: StatusChange, job: Response) -> None:
        """Log and emit ``openai.response.<status>``."""
        get_logger().info("OpenAI response %s is %s after %.2fs", job.id, change.status, change.elapsed)
        emit_status_event(response_view(job), change, flow_run_id=self.flow_run_id)

    def tick(self, elapsed: float) -> None:
        """Nothing: a response has no progress artifact."""

    def ended(self, job: Response, timeline: list[StatusChange], reason: str) -> None:
        """Write the response's final artifact (unless it had already ended and ``rewrite_ended`` is off),
        waiting (bounded) until it is on the server."""
        self._ends[job.id] = (timeline, reason)
        if self.rewrite_ended or len(timeline) > 1 or not job.is_terminal:
            self._write(job, timeline, reason, ArtifactExtras(deadline_seconds=self.deadline_seconds))

    def answered(self, job: Response, outputs: dict[str, str]) -> None:
        """Write a completed response's artifact again with the outputs its function calls were answered with."""
        timeline, reason = self._ends.get(job.id, ([], f"ended {job.status}"))
        extra = ArtifactExtras(deadline_seconds=self.deadline_seconds, tool_calls=tool_call_records(job, outputs))
        self._write(job, timeline, reason, extra)

    def _write(self, job: Response, timeline: list[StatusChange], reason: str, extra: ArtifactExtras) -> None:
        view = response_view(job)
        wait = WRITE_TIMEOUT_SECONDS if self.wait_for_writes else 0.0
        write_job_artifact(view, timeline, reason, extra, self.flow_run_id, wait_seconds=wait)


def registered_responses(flow_run_id: UUID) -> list[str]:
    """The ids of every response our tasks and flows created in a flow run, read back from the server."""
    return [ref.id for ref in registered_jobs(flow_run_id) if ref.kind == RESPONSE_KIND]
