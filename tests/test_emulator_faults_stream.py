"""The ``cut_stream`` and ``stall_stream`` fault kinds and verbatim (``raw_body``) fault answers, seen over
raw HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from emulator_helpers import auth_headers, fault_statuses, new_thread, sse_events, wait_for, wait_status
from prefect_openai_runs.testing import FaultRule, RunScript, RunsEmulator
from prefect_openai_runs.testing._faults import FaultBook

CREATE = r"^/v1/threads/[^/]+/runs$"
SLOW = RunScript(queued_seconds=0.05, in_progress_seconds=0.3, reply_text="still finishes")


@pytest.fixture
def client(runs_emulator: RunsEmulator) -> Iterator[httpx.Client]:
    """A plain client: these responses are deliberately not the API's JSON, so nothing validates them."""
    with httpx.Client(base_url=runs_emulator.base_url, headers=auth_headers(runs_emulator), timeout=5.0) as c:
        yield c


def read_until_cut(client: httpx.Client, path: str, body: dict[str, object]) -> list[str]:
    """POST a streaming request; return the lines read before the connection broke (it must break)."""
    lines: list[str] = []
    with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            for line in response.iter_lines():
                lines.append(line)
    return lines


@pytest.mark.parametrize("after_events", [0, 2, 3])
def test_cut_stream_lets_n_events_through_then_breaks_while_the_run_goes_on(
    runs_emulator: RunsEmulator, client: httpx.Client, after_events: int
) -> None:
    runs_emulator.add_script(SLOW)
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="cut_stream", after_events=after_events))
    thread_id = new_thread(client)

    lines = read_until_cut(
        client, f"/threads/{thread_id}/runs", {"assistant_id": runs_emulator.default_assistant_id, "stream": True}
    )

    events = [event for event, _ in sse_events(iter(lines))]
    expected = ["thread.run.created", "thread.run.queued", "thread.run.in_progress"][:after_events]
    assert events == expected
    [run] = runs_emulator.runs()
    assert run.thread_id == thread_id
    wait_status(runs_emulator, run.id, "completed")
    [record] = [r for r in runs_emulator.requests if r.fault is not None]
    assert (record.fault, record.status, record.method) == ("cut_stream", 200, "POST")
    assert runs_emulator.counters["faults"] == 1


def test_cut_stream_writes_its_garbage_before_the_cut(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    garbage = "retry: 10\nid: 7\n: a comment\nnonsense line\ndata: {not json\n\n"
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="cut_stream", after_events=1, raw_body=garbage))
    thread_id = new_thread(client)

    lines = read_until_cut(
        client, f"/threads/{thread_id}/runs", {"assistant_id": runs_emulator.default_assistant_id, "stream": True}
    )

    assert lines[:2] == ["event: thread.run.created", lines[1]] and lines[1].startswith("data: {")
    assert lines[3:8] == ["retry: 10", "id: 7", ": a comment", "nonsense line", "data: {not json"]
    assert len(runs_emulator.runs()) == 1


def test_cut_stream_ignores_requests_that_do_not_stream(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="cut_stream", after_events=0))
    thread_id = new_thread(client)

    plain = client.post(f"/threads/{thread_id}/runs", json={"assistant_id": runs_emulator.default_assistant_id})

    assert plain.status_code == 200 and plain.json()["object"] == "thread.run"
    assert [r.fault for r in runs_emulator.requests] == [None, None]
    wait_status(runs_emulator, plain.json()["id"], "completed")
    lines = read_until_cut(  # the rule is still armed for the next stream
        client, f"/threads/{thread_id}/runs", {"assistant_id": runs_emulator.default_assistant_id, "stream": True}
    )
    assert lines == []
    assert [r.fault for r in runs_emulator.requests][-1] == "cut_stream"


