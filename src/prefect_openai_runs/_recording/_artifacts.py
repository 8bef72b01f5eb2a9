"""The job artifact: one card per job and flow run, its key, description and metadata, and how it is written.

- **One card.** The Prefect UI shows every version of a keyed artifact linked to a flow run as its
  own card. So a job's artifact is created once per flow run and then updated in place (the
  server updates the key's latest version with it): the card always shows the latest state.
- **The key** is ``openai-<kind>-<id without its kind prefix>-<6 hex of the id's hash>``, e.g.
  ``openai-run-abc123-1a2b3c`` for ``run_abc123``: Prefect keys allow lowercase letters, digits and
  dashes only, and the hash keeps two ids that differ only in case apart.
- **The description** starts with the status: ``completed · run_abc · ended completed``.
- **The metadata** holds what the registry reads back (kind, id, parent id, status, the job's labels)
  and the token usage (``usage.<label>``), which :func:`~._registry.flow_usage` sums over a flow run.

Every write goes through the non-blocking writer (:mod:`._writer`).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter
from collections.abc import Sequence
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import ArtifactCreate, ArtifactUpdate
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.exceptions import ObjectNotFound

from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording._context import linked_runs
from prefect_openai_runs._recording._events import emit_job_event
from prefect_openai_runs._recording._markdown import inline, render_fan_out, render_job, shorten
from prefect_openai_runs._recording._registry import ARTIFACT_KEY_PREFIX, USAGE_PREFIX, JobRef, flow_usage, note_job
from prefect_openai_runs._recording._view import ArtifactExtras, JobView, TimelineEntry, run_view
from prefect_openai_runs._recording._writer import get_writer, submit
from prefect_openai_runs.models import Run

ID_PREFIXES = ("run_", "resp_", "batch_")
"""Kind prefixes of the API's ids, left out of artifact keys (the kind is already in the key)."""
DESCRIPTION_REASON_CHARS = 100
CREATED_REASON = "created; being followed"
CREATED_WAIT_SECONDS = 2.0
"""How long :func:`record_created` waits for the job's record to be on the server (less when it does not answer)."""

_ids: dict[str, UUID] = {}
"""Artifact ids this process wrote, by slot (key and flow run): later writes update them in place."""
_ids_lock = threading.Lock()


def job_artifact_key(kind: str, job_id: str) -> str:
    """The stable artifact key of a job: ``openai-<kind>-<id without kind prefix, lowercase>-<6 hex>``.

    Example:
        ```python
        job_artifact_key("run", "run_abc")  # 'openai-run-abc-<6 hex>'
        ```
    """
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:6]
    bare = next((job_id[len(p) :] for p in ID_PREFIXES if job_id.startswith(p) and len(job_id) > len(p)), job_id)
    slug = re.sub(r"[^a-z0-9-]+", "-", bare.lower()).strip("-")
    kind_slug = re.sub(r"[^a-z0-9-]+", "-", kind.lower()).strip("-") or "job"
    return f"{ARTIFACT_KEY_PREFIX}{kind_slug}-{slug + '-' if slug else ''}{digest}"


def artifact_key(run_id: str) -> str:
    """The artifact key of an Assistants run (see :func:`job_artifact_key`)."""
    return job_artifact_key("run", run_id)


def describe(view: JobView, reason: str) -> str:
    """The card's description: ``<status> · <id> · <reason, shortened>`` (markdown-escaped)."""
    return f"{inline(view.status)} · {inline(view.id)} · {inline(reason, DESCRIPTION_REASON_CHARS)}"


def metadata(view: JobView) -> dict[str, str]:
    """What the registry and the flow's usage total read back: ids, status, labels, usage."""
    meta = {name: shorten(str(value), 200) for name, value in view.labels.items()}
    meta |= {"kind": view.kind, "id": view.id, "status": view.status}
    if view.parent_id is not None:
        meta["parent_id"] = view.parent_id
    if view.kind == "run" and view.parent_id is not None:  # the form read before job kinds
        meta |= {"thread_id": view.parent_id, "run_id": view.id}
    for label, tokens in view.usage or ():
        meta[f"{USAGE_PREFIX}{label}"] = str(tokens)
    return meta


def job_artifact(
    view: JobView,
    timeline: Sequence[TimelineEntry],
    reason: str,
    extra: ArtifactExtras | None = None,
    flow_run_id: UUID | None = None,
    flow_totals: Sequence[tuple[str, int]] | None = None,
) -> ArtifactCreate:
    """The job's artifact, linked to the flow run (the current one unless given) and, in it, the task run."""
    flow_run_id, task_run_id = linked_runs(flow_run_id)
    return ArtifactCreate(
        key=job_artifact_key(view.kind, view.id),
        type="markdown",
        description=describe(view, reason),
        data=render_job(view, timeline, reason, extra or ArtifactExtras(), flow_totals),
        metadata_=metadata(view),
        flow_run_id=flow_run_id,
        task_run_id=task_run_id,
    )


def _existing(client: SyncPrefectClient, key: str, flow_run_id: UUID | None) -> UUID | None:
    if flow_run_id is None:
        return None
    found = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
        ),
        limit=1,
    )
    return found[0].id if found else None


