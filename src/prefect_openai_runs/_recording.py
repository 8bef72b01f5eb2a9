"""What the Prefect UI shows of a run, and the record of every run a flow run created.

- The **run artifact**: a markdown artifact per run, with a stable key derived from the run id, written
  as soon as the run exists (so its ids are on the server at once) and again when it ends: status and
  why it ended, ids and model, the status timeline, token usage, the reply, the whole Run as JSON.
- The **registry**: those same artifacts carry the thread and run ids in their metadata, linked to the
  flow run. Cancel hooks read them back from the server, possibly from another process.
- **Events**: ``openai.run.<status>`` for each status change, resource ``openai.run.<run_id>``.
- **Progress**: a progress artifact of elapsed time against the deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.actions import ArtifactCreate, ArtifactUpdate
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.context import FlowRunContext, TaskRunContext
from prefect.events import emit_event

from prefect_openai_runs._lifecycle._follower import StatusChange
from prefect_openai_runs._lifecycle._kinds import JobRef
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs.models import Run

ARTIFACT_KEY_PREFIX = "openai-run-"
REPLY_PREVIEW_CHARS = 2000


def artifact_key(run_id: str, prefix: str = ARTIFACT_KEY_PREFIX) -> str:
    """The stable artifact key of a run: ``openai-run-<id in lowercase>-<6 hex of its hash>`` (another
    kind of job gives its own ``prefix``, e.g. ``openai-batch-``).

    Prefect keys allow lowercase letters, digits and dashes only; the hash keeps two ids that differ
    only in case apart.
    """
    slug = re.sub(r"[^a-z0-9-]+", "-", run_id.lower()).strip("-")
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:6]
    return f"{prefix}{slug}-{digest}"


@dataclass(frozen=True)
class RunRef:
    """A run's address: its thread and id."""

    thread_id: str
    run_id: str


def current_flow_run_id() -> UUID | None:
    """The id of the flow run we are in, if any."""
    task_ctx = TaskRunContext.get()
    if task_ctx is not None and task_ctx.task_run.flow_run_id is not None:
        return task_ctx.task_run.flow_run_id
    flow_ctx = FlowRunContext.get()
    return flow_ctx.flow_run.id if flow_ctx is not None and flow_ctx.flow_run is not None else None


def _current_task_run_id() -> UUID | None:
    task_ctx = TaskRunContext.get()
    return task_ctx.task_run.id if task_ctx is not None else None


def stamp(at: float | int | None) -> str:
    """A Unix time as ``YYYY-MM-DD HH:MM:SS.mmm UTC`` (``-`` when unknown)."""
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def timeline_section(timeline: Sequence[StatusChange]) -> list[str]:
    """The markdown lines of a job's status timeline: each status, when it was seen, how long it held."""
    lines = [
        "## Status timeline",
        "",
        "| Status | Seen at | Elapsed (s) | Time in status (s) |",
        "|---|---|---|---|",
    ]
    for index, change in enumerate(timeline):
        until = timeline[index + 1].elapsed if index + 1 < len(timeline) else None
        held = f"{until - change.elapsed:.3f}" if until is not None else "-"
        lines.append(f"| {change.status} | {stamp(change.at)} | {change.elapsed:.3f} | {held} |")
    return lines


