"""The record of a create before it is sent: its kind, idempotency key and parent (a run's thread).

Written to the Prefect server (an artifact linked to the flow run, its key derived from the idempotency
key; creates sent together, as a fan-out's waves are, share one table artifact keyed by their first
idempotency key), it lets every later path find a job whose create answer was lost: a Prefect retry of the same
logical call reuses the thread and finds its run by key; the guard hooks and the orphan sweep find runs
that were never recorded. Writing it is bounded in time: a Prefect server that does not answer delays a
create by at most :data:`WRITE_WAIT` seconds (none once the server is known not to answer; it is then
written when the server answers again), and the intent is logged locally at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient, SyncPrefectClient, get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.client.schemas.objects import Artifact
from prefect.context import FlowRunContext, TaskRunContext

from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import current_flow_run_id, get_writer

INTENT_KEY_PREFIX = "openai-intent-"
WRITE_TIMEOUT = 5.0
"""How long an intent written from an event loop may take."""
WRITE_WAIT = 2.0
"""How long a create waits for its intent to be on the Prefect server (none once the server is known down)."""
READ_TIMEOUT = 5.0
"""How long a retry waits to read an earlier attempt's intents."""
INTENT_CLOCK_MARGIN_SECONDS = 600.0
"""How much earlier than its intent's record (the Prefect server's clock) a job may have been created (the
API's clock): a search for it by key goes back that much further."""
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="openai-intent")


@dataclass(frozen=True)
class Intent:
    """A create about to be sent.

    Attributes:
        kind: ``run``, ``response`` or ``batch``.
        key: Its idempotency key.
        parent_id: Its parent (a run's thread, a batch's input file), if any.
        at: When it was recorded (Unix seconds, the Prefect server's clock), when read back from the server.
    """

    kind: str
    key: str
    parent_id: str | None = None
    at: float | None = field(default=None, compare=False)


def intent_key(key: str) -> str:
    """The intent's artifact key."""
    return f"{INTENT_KEY_PREFIX}{key.lower()}"


def intent_artifact(intent: Intent, flow_run_id: UUID | None) -> ArtifactCreate:
    """The artifact that records ``intent`` in a flow run."""
    return ArtifactCreate(
        key=intent_key(intent.key),
        type="markdown",
        description=f"creating an OpenAI {intent.kind} (idempotency key {intent.key})",
        data=f"Creating an OpenAI {intent.kind} on `{intent.parent_id or '-'}` with idempotency key `{intent.key}`.",
        metadata_=_row(intent),
        flow_run_id=flow_run_id,
    )


def intents_artifact(intents: Sequence[Intent], flow_run_id: UUID | None) -> ArtifactCreate:
    """The one artifact that records creates sent together: a table (kind, idempotency key, parent) whose
    key is the first intent's (so a lookup by every key of the group finds it through its first)."""
    if len(intents) == 1:
        return intent_artifact(intents[0], flow_run_id)
    first, last = intents[0], intents[-1]
    return ArtifactCreate(
        key=intent_key(first.key),
        type="table",
        description=f"creating {len(intents)} OpenAI {first.kind}s (idempotency keys {first.key} ... {last.key})",
        data=json.dumps([_row(intent) for intent in intents]),  # as Prefect's table artifacts: JSON text
        metadata_={"kind": first.kind, "intents": str(len(intents))},
        flow_run_id=flow_run_id,
    )


def _row(intent: Intent) -> dict[str, str]:
    return {"kind": intent.kind, "idempotency_key": intent.key, "parent_id": intent.parent_id or ""}


def _parse(artifact: Artifact) -> Iterator[Intent]:
    """The intents an artifact records: one (metadata) or a group (table rows, JSON text or a list)."""
    meta = artifact.metadata_ or {}
    at = artifact.created.timestamp() if artifact.created is not None else None
    if meta.get("idempotency_key"):
        yield Intent(meta.get("kind", "run"), meta["idempotency_key"], meta.get("parent_id") or None, at)
        return
    rows: Any = artifact.data
    if isinstance(rows, str):
        try:
            rows = json.loads(rows)
        except ValueError:
            return
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and row.get("idempotency_key"):
            yield Intent(str(row.get("kind") or "run"), str(row["idempotency_key"]), row.get("parent_id") or None, at)


def _log(intent: Intent) -> None:
    get_logger().info(
        "Creating an OpenAI %s on %s with idempotency key %s", intent.kind, intent.parent_id or "-", intent.key
    )


