"""What a flow run created: every job's address, read back from the artifacts' metadata on the server.

The job artifacts carry ``kind``, ``id`` and ``parent_id`` in their metadata, linked to the flow run,
so cancel hooks find the jobs from any process. The jobs recorded by this process are also kept in
memory, so a hook in the same process finds them while the Prefect server does not answer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.client.schemas.objects import Artifact

from prefect_openai_runs._lifecycle._kinds import JobRef as JobRef
from prefect_openai_runs._logging import get_logger

ARTIFACT_KEY_PREFIX = "openai-"
"""Every job artifact's key starts with this."""
USAGE_PREFIX = "usage."
"""Metadata keys of the token usage rows."""
_PAGE = 200


@dataclass(frozen=True)
class RunRef:
    """A run's address: its thread and id (the run-only form of :class:`JobRef`)."""

    thread_id: str
    run_id: str

    def to_job(self) -> JobRef:
        """The same run as a :class:`JobRef`."""
        return JobRef("run", self.run_id, self.thread_id)


_local: dict[UUID, dict[tuple[str, str], JobRef]] = {}
_local_lock = threading.Lock()


def note_job(flow_run_id: UUID, ref: JobRef) -> None:
    """Remember, in this process, that a flow run created a job."""
    with _local_lock:
        _local.setdefault(flow_run_id, {})[(ref.kind, ref.id)] = ref


def _flow_run_artifacts(client: SyncPrefectClient, flow_run_id: UUID) -> Iterator[Artifact]:
    offset = 0
    while True:
        page = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                key=ArtifactFilterKey(like_=f"{ARTIFACT_KEY_PREFIX}%"),
            ),
            limit=_PAGE,
            offset=offset,
        )
        yield from page
        if len(page) < _PAGE:
            return
        offset += _PAGE


def job_ref_of(metadata: dict[str, str] | None) -> JobRef | None:
    """The job an artifact's metadata names (also in the form written before job kinds: thread and run ids)."""
    meta = metadata or {}
    if "kind" in meta and "id" in meta:
        return JobRef(meta["kind"], meta["id"], meta.get("parent_id") or None)
    if "thread_id" in meta and "run_id" in meta:
        return JobRef("run", meta["run_id"], meta["thread_id"])
    return None


def registered_jobs(flow_run_id: UUID) -> list[JobRef]:
    """Every job our tasks and flows created in a flow run: read back from the server, with this process's own.

    When the server cannot be read, the jobs this process recorded are returned (and the failure logged).
    """
    with _local_lock:
        refs = dict(_local.get(flow_run_id, {}))
    try:
        with get_client(sync_client=True) as client:
            for artifact in _flow_run_artifacts(client, flow_run_id):
                ref = job_ref_of(artifact.metadata_)
                if ref is not None:
                    refs[(ref.kind, ref.id)] = ref
    except Exception as exc:
        get_logger().warning(
            "Could not read the jobs of flow run %s from the Prefect server (%s: %s); using the %d recorded here",
            flow_run_id,
            type(exc).__name__,
            exc,
            len(refs),
        )
    return list(refs.values())


def labelled_jobs(flow_run_id: UUID, kind: str, label: str, value: str) -> list[JobRef]:
    """The jobs of ``kind`` a flow run recorded with ``label`` set to ``value`` in their metadata (e.g. a
    batch's idempotency key), read from the server; none when it cannot be read (the failure is logged)."""
    refs: dict[str, JobRef] = {}
    try:
        with get_client(sync_client=True) as client:
            for artifact in _flow_run_artifacts(client, flow_run_id):
                ref = job_ref_of(artifact.metadata_)
                if ref is not None and ref.kind == kind and (artifact.metadata_ or {}).get(label) == value:
                    refs[ref.id] = ref
    except Exception as exc:
        get_logger().warning(
            "Could not read the %ss of flow run %s from the Prefect server: %r", kind, flow_run_id, exc
        )
    return list(refs.values())


def registered_runs(flow_run_id: UUID) -> list[RunRef]:
    """Every Assistants run of a flow run (see :func:`registered_jobs`)."""
    return [
        RunRef(ref.parent_id, ref.id) for ref in registered_jobs(flow_run_id) if ref.kind == "run" and ref.parent_id
    ]


def flow_usage(client: SyncPrefectClient, flow_run_id: UUID, exclude_key: str | None = None) -> dict[str, int]:
    """Token usage summed over every job of a flow run, from the latest version of each job's artifact."""
    latest: dict[str, Artifact] = {}
    for artifact in _flow_run_artifacts(client, flow_run_id):
        key = artifact.key or str(artifact.id)
        if key != exclude_key and (key not in latest or (artifact.updated or 0) > (latest[key].updated or 0)):  # type: ignore[operator]
            latest[key] = artifact
    totals: dict[str, int] = {}
    for artifact in latest.values():
        for name, value in (artifact.metadata_ or {}).items():
            if name.startswith(USAGE_PREFIX) and value.isdigit():
                label = name.removeprefix(USAGE_PREFIX)
                totals[label] = totals.get(label, 0) + int(value)
    return totals
