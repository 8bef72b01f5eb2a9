"""A fleet fan-out end to end: ``prefect server start``, a process work pool with three ``prefect worker``
processes, a deployment of ``run-assistant-fan-out`` on it, and the emulator in its own process with a
requests-per-minute limit. :func:`run_assistant_fleet` runs in this process and sends the chunks to the
pool; what happened is read from the emulator's record. One test (one fleet is costly to start): a worker
and its flow-run processes are SIGKILLed mid-way (a lost machine); its chunks go silent, are re-run on the
other workers, re-attach to the runs already created, and the fleet completes with every prompt answered
once, the other chunks untouched, and almost no request answered 429 under the requests-per-minute limit.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.deployments.runner import EntrypointType
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_API_URL, temporary_settings

from prefect_openai_runs import OpenAICredentials
from prefect_openai_runs.flows import run_assistant_fan_out, run_assistant_fleet
from prefect_openai_runs.models import Run
from prefect_openai_runs.testing import RemoteEmulator, RunScript, spawn_emulator_process
from test_e2e_deployment import (
    BIN,
    Managed,
    _healthy,
    flow_run_processes,
    free_port,
    isolated_env,
    scan_for_the_key,
    start_process,
    stop_process,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

POOL = "openai-fleet"
DEPLOYMENT = "run-assistant-fan-out/fleet"
BLOCK = "openai-fleet"
RPM = 1200
PROMPTS = [f"prompt-{i:03d}" for i in range(60)]
CHUNK = 10
HEARTBEAT_SECONDS = 30
LOST_AFTER_SECONDS = 50.0
"""Above the heartbeat period, with room for the server to store a heartbeat event."""
FLEET_TIMEOUT = 300.0
STARTUP_TIMEOUT = 300.0
"""Seconds for the server or a worker to come up (generous: the machine may be shared)."""
QUIET_SERVER = {
    f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false"
    for name in ("SCHEDULER", "FOREMAN", "TRIGGERS", "TASK_RUN_RECORDER", "PAUSE_EXPIRATIONS", "CANCELLATION_CLEANUP")
}
"""Server services this test does not need (the event persister stays: it stores the heartbeats)."""


@dataclass
class Fleet:
    """The server, the workers, and the emulator."""

    api_url: str
    server: Managed
    workers: list[Managed]
    emulator: RemoteEmulator

    @property
    def processes(self) -> list[Managed]:
        return [self.server, *self.workers]


def _prefect(args: list[str], env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(
        [str(BIN / "prefect"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=STARTUP_TIMEOUT
    )
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


def _deploy_fan_out(api_url: str) -> None:
    """``run_assistant_fan_out`` deployed on the pool, by module path (no prefect.yaml, no code storage)."""
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        deployment = run_assistant_fan_out.to_deployment(
            "fleet", work_pool_name=POOL, entrypoint_type=EntrypointType.MODULE_PATH
        )
        deployment.apply()


def _workers_online(api_url: str, count: int) -> bool:
    response = httpx.post(f"{api_url}/work_pools/{POOL}/workers/filter", json={}, timeout=5.0)
    return response.status_code == 200 and len(response.json()) >= count


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Server, pool, deployment, three workers (two flow runs each at most) and a rate-limited emulator."""
    tmp = tmp_path_factory.mktemp("e2e-fleet")
    home = tmp / "home"
    home.mkdir()
    workdir = tmp / "cwd"
    workdir.mkdir()
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = isolated_env(home, api_url)
    started: list[Managed] = []
    try:
        server = start_process(
            "prefect server",
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            {**env, **QUIET_SERVER},
            tmp / "server.log",
        )
        started.append(server)
        wait_for(lambda: _healthy(f"{api_url}/health"), "the Prefect server's /api/health", STARTUP_TIMEOUT, [server])
        _prefect(["work-pool", "create", POOL, "--type", "process"], env, workdir)
        _deploy_fan_out(api_url)
        worker_env = isolated_env(
            home,
            api_url,
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(HEARTBEAT_SECONDS),
        )
        workers = []
        for n in range(3):
            worker = start_process(
                f"worker {n}",
                [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--limit", "2", "--name", f"worker-{n}"],
                worker_env,
                tmp / f"worker-{n}.log",
                cwd=workdir,
            )
            started.append(worker)
            workers.append(worker)
        wait_for(lambda: _workers_online(api_url, 3), "three workers online", STARTUP_TIMEOUT, started)
        with spawn_emulator_process(rpm=RPM) as emulator:
            with temporary_settings(updates={PREFECT_API_URL: api_url}):
                OpenAICredentials(api_key=emulator.api_key, base_url=emulator.base_url, timeout=10.0).save(
                    BLOCK, overwrite=True
                )
            yield Fleet(api_url, server, workers, emulator)
        scan_for_the_key(api_url, [m.log for m in started])
    finally:
        for managed in reversed(started):
            stop_process(managed)


def _run_fleet(api_url: str, assistant_id: str, out: list[list[Run] | BaseException]) -> None:
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        try:
            out.append(
                run_assistant_fleet(
                    BLOCK,
                    assistant_id,
                    PROMPTS,
                    chunk_size=CHUNK,
                    max_wait_seconds=120.0,
                    lost_after_seconds=LOST_AFTER_SECONDS,
                    poll_seconds=1.0,
                )
            )
        except BaseException as exc:
            out.append(exc)
        finally:  # while the fleet's server is up: events bound to it leave now
            EventsWorker.drain_all(timeout=30)


def _start_fleet(fleet: Fleet) -> tuple[threading.Thread, list[list[Run] | BaseException]]:
    out: list[list[Run] | BaseException] = []
    thread = threading.Thread(
        target=_run_fleet, args=(fleet.api_url, fleet.emulator.default_assistant_id, out), daemon=True
    )
    thread.start()
    return thread, out


def _finished(thread: threading.Thread, out: list[list[Run] | BaseException], watch: list[Managed]) -> list[Run]:
    wait_for(lambda: not thread.is_alive(), "the fleet flow run to end", FLEET_TIMEOUT, watch, 0.2)
    [result] = out
    if isinstance(result, BaseException):
        raise AssertionError(f"the fleet failed: {result!r}") from result
    return result


def _prompt_of_thread(emulator: RemoteEmulator) -> dict[str, str]:
    """Each thread's prompt, from the emulator's record of the run creates it answered."""
    found: dict[str, str] = {}
    for request in emulator.requests:
        match = re.fullmatch(r"/v1/threads/([^/]+)/runs", request.path)
        if request.method == "POST" and match and request.status == 200:
            [prompt] = re.findall(r"prompt-\d{3}", json.dumps(request.body))
            found[match.group(1)] = prompt
    return found


def assert_every_prompt_answered_once(emulator: RemoteEmulator, runs: list[Run]) -> None:
    records = emulator.runs()
    prompt_of = _prompt_of_thread(emulator)
    per_prompt = Counter(prompt_of[r.thread_id] for r in records)
    assert per_prompt == Counter(PROMPTS), f"runs per prompt: {per_prompt}"
    assert all(r.status == "completed" for r in records), Counter(r.status for r in records)
    assert not emulator.active_runs()
    assert [prompt_of[r.thread_id] for r in runs] == PROMPTS  # merged in prompt order
    assert all(r.status == "completed" for r in runs)


def _busiest_worker(fleet: Fleet) -> Managed | None:
    """A worker running at least one chunk whose OpenAI runs are in progress."""
    if not any(r.status == "in_progress" for r in fleet.emulator.runs()):
        return None
    busy = [w for w in fleet.workers if flow_run_processes(w)]
    return max(busy, key=lambda w: len(flow_run_processes(w)), default=None)


def _sigkill(worker: Managed) -> None:
    """SIGKILL a worker and its flow-run processes at once, as a machine that is lost."""
    victims = [psutil.Process(worker.process.pid), *flow_run_processes(worker)]
    for victim in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            os.kill(victim.pid, signal.SIGKILL)
    psutil.wait_procs(victims, timeout=10)


def test_a_worker_killed_mid_way_loses_nothing_and_duplicates_nothing(fleet: Fleet) -> None:
    fleet.emulator.reset()
    fleet.emulator.add_script(RunScript(in_progress_seconds=5.0), fleet.emulator.default_assistant_id)
    thread, out = _start_fleet(fleet)
    victim = wait_for(lambda: _busiest_worker(fleet), "a worker running a chunk", FLEET_TIMEOUT, fleet.processes)
    _sigkill(victim)
    survivors = [w for w in fleet.workers if w is not victim]

    runs = _finished(thread, out, [fleet.server, *survivors])

    assert_every_prompt_answered_once(fleet.emulator, runs)
    requests = fleet.emulator.requests
    throttled = sum(1 for r in requests if r.status == 429)
    assert throttled <= len(requests) // 100, f"{throttled} of {len(requests)} requests answered 429"
    with temporary_settings(updates={PREFECT_API_URL: fleet.api_url}), get_client(sync_client=True) as client:
        names = [
            f.name for f in client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_="chunk-")))
        ]
    assert any(name.endswith("attempt-2") for name in names), f"no chunk was re-run: {sorted(names)}"
    for worker in survivors:
        worker.assert_alive()
