"""Deployments end to end, with the real pieces: ``prefect server start``, served flows, a worker, the API.

One Prefect server (SQLite in a temporary ``PREFECT_HOME``, on a free loopback port) and one process
serving ``examples/serve.py`` (a :class:`prefect.runner.Runner`, as ``flow.serve`` does: each flow
run in its own child process) are started for this module; for the last test, ``prefect.yaml`` is
deployed with ``prefect deploy --all`` to a process work pool and a ``prefect worker`` runs it. The
emulator runs in this process (the ``runs_emulator`` fixture); the flow processes reach it over
loopback through a saved credentials block. Flow runs are triggered and cancelled through the
Prefect API, as the UI's *Run* and *Cancel* buttons do. What happened is read from the emulator's
own record and from the run artifacts on the server. Every process started here is killed (its
whole process group and descendants) at teardown, even when a test fails, and the server's
contents and every process's output are scanned for the API key.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psutil
import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.settings import PREFECT_API_URL, temporary_settings

from conftest import _server_texts, find_secrets
from flow_helpers import assert_nothing_active, final_markdown, run_artifacts
from prefect_openai_runs import OpenAICredentials
from prefect_openai_runs.testing import RunRecord, RunScript, RunsEmulator

ROOT = Path(__file__).resolve().parents[1]
SERVE_SCRIPT = ROOT / "examples" / "serve.py"
BIN = Path(sys.executable).parent
BLOCK_NAME = "openai"
"""The block name prefect.yaml's deployments use (this server is private to the module)."""
SHORT_TIMEOUT_SECONDS = 3.0
WORK_POOL = "openai-runs"
LONG = RunScript(queued_seconds=0.01, in_progress_seconds=120.0)

STARTUP_TIMEOUT = 90.0
"""Seconds for the server or the served process to come up (generous: the suite runs two workers)."""
STEP_TIMEOUT = 60.0
"""Seconds for one observed step (a flow run starting, a cancel landing, an artifact appearing)."""


# -- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def isolated_env(home: Path, api_url: str, **extra: str) -> dict[str, str]:
    """This environment without any ``PREFECT_*`` setting, plus a private ``PREFECT_HOME`` and the API URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_SERVER_LOGGING_LEVEL="WARNING",
        PREFECT_LOGGING_TO_API_BATCH_INTERVAL="0.2",  # flow-run logs reach the server (and the UI) sooner
        PYTHONUNBUFFERED="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    env.update(extra)
    return env


@dataclass
class Managed:
    """A process we started, in its own session, logging to a file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- last lines of {self.name} ({self.log}) ---\n" + "\n".join(text.splitlines()[-lines:])

    def assert_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"{self.name} exited with code {code}\n{self.tail()}")


