"""Server-sent events: order, spec-valid data, `done`, the requires_action cut, and promptness."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from emulator_helpers import api, new_thread, sse_events, stream, wait_for
from prefect_openai_runs.testing import RunScript, RunsEmulator

FAST = RunScript(queued_seconds=0.01, in_progress_seconds=0.02, reply_text="Streaming works fine.")
REPLY_EVENTS = [
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
    "thread.message.delta",
    "thread.message.delta",
    "thread.message.delta",
    "thread.message.completed",
    "thread.run.step.completed",
]


@pytest.fixture
def client(runs_emulator: RunsEmulator) -> Iterator[httpx.Client]:
    with api(runs_emulator) as c:
        yield c


def names(events: list[tuple[str, object]]) -> list[str]:
    return [event for event, _ in events]


def test_create_thread_and_run_stream(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_script(FAST)
    events = stream(client, "/threads/runs", {"assistant_id": runs_emulator.default_assistant_id, "stream": True})
    assert names(events) == [
        "thread.created",
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        *REPLY_EVENTS,
        "thread.run.completed",
        "done",
    ]
    assert events[-1] == ("done", "[DONE]")
    text = "".join(
        d["delta"]["content"][0]["text"]["value"]
        for e, d in events
        if e == "thread.message.delta"  # type: ignore[index]
    )
    assert text == "Streaming works fine."
    assert events[-2][1]["status"] == "completed"  # type: ignore[index]


def test_create_run_stream_failed(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_script(RunScript(queued_seconds=0, in_progress_seconds=0.01, outcome="failed"))
    thread_id = new_thread(client)
    events = stream(
        client, f"/threads/{thread_id}/runs", {"assistant_id": runs_emulator.default_assistant_id, "stream": True}
    )
    assert names(events) == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.failed",
        "done",
    ]


def test_requires_action_ends_stream_and_tool_outputs_stream(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_script(
        RunScript(queued_seconds=0, in_progress_seconds=0.01, outcome="requires_action", then=FAST)
    )
    thread_id = new_thread(client)
    events = stream(
        client, f"/threads/{thread_id}/runs", {"assistant_id": runs_emulator.default_assistant_id, "stream": True}
    )
    assert names(events) == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.requires_action",
        "done",
    ]
    run = events[-2][1]
    calls = run["required_action"]["submit_tool_outputs"]["tool_calls"]  # type: ignore[index]
    outputs = {"tool_outputs": [{"tool_call_id": c["id"], "output": "20C"} for c in calls], "stream": True}
    more = stream(client, f"/threads/{thread_id}/runs/{run['id']}/submit_tool_outputs", outputs)  # type: ignore[index]
    assert names(more) == [
        "thread.run.step.completed",
        "thread.run.queued",
        "thread.run.in_progress",
        *REPLY_EVENTS,
        "thread.run.completed",
        "done",
    ]


def test_cancel_during_stream(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_script(RunScript(queued_seconds=0, outcome="never", cancelling_delay=0.02))
    thread_id = new_thread(client)
    body = {"assistant_id": runs_emulator.default_assistant_id, "stream": True}
    seen: list[str] = []
    with client.stream("POST", f"/threads/{thread_id}/runs", json=body) as response:
        lines = response.iter_lines()
        for line in lines:
            if line.startswith("event: "):
                seen.append(line[7:])
            if line.startswith("data: ") and seen[-1] == "thread.run.in_progress":
                run_id = json.loads(line[6:])["id"]
                with api(runs_emulator) as other:
                    other.post(f"/threads/{thread_id}/runs/{run_id}/cancel")
                break
        seen += names(sse_events(lines))
    assert seen[-3:] == ["thread.run.cancelling", "thread.run.cancelled", "done"]


def test_events_are_flushed_promptly(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_script(RunScript(queued_seconds=0.05, in_progress_seconds=0.1))
    arrivals: dict[str, float] = {}
    with client.stream(
        "POST", "/threads/runs", json={"assistant_id": runs_emulator.default_assistant_id, "stream": True}
    ) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                arrivals.setdefault(line[7:], time.time())
    run_id = next(r.id for r in runs_emulator.runs())
    history = dict(runs_emulator.run(run_id).history)
    assert arrivals["thread.run.in_progress"] - history["in_progress"] < 0.05
    assert arrivals["thread.run.completed"] - history["completed"] < 0.05
    assert arrivals["thread.run.in_progress"] < history["completed"]  # not buffered until the end


def test_client_disconnect_ends_stream(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_script(RunScript(queued_seconds=0, outcome="never"))
    body = {"assistant_id": runs_emulator.default_assistant_id, "stream": True}
    with client.stream("POST", "/threads/runs", json=body) as response:
        next(response.iter_lines())
    # The server notices the disconnect (the run never ends) and finishes the exchange, which records it.
    wait_for(lambda: runs_emulator.request_count("POST", r"^/v1/threads/runs$"))
    assert runs_emulator.requests[-1].status == 200
    assert runs_emulator.active_runs()[0].status in ("queued", "in_progress")
