"""A background response made visible in Prefect through the generic recording layer: its
:class:`~prefect_openai_runs._recording.JobView`, logs, ``openai.response.<status>`` events, and one
job artifact per response (written when it is created and when it ends) whose metadata
(``kind="response"``, ``id``) is the record the guard hooks read back to cancel it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from prefect_openai_runs._lifecycle._follower import StatusChange
from prefect_openai_runs._lifecycle._hooks import FLUSH_SECONDS, PrefectJobHooks
from prefect_openai_runs._recording import (
    ArtifactExtras,
    JobView,
    ToolCallRecord,
    flush,
    job_artifact_key,
    write_job_artifact,
)
from prefect_openai_runs._recording._markdown import stamp
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


class ResponseHooks(PrefectJobHooks[Response]):
    """Reports a background response to Prefect (the core's ``JobHooks``): the generic job hooks over
    :func:`response_view`, plus the function calls' outputs on a completed response's card.

    Args:
        max_wait_seconds: The deadline, for the progress artifact and the card (0: neither).
        rewrite_ended: Whether a response found already ended has its record written again (the guard
            and ``cancel_response`` leave it as it was).
        **options: See :class:`~prefect_openai_runs._lifecycle._hooks.PrefectJobHooks`.
    """

    def __init__(self, max_wait_seconds: float = 0.0, *, rewrite_ended: bool = True, **options: Any) -> None:
        if max_wait_seconds > 0 and "extras" not in options:
            options["extras"] = ArtifactExtras(deadline_seconds=max_wait_seconds)
        super().__init__(response_view, max_wait_seconds, **options)
        self.rewrite_ended = rewrite_ended
        self._ends: dict[str, tuple[list[StatusChange], str]] = {}

    def ended(self, job: Response, timeline: list[StatusChange], reason: str) -> None:
        """Write the response's final record (unless it had already ended and ``rewrite_ended`` is off)."""
        self._ends[job.id] = (timeline, reason)
        if self.rewrite_ended or len(timeline) > 1 or not job.is_terminal:
            super().ended(job, timeline, reason)

    def answered(self, job: Response, outputs: dict[str, str]) -> None:
        """Write a completed response's card again with the outputs its function calls were answered with."""
        timeline, reason = self._ends.get(job.id, ([], f"ended {job.status}"))
        extra = replace(self.extras or ArtifactExtras(), tool_calls=tool_call_records(job, outputs))
        write_job_artifact(self.view(job), timeline, reason, extra, self.flow_run_id)
        if self.flush_on_end:
            flush(FLUSH_SECONDS)
