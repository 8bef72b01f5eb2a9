"""Helpers for the Prefect-side tests: waiting on observed state and reading what the server holds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.client.schemas.objects import Artifact

from emulator_helpers import wait_for
from prefect_openai_runs._recording import artifact_key, flush
from prefect_openai_runs.testing import RunsEmulator


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds.

    :func:`emulator_helpers.wait_for` with the longer defaults that flow runs need.
    """
    return wait_for(predicate, timeout, interval)


def run_artifacts(run_id: str) -> list[Artifact]:
    """Every version of a run's artifact, oldest first, once this process' writes are on the server.

    The records go through a background writer; the tasks wait for it a bounded time (5 s), which a
    loaded CI machine's Prefect server can outlast. Tests that check that bound assert on ``flush``.
    """
    flush(30)  # at once when nothing is pending; what is still pending after it shows as a missing record
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key(run_id)]))
        )
    return sorted(found, key=lambda a: a.created or 0)


def final_markdown(run_id: str) -> str:
    """The newest version of a run's artifact, as markdown."""
    artifacts = run_artifacts(run_id)
    assert artifacts, f"no artifact for run {run_id}"
    data = artifacts[-1].data
    assert isinstance(data, str)
    return data


def flow_run_artifacts(flow_run_id: UUID) -> list[Artifact]:
    """Every artifact linked to a flow run."""
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )


def assert_nothing_active(emulator: RunsEmulator) -> None:
    """The emulator's own record: no run is queued, in progress, waiting for action or cancelling."""
    active = emulator.active_runs()
    assert not active, f"runs left active: {[(r.id, r.status) for r in active]}"


def statuses(emulator: RunsEmulator, run_id: str) -> list[str]:
    """The run's status history on the emulator."""
    return [status for status, _ in emulator.run(run_id).history]
