"""Helpers for the emulator's own tests: validating HTTP clients, SSE parsing, waiting on state."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import httpx2
from openai import AsyncOpenAI, OpenAI

from prefect_openai_runs.testing import RunsEmulator
from spec_schemas import validate_event, validate_response_body

T = TypeVar("T")
BETA = {"OpenAI-Beta": "assistants=v2"}


def auth_headers(emu: RunsEmulator) -> dict[str, str]:
    """The headers a well-behaved client sends."""
    return {"Authorization": f"Bearer {emu.api_key}", **BETA}


def _check(response: httpx.Response | httpx2.Response) -> None:
    """Every JSON body the emulator answers must validate against the spec; every response has a request id."""
    assert response.headers["x-request-id"].startswith("req_")
    if response.headers.get("content-type", "").startswith("application/json"):
        response.read()
        validate_response_body(response.request.url.path, response.json())


def api(emu: RunsEmulator, *, headers: dict[str, str] | None = None, timeout: float = 5.0) -> httpx.Client:
    """An httpx client on the emulator's /v1 that validates every response it gets."""
    return httpx.Client(
        base_url=emu.base_url,
        headers=auth_headers(emu) if headers is None else headers,
        timeout=timeout,
        event_hooks={"response": [_check]},
    )


def openai_client(emu: RunsEmulator, **kwargs: Any) -> OpenAI:
    """The official SDK pointed at the emulator, validating each JSON response against the spec."""
    http = httpx2.Client(event_hooks={"response": [_check]})
    return OpenAI(api_key=emu.api_key, base_url=emu.base_url, http_client=http, **kwargs)


def async_openai_client(emu: RunsEmulator, **kwargs: Any) -> AsyncOpenAI:
    """The async SDK pointed at the emulator, validating each JSON response against the spec."""

    async def check(response: httpx2.Response) -> None:
        assert response.headers["x-request-id"].startswith("req_")
        if response.headers.get("content-type", "").startswith("application/json"):
            await response.aread()
            validate_response_body(response.request.url.path, response.json())

    http = httpx2.AsyncClient(event_hooks={"response": [check]})
    return AsyncOpenAI(api_key=emu.api_key, base_url=emu.base_url, http_client=http, **kwargs)


def sse_events(lines: Iterator[str]) -> list[tuple[str, Any]]:
    """Parse server-sent events, validating each against the spec; ``done`` keeps its raw data."""
    events: list[tuple[str, Any]] = []
    event: str | None = None
    for line in lines:
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: ") and event is not None:
            raw = line[len("data: ") :]
            data = raw if event == "done" else json.loads(raw)
            validate_event(event, data)
            events.append((event, data))
            event = None
    return events


def stream(client: httpx.Client, path: str, body: dict[str, Any]) -> list[tuple[str, Any]]:
    """POST ``body`` to ``path`` and collect the whole event stream."""
    with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return sse_events(response.iter_lines())


def wait_for(probe: Callable[[], T | None], timeout: float = 5.0, interval: float = 0.005) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def wait_status(emu: RunsEmulator, run_id: str, status: str, timeout: float = 5.0) -> None:
    """Wait until the emulator's record of ``run_id`` has ``status``."""
    wait_for(lambda: emu.run(run_id).status == status, timeout)


def fault_statuses(emu: RunsEmulator, kind: str) -> list[int]:
    """The statuses recorded for the requests a ``kind`` fault affected (499: the client left first)."""
    return [record.status for record in emu.requests if record.fault == kind]


def statuses(emu: RunsEmulator, run_id: str) -> list[str]:
    """The statuses ``run_id`` went through, in order."""
    return [status for status, _ in emu.run(run_id).history]


def new_thread(client: httpx.Client, text: str = "Hello?") -> str:
    """Create a thread holding one user message; return its id."""
    response = client.post("/threads", json={"messages": [{"role": "user", "content": text}]})
    assert response.status_code == 200, response.text
    thread_id: str = response.json()["id"]
    return thread_id


def create_run(client: httpx.Client, emu: RunsEmulator, thread_id: str, **fields: Any) -> dict[str, Any]:
    """Create a run on ``thread_id`` with the default assistant; return the run object."""
    response = client.post(f"/threads/{thread_id}/runs", json={"assistant_id": emu.default_assistant_id, **fields})
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run