def start_process(name: str, args: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> Managed:
    with log.open("wb") as out:
        process = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return Managed(name, process, log)


def stop_process(managed: Managed, grace: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL it and every descendant still alive."""
    process = managed.process
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    for child in descendants:  # flow-run processes may have started sessions of their own
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(descendants, timeout=5)


def wait_for(
    predicate: Callable[[], Any], what: str, timeout: float, watch: list[Managed], interval: float = 0.05
) -> Any:
    """Poll ``predicate`` until truthy; fail with ``what`` and the processes' logs after ``timeout`` s.

    A watched process that exits fails the wait at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for managed in watch:
            managed.assert_alive()
        if time.monotonic() > deadline:
            logs = "\n".join(m.tail() for m in watch)
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")
        time.sleep(interval)


@dataclass
class Stack:
    """The Prefect server and the served deployments."""

    api_url: str
    home: Path
    tmp: Path
    server: Managed
    served: Managed

    @property
    def processes(self) -> list[Managed]:
        return [self.server, self.served]


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _deployment_ids(api_url: str, names: list[str]) -> dict[str, str] | None:
    found: dict[str, str] = {}
    for name in names:
        response = httpx.get(f"{api_url}/deployments/name/{name}", timeout=5.0)
        if response.status_code != 200:
            return None
        found[name] = response.json()["id"]
    return found


SERVED = ["assistant-pipeline/nightly-served", "run-assistant/on-demand-served", "run-assistant/short-timeout-served"]
FROM_YAML = ["assistant-pipeline/nightly", "run-assistant/on-demand"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``prefect server start`` + the block type registered + ``examples/serve.py`` serving, all torn down."""
    tmp = tmp_path_factory.mktemp("e2e-prefect")
    home = tmp / "home"
    home.mkdir()
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = isolated_env(home, api_url)
    started: list[Managed] = []
    try:
        server = start_process(
            "prefect server",
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env,
            tmp / "server.log",
        )
        started.append(server)
        wait_for(lambda: _healthy(f"{api_url}/health"), "the Prefect server's /api/health", STARTUP_TIMEOUT, [server])

        served = start_process(
            "served deployments",
            [sys.executable, str(SERVE_SCRIPT)],
            isolated_env(
                home,
                api_url,
                PREFECT_OPENAI_RUNS_BLOCK=BLOCK_NAME,
                PREFECT_RUNNER_POLL_FREQUENCY="1",
                SHORT_TIMEOUT_SECONDS=str(SHORT_TIMEOUT_SECONDS),
                PIPELINE_CRON="0 6 * * *",
            ),
            tmp / "served.log",
        )
        started.append(served)
        register = subprocess.run(  # while the served process starts
            [str(BIN / "prefect"), "block", "register", "-m", "prefect_openai_runs"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=STARTUP_TIMEOUT,
        )
        assert register.returncode == 0, register.stdout + register.stderr
        wait_for(lambda: _deployment_ids(api_url, SERVED), "the served deployments", STARTUP_TIMEOUT, started)
        yield Stack(api_url, home, tmp, server, served)
        scan_for_the_key(api_url, [m.log for m in started])
    finally:
        for managed in reversed(started):
            stop_process(managed)


def scan_for_the_key(api_url: str, logs: list[Path]) -> None:
    """The project's secrets rule, here too: the key is nowhere on the server nor in any process's output."""
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        texts = _server_texts(api_url)
    texts += [log.read_text(errors="replace") for log in logs if log.exists()]
    leaks = [text for text in texts if find_secrets(text)]
    assert not leaks, f"the API key leaked: {leaks[0][:300]!r}"


@pytest.fixture(scope="module")
def worker(stack: Stack) -> Iterator[Managed]:
    """prefect.yaml deployed (``prefect deploy --all``) to a process work pool, and a worker polling it."""
    env = isolated_env(stack.home, stack.api_url, PWD=str(ROOT), PREFECT_WORKER_QUERY_SECONDS="1")
    for args in (["work-pool", "create", WORK_POOL, "--type", "process"], ["--no-prompt", "deploy", "--all"]):
        done = subprocess.run(
            [str(BIN / "prefect"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=STARTUP_TIMEOUT
        )
        assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    assert _deployment_ids(stack.api_url, FROM_YAML), "prefect deploy did not create the deployments"
    workdir = stack.tmp / "worker-cwd"  # not the project: the pull step must find it
    workdir.mkdir()
    managed = start_process(
        "process worker",
        [str(BIN / "prefect"), "worker", "start", "--pool", WORK_POOL],
        env,
        stack.tmp / "worker.log",
        cwd=workdir,
    )
    try:
        wait_for(
            lambda: _worker_online(stack.api_url),
            "the worker's first heartbeat",
            STARTUP_TIMEOUT,
            [*stack.processes, managed],
        )
        yield managed
        scan_for_the_key(stack.api_url, [managed.log])
    finally:
        stop_process(managed)


def _worker_online(api_url: str) -> bool:
    response = httpx.post(f"{api_url}/work_pools/{WORK_POOL}/workers/filter", json={}, timeout=5.0)
    return response.status_code == 200 and bool(response.json())


def flow_run_processes(parent: Managed) -> list[psutil.Process]:
    """The processes a served process or a worker runs flow runs in (its descendants but multiprocessing's
    resource tracker)."""
    try:
        descendants = psutil.Process(parent.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    alive = []
    for child in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            if "resource_tracker" not in " ".join(child.cmdline()):
                alive.append(child)
    return alive


@pytest.fixture
def api(stack: Stack, runs_emulator: RunsEmulator) -> Iterator[SyncPrefectClient]:
    """A client of the stack's server (this test's settings only), with the emulator's block saved on it.

    Afterwards, waits for this test's flow-run processes to exit (a flow run is reported finished a
    moment before its process is gone) and kills any still running, so that the next test starts clean.
    """
    with temporary_settings(updates={PREFECT_API_URL: stack.api_url}):
        OpenAICredentials(api_key=runs_emulator.api_key, base_url=runs_emulator.base_url, timeout=10.0).save(
            BLOCK_NAME, overwrite=True
        )
        try:
            with get_client(sync_client=True) as client:
                yield client
        finally:
            deadline = time.monotonic() + 20.0
            while flow_run_processes(stack.served) and time.monotonic() < deadline:
                time.sleep(0.05)
            for leftover in flow_run_processes(stack.served):
                with contextlib.suppress(psutil.NoSuchProcess):
                    leftover.kill()


# -- helpers -------------------------------------------------------------------------------------


def trigger(client: SyncPrefectClient, deployment: str, parameters: dict[str, Any]) -> UUID:
    """Create a flow run of a deployment now, as the UI's *Run* button does."""
    deployment_id = client.read_deployment_by_name(deployment).id
    return client.create_flow_run_from_deployment(deployment_id, parameters=parameters).id


def cancel_from_ui(client: SyncPrefectClient, flow_run_id: UUID) -> None:
    """What the UI's *Cancel* button does: propose ``Cancelling`` for the flow run."""
    result = client.set_flow_run_state(flow_run_id, State(type=StateType.CANCELLING))
    assert result.state is not None and result.state.type is StateType.CANCELLING, result


def flow_run_in(client: SyncPrefectClient, flow_run_id: UUID, *types: StateType) -> FlowRun | None:
    flow_run = client.read_flow_run(flow_run_id)
    return flow_run if flow_run.state is not None and flow_run.state.type in types else None


def in_progress_runs(emulator: RunsEmulator, count: int) -> list[RunRecord] | None:
    runs = [r for r in emulator.runs() if r.status == "in_progress"]
    return runs if len(runs) >= count else None


def followed_in_progress(client: SyncPrefectClient, flow_run_id: UUID, runs: list[RunRecord]) -> bool:
    """Whether the flow run has logged that it saw every one of ``runs`` in progress (what the UI shows)."""
    logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200)
    return all(any(f"{r.id} is in_progress" in log.message for log in logs) for r in runs)


