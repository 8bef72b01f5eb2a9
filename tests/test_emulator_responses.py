"""The emulator's background responses over real HTTP: lifecycle, streams with sequence numbers, resume
and its refusals, cancel in every state, delete, retention, function calls, faults. Every body and
event is checked against the vendored responses spec."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulator_helpers import wait_for
from prefect_openai_runs.testing import FaultRule, RemoteEmulator, ResponseScript, RunsEmulator, ToolCallSpec
from responses_spec import validate_response, validate_stream_event

FAST = {"queued_seconds": 0.01, "in_progress_seconds": 0.02}
SLOW = {"queued_seconds": 0.01, "in_progress_seconds": 30.0}
LIFECYCLE = ["response.created", "response.queued", "response.in_progress"]


def _check(response: httpx.Response) -> None:
    assert response.headers["x-request-id"].startswith("req_")
    if response.headers.get("content-type", "").startswith("application/json"):
        response.read()
        body = response.json()
        if isinstance(body, dict) and body.get("object") == "response" and "deleted" not in body:
            validate_response(body)


@pytest.fixture
def client(runs_emulator: RunsEmulator) -> Iterator[httpx.Client]:
    """A client without the Assistants beta header: /responses must not need it."""
    settings = runs_emulator.responses_settings
    saved = (settings.resume_window, settings.unstored_retention, settings.stored_retention)
    headers = {"Authorization": f"Bearer {runs_emulator.api_key}"}
    with httpx.Client(
        base_url=runs_emulator.base_url, headers=headers, timeout=5.0, event_hooks={"response": [_check]}
    ) as c:
        yield c
    settings.resume_window, settings.unstored_retention, settings.stored_retention = saved


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"model": "gpt-5", "input": "Summarise the report.", "background": True, **fields}
    response = client.post("/responses", json=body)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def events_of(response: httpx.Response) -> list[dict[str, Any]]:
    """The stream's events, each validated, with ``event:`` equal to the payload's ``type``."""
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    events: list[dict[str, Any]] = []
    name: str | None = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            event = json.loads(line.removeprefix("data: "))
            validate_stream_event(event)
            assert event["type"] == name
            events.append(event)
    return events


def wait_status(emu: RunsEmulator, response_id: str, status: str) -> None:
    wait_for(lambda: emu.response(response_id).status == status)


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def test_background_lifecycle_queued_in_progress_completed(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_response_script(
        ResponseScript(**FAST, output_text="Done.", usage=(40, 10), cached_tokens=16, reasoning_tokens=4)
    )
    created = create(client, metadata={"job": "nightly"})
    assert created["status"] == "queued" and created["background"] is True
    assert created["metadata"] == {"job": "nightly"} and created["output"] == []
    wait_status(runs_emulator, created["id"], "completed")
    assert [s for s, _ in runs_emulator.response(created["id"]).history] == ["queued", "in_progress", "completed"]

    done = client.get(f"/responses/{created['id']}").json()
    assert done["status"] == "completed" and done["completed_at"] is not None
    assert done["output"][0]["content"][0]["text"] == "Done."
    assert done["usage"] == {
        "input_tokens": 40,
        "input_tokens_details": {"cached_tokens": 16, "cache_write_tokens": 0},
        "output_tokens": 10,
        "output_tokens_details": {"reasoning_tokens": 4},
        "total_tokens": 50,
    }


@pytest.mark.parametrize(
    ("script", "status", "field", "expected"),
    [
        (
            ResponseScript(**FAST, outcome="failed", error_code="rate_limit_exceeded"),
            "failed",
            "error",
            "rate_limit_exceeded",
        ),
        (
            ResponseScript(**FAST, outcome="incomplete", output_text="abcdef"),
            "incomplete",
            "incomplete_details",
            "max_output_tokens",
        ),
    ],
)
def test_unsuccessful_outcomes(
    runs_emulator: RunsEmulator, client: httpx.Client, script: ResponseScript, status: str, field: str, expected: str
) -> None:
    runs_emulator.add_response_script(script)
    created = create(client)
    wait_status(runs_emulator, created["id"], status)
    ended = client.get(f"/responses/{created['id']}").json()
    assert expected in ended[field].values()
    assert ended["completed_at"] is None
    if status == "failed":
        assert ended["output"] == [] and ended["usage"]["output_tokens"] == 0
    else:
        assert ended["output"][0]["status"] == "incomplete" and ended["output"][0]["content"][0]["text"] == "abc"


def test_foreground_create_answers_when_done(client: httpx.Client) -> None:
    done = create(client, background=False)
    assert done["status"] == "completed" and done["background"] is False
    assert done["output"][0]["content"][0]["text"] == "Hello from the emulator."


def test_stream_numbers_events_from_zero(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_response_script(ResponseScript(**FAST, output_text="abc"))
    body = {"model": "gpt-5", "input": "hi", "background": True, "stream": True}
    with client.stream("POST", "/responses", json=body) as response:
        events = events_of(response)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert types(events)[:3] == LIFECYCLE and types(events)[-1] == "response.completed"
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "abc"
    assert events[-1]["response"]["status"] == "completed"
    assert runs_emulator.response(events[0]["response"]["id"]).events == events


def test_resume_replays_after_the_cursor_then_goes_live(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_response_script(ResponseScript(queued_seconds=0.01, in_progress_seconds=0.3))
    created = create(client)
    wait_status(runs_emulator, created["id"], "in_progress")
    with client.stream("GET", f"/responses/{created['id']}", params={"stream": "true", "starting_after": 1}) as r:
        events = events_of(r)
    assert events[0]["type"] == "response.in_progress" and events[0]["sequence_number"] == 2
    assert events[-1]["type"] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(2, 2 + len(events)))


def test_resume_without_cursor_replays_everything(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_response_script(ResponseScript(**FAST))
    created = create(client)
    wait_status(runs_emulator, created["id"], "completed")
    with client.stream("GET", f"/responses/{created['id']}", params={"stream": "true"}) as r:
        events = events_of(r)
    assert events == runs_emulator.response(created["id"]).events


def test_resume_refused_for_a_foreground_response(client: httpx.Client) -> None:
    done = create(client, background=False)
    refused = client.get(f"/responses/{done['id']}", params={"stream": "true", "starting_after": 0})
    assert refused.status_code == 400
    assert "not created with background=true" in refused.json()["error"]["message"]


def test_resume_refused_past_the_window(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.responses_settings.resume_window = 0.05
    created = create(client)
    url = f"/responses/{created['id']}"
    refused = wait_for(lambda: (r := client.get(url, params={"stream": "true"})).status_code == 400 and r)
    assert refused.json()["error"]["message"].startswith("This response can no longer be streamed")
    assert client.get(url).status_code == 200  # polling still works


def test_cancel_queued_then_idempotent(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_response_script(ResponseScript(queued_seconds=30.0))
    created = create(client)
    first = client.post(f"/responses/{created['id']}/cancel")
    again = client.post(f"/responses/{created['id']}/cancel")
    assert first.status_code == again.status_code == 200
    assert first.json()["status"] == again.json()["status"] == "cancelled"
    assert runs_emulator.counters["response_cancels"] == 1


def test_cancel_in_progress_ends_the_stream_without_a_cancelled_event(
    runs_emulator: RunsEmulator, client: httpx.Client
) -> None:
    runs_emulator.add_response_script(ResponseScript(**SLOW))
    body = {"model": "gpt-5", "input": "hi", "background": True, "stream": True}
    with client.stream("POST", "/responses", json=body) as response:
        lines = response.iter_lines()
        response_id = None
        for line in lines:
            if line.startswith("data: ") and '"response.in_progress"' in line:
                response_id = json.loads(line.removeprefix("data: "))["response"]["id"]
                break
        assert response_id is not None
        cancelled = client.post(f"/responses/{response_id}/cancel").json()
        rest = list(lines)
    assert cancelled["status"] == "cancelled"
    assert not any("response.cancelled" in line for line in rest)
    assert runs_emulator.response(response_id).status == "cancelled"


@pytest.mark.parametrize(
    ("script", "status", "message"),
    [
        (ResponseScript(**FAST), "completed", "Cannot cancel a completed response."),
        (ResponseScript(**FAST, outcome="failed"), "failed", "Cannot cancel a failed response."),
        (ResponseScript(**FAST, outcome="incomplete"), "incomplete", "Cannot cancel a response in terminal state."),
    ],
)
def test_cancel_terminal_is_400(
    runs_emulator: RunsEmulator, client: httpx.Client, script: ResponseScript, status: str, message: str
) -> None:
    runs_emulator.add_response_script(script)
    created = create(client)
    wait_status(runs_emulator, created["id"], status)
    refused = client.post(f"/responses/{created['id']}/cancel")
    assert refused.status_code == 400 and refused.json()["error"]["message"] == message


def test_cancel_foreground_is_400(client: httpx.Client) -> None:
    done = create(client, background=False)
    refused = client.post(f"/responses/{done['id']}/cancel")
    assert refused.status_code == 400 and "background" in refused.json()["error"]["message"]


def test_best_effort_cancel_seen_cancelled_then_completed(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    # long enough that the cancel reaches it in progress on a loaded machine
    runs_emulator.add_response_script(ResponseScript(queued_seconds=0.01, in_progress_seconds=2.0, ignore_cancel=True))
    created = create(client)
    answer = client.post(f"/responses/{created['id']}/cancel").json()
    assert answer.get("status") == "cancelled", answer
    wait_status(runs_emulator, created["id"], "completed")
    assert runs_emulator.response(created["id"]).history[-2][0] == "cancelled"


def test_delete_then_404(client: httpx.Client) -> None:
    done = create(client, background=False)
    deleted = client.delete(f"/responses/{done['id']}")
    assert deleted.json() == {"id": done["id"], "object": "response", "deleted": True}
    for method, suffix in (("GET", ""), ("POST", "/cancel"), ("DELETE", "")):
        missing = client.request(method, f"/responses/{done['id']}{suffix}")
        assert missing.status_code == 404 and done["id"] in missing.json()["error"]["message"]


def test_unstored_response_is_forgotten_after_its_retention(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.responses_settings.unstored_retention = 0.05
    kept = create(client)
    unstored = create(client, background=False, store=False)
    wait_for(lambda: client.get(f"/responses/{unstored['id']}").status_code == 404)
    assert client.get(f"/responses/{kept['id']}").status_code == 200
    assert [r.id for r in runs_emulator.responses()] == [kept["id"]]


def test_function_calls_and_the_follow_up(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_response_script(
        ResponseScript(**FAST, output_text="", function_calls=[ToolCallSpec("get_weather", '{"city": "Paris"}')]),
        model="tools-model",
    )
    first = create(client, model="tools-model")
    wait_status(runs_emulator, first["id"], "completed")
    (call,) = client.get(f"/responses/{first['id']}").json()["output"]
    assert (
        call["type"] == "function_call" and call["name"] == "get_weather" and call["arguments"] == '{"city": "Paris"}'
    )

    unanswered = client.post(
        "/responses", json={"model": "tools-model", "input": "x", "previous_response_id": first["id"]}
    )
    assert unanswered.status_code == 400 and call["call_id"] in unanswered.json()["error"]["message"]
    answer = [{"type": "function_call_output", "call_id": call["call_id"], "output": "18C"}]
    follow_up = create(client, model="tools-model", input=answer, previous_response_id=first["id"])
    wait_status(runs_emulator, follow_up["id"], "completed")
    final = client.get(f"/responses/{follow_up['id']}").json()
    assert final["previous_response_id"] == first["id"]
    assert [item["type"] for item in final["output"]] == []  # the same script without function calls, no text


def test_unknown_previous_response_is_404(client: httpx.Client) -> None:
    missing = client.post("/responses", json={"model": "m", "input": "x", "previous_response_id": "resp_nope"})
    assert missing.status_code == 404 and "resp_nope" in missing.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m", "input": "x", "background": True, "store": False}, "store"),
        ({"model": "m", "input": "x", "bogus": 1}, "bogus"),
        ({"model": "m", "input": "x", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ],
)
def test_bad_create_is_400_naming_the_parameter(client: httpx.Client, body: dict[str, Any], param: str) -> None:
    refused = client.post("/responses", json=body)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == param


def test_beta_header_not_required_but_api_key_is(runs_emulator: RunsEmulator) -> None:
    with httpx.Client(base_url=runs_emulator.base_url) as anonymous:
        assert anonymous.post("/responses", json={"model": "m", "input": "x"}).status_code == 401


def test_status_fault_on_responses_path_is_not_applied(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/responses$", kind="status", status=503, times=1))
    assert client.post("/responses", json={"model": "m", "input": "x", "background": True}).status_code == 503
    assert runs_emulator.responses() == []
    assert create(client)["status"] == "queued"


def test_drop_after_fault_creates_the_response_but_loses_the_answer(
    runs_emulator: RunsEmulator, client: httpx.Client
) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/responses$", kind="drop_after", times=1))
    with pytest.raises(httpx.TransportError):
        client.post("/responses", json={"model": "m", "input": "x", "background": True, "metadata": {"k": "1"}})
    (record,) = runs_emulator.responses()
    assert record.metadata == {"k": "1"}


def test_cut_stream_fault_applies_to_a_resumed_stream(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_response_script(ResponseScript(**FAST))
    created = create(client)
    wait_status(runs_emulator, created["id"], "completed")
    runs_emulator.add_fault(
        FaultRule(method="GET", path=r"^/v1/responses/", kind="cut_stream", after_events=2, times=1)
    )
    with pytest.raises(httpx.RemoteProtocolError):  # noqa: SIM117
        with client.stream("GET", f"/responses/{created['id']}", params={"stream": "true"}) as r:
            list(r.iter_lines())
    assert runs_emulator.counters["faults"] == 1


def test_control_surface_lists_responses_and_takes_scripts(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    control = httpx.Client(base_url=runs_emulator.control_url)
    rule = {"script": ResponseScript(**FAST, outcome="failed").to_dict(), "metadata": {"kind": "doomed"}}
    assert control.post("/response_scripts", json=rule).status_code == 200
    doomed = create(client, metadata={"kind": "doomed"})
    wait_status(runs_emulator, doomed["id"], "failed")
    listed = control.get("/responses").json()
    assert [r["id"] for r in listed] == [doomed["id"]] and listed[0]["status"] == "failed"
    assert control.get(f"/responses/{doomed['id']}").json()["object"]["error"]["code"] == "server_error"
    assert control.get("/responses/resp_nope").status_code == 404


def test_remote_emulator_scripts_and_inspects_responses(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    remote = RemoteEmulator(runs_emulator.base_url)
    try:
        remote.add_response_script(ResponseScript(**FAST, outcome="incomplete"), model="small", input_contains="long")
        other = create(client, model="small", input="short")
        cut = create(client, model="small", input="a long essay")
        wait_status(runs_emulator, cut["id"], "incomplete")
        wait_status(runs_emulator, other["id"], "completed")
        assert [r.id for r in remote.responses()] == [other["id"], cut["id"]]
        assert remote.response(cut["id"]).events[-1]["type"] == "response.incomplete"
        with pytest.raises(KeyError):
            remote.response("resp_nope")
    finally:
        remote.close()
