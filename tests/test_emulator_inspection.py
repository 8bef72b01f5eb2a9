"""Inspection, the /_emulator control surface, RemoteEmulator, spawn_emulator_process, the CLI, lifecycle."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from emulator_helpers import api, create_run, new_thread, wait_for, wait_status
from prefect_openai_runs.testing import DEFAULT_API_KEY, FaultRule, RemoteEmulator, RunScript, RunsEmulator


@pytest.fixture
def client(runs_emulator: RunsEmulator) -> Iterator[httpx.Client]:
    with api(runs_emulator) as c:
        yield c


def test_base_url_and_defaults(runs_emulator: RunsEmulator) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", runs_emulator.base_url)
    assert runs_emulator.api_key == DEFAULT_API_KEY
    assert runs_emulator.default_assistant_id == "asst_default"


def test_request_records_redact_keys(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    thread_id = new_thread(client, "secret-free text")
    with api(runs_emulator, headers={"api-key": runs_emulator.api_key, "OpenAI-Beta": "assistants=v2"}) as azure:
        azure.get(f"/threads/{thread_id}", params={"x": "1"})
    first, second = runs_emulator.requests
    assert (first.method, first.path, first.status, first.fault) == ("POST", "/v1/threads", 200, None)
    assert first.headers["authorization"] == "REDACTED"
    assert first.body == {"messages": [{"role": "user", "content": "secret-free text"}]}
    assert second.headers["api-key"] == "REDACTED" and second.query == "x=1" and second.body is None
    assert second.request_id.startswith("req_") and second.duration >= 0 and second.at >= first.at
    assert runs_emulator.api_key not in repr(runs_emulator.requests)
    assert runs_emulator.request_count() == 2
    assert runs_emulator.request_count("get", r"^/v1/threads/") == 1


def test_runs_active_runs_counters_reset(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_script(RunScript(queued_seconds=0, in_progress_seconds=0), assistant_id="asst_default")
    runs_emulator.add_script(RunScript(outcome="never"), match=lambda ctx: ctx.metadata.get("keep") == "yes")
    done = create_run(client, runs_emulator, new_thread(client))
    kept = create_run(client, runs_emulator, new_thread(client), metadata={"keep": "yes"})
    wait_status(runs_emulator, done["id"], "completed")
    assert [r.id for r in runs_emulator.runs()] == [done["id"], kept["id"]]
    assert [r.id for r in runs_emulator.active_runs()] == [kept["id"]]
    record = runs_emulator.run(kept["id"])
    assert record.metadata == {"keep": "yes"} and record.object["id"] == kept["id"]
    record.object["status"] = "tampered"  # a copy
    assert runs_emulator.run(kept["id"]).object["status"] != "tampered"
    counters = runs_emulator.counters
    assert counters["runs_created"] == 2 and counters["runs_completed"] == 1 and counters["requests"] == 4
    with pytest.raises(KeyError):
        runs_emulator.run("run_nope")
    runs_emulator.reset()
    assert runs_emulator.runs() == [] and runs_emulator.requests == [] and runs_emulator.counters == {}
    assert client.get(f"/assistants/{runs_emulator.default_assistant_id}").status_code == 200


def test_control_surface_over_http(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    with httpx.Client(base_url=runs_emulator.control_url) as control:
        assert control.get("/info").json()["default_assistant_id"] == "asst_default"
        script = RunScript(queued_seconds=0, in_progress_seconds=0, outcome="failed").to_dict()
        assert control.post("/scripts", json={"script": script, "last_user_message_contains": "boom"}).is_success
        assert control.post("/faults", json=FaultRule(method="GET", path="/threads/", status=503).to_dict()).is_success
        assert client.get("/threads/thread_x").status_code == 503
        run = create_run(client, runs_emulator, new_thread(client, "boom"))
        wait_status(runs_emulator, run["id"], "failed")
        (listed,) = control.get("/runs").json()
        assert listed["id"] == run["id"] and listed["status"] == "failed"
        assert control.get(f"/runs/{run['id']}").json()["history"][-1][0] == "failed"
        assert control.get("/runs", params={"active": "true"}).json() == []
        assert control.get("/counters").json()["runs_failed"] == 1
        assert next(r["path"] for r in control.get("/requests").json()) == "/v1/threads/thread_x"
        assert control.post("/faults", json={"kind": "nope"}).status_code == 422
        assert control.delete("/faults").is_success
        assert control.post("/reset").is_success
    assert runs_emulator.runs() == []


def test_remote_emulator(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    remote = RemoteEmulator(runs_emulator.base_url)
    try:
        assert remote.api_key == runs_emulator.api_key
        remote.add_script(RunScript(queued_seconds=0, in_progress_seconds=0, outcome="incomplete"), metadata={"a": "1"})
        run = create_run(client, runs_emulator, new_thread(client), metadata={"a": "1"})
        wait_for(lambda: remote.run(run["id"]).status == "incomplete")
        assert [r.id for r in remote.runs()] == [run["id"]] and remote.active_runs() == []
        assert remote.request_count("POST", "/runs$") == 1 and remote.counters["runs_incomplete"] == 1
        assert remote.requests[0].headers["authorization"] == "REDACTED"
        remote.add_fault(FaultRule(path=r"^/v1/threads$", status=500))
        assert client.post("/threads", json={}).status_code == 500
        remote.add_fault(FaultRule(path=r"^/v1/threads$", status=500))
        remote.clear_faults()
        assert client.post("/threads", json={}).status_code == 200
        with pytest.raises(KeyError):
            remote.run("run_nope")
        remote.reset()
        assert remote.runs() == []
    finally:
        remote.close()


def test_spawn_emulator_process() -> None:
    from prefect_openai_runs.testing import spawn_emulator_process

    with (
        spawn_emulator_process(in_progress_seconds=0.01, poll_after_ms=100) as remote,
        httpx.Client(
            base_url=remote.base_url,
            headers={"Authorization": f"Bearer {remote.api_key}", "OpenAI-Beta": "assistants=v2"},
        ) as c,
    ):
        run = c.post("/threads/runs", json={"assistant_id": remote.default_assistant_id}).json()
        wait_for(lambda: remote.run(run["id"]).status == "completed")
        got = c.get(f"/threads/{run['thread_id']}/runs/{run['id']}")
        assert got.headers["openai-poll-after-ms"] == "100"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_cli_emulator_serves_and_logs() -> None:
    port = _free_port()
    command = [
        sys.executable,
        "-c",
        "from prefect_openai_runs.cli import main; raise SystemExit(main())",
        "emulator",
        "--port",
        str(port),
        "--api-key",
        "sk-cli-test-key",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stderr is not None
        ready = process.stdout.readline()
        assert f"listening on http://127.0.0.1:{port}/v1" in ready and "sk-cli-test-key" not in ready
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/threads",
            json={},
            headers={"Authorization": "Bearer sk-cli-test-key", "OpenAI-Beta": "assistants=v2"},
        )
        assert response.status_code == 200
        line = process.stderr.readline()
        assert re.fullmatch(r"POST /v1/threads 200 \d+\.\dms req_[0-9a-f]+\n", line), line
    finally:
        process.terminate()
        process.wait(10)
    assert process.returncode in (0, -15)


def test_context_managers_and_restart() -> None:
    emu = RunsEmulator(port=_free_port())
    with emu:
        first = emu.base_url
        assert httpx.get(f"{emu.control_url}/info").is_success
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{first.removesuffix('/v1')}/_emulator/info")
    emu.start()
    try:
        assert emu.base_url == first and httpx.get(f"{emu.control_url}/info").is_success
    finally:
        emu.stop()


async def test_async_context_manager() -> None:
    async with RunsEmulator() as emu, httpx.AsyncClient() as c:
        assert (await c.get(f"{emu.control_url}/info")).is_success