def test_cut_stream_on_a_tool_outputs_stream(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_script(RunScript(outcome="requires_action", then=SLOW))
    thread_id = new_thread(client)
    created = client.post(f"/threads/{thread_id}/runs", json={"assistant_id": runs_emulator.default_assistant_id})
    run_id = created.json()["id"]
    wait_status(runs_emulator, run_id, "requires_action")
    call_id = runs_emulator.run(run_id).object["required_action"]["submit_tool_outputs"]["tool_calls"][0]["id"]
    runs_emulator.add_fault(FaultRule(path=r"/submit_tool_outputs$", kind="cut_stream", after_events=1))

    lines = read_until_cut(
        client,
        f"/threads/{thread_id}/runs/{run_id}/submit_tool_outputs",
        {"tool_outputs": [{"tool_call_id": call_id, "output": "21"}], "stream": True},
    )

    assert [event for event, _ in sse_events(iter(lines))] == ["thread.run.step.completed"]
    wait_status(runs_emulator, run_id, "completed")


def test_status_fault_with_raw_body_answers_it_verbatim(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    runs_emulator.add_fault(
        FaultRule(path=r"^/v1/threads$", status=502, raw_body=html, headers={"content-type": "text/html"})
    )
    runs_emulator.add_fault(FaultRule(path=r"^/v1/threads$", status=200, raw_body='{"id": "thread_'))

    page = client.post("/threads", json={})
    truncated = client.post("/threads", json={})

    assert (page.status_code, page.text, page.headers["content-type"]) == (502, html, "text/html")
    assert page.headers["content-length"] == str(len(html))
    assert (truncated.status_code, truncated.text) == (200, '{"id": "thread_')
    assert truncated.headers["content-type"].startswith("text/plain")
    assert truncated.headers["x-request-id"].startswith("req_")
    assert [r.fault for r in runs_emulator.requests] == ["status", "status"]
    assert client.post("/threads", json={}).status_code == 200


def test_new_fields_round_trip_over_the_control_surface(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    rule = FaultRule(path=CREATE, kind="cut_stream", after_events=1, raw_body=": over http\n")
    assert FaultRule.from_dict(rule.to_dict()) == rule
    with pytest.raises(ValueError, match="after_events"):
        FaultRule(kind="cut_stream", after_events=-1)
    assert httpx.post(f"{runs_emulator.control_url}/faults", json=rule.to_dict(), timeout=5).status_code == 200
    bad = {**rule.to_dict(), "after_events": -2}
    assert httpx.post(f"{runs_emulator.control_url}/faults", json=bad, timeout=5).status_code == 422
    thread_id = new_thread(client)

    lines = read_until_cut(
        client, f"/threads/{thread_id}/runs", {"assistant_id": runs_emulator.default_assistant_id, "stream": True}
    )

    assert lines[0] == "event: thread.run.created" and lines[-1] == ": over http"
    assert len(runs_emulator.runs()) == 1


def test_stall_stream_lets_n_events_through_then_sends_nothing_until_the_client_leaves(
    runs_emulator: RunsEmulator, client: httpx.Client
) -> None:
    runs_emulator.add_script(SLOW)
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="stall_stream", after_events=2, hang_seconds=60))
    thread_id = new_thread(client)
    body = {"assistant_id": runs_emulator.default_assistant_id, "stream": True}

    lines: list[str] = []
    quiet = httpx.Timeout(5.0, read=0.3)
    with client.stream("POST", f"/threads/{thread_id}/runs", json=body, timeout=quiet) as response:
        assert response.status_code == 200
        reading = response.iter_lines()
        while lines.count("") < 2:  # two whole events
            lines.append(next(reading))
        [run] = runs_emulator.runs()
        wait_status(runs_emulator, run.id, "completed")  # its last events and the stream's end are due now
        assert fault_statuses(runs_emulator, "stall_stream") == []  # yet the request is still in flight
        with pytest.raises(httpx.ReadTimeout):  # and nothing comes
            lines.append(next(reading))
    # The client left (the timed-out read closed the connection): the stall ends and is recorded as such.

    assert [event for event, _ in sse_events(iter(lines))] == ["thread.run.created", "thread.run.queued"]
    wait_for(lambda: fault_statuses(runs_emulator, "stall_stream") == [499])
    assert runs_emulator.counters["faults"] == 1


def test_stall_stream_closes_the_connection_after_hang_seconds(
    runs_emulator: RunsEmulator, client: httpx.Client
) -> None:
    runs_emulator.add_fault(FaultRule(path=CREATE, kind="stall_stream", after_events=1, hang_seconds=0.2))
    thread_id = new_thread(client)

    lines = read_until_cut(
        client, f"/threads/{thread_id}/runs", {"assistant_id": runs_emulator.default_assistant_id, "stream": True}
    )

    assert [event for event, _ in sse_events(iter(lines))] == ["thread.run.created"]
    assert fault_statuses(runs_emulator, "stall_stream") == [200]


def test_stall_stream_is_armed_over_the_control_surface_and_only_for_streams(
    runs_emulator: RunsEmulator, client: httpx.Client
) -> None:
    rule = FaultRule(path=CREATE, kind="stall_stream", after_events=0, hang_seconds=0.2)
    book = FaultBook()
    book.add(rule)
    assert book.take("POST", "/v1/threads/thread_1/runs") is None
    assert book.take("POST", "/v1/threads/thread_1/runs", streaming=True) == rule
    assert httpx.post(f"{runs_emulator.control_url}/faults", json=rule.to_dict(), timeout=5).status_code == 200
    thread_id = new_thread(client)

    plain = client.post(f"/threads/{thread_id}/runs", json={"assistant_id": runs_emulator.default_assistant_id})
    wait_status(runs_emulator, plain.json()["id"], "completed")
    lines = read_until_cut(
        client, f"/threads/{thread_id}/runs", {"assistant_id": runs_emulator.default_assistant_id, "stream": True}
    )

    assert plain.status_code == 200 and lines == []
    assert [r.fault for r in runs_emulator.requests] == [None, None, "stall_stream"]
