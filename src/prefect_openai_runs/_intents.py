"""The record of a create before it is sent: its kind, idempotency key and parent (a run's thread).

Written to the Prefect server (an artifact linked to the flow run, its key derived from the idempotency
key), it lets every later path find a job whose create answer was lost: a Prefect retry of the same
logical call reuses the thread and finds its run by key; the guard hooks and the orphan sweep find runs
that were never recorded. It is logged at once and written through the recording layer's non-blocking
writer: a create waits for it at most :data:`WRITE_WAIT` seconds, and not at all once the Prefect server
is known not to answer (it is written when the server answers again).
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import current_flow_run_id, get_writer

INTENT_KEY_PREFIX = "openai-intent-"
WRITE_WAIT = 2.0
"""How long a create waits for its intent to be on the Prefect server (none once the server is known down)."""
READ_TIMEOUT = 5.0
"""How long a retry waits to read an earlier attempt's intent."""
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="openai-intent")


@dataclass(frozen=True)
class Intent:
    """A create about to be sent.

    Attributes:
        kind: ``run``, ``response`` or ``batch``.
        key: Its idempotency key.
        parent_id: Its parent (a run's thread), if any.
    """

    kind: str
    key: str
    parent_id: str | None = None


def intent_key(key: str) -> str:
    """The intent's artifact key."""
    return f"{INTENT_KEY_PREFIX}{key.lower()}"


def record_intent(intent: Intent) -> None:
    """Log the intent and queue it for the Prefect server (inside a flow run), waiting a moment for it."""
    get_logger().info(
        "Creating an OpenAI %s on %s with idempotency key %s", intent.kind, intent.parent_id or "-", intent.key
    )
    flow_run_id = current_flow_run_id()
    if flow_run_id is None:
        return
    artifact = ArtifactCreate(
        key=intent_key(intent.key),
        type="markdown",
        description=f"creating an OpenAI {intent.kind} (idempotency key {intent.key})",
        data=f"Creating an OpenAI {intent.kind} on `{intent.parent_id or '-'}` with idempotency key `{intent.key}`.",
        metadata_={"kind": intent.kind, "idempotency_key": intent.key, "parent_id": intent.parent_id or ""},
        flow_run_id=flow_run_id,
    )
    slot = f"{intent_key(intent.key)}@{flow_run_id}"
    writer = get_writer()

    def perform(client: SyncPrefectClient) -> None:
        client.create_artifact(artifact=artifact)

    writer.submit(slot, perform, f"intent {intent}")
    writer.wait(slot, WRITE_WAIT)


def _read(flow_run_id: UUID | None, key: str | None) -> list[Intent]:
    found: dict[str, Intent] = {}
    by_key = ArtifactFilterKey(any_=[intent_key(key)]) if key else ArtifactFilterKey(like_=f"{INTENT_KEY_PREFIX}%")
    with get_client(sync_client=True) as client:
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
                meta = artifact.metadata_ or {}
                if meta.get("idempotency_key"):
                    found[meta["idempotency_key"]] = Intent(
                        meta.get("kind", "run"), meta["idempotency_key"], meta.get("parent_id") or None
                    )
            if len(page) < 200:
                return list(found.values())
            offset += 200


def find_intent(key: str) -> Intent | None:
    """The intent recorded with this idempotency key by an earlier attempt, if any (bounded in time)."""
    if current_flow_run_id() is None:
        return None
    try:
        intents = _pool.submit(_read, None, key).result(timeout=READ_TIMEOUT)
    except Exception as exc:
        get_logger().warning("Could not read earlier intents from the Prefect server: %s", exc)
        return None
    return intents[0] if intents else None


def recorded_intents(flow_run_id: UUID) -> list[Intent]:
    """Every intent recorded in a flow run."""
    return _read(flow_run_id, None)