def render_markdown(run: Run, timeline: Sequence[StatusChange], reason: str, reply: str | None) -> str:
    """The run artifact's markdown: outcome, ids, timeline, usage, reply and the Run as JSON."""
    lines = [
        f"# OpenAI run `{run.id}`: **{run.status}**",
        "",
        f"**Why it ended this way:** {reason}",
    ]
    if run.last_error is not None:
        lines.append(f"**Last error:** `{run.last_error.code}`: {run.last_error.message}")
    if run.incomplete_details is not None and run.incomplete_details.reason:
        lines.append(f"**Incomplete because:** `{run.incomplete_details.reason}`")
    lines += [
        "",
        "| Field | Value |",
        "|---|---|",
        f"| Thread | `{run.thread_id}` |",
        f"| Run | `{run.id}` |",
        f"| Assistant | `{run.assistant_id}` |",
        f"| Model | `{run.model or '-'}` |",
        f"| Created | {stamp(run.created_at)} |",
        "",
        *timeline_section(timeline),
    ]
    lines += ["", "## Token usage", ""]
    if run.usage is not None:
        lines.append(
            f"prompt {run.usage.prompt_tokens}, completion {run.usage.completion_tokens}, "
            f"total **{run.usage.total_tokens}**"
        )
    else:
        lines.append("not reported (the run did not end normally)")
    if reply:
        shown = reply if len(reply) <= REPLY_PREVIEW_CHARS else reply[:REPLY_PREVIEW_CHARS] + " [...]"
        lines += ["", "## Reply", "", "\n".join(f"> {line}" for line in shown.splitlines() or [""])]
    lines += ["", "## Run object", "", "```json", run.model_dump_json(indent=2), "```"]
    return "\n".join(lines)


def _description(run: Run, reason: str) -> str:
    return f"OpenAI run {run.id} on thread {run.thread_id}: {run.status} ({reason})"


def run_artifact(
    run: Run,
    timeline: Sequence[StatusChange],
    reason: str,
    reply: str | None = None,
    flow_run_id: UUID | None = None,
) -> ArtifactCreate:
    """The run's artifact, linked to the flow run (the current one unless given), with the ids in metadata."""
    current = current_flow_run_id()
    flow_run_id = flow_run_id or current
    return ArtifactCreate(
        key=artifact_key(run.id),
        type="markdown",
        description=_description(run, reason),
        data=render_markdown(run, timeline, reason, reply),
        metadata_={"thread_id": run.thread_id, "run_id": run.id, "status": str(run.status)},
        flow_run_id=flow_run_id,
        task_run_id=_current_task_run_id() if flow_run_id == current else None,
    )


def write_run_artifact(
    run: Run,
    timeline: Sequence[StatusChange],
    reason: str,
    reply: str | None = None,
    flow_run_id: UUID | None = None,
) -> None:
    """Write (a new version of) the run's artifact: see :func:`run_artifact`."""
    artifact = run_artifact(run, timeline, reason, reply, flow_run_id)
    with get_client(sync_client=True) as client:
        client.create_artifact(artifact=artifact)


class ArtifactWriter:
    """Writes run artifacts from an event loop over one Prefect client, a few at a time.

    Following many runs, each run's final artifact is written as soon as it ends, while the others are
    still followed, instead of one by one at the end (about 17 ms each on a SQLite server: 17 s for
    1,000 runs). A write that fails is logged with the run's ids and does not stop the others.

    Once ``stopped`` is set, nothing more is written: the code that set it (a task interrupted by a
    signal or a flow timeout, while this loop still runs on another thread) cancels the runs and
    writes their artifacts with the reason, which a late "ended cancelled" must not overwrite.
    """

    def __init__(self, client: PrefectClient, concurrency: int = 8, stopped: threading.Event | None = None) -> None:
        self._client = client
        self._slots = asyncio.Semaphore(concurrency)
        self._stopped = stopped or threading.Event()

    async def write(self, run: Run, timeline: Sequence[StatusChange], reason: str) -> None:
        """Write the run's artifact (see :func:`run_artifact`), unless writing was stopped."""
        artifact = run_artifact(run, timeline, reason)
        async with self._slots:
            if self._stopped.is_set():
                return
            try:
                await self._client.create_artifact(artifact=artifact)
            except Exception as exc:
                get_logger().error(
                    "Could not write the artifact of OpenAI run %s (thread %s, %s): %s",
                    run.id,
                    run.thread_id,
                    run.status,
                    exc,
                )


def record_created(run: Run, timeline: Sequence[StatusChange] = ()) -> None:
    """Log a new run's ids at once and put them on the Prefect server, so the run is never lost."""
    get_logger().info(
        "Created OpenAI run %s on thread %s (assistant %s, status %s)",
        run.id,
        run.thread_id,
        run.assistant_id,
        run.status,
    )
    write_run_artifact(run, timeline, "created; being followed")