def artifact_says(run_id: str, text: str) -> bool:
    return bool(run_artifacts(run_id)) and text in final_markdown(run_id)


def flow_run_logged(client: SyncPrefectClient, flow_run_id: UUID, text: str) -> bool:
    """Whether one of the flow run's logs on the server (what its Logs tab shows) contains ``text``."""
    logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200)
    return any(text in log.message for log in logs)


def run_event(api_url: str, run_id: str, name: str) -> dict[str, Any] | None:
    """The OpenAI run's ``name`` event on the server (resource ``openai.run.<id>``), if it is there yet."""
    reply = httpx.post(
        f"{api_url}/events/filter",
        json={"filter": {"resource": {"id": [f"openai.run.{run_id}"]}, "event": {"name": [name]}}, "limit": 10},
        timeout=10.0,
    )
    reply.raise_for_status()
    events: list[dict[str, Any]] = reply.json()["events"]
    return events[0] if events else None


def assert_cancel_recorded(
    stack: Stack, client: SyncPrefectClient, flow_run_id: UUID, records: list[RunRecord], watch: list[Managed]
) -> None:
    """What the guard's ``on_cancellation`` hook leaves where a user looks: its line in the flow run's logs,
    and for each run an ``openai.run.cancelled`` event with the reason and a timeline in its artifact."""
    wait_for(
        lambda: flow_run_logged(client, flow_run_id, "Cancelling the OpenAI jobs of flow run"),
        "the hook's log line in the flow run's logs",
        STEP_TIMEOUT,
        watch,
    )
    for record in records:
        event = wait_for(
            partial(run_event, stack.api_url, record.id, "openai.run.cancelled"),
            f"the openai.run.cancelled event of {record.id}",
            STEP_TIMEOUT,
            watch,
        )
        assert event["payload"]["reason"].startswith("cancellation request: the flow"), event["payload"]
        assert event["payload"]["reason_kind"] == "user-cancellation", event["payload"]
        markdown = final_markdown(record.id)
        assert "| in_progress |" in markdown and "| cancelled |" in markdown, markdown


# -- tests ---------------------------------------------------------------------------------------


