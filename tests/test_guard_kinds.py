"""Background responses and batches on the runs' process exit paths: SIGTERM while following cancels the
job; after SIGKILL, the orphan sweep finds the job through the crashed flow run's records and cancels it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.settings import PREFECT_API_URL
from prefect.states import Crashed

from flow_helpers import wait_until
from prefect_openai_runs import OpenAICredentials
from prefect_openai_runs._recording import job_artifact_key
from prefect_openai_runs.guard import cancel_orphaned_runs
from prefect_openai_runs.testing import BatchScript, ResponseScript, RunsEmulator

pytestmark = pytest.mark.usefixtures("prefect_server")

SCRIPT = Path(__file__).parent / "scripts" / "follow_in_subprocess.py"


def _long_response(emulator: RunsEmulator) -> Callable[[], list[tuple[str, str]]]:
    emulator.add_response_script(ResponseScript(in_progress_seconds=60))
    return lambda: [(r.id, r.status) for r in emulator.responses()]


def _long_batch(emulator: RunsEmulator) -> Callable[[], list[tuple[str, str]]]:
    emulator.add_batch_script(BatchScript(in_progress_seconds=None, cancelling_seconds=0.2))
    return lambda: [(b.id, b.status) for b in emulator.batches()]


def _recorded(kind: str, job_id: str) -> bool:
    with get_client(sync_client=True) as client:
        key = ArtifactFilterKey(any_=[job_artifact_key(kind, job_id)])
        return bool(client.read_artifacts(artifact_filter=ArtifactFilter(key=key)))


KINDS = {"response": _long_response, "batch": _long_batch}


def _start_following(
    emulator: RunsEmulator, block: str, kind: str, jobs: Callable[[], list[tuple[str, str]]]
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), block, emulator.default_assistant_id, kind],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: any(status == "in_progress" for _, status in jobs()), timeout=60, interval=0.05)
    return process


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_sigterm_while_following_cancels_the_job(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, kind: str
) -> None:
    jobs = KINDS[kind](runs_emulator)
    credentials.save(f"guard-sigterm-{kind}", overwrite=True)
    process = _start_following(runs_emulator, f"guard-sigterm-{kind}", kind, jobs)
    try:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        process.kill()

    wait_until(lambda: [status for _, status in jobs()] == ["cancelled"], timeout=30)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_sigkill_leaves_a_job_that_the_orphan_sweep_cancels(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, kind: str
) -> None:
    jobs = KINDS[kind](runs_emulator)
    credentials.save(f"guard-sigkill-{kind}", overwrite=True)
    process = _start_following(runs_emulator, f"guard-sigkill-{kind}", kind, jobs)
    [(job_id, _)] = jobs()
    # What the sweep goes by: the job's record on the Prefect server (written as the create returns; a
    # response, which cannot be looked up by a key, is lost to the sweep if the process dies before)
    wait_until(lambda: _recorded(kind, job_id), timeout=30)
    process.kill()
    process.wait(timeout=30)
    [(orphan, status)] = jobs()
    assert status == "in_progress"
    with get_client(sync_client=True) as client:
        for flow_run in client.read_flow_runs(limit=200):
            if flow_run.state is not None and flow_run.state.is_running():  # what a worker reports after -9
                client.set_flow_run_state(flow_run.id, Crashed(message="Process exited with code -9"), force=True)

    swept = cancel_orphaned_runs(f"guard-sigkill-{kind}", lookback_hours=1)

    assert [ref.id for ref in swept] == [orphan]
    wait_until(lambda: [status for _, status in jobs()] == ["cancelled"], timeout=30)
