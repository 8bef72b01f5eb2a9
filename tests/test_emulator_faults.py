"""Each fault kind: error statuses (with retry-after), hangs, and connections dropped before/after applying."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from emulator_helpers import api, new_thread, wait_for
from prefect_openai_runs.testing import FaultRule, RunsEmulator

CREATE = r"^/v1/threads/[^/]+/runs$"


@pytest.fixture
def client(runs_emulator: RunsEmulator) -> Iterator[httpx.Client]:
    with api(runs_emulator) as c:
        yield c


def create(client: httpx.Client, emu: RunsEmulator, thread_id: str) -> httpx.Response:
    return client.post(f"/threads/{thread_id}/runs", json={"assistant_id": emu.default_assistant_id})


def test_429_with_retry_after_then_normal(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, status=429, headers={"retry-after": "2"}))
    thread_id = new_thread(client)
    limited = create(client, runs_emulator, thread_id)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert runs_emulator.runs() == []
    assert create(client, runs_emulator, thread_id).status_code == 200  # times=1
    assert [r.fault for r in runs_emulator.requests][-2:] == ["status", None]
    assert runs_emulator.counters["faults"] == 1


def test_default_429_headers_and_retry_after_ms(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_fault(FaultRule(path=CREATE))
    assert create(client, runs_emulator, new_thread(client)).headers["retry-after"] == "1"
    runs_emulator.add_fault(FaultRule(path=CREATE, headers={"retry-after-ms": "150"}))
    limited = create(client, runs_emulator, new_thread(client))
    assert limited.headers["retry-after-ms"] == "150" and "retry-after" not in limited.headers


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors(runs_emulator: RunsEmulator, client: httpx.Client, status: int) -> None:
    runs_emulator.add_fault(FaultRule(method="GET", path=r"/runs/", status=status, times=2))
    thread_id = new_thread(client)
    run = create(client, runs_emulator, thread_id).json()
    got = [client.get(f"/threads/{thread_id}/runs/{run['id']}").status_code for _ in range(3)]
    assert got == [status, status, 200]
    body = client.get("/threads/x").json()  # unaffected path
    assert body["error"]["message"] == "No thread found with id 'x'."


def test_custom_body_and_unlimited_times(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    custom = {"error": {"message": "custom", "type": "server_error", "param": None, "code": None}}
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/threads$", status=500, body=custom, times=None))
    for _ in range(3):
        response = client.post("/threads", json={})
        assert (response.status_code, response.json()) == (500, custom)
    runs_emulator.clear_faults()
    assert client.post("/threads", json={}).status_code == 200


def test_probability_is_deterministic_with_seed(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    def pattern() -> list[int]:
        runs_emulator.clear_faults()
        runs_emulator.add_fault(FaultRule(path=r"^/v1/threads$", status=503, times=None, probability=0.5, seed=7))
        return [client.post("/threads", json={}).status_code for _ in range(20)]

    first = pattern()
    assert first == pattern()
    assert 0 < first.count(503) < 20


def test_hang_past_client_timeout_is_not_applied(runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="hang", hang_seconds=30))
    with api(runs_emulator, timeout=0.2) as impatient:
        thread_id = new_thread(impatient)
        with pytest.raises(httpx.ReadTimeout):
            create(impatient, runs_emulator, thread_id)
    record = wait_for(lambda: [r for r in runs_emulator.requests if r.fault == "hang"])[0]
    assert record.status == 499
    assert runs_emulator.runs() == []


def test_short_hang_then_normal_answer(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="hang", hang_seconds=0.2))
    response = create(client, runs_emulator, new_thread(client))
    assert response.status_code == 200
    record = runs_emulator.requests[-1]
    assert record.fault == "hang" and record.duration >= 0.2


def test_drop_before_applies_nothing(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="drop_before"))
    thread_id = new_thread(client)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        create(client, runs_emulator, thread_id)
    assert runs_emulator.runs() == []
    assert runs_emulator.requests[-1].fault == "drop_before" and runs_emulator.requests[-1].status == 0
    assert create(client, runs_emulator, thread_id).status_code == 200  # the client recovers


def test_drop_after_is_the_ambiguous_create(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="drop_after"))
    thread_id = new_thread(client)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        create(client, runs_emulator, thread_id)
    (run,) = runs_emulator.runs()
    assert run.thread_id == thread_id
    listed = client.get(f"/threads/{thread_id}/runs").json()["data"]
    assert [r["id"] for r in listed] == [run.id]
    assert runs_emulator.requests[-2].fault == "drop_after"


def test_drop_after_on_a_stream(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/threads/runs$", kind="drop_after"))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.post("/threads/runs", json={"assistant_id": runs_emulator.default_assistant_id, "stream": True})
    assert len(runs_emulator.runs()) == 1
