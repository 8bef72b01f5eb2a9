"""Every status transition of a run, with the run object, steps and messages each one leaves behind."""

from __future__ import annotations

import time

import httpx
import pytest

from emulator_helpers import api, create_run, new_thread, statuses, wait_for, wait_status
from prefect_openai_runs.testing import RunScript, RunsEmulator, ToolCallSpec

FAST = {"queued_seconds": 0.01, "in_progress_seconds": 0.02}


@pytest.fixture
def client(runs_emulator: RunsEmulator) -> httpx.Client:
    with api(runs_emulator) as c:
        yield c


def test_queued_in_progress_completed(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_script(RunScript(**FAST, reply_text="All done.", usage=(30, 5)))
    thread_id = new_thread(client)
    run = create_run(client, runs_emulator, thread_id)
    assert run["status"] == "queued"
    assert run["usage"] is None and run["started_at"] is None
    assert run["expires_at"] == run["created_at"] + 600
    wait_status(runs_emulator, run["id"], "completed")
    assert statuses(runs_emulator, run["id"]) == ["queued", "in_progress", "completed"]

    done = client.get(f"/threads/{thread_id}/runs/{run['id']}").json()
    assert done["status"] == "completed"
    assert done["expires_at"] is None
    assert done["usage"] == {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35}
    assert done["started_at"] is not None and done["completed_at"] is not None
    assert done["failed_at"] is None and done["cancelled_at"] is None and done["last_error"] is None

    record = runs_emulator.run(run["id"])
    (_, t_queued), (_, t_started), (_, t_done) = record.history
    assert t_queued <= t_started <= t_done == record.terminal_at
    assert t_started - t_queued >= 0.01 and t_done - t_started >= 0.02

    steps = client.get(f"/threads/{thread_id}/runs/{run['id']}/steps").json()["data"]
    assert [s["type"] for s in steps] == ["message_creation"]
    assert steps[0]["status"] == "completed"
    message_id = steps[0]["step_details"]["message_creation"]["message_id"]
    one = client.get(f"/threads/{thread_id}/runs/{run['id']}/steps/{steps[0]['id']}").json()
    assert one == steps[0]

    messages = client.get(f"/threads/{thread_id}/messages", params={"run_id": run["id"]}).json()["data"]
    assert [(m["id"], m["role"], m["run_id"]) for m in messages] == [(message_id, "assistant", run["id"])]
    assert messages[0]["content"][0]["text"]["value"] == "All done."
    everything = client.get(f"/threads/{thread_id}/messages", params={"order": "asc"}).json()["data"]
    assert [m["role"] for m in everything] == ["user", "assistant"]


def test_failed_run(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_script(
        RunScript(**FAST, outcome="failed", error_code="rate_limit_exceeded", error_message="Slow down.")
    )
    thread_id = new_thread(client)
    run = create_run(client, runs_emulator, thread_id)
    wait_status(runs_emulator, run["id"], "failed")
    failed = client.get(f"/threads/{thread_id}/runs/{run['id']}").json()
    assert failed["last_error"] == {"code": "rate_limit_exceeded", "message": "Slow down."}
    assert failed["failed_at"] is not None and failed["completed_at"] is None
    assert failed["usage"]["completion_tokens"] == 0
    assert statuses(runs_emulator, run["id"]) == ["queued", "in_progress", "failed"]


def test_incomplete_run(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_script(RunScript(**FAST, outcome="incomplete", incomplete_reason="max_prompt_tokens"))
    thread_id = new_thread(client)
    run = create_run(client, runs_emulator, thread_id)
    wait_status(runs_emulator, run["id"], "incomplete")
    incomplete = client.get(f"/threads/{thread_id}/runs/{run['id']}").json()
    assert incomplete["incomplete_details"] == {"reason": "max_prompt_tokens"}
    assert incomplete["usage"] is not None and incomplete["expires_at"] is None


def test_requires_action_then_tool_outputs(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    calls = [ToolCallSpec("get_weather", '{"city": "Paris"}'), ToolCallSpec("get_time", "{}")]
    then = RunScript(**FAST, reply_text="It is sunny.")
    runs_emulator.add_script(RunScript(**FAST, outcome="requires_action", tool_calls=calls, then=then))
    thread_id = new_thread(client)
    run = create_run(client, runs_emulator, thread_id)
    wait_status(runs_emulator, run["id"], "requires_action")
    waiting = client.get(f"/threads/{thread_id}/runs/{run['id']}").json()
    tool_calls = waiting["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert [c["function"]["name"] for c in tool_calls] == ["get_weather", "get_time"]
    assert waiting["required_action"]["type"] == "submit_tool_outputs"
    assert waiting["expires_at"] is not None and waiting["usage"] is None
    (step,) = client.get(f"/threads/{thread_id}/runs/{run['id']}/steps").json()["data"]
    assert step["type"] == "tool_calls" and step["status"] == "in_progress"

    outputs = [{"tool_call_id": c["id"], "output": "ok"} for c in tool_calls]
    back = client.post(f"/threads/{thread_id}/runs/{run['id']}/submit_tool_outputs", json={"tool_outputs": outputs})
    assert back.status_code == 200
    assert back.json()["status"] == "queued" and back.json()["required_action"] is None
    wait_status(runs_emulator, run["id"], "completed")
    assert statuses(runs_emulator, run["id"]) == [
        "queued",
        "in_progress",
        "requires_action",
        "queued",
        "in_progress",
        "completed",
    ]
    steps = client.get(f"/threads/{thread_id}/runs/{run['id']}/steps", params={"order": "asc"}).json()["data"]
    assert [(s["type"], s["status"]) for s in steps] == [("tool_calls", "completed"), ("message_creation", "completed")]
    assert [c["function"]["output"] for c in steps[0]["step_details"]["tool_calls"]] == ["ok", "ok"]
    reply = client.get(f"/threads/{thread_id}/messages", params={"run_id": run["id"]}).json()["data"]
    assert reply[0]["content"][0]["text"]["value"] == "It is sunny."


@pytest.mark.parametrize("wait_until", ["queued", "in_progress", "requires_action"])
def test_cancel_from_each_cancellable_status(
    runs_emulator: RunsEmulator, client: httpx.Client, wait_until: str
) -> None:
    script = {
        "queued": RunScript(queued_seconds=30),
        "in_progress": RunScript(queued_seconds=0, outcome="never"),
        "requires_action": RunScript(**FAST, outcome="requires_action"),
    }[wait_until]
    runs_emulator.add_script(script)
    runs_emulator.cancelling_delay = 0.05
    thread_id = new_thread(client)
    run = create_run(client, runs_emulator, thread_id)
    wait_status(runs_emulator, run["id"], wait_until)
    cancelling = client.post(f"/threads/{thread_id}/runs/{run['id']}/cancel")
    assert cancelling.status_code == 200
    assert cancelling.json()["status"] == "cancelling"
    wait_status(runs_emulator, run["id"], "cancelled")
    record = runs_emulator.run(run["id"])
    assert statuses(runs_emulator, run["id"])[-3:] == [wait_until, "cancelling", "cancelled"]
    assert record.cancel_requested_at is not None and record.terminal_at is not None
    assert record.terminal_at - record.cancel_requested_at >= 0.05
    cancelled = client.get(f"/threads/{thread_id}/runs/{run['id']}").json()
    assert cancelled["cancelled_at"] is not None and cancelled["expires_at"] is None
    if wait_until == "requires_action":
        (step,) = client.get(f"/threads/{thread_id}/runs/{run['id']}/steps").json()["data"]
        assert step["status"] == "cancelled" and step["cancelled_at"] is not None


def test_ignored_cancel_completes(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_script(RunScript(queued_seconds=0, outcome="never", ignore_cancel=True, cancelling_delay=0.02))
    thread_id = new_thread(client)
    run = create_run(client, runs_emulator, thread_id)
    wait_status(runs_emulator, run["id"], "in_progress")
    assert client.post(f"/threads/{thread_id}/runs/{run['id']}/cancel").json()["status"] == "cancelling"
    wait_status(runs_emulator, run["id"], "completed")
    assert statuses(runs_emulator, run["id"]) == ["queued", "in_progress", "cancelling", "completed"]


def test_never_finishing_run_expires(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.expires_after = 0.2
    runs_emulator.add_script(RunScript(queued_seconds=0, outcome="never"))
    thread_id = new_thread(client)
    run = create_run(client, runs_emulator, thread_id)
    assert run["expires_at"] == run["created_at"] + 1  # whole seconds, rounded up
    wait_status(runs_emulator, run["id"], "expired")
    record = runs_emulator.run(run["id"])
    assert statuses(runs_emulator, run["id"]) == ["queued", "in_progress", "expired"]
    assert record.terminal_at is not None and record.terminal_at - record.created_at_precise >= 0.2
    assert record.object["expires_at"] is None and record.object["usage"] is not None


def test_requires_action_expires(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.expires_after = 0.2
    runs_emulator.add_script(RunScript(**FAST, outcome="requires_action"))
    thread_id = new_thread(client)
    run = create_run(client, runs_emulator, thread_id)
    wait_status(runs_emulator, run["id"], "expired")
    assert statuses(runs_emulator, run["id"]) == ["queued", "in_progress", "requires_action", "expired"]
    (step,) = client.get(f"/threads/{thread_id}/runs/{run['id']}/steps").json()["data"]
    assert step["status"] == "expired" and step["expired_at"] is not None


def test_state_advances_without_polling(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_script(RunScript(**FAST))
    thread_id = new_thread(client)
    run = create_run(client, runs_emulator, thread_id)
    before = runs_emulator.request_count()
    wait_status(runs_emulator, run["id"], "completed")
    assert runs_emulator.request_count() == before


def test_run_echoes_request_and_assistant_defaults(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    assistant = client.post(
        "/assistants",
        json={
            "model": "gpt-4.1",
            "instructions": "Be brief.",
            "temperature": 0.5,
            "tools": [{"type": "function", "function": {"name": "lookup"}}],
        },
    ).json()
    thread_id = new_thread(client)
    run = client.post(
        f"/threads/{thread_id}/runs",
        json={
            "assistant_id": assistant["id"],
            "additional_instructions": "Use French.",
            "metadata": {"flow_run": "abc"},
            "top_p": 0.9,
            "max_completion_tokens": 1000,
            "truncation_strategy": {"type": "last_messages", "last_messages": 4},
            "tool_choice": "required",
            "parallel_tool_calls": False,
            "response_format": {"type": "json_object"},
            "additional_messages": [{"role": "user", "content": [{"type": "text", "text": "More."}]}],
        },
    ).json()
    assert run["model"] == "gpt-4.1"
    assert run["instructions"] == "Be brief.\nUse French."
    assert run["tools"] == [{"type": "function", "function": {"name": "lookup"}}]
    assert run["temperature"] == 0.5 and run["top_p"] == 0.9
    assert run["metadata"] == {"flow_run": "abc"}
    assert run["max_completion_tokens"] == 1000 and run["max_prompt_tokens"] is None
    assert run["truncation_strategy"] == {"type": "last_messages", "last_messages": 4}
    assert run["tool_choice"] == "required" and run["parallel_tool_calls"] is False
    assert run["response_format"] == {"type": "json_object"}
    texts = [
        m["content"][0]["text"]["value"]
        for m in client.get(f"/threads/{thread_id}/messages", params={"order": "asc"}).json()["data"]
    ]
    assert texts == ["Hello?", "More."]
    assert client.get(f"/assistants/{assistant['id']}").json()["model"] == "gpt-4.1"


def test_create_thread_and_run_and_modify(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    run = client.post(
        "/threads/runs",
        json={
            "assistant_id": runs_emulator.default_assistant_id,
            "thread": {"messages": [{"role": "user", "content": "Hi there"}], "metadata": {"k": "v"}},
        },
    ).json()
    thread = client.get(f"/threads/{run['thread_id']}").json()
    assert thread["metadata"] == {"k": "v"}
    modified = client.post(f"/threads/{run['thread_id']}/runs/{run['id']}", json={"metadata": {"tag": "x"}}).json()
    assert modified["metadata"] == {"tag": "x"}
    assert runs_emulator.run(run["id"]).metadata == {"tag": "x"}
    first = client.get(f"/threads/{run['thread_id']}/messages").json()["data"][-1]
    assert first["content"][0]["text"]["value"] == "Hi there" and first["run_id"] is None


def test_script_rules_newest_first_and_matchers(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_script(RunScript(**FAST, reply_text="older"))
    runs_emulator.add_script(RunScript(**FAST, reply_text="newer"))
    runs_emulator.add_script(
        RunScript(**FAST, outcome="failed"), match=lambda ctx: "please fail" in ctx.last_user_message
    )
    runs_emulator.add_script(RunScript(**FAST, outcome="incomplete"), match=lambda ctx: ctx.metadata.get("x") == "1")
    runs_emulator.add_script(RunScript(**FAST, outcome="failed"), assistant_id="asst_other")

    def outcome(text: str, **fields: object) -> str:
        run = create_run(client, runs_emulator, new_thread(client, text), **fields)
        wait_for(lambda: runs_emulator.run(run["id"]).terminal_at)
        return runs_emulator.run(run["id"]).status

    assert outcome("please fail now") == "failed"
    assert outcome("hello", metadata={"x": "1"}) == "incomplete"
    run = create_run(client, runs_emulator, new_thread(client))
    wait_status(runs_emulator, run["id"], "completed")
    reply = client.get(f"/threads/{run['thread_id']}/messages", params={"run_id": run["id"]}).json()["data"][0]
    assert reply["content"][0]["text"]["value"] == "newer"


def test_list_runs_pagination(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_script(RunScript(queued_seconds=0, in_progress_seconds=0))
    thread_id = new_thread(client)
    ids = []
    for _ in range(5):
        run = create_run(client, runs_emulator, thread_id)
        wait_status(runs_emulator, run["id"], "completed")
        ids.append(run["id"])
    page = client.get(f"/threads/{thread_id}/runs", params={"limit": 2}).json()
    assert [r["id"] for r in page["data"]] == ids[::-1][:2]
    assert page["has_more"] is True and page["first_id"] == ids[4] and page["last_id"] == ids[3]
    seen, after = [], None
    while True:
        params = {"limit": 2, "order": "asc", **({"after": after} if after else {})}
        page = client.get(f"/threads/{thread_id}/runs", params=params).json()
        seen += [r["id"] for r in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == ids
    before = client.get(f"/threads/{thread_id}/runs", params={"order": "asc", "before": ids[3], "limit": 2}).json()
    assert [r["id"] for r in before["data"]] == ids[1:3] and before["has_more"] is True
    default = client.get(f"/threads/{thread_id}/runs").json()
    assert len(default["data"]) == 5 and default["has_more"] is False


def test_empty_list(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    page = client.get(f"/threads/{new_thread(client)}/runs").json()
    # The spec types first_id/last_id as non-nullable strings: an empty page carries "".
    assert page == {"object": "list", "data": [], "first_id": "", "last_id": "", "has_more": False}


def test_many_active_runs(runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_script(RunScript(queued_seconds=0.2, outcome="never"))
    with httpx.Client(base_url=runs_emulator.base_url, headers=api(runs_emulator).headers) as plain:
        started = time.perf_counter()
        for _ in range(200):
            plain.post("/threads/runs", json={"assistant_id": runs_emulator.default_assistant_id})
        elapsed = time.perf_counter() - started
    assert len(runs_emulator.active_runs()) == 200
    assert elapsed < 10
