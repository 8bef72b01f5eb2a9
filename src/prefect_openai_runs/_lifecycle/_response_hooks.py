"""A background response made visible in Prefect: logs, ``openai.response.<status>`` events, and one
markdown artifact per response (written when it is created and when it ends) whose metadata
(``kind="response"``, ``response_id``) is the record the guard hooks read back to cancel it."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.events import emit_event

from prefect_openai_runs._intents import Intent, record_intent
from prefect_openai_runs._lifecycle._follower import StatusChange
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import (
    ARTIFACT_KEY_PREFIX,
    REPLY_PREVIEW_CHARS,
    _current_task_run_id,
    _stamp,
    artifact_key,
    current_flow_run_id,
)
from prefect_openai_runs.client import IDEMPOTENCY_METADATA_KEY
from prefect_openai_runs.models import Response

RESPONSE_KEY_PREFIX = "openai-response-"
RESPONSE_KIND = "response"


def response_artifact_key(response_id: str) -> str:
    """The stable artifact key of a response: ``openai-response-<id in lowercase>-<6 hex of its hash>``."""
    return RESPONSE_KEY_PREFIX + artifact_key(response_id).removeprefix(ARTIFACT_KEY_PREFIX)


def render_response(response: Response, timeline: Sequence[StatusChange], reason: str) -> str:
    """The response artifact's markdown: outcome, ids, timeline, token usage, output and the JSON."""
    lines = [f"# OpenAI response `{response.id}`: **{response.status}**", "", f"**Why it ended this way:** {reason}"]
    if response.error is not None:
        lines.append(f"**Error:** `{response.error.code}`: {response.error.message}")
    if response.incomplete_details is not None and response.incomplete_details.reason:
        lines.append(f"**Incomplete because:** `{response.incomplete_details.reason}`")
    key = (response.metadata or {}).get(IDEMPOTENCY_METADATA_KEY, "-")
    lines += [
        "",
        "| Field | Value |",
        "|---|---|",
        f"| Response | `{response.id}` |",
        f"| Previous response | `{response.previous_response_id or '-'}` |",
        f"| Model | `{response.model or '-'}` |",
        f"| Idempotency key | `{key}` |",
        f"| Created | {_stamp(response.created_at)} |",
        f"| Completed | {_stamp(response.completed_at)} |",
        "",
        "## Status timeline",
        "",
        "| Status | Seen at | Elapsed (s) |",
        "|---|---|---|",
        *(f"| {c.status} | {_stamp(c.at)} | {c.elapsed:.3f} |" for c in timeline),
        "",
        "## Token usage",
        "",
    ]
    usage = response.usage
    if usage is not None:
        lines.append(
            f"input {usage.input_tokens} (cached {usage.cached_tokens}), output {usage.output_tokens} "
            f"(reasoning {usage.reasoning_tokens}), total **{usage.total_tokens}**"
        )
    else:
        lines.append("not reported (the response did not end normally)")
    text = response.output_text
    if text:
        shown = text if len(text) <= REPLY_PREVIEW_CHARS else text[:REPLY_PREVIEW_CHARS] + " [...]"
        lines += ["", "## Output text", "", "\n".join(f"> {line}" for line in shown.splitlines() or [""])]
    calls = response.function_calls
    if calls:
        lines += ["", "## Function calls", "", *(f"- `{c.name}({c.arguments})` (call `{c.call_id}`)" for c in calls)]
    lines += ["", "## Response object", "", "```json", response.model_dump_json(indent=2), "```"]
    return "\n".join(lines)


class ResponseHooks:
    """Reports a background response to Prefect (the core's ``JobHooks``): the intent, logs, events and
    the response artifact.

    Args:
        flow_run_id: The flow run the artifacts belong to (default: the current one).
        record_intent: Whether the intent is written to the Prefect server before the create is sent.
        rewrite_ended: Whether a response found already ended keeps its artifact as it was (the guard
            and the sweep set this to ``False``).
    """

    def __init__(self, flow_run_id: UUID | None = None, record_intent: bool = True, rewrite_ended: bool = True) -> None:
        self.flow_run_id = flow_run_id
        self.record_intent = record_intent
        self.rewrite_ended = rewrite_ended

    def intent(self, kind: str, key: str, parent_id: str | None) -> None:
        """Record the create about to be sent, with the key put in its metadata (its only trace if lost)."""
        if self.record_intent:
            record_intent(Intent(kind, key, parent_id))

    def created(self, job: Response) -> None:
        """Log the new response's id and record it on the Prefect server at once."""
        get_logger().info("Created OpenAI background response %s (model %s, %s)", job.id, job.model, job.status)
        self._write(job, [], "created; being followed")

    def changed(self, change: StatusChange, job: Response) -> None:
        """Log and emit ``openai.response.<status>``."""
        get_logger().info("OpenAI response %s is %s after %.2fs", job.id, change.status, change.elapsed)
        flow_run_id = self.flow_run_id or current_flow_run_id()
        if flow_run_id is None:
            return
        emit_event(
            event=f"openai.response.{change.status}",
            resource={"prefect.resource.id": f"openai.response.{job.id}", "prefect.resource.name": job.id},
            related=[{"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"}],
            payload={"elapsed_seconds": round(change.elapsed, 3), **job.summary()},
        )

    def tick(self, elapsed: float) -> None:
        """Nothing: a response has no progress artifact."""

    def ended(self, job: Response, timeline: list[StatusChange], reason: str) -> None:
        """Write the response's final artifact (unless it had already ended and ``rewrite_ended`` is off)."""
        if self.rewrite_ended or len(timeline) > 1 or not job.is_terminal:
            self._write(job, timeline, reason)

    def _write(self, job: Response, timeline: Sequence[StatusChange], reason: str) -> None:
        current = current_flow_run_id()
        flow_run_id = self.flow_run_id or current
        if flow_run_id is None and _current_task_run_id() is None:
            return  # not in a Prefect run: the logs are the record (no server to start for it)
        artifact = ArtifactCreate(
            key=response_artifact_key(job.id),
            type="markdown",
            description=f"OpenAI response {job.id}: {job.status} ({reason})",
            data=render_response(job, timeline, reason),
            metadata_={"kind": RESPONSE_KIND, "response_id": job.id, "status": str(job.status)},
            flow_run_id=flow_run_id,
            task_run_id=_current_task_run_id() if flow_run_id == current else None,
        )
        try:
            with get_client(sync_client=True) as client:
                client.create_artifact(artifact=artifact)
        except Exception as exc:
            get_logger().error("Could not write the artifact of OpenAI response %s (%s): %s", job.id, job.status, exc)


def registered_responses(flow_run_id: UUID) -> list[str]:
    """The ids of every response our tasks and flows created in a flow run, read back from the server."""
    found: dict[str, None] = {}
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                    key=ArtifactFilterKey(like_=f"{RESPONSE_KEY_PREFIX}%"),
                ),
                limit=200,
                offset=offset,
            )
            for artifact in page:
                meta = artifact.metadata_ or {}
                if meta.get("kind") == RESPONSE_KIND and meta.get("response_id"):
                    found[meta["response_id"]] = None
            if len(page) < 200:
                return list(found)
            offset += 200