def _upsert(client: SyncPrefectClient, slot: str, artifact: ArtifactCreate, fresh: bool) -> None:
    """Update the job's card in this flow run if there is one, else create it."""
    with _ids_lock:
        known = _ids.get(slot)
    if known is None and not fresh and artifact.key is not None:
        known = _existing(client, artifact.key, artifact.flow_run_id)
    if known is not None:
        update = ArtifactUpdate(data=artifact.data, description=artifact.description, metadata_=artifact.metadata_)
        try:
            client.update_artifact(artifact_id=known, artifact=update)
            return
        except ObjectNotFound:  # deleted meanwhile: create it again
            pass
    created = client.create_artifact(artifact=artifact).id
    with _ids_lock:
        _ids[slot] = created


def remember_job(view: JobView, flow_run_id: UUID | None = None) -> UUID | None:
    """Note the job in its flow run's in-process registry (at once, no request); returns that flow run."""
    linked, _ = linked_runs(flow_run_id)
    if linked is not None:
        note_job(linked, JobRef(view.kind, view.id, view.parent_id))
    return linked


def write_job_artifact(
    view: JobView,
    timeline: Sequence[TimelineEntry],
    reason: str,
    extra: ArtifactExtras | None = None,
    flow_run_id: UUID | None = None,
    fresh: bool = False,
    wait_seconds: float = 0.0,
) -> bool:
    """Write the job's artifact (see :func:`job_artifact`) through the writer.

    Args:
        view: The job.
        timeline: Its status timeline as observed.
        reason: Why it ended this way (or what is happening to it).
        extra: Prompt, deadline, tool calls, the flow run's usage, when known.
        flow_run_id: The flow run to link to (default: the current one; pass it from hooks).
        fresh: The job was just created: no card of it exists yet, so none is looked for.
        wait_seconds: How long to wait for the write (default: not at all); no wait once the server
            is known not to answer.

    Returns:
        Whether the artifact was written before this returned.
    """
    extra = extra or ArtifactExtras()
    linked = remember_job(view, flow_run_id)
    key = job_artifact_key(view.kind, view.id)
    slot = f"{key}@{linked}"
    artifact = job_artifact(view, timeline, reason, extra, flow_run_id)
    attempts = [0]

    def perform(client: SyncPrefectClient) -> None:
        attempts[0] += 1
        final = artifact
        if extra.flow_usage is None and extra.sum_flow_usage and linked is not None and view.usage is not None:
            totals = flow_usage(client, linked, exclude_key=key)
            for label, tokens in view.usage:
                totals[label] = totals.get(label, 0) + tokens
            final = job_artifact(view, timeline, reason, extra, flow_run_id, list(totals.items()))
        _upsert(client, slot, final, fresh and attempts[0] == 1)

    parent = f" ({view.parent_id})" if view.parent_id else ""
    writer = get_writer()
    writer.submit(slot, perform, f"artifact {key} of {view.label}{parent}, {view.status}: {shorten(reason, 200)}")
    return wait_seconds > 0 and writer.wait(slot, wait_seconds)


def record_created(
    job: JobView | Run,
    timeline: Sequence[TimelineEntry] = (),
    flow_run_id: UUID | None = None,
    extra: ArtifactExtras | None = None,
) -> None:
    """A new job: log its ids at once, emit ``openai.<kind>.created``, and record it (artifact, registry).

    The log line comes first and does not depend on the Prefect server: whatever happens next, the
    job's ids are in the logs. Then the record is written, waiting for it at most
    :data:`CREATED_WAIT_SECONDS` (so a process killed right after still leaves it on the server for the
    orphan sweep), and not at all once the server is known not to answer (it is retried in the
    background).
    """
    view = job if isinstance(job, JobView) else run_view(job)
    parent = f" (parent {view.parent_id})" if view.parent_id else ""
    get_logger().info("Created %s%s, status %s", view.label, parent, view.status)
    write_job_artifact(
        view, timeline, CREATED_REASON, extra, flow_run_id, fresh=True, wait_seconds=CREATED_WAIT_SECONDS
    )
    emit_job_event(view, "created", flow_run_id=flow_run_id)


def write_fan_out_summary(
    views: Sequence[JobView],
    timelines: Sequence[Sequence[TimelineEntry]],
    key: str | None = None,
    flow_run_id: UUID | None = None,
) -> None:
    """Write a fan-out's summary table (counts by status, tokens, the slowest jobs) as a markdown artifact.

    Args:
        views: The jobs, as they ended.
        timelines: Each job's timeline, in the same order (its last entry gives its time).
        key: The artifact's key (default: none, one card per fan-out).
        flow_run_id: The flow run to link to (default: the current one).
    """
    if len(views) != len(timelines):
        raise ValueError(f"write_fan_out_summary got {len(views)} views but {len(timelines)} timelines")
    linked, task_run_id = linked_runs(flow_run_id)
    counts = ", ".join(f"{n} {status}" for status, n in Counter(v.status for v in views).most_common())
    artifact = ArtifactCreate(
        key=key,
        type="markdown",
        description=inline(f"fan-out · {len(views)} jobs · {counts}", 150) if counts else "fan-out · 0 jobs",
        data=render_fan_out(views, [t[-1].elapsed if t else None for t in timelines]),
        flow_run_id=linked,
        task_run_id=task_run_id,
    )

    def perform(client: SyncPrefectClient) -> None:
        client.create_artifact(artifact=artifact)

    submit(f"fan-out@{id(artifact)}", perform, f"fan-out summary of {len(views)} jobs")