def registered_runs(flow_run_id: UUID) -> list[RunRef]:
    """Every run our tasks and flows created in a flow run, read back from the Prefect server."""
    refs: dict[str, RunRef] = {}
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                    key=ArtifactFilterKey(like_=f"{ARTIFACT_KEY_PREFIX}%"),
                ),
                limit=200,
                offset=offset,
            )
            for artifact in page:
                meta = artifact.metadata_ or {}
                if "thread_id" in meta and "run_id" in meta:
                    refs[meta["run_id"]] = RunRef(meta["thread_id"], meta["run_id"])
            if len(page) < 200:
                return list(refs.values())
            offset += 200


def registered_jobs(flow_run_id: UUID, kinds: Sequence[str] = ("batch",)) -> list[JobRef]:
    """Every job of ``kinds`` our tasks and flows recorded in a flow run (artifact metadata ``kind`` and
    ``job_id``, as the batch hooks write it), read back from the Prefect server."""
    refs: dict[str, JobRef] = {}
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                    key=ArtifactFilterKey(like_="openai-%"),
                ),
                limit=200,
                offset=offset,
            )
            for artifact in page:
                meta = artifact.metadata_ or {}
                if meta.get("kind") in kinds and meta.get("job_id"):
                    refs[meta["job_id"]] = JobRef(meta["kind"], meta["job_id"], meta.get("parent_id") or None)
            if len(page) < 200:
                return list(refs.values())
            offset += 200


def emit_status_event(change: StatusChange, run: Run) -> None:
    """Emit ``openai.run.<status>`` about resource ``openai.run.<run_id>`` (related to the flow run).

    Only inside a flow or task run: outside one there is no run to relate the event to, and emitting
    would start Prefect's ephemeral server in a plain script.
    """
    flow_run_id = current_flow_run_id()
    if flow_run_id is None:
        return
    related = [{"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"}]
    emit_event(
        event=f"openai.run.{change.status}",
        resource={
            "prefect.resource.id": f"openai.run.{run.id}",
            "prefect.resource.name": run.id,
            "openai.thread.id": run.thread_id,
            "openai.assistant.id": run.assistant_id,
        },
        related=related,
        payload={"elapsed_seconds": round(change.elapsed, 3), **run.summary()},
    )


class ProgressReporter:
    """A Prefect progress artifact of elapsed time against the deadline, updated at most every ``every`` s."""

    def __init__(
        self, run_id: str, max_wait_seconds: float, every: float = 1.0, description: str | None = None
    ) -> None:
        self._max_wait = max_wait_seconds
        self._every = every
        self._last = 0.0
        self._id: UUID | None = None
        self._description = description or f"Waiting for OpenAI run {run_id} (deadline {max_wait_seconds:g}s)"
        self._flow_run_id = current_flow_run_id()
        if self._flow_run_id is not None:
            artifact = ArtifactCreate(
                type="progress",
                data=0.0,
                description=self._description,
                flow_run_id=self._flow_run_id,
                task_run_id=_current_task_run_id(),
            )
            with get_client(sync_client=True) as client:
                self._id = client.create_artifact(artifact=artifact).id

    def update(self, elapsed: float, force: bool = False) -> None:
        """Report ``elapsed`` seconds (as a percentage of the deadline)."""
        self.set(100.0 * elapsed / self._max_wait, force)

    def set(self, percent: float, force: bool = False) -> None:
        """Show ``percent`` (0 to 100), at most every ``every`` seconds unless ``force``."""
        now = time.monotonic()
        if self._id is None or (not force and now - self._last < self._every):
            return
        self._last = now
        progress = min(100.0, max(0.0, percent))
        with get_client(sync_client=True) as client:
            client.update_artifact(artifact_id=self._id, artifact=ArtifactUpdate(data=progress))


def run_json(run: Run) -> dict[str, Any]:
    """The run as plain JSON data (for results and event payloads)."""
    data: dict[str, Any] = json.loads(run.model_dump_json())
    return data