def test_cancelling_a_served_run_assistant_from_the_ui_cancels_its_openai_run(
    stack: Stack, api: SyncPrefectClient, runs_emulator: RunsEmulator
) -> None:
    runs_emulator.default_script = LONG
    flow_run_id = trigger(api, "run-assistant/on-demand-served", {"messages": ["a long report"]})

    records = wait_for(
        lambda: in_progress_runs(runs_emulator, 1), "the OpenAI run in progress", STEP_TIMEOUT, stack.processes
    )
    [record] = records
    wait_for(
        lambda: followed_in_progress(api, flow_run_id, records),
        "the flow run following it",
        STEP_TIMEOUT,
        stack.processes,
    )
    cancel_from_ui(api, flow_run_id)

    wait_for(
        lambda: runs_emulator.run(record.id).status == "cancelled",
        "the OpenAI run cancelled",
        STEP_TIMEOUT,
        stack.processes,
    )
    wait_for(
        lambda: flow_run_in(api, flow_run_id, StateType.CANCELLED),
        "the flow run Cancelled",
        STEP_TIMEOUT,
        stack.processes,
    )
    # run_assistant has no hooks here: its own ``finally`` (TerminationSignal on the runner's SIGTERM) did it.
    wait_for(lambda: artifact_says(record.id, "**cancelled**"), "the final run artifact", STEP_TIMEOUT, stack.processes)
    markdown = final_markdown(record.id)
    assert "cancellation request: the flow run's process was told to stop" in markdown, markdown
    assert f"run {record.id} is cancelled" in markdown
    assert "| in_progress |" in markdown and "| cancelled |" in markdown, markdown
    assert runs_emulator.request_count("POST", rf"/runs/{record.id}/cancel$") >= 1
    assert_nothing_active(runs_emulator)


def test_served_run_assistant_past_its_flow_timeout_cancels_its_openai_run(
    stack: Stack, api: SyncPrefectClient, runs_emulator: RunsEmulator
) -> None:
    runs_emulator.default_script = LONG
    flow_run_id = trigger(api, "run-assistant/short-timeout-served", {"messages": ["too slow for the window"]})

    [record] = wait_for(lambda: runs_emulator.runs(), "the OpenAI run created", STEP_TIMEOUT, stack.processes)
    wait_for(
        lambda: runs_emulator.run(record.id).status == "cancelled",
        "the OpenAI run cancelled",
        STEP_TIMEOUT,
        stack.processes,
    )
    flow_run = wait_for(
        lambda: flow_run_in(api, flow_run_id, StateType.FAILED), "the flow run Failed", STEP_TIMEOUT, stack.processes
    )

    assert flow_run.state.name == "TimedOut", flow_run.state
    run = runs_emulator.run(record.id)
    assert [s for s, _ in run.history] == ["queued", "in_progress", "cancelling", "cancelled"]
    # The flow's timeout counts from the flow run's start (the run is created a moment later).
    assert flow_run.start_time is not None
    cancel_requested_after = run.cancel_requested_at - flow_run.start_time.timestamp()
    assert SHORT_TIMEOUT_SECONDS - 0.5 < cancel_requested_after < SHORT_TIMEOUT_SECONDS + 10
    wait_for(lambda: artifact_says(record.id, "**cancelled**"), "the final run artifact", STEP_TIMEOUT, stack.processes)
    assert "flow timeout: the Prefect flow's timeout_seconds fired" in final_markdown(record.id)
    assert_nothing_active(runs_emulator)


def test_cancelling_the_served_pipeline_cancels_every_fanned_out_run(
    stack: Stack, api: SyncPrefectClient, runs_emulator: RunsEmulator
) -> None:
    runs_emulator.default_script = LONG
    prompts = ["billing changes?", "escalated tickets?", "failed deployments?"]
    flow_run_id = trigger(api, "assistant-pipeline/nightly-served", {"prompts": prompts})

    records = wait_for(
        lambda: in_progress_runs(runs_emulator, 3), "three OpenAI runs in progress", STEP_TIMEOUT, stack.processes
    )
    wait_for(
        lambda: followed_in_progress(api, flow_run_id, records),
        "wait_for_runs following them",
        STEP_TIMEOUT,
        stack.processes,
    )
    cancel_from_ui(api, flow_run_id)

    wait_for(
        lambda: all(runs_emulator.run(r.id).status == "cancelled" for r in records),
        "the three OpenAI runs cancelled",
        STEP_TIMEOUT,
        stack.processes,
    )
    wait_for(
        lambda: flow_run_in(api, flow_run_id, StateType.CANCELLED),
        "the flow run Cancelled",
        STEP_TIMEOUT,
        stack.processes,
    )
    for record in records:
        wait_for(
            partial(artifact_says, record.id, "**cancelled**"), "the final run artifacts", STEP_TIMEOUT, stack.processes
        )
        markdown = final_markdown(record.id)
        # Two paths race to cancel them: wait_for_runs itself, when the SIGTERM reaches the flow's process
        # ("...process was told to stop"), and the guard's on_cancellation hook, run by the serving
        # process after the kill ("...the flow run was cancelled"). Either is a cancellation request.
        assert "cancellation request: the flow" in markdown, markdown
    assert_cancel_recorded(stack, api, flow_run_id, records, stack.processes)
    assert len(runs_emulator.runs()) == 3, "the summary run must not start"
    assert_nothing_active(runs_emulator)


