"""Cancelling every run a flow run created when it fails, is cancelled, crashes or is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.context import get_run_context
from prefect.settings import PREFECT_API_URL
from prefect.states import Crashed

from flow_helpers import assert_nothing_active, final_markdown, wait_until
from prefect_openai_runs import OpenAICredentials
from prefect_openai_runs.guard import cancel_orphaned_runs, cancel_runs_hooks, cancel_runs_on_error
from prefect_openai_runs.tasks import create_thread_and_run
from prefect_openai_runs.testing import RunScript, RunsEmulator

pytestmark = pytest.mark.usefixtures("prefect_server")

SCRIPTS = Path(__file__).parent / "scripts"
LONG = RunScript(in_progress_seconds=60)


def test_hooks_cancel_every_run_when_the_flow_fails_for_an_unrelated_reason(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_script(LONG)

    @flow(**cancel_runs_hooks(credentials))
    def pipeline() -> None:
        for i in range(3):
            create_thread_and_run(credentials, runs_emulator.default_assistant_id, [f"job {i}"])
        raise RuntimeError("the warehouse load failed")

    state = pipeline(return_state=True)

    assert state.is_failed()
    runs = runs_emulator.runs()
    assert [r.status for r in runs] == ["cancelled"] * 3
    assert all("upstream failure" in final_markdown(r.id) for r in runs)
    assert_nothing_active(runs_emulator)


def test_context_manager_cancels_on_error(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_script(LONG)

    @flow
    def pipeline() -> None:
        with cancel_runs_on_error(credentials):
            create_thread_and_run(credentials, runs_emulator.default_assistant_id, ["job"])
            raise KeyError("missing column")

    with pytest.raises(KeyError):
        pipeline()

    [run] = runs_emulator.runs()
    assert run.status == "cancelled"
    assert "upstream failure: KeyError" in final_markdown(run.id)


def test_hooks_leave_finished_runs_alone(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    @flow(**cancel_runs_hooks(credentials))
    def pipeline() -> str:
        run = create_thread_and_run(credentials, runs_emulator.default_assistant_id, ["quick"])
        wait_until(lambda: runs_emulator.run(run.id).status == "completed")
        raise RuntimeError("later failure")

    state = pipeline(return_state=True)

    assert state.is_failed()
    [run] = runs_emulator.runs()
    assert run.status == "completed"
    assert runs_emulator.request_count("POST", r"/cancel$") == 0  # read first: an ended run is not cancelled


def test_hook_called_from_another_process_cancels_the_recorded_runs(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_script(LONG)
    credentials.save("guard-hook-process", overwrite=True)

    @flow
    def pipeline() -> UUID:
        for i in range(2):
            create_thread_and_run(credentials, runs_emulator.default_assistant_id, [f"job {i}"])
        return get_run_context().flow_run.id  # type: ignore[union-attr]

    flow_run_id = pipeline()
    code = (
        "import sys, uuid\n"
        "from prefect.client.orchestration import get_client\n"
        "from prefect.states import Crashed\n"
        "from prefect_openai_runs.guard import cancel_runs_hook\n"
        "with get_client(sync_client=True) as client:\n"
        "    flow_run = client.read_flow_run(uuid.UUID(sys.argv[1]))\n"
        "cancel_runs_hook('guard-hook-process')(None, flow_run, Crashed())\n"
    )
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    subprocess.run([sys.executable, "-c", code, str(flow_run_id)], env=env, check=True, timeout=60)

    runs = runs_emulator.runs()
    assert [r.status for r in runs] == ["cancelled", "cancelled"]
    assert all("crash" in final_markdown(r.id) for r in runs)


def _start_following_process(runs_emulator: RunsEmulator, block_name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    process = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "follow_in_subprocess.py"), block_name, runs_emulator.default_assistant_id],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: any(r.status == "in_progress" for r in runs_emulator.runs()), timeout=60, interval=0.05)
    return process


def test_sigterm_while_following_cancels_the_run(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_script(LONG)
    credentials.save("guard-sigterm", overwrite=True)
    process = _start_following_process(runs_emulator, "guard-sigterm")
    try:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        process.kill()

    [run] = runs_emulator.runs()
    assert run.status == "cancelled"
    assert "cancellation request" in final_markdown(run.id) or "crash" in final_markdown(run.id)


def test_sigkill_leaves_a_run_that_the_orphan_sweep_cancels(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_script(LONG)
    credentials.save("guard-sigkill", overwrite=True)
    process = _start_following_process(runs_emulator, "guard-sigkill")
    process.kill()
    process.wait(timeout=30)
    [orphan] = runs_emulator.active_runs()
    with get_client(sync_client=True) as client:
        [flow_run] = [fr for fr in client.read_flow_runs(limit=200) if fr.state is not None and fr.state.is_running()]
        # What a worker or `flow.serve` reports when the process it started exits with -9.
        client.set_flow_run_state(flow_run.id, Crashed(message="Process exited with code -9"), force=True)

    swept = cancel_orphaned_runs("guard-sigkill", lookback_hours=1)

    assert [ref.id for ref in swept] == [orphan.id]
    assert runs_emulator.run(orphan.id).status == "cancelled"
    assert "orphaned" in final_markdown(orphan.id)
    assert_nothing_active(runs_emulator)