def record_intent(intent: Intent) -> None:
    """Log the intent and queue it for the Prefect server (inside a flow run), waiting a moment for it:
    at most :data:`WRITE_WAIT` seconds, and not at all once the server is known not to answer."""
    _log(intent)
    flow_run_id = current_flow_run_id()
    if flow_run_id is None:
        return
    artifact = intent_artifact(intent, flow_run_id)
    slot = f"{intent_key(intent.key)}@{flow_run_id}"
    writer = get_writer()

    def perform(client: SyncPrefectClient) -> None:
        client.create_artifact(artifact=artifact)

    writer.submit(slot, perform, f"intent {intent}")
    writer.wait(slot, WRITE_WAIT)


async def record_intents_async(client: PrefectClient, intents: Sequence[Intent]) -> None:
    """Record creates about to be sent together in one artifact (see :func:`intents_artifact`): logged at
    once, then written through an open Prefect client, bounded in time (:func:`record_intent` from an
    event loop, for one create or many)."""
    if not intents:
        return
    if len(intents) == 1:
        _log(intents[0])
    else:
        get_logger().info(
            "Creating %d OpenAI %ss (idempotency key on parent): %s",
            len(intents),
            intents[0].kind,
            ", ".join(f"{intent.key} on {intent.parent_id or '-'}" for intent in intents),
        )
    flow_run_id = current_flow_run_id()
    if flow_run_id is None:
        return
    try:
        await asyncio.wait_for(client.create_artifact(artifact=intents_artifact(intents, flow_run_id)), WRITE_TIMEOUT)
    except Exception as exc:
        what = f"the intent {intents[0]}" if len(intents) == 1 else f"the intents of {len(intents)} creates"
        get_logger().warning("Could not record %s on the Prefect server (%s); logged here", what, exc)


def _read(flow_run_id: UUID | None, keys: Sequence[str] | None) -> list[Intent]:
    found: dict[str, Intent] = {}
    wanted_keys = set(keys) if keys else None
    wanted = [intent_key(k) for k in keys] if keys else None
    with get_client(sync_client=True) as client:
        for start in range(0, len(wanted), 200) if wanted else [0]:
            by_key = (
                ArtifactFilterKey(any_=wanted[start : start + 200])
                if wanted
                else ArtifactFilterKey(like_=f"{INTENT_KEY_PREFIX}%")
            )
            offset = 0
            while True:
                page = client.read_artifacts(
                    artifact_filter=ArtifactFilter(
                        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]) if flow_run_id else None,
                        key=by_key,
                    ),
                    limit=200,
                    offset=offset,
                )
                for artifact in page:
                    for intent in _parse(artifact):
                        if wanted_keys is None or intent.key in wanted_keys:
                            found[intent.key] = intent
                if len(page) < 200:
                    break
                offset += 200
    return list(found.values())


def find_intents(keys: Sequence[str], always: bool = False) -> dict[str, Intent]:
    """The intents recorded with these idempotency keys by earlier attempts, by key (bounded in time).

    A first attempt has no earlier one: the Prefect server is not asked, unless ``always`` (keys that
    another flow run may have used, as a fleet fan-out's re-run chunk does). A key recorded in a group
    (see :func:`intents_artifact`) is found when the group's first key is asked for too (a retry asks
    for every key of its call); only the keys asked for are returned.
    """
    if not keys or current_flow_run_id() is None or not (always or _is_retry()):
        return {}
    try:
        # the Prefect settings (which server) live in context variables: read in this context
        read = _pool.submit(contextvars.copy_context().run, _read, None, list(keys))
        return {intent.key: intent for intent in read.result(timeout=READ_TIMEOUT)}
    except Exception as exc:
        get_logger().warning("Could not read earlier intents from the Prefect server: %r", exc)
        return {}


def find_intent(key: str, always: bool = False) -> Intent | None:
    """The intent recorded with this idempotency key by an earlier attempt, if any (see :func:`find_intents`)."""
    return find_intents([key], always).get(key)


def _is_retry() -> bool:
    """Whether the current task run (else flow run) is a retry of an earlier attempt."""
    task_ctx = TaskRunContext.get()
    if task_ctx is not None:
        return task_ctx.task_run.run_count > 1
    flow_ctx = FlowRunContext.get()
    return flow_ctx is not None and flow_ctx.flow_run is not None and flow_ctx.flow_run.run_count > 1


def recorded_intents(flow_run_id: UUID) -> list[Intent]:
    """Every intent recorded in a flow run."""
    return _read(flow_run_id, None)