def test_served_pipeline_completes_with_a_summary_of_every_answer(
    stack: Stack, api: SyncPrefectClient, runs_emulator: RunsEmulator
) -> None:
    runs_emulator.default_script = RunScript(in_progress_seconds=0.2, reply_text="All quiet.")
    deployment = api.read_deployment_by_name("assistant-pipeline/nightly-served")
    assert [s.schedule.cron for s in deployment.schedules] == ["0 6 * * *"]  # type: ignore[union-attr]
    assert deployment.parameters["prompts"]

    flow_run_id = trigger(api, "assistant-pipeline/nightly-served", {"prompts": ["first?", "second?"]})
    wait_for(
        lambda: flow_run_in(api, flow_run_id, StateType.COMPLETED, StateType.FAILED, StateType.CRASHED),
        "the flow run to finish",
        STEP_TIMEOUT,
        stack.processes,
    )

    flow_run = api.read_flow_run(flow_run_id)
    assert flow_run.state is not None and flow_run.state.is_completed(), flow_run.state
    runs = runs_emulator.runs()
    assert [r.status for r in runs] == ["completed"] * 3
    # Threads are created empty; each run brings its messages (a create safe to retry, unlike a thread's).
    new_runs = [json.dumps(r.body) for r in runs_emulator.requests if r.method == "POST" and r.path.endswith("/runs")]
    assert len(new_runs) == 3
    assert all(word in new_runs[-1] for word in ("first?", "second?", "All quiet.")), new_runs[-1]
    for run in runs:
        assert "**completed**" in final_markdown(run.id)
    assert_nothing_active(runs_emulator)


def test_cancelling_the_pipeline_deployed_from_prefect_yaml_on_a_process_worker(
    stack: Stack, worker: Managed, api: SyncPrefectClient, runs_emulator: RunsEmulator
) -> None:
    runs_emulator.default_script = LONG
    watch = [*stack.processes, worker]
    deployment = api.read_deployment_by_name("assistant-pipeline/nightly")
    assert deployment.work_pool_name == WORK_POOL
    assert [s.schedule.cron for s in deployment.schedules] == ["0 6 * * *"]  # type: ignore[union-attr]
    flow_run_id = trigger(api, "assistant-pipeline/nightly", {"prompts": ["one?", "two?"]})

    records = wait_for(lambda: in_progress_runs(runs_emulator, 2), "two OpenAI runs in progress", STEP_TIMEOUT, watch)
    wait_for(
        lambda: followed_in_progress(api, flow_run_id, records), "wait_for_runs following them", STEP_TIMEOUT, watch
    )
    cancel_from_ui(api, flow_run_id)

    wait_for(
        lambda: all(runs_emulator.run(r.id).status == "cancelled" for r in records),
        "the OpenAI runs cancelled",
        STEP_TIMEOUT,
        watch,
    )
    wait_for(lambda: flow_run_in(api, flow_run_id, StateType.CANCELLED), "the flow run Cancelled", STEP_TIMEOUT, watch)
    for record in records:
        wait_for(partial(artifact_says, record.id, "**cancelled**"), "the final run artifacts", STEP_TIMEOUT, watch)
        assert "cancellation request: the flow" in final_markdown(record.id)
    assert_nothing_active(runs_emulator)
    wait_for(lambda: not flow_run_processes(worker), "the flow run's process to exit", STEP_TIMEOUT, watch)
