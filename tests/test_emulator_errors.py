"""Every error the emulator answers: status, exact message, type, param and code, all four keys present."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulator_helpers import BETA, api, create_run, new_thread, wait_status
from prefect_openai_runs.testing import RunScript, RunsEmulator


@pytest.fixture
def client(runs_emulator: RunsEmulator) -> Iterator[httpx.Client]:
    with api(runs_emulator) as c:
        yield c


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    return body


def test_missing_and_wrong_api_key(runs_emulator: RunsEmulator) -> None:
    with api(runs_emulator, headers=BETA) as anonymous:
        missing = error(anonymous.get("/threads/thread_x"), 401)
    assert missing["code"] == "invalid_api_key" and missing["type"] == "invalid_request_error"
    assert missing["message"].startswith("You didn't provide an API key.")
    with api(runs_emulator, headers={"Authorization": "Bearer sk-wrong-secret-key", **BETA}) as wrong:
        body = error(wrong.get("/threads/thread_x"), 401)
    assert body["message"] == (
        "Incorrect API key provided: sk-wro***key. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )
    assert "sk-wrong-secret-key" not in body["message"]
    assert body["code"] == "invalid_api_key"


def test_azure_style_api_key_header(runs_emulator: RunsEmulator) -> None:
    with api(runs_emulator, headers={"api-key": runs_emulator.api_key, **BETA}) as azure:
        assert azure.post("/threads", json={}).status_code == 200


def test_missing_beta_header(runs_emulator: RunsEmulator) -> None:
    with api(runs_emulator, headers={"Authorization": f"Bearer {runs_emulator.api_key}"}) as no_beta:
        body = error(no_beta.post("/threads", json={}), 400)
    assert body == {
        "message": "You must provide the 'OpenAI-Beta' header to access the Assistants API. Please try again "
        "by setting the header 'OpenAI-Beta: assistants=v2'.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_beta",
    }


def test_beta_header_optional_when_configured() -> None:
    with (
        RunsEmulator(require_beta_header=False, api_key="sk-other-key-0000") as emu,
        api(emu, headers={"Authorization": "Bearer sk-other-key-0000"}) as client,
    ):
        assert client.post("/threads", json={}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/threads/thread_nope", "No thread found with id 'thread_nope'."),
        ("GET", "/threads/thread_nope/runs", "No thread found with id 'thread_nope'."),
        ("POST", "/threads/thread_nope/runs/run_x/cancel", "No thread found with id 'thread_nope'."),
        ("GET", "/assistants/asst_nope", "No assistant found with id 'asst_nope'."),
    ],
)
def test_unknown_objects(client: httpx.Client, method: str, path: str, message: str) -> None:
    body = error(client.request(method, path), 404)
    assert body == {"message": message, "type": "invalid_request_error", "param": None, "code": None}


def test_unknown_run_step_and_assistant_on_create(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    thread_id = new_thread(client)
    assert error(client.get(f"/threads/{thread_id}/runs/run_nope"), 404)["message"] == (
        "No run found with id 'run_nope'."
    )
    assert error(client.post(f"/threads/{thread_id}/runs/run_nope/cancel"), 404)["message"] == (
        "No run found with id 'run_nope'."
    )
    created = error(client.post(f"/threads/{thread_id}/runs", json={"assistant_id": "asst_nope"}), 404)
    assert created["message"] == "No assistant found with id 'asst_nope'."
    run = create_run(client, runs_emulator, thread_id)
    step = error(client.get(f"/threads/{thread_id}/runs/{run['id']}/steps/step_nope"), 404)
    assert step["message"] == "No run step found with id 'step_nope'."
    other = new_thread(client)
    assert error(client.get(f"/threads/{other}/runs/{run['id']}"), 404)["message"] == (
        f"No run found with id '{run['id']}'."
    )


def test_invalid_url(client: httpx.Client) -> None:
    assert error(client.get("/nothing/here"), 404)["message"] == "Invalid URL (GET /v1/nothing/here)"
    assert (
        error(client.delete("/threads/thread_x/runs"), 404)["message"]
        == "Invalid URL (DELETE /v1/threads/thread_x/runs)"
    )


def test_invalid_json(client: httpx.Client) -> None:
    body = error(client.post("/threads", content=b"{not json", headers={"content-type": "application/json"}), 400)
    assert body["message"].startswith("We could not parse the JSON body of your request.")


ASSISTANT = "asst_default"


@pytest.mark.parametrize(
    ("body", "param", "message", "code"),
    [
        (
            {"assistant_id": ASSISTANT, "foo": 1},
            "foo",
            "Unrecognized request argument supplied: foo",
            "unknown_parameter",
        ),
        ({}, "assistant_id", "Missing required parameter: 'assistant_id'.", "missing_required_parameter"),
        (
            {"assistant_id": ASSISTANT, "temperature": 3},
            "temperature",
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3 instead.",
            "decimal_above_max_value",
        ),
        (
            {"assistant_id": ASSISTANT, "top_p": -0.5},
            "top_p",
            "Invalid 'top_p': decimal below minimum value. Expected a value >= 0, but got -0.5 instead.",
            "decimal_below_min_value",
        ),
        (
            {"assistant_id": ASSISTANT, "max_completion_tokens": 100},
            "max_completion_tokens",
            "Invalid 'max_completion_tokens': integer below minimum value. Expected a value >= 256, but got 100 "
            "instead.",
            "integer_below_min_value",
        ),
        (
            {"assistant_id": ASSISTANT, "max_prompt_tokens": "many"},
            "max_prompt_tokens",
            "Invalid type for 'max_prompt_tokens': expected an integer, but got a string instead.",
            "invalid_type",
        ),
        (
            {"assistant_id": ASSISTANT, "metadata": {f"k{i}": "v" for i in range(17)}},
            "metadata",
            "Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but got an "
            "object with 17 properties instead.",
            "object_above_max_properties",
        ),
        (
            {"assistant_id": ASSISTANT, "metadata": {"k" * 65: "v"}},
            "metadata",
            "Invalid 'metadata': key too long. Expected keys with maximum length 64, but got a key with length 65 "
            "instead.",
            "string_above_max_length",
        ),
        (
            {"assistant_id": ASSISTANT, "metadata": {"k": "v" * 513}},
            "metadata.k",
            "Invalid 'metadata.k': string too long. Expected a string with maximum length 512, but got a string "
            "with length 513 instead.",
            "string_above_max_length",
        ),
        (
            {"assistant_id": ASSISTANT, "metadata": {"k": 1}},
            "metadata.k",
            "Invalid type for 'metadata.k': expected a string, but got an integer instead.",
            "invalid_type",
        ),
        (
            {"assistant_id": ASSISTANT, "tools": [{"type": "code_interpreter"}] * 21},
            "tools",
            "Invalid 'tools': array too long. Expected an array with maximum length 20, but got an array with "
            "length 21 instead.",
            "array_above_max_length",
        ),
        (
            {"assistant_id": ASSISTANT, "tools": [{"type": "function", "function": {"name": "bad name!"}}]},
            "tools[0].function.name",
            "Invalid 'tools[0].function.name': string does not match pattern. Expected a string that matches the "
            "pattern '^[a-zA-Z0-9_-]{1,64}$'.",
            "invalid_value",
        ),
        (
            {"assistant_id": ASSISTANT, "tools": [{"type": "browser"}]},
            "tools[0].type",
            "Invalid value: 'browser'. Supported values are: 'code_interpreter', 'file_search' and 'function'.",
            "invalid_value",
        ),
        (
            {"assistant_id": ASSISTANT, "additional_messages": [{"role": "system", "content": "x"}]},
            "additional_messages[0].role",
            "Invalid value: 'system'. Supported values are: 'user' and 'assistant'.",
            "invalid_value",
        ),
        (
            {"assistant_id": ASSISTANT, "additional_messages": [{"role": "user", "content": "x", "extra": 1}]},
            "additional_messages[0].extra",
            "Unrecognized request argument supplied: extra",
            "unknown_parameter",
        ),
        (
            {"assistant_id": ASSISTANT, "truncation_strategy": {"type": "last_messages", "last_messages": 0}},
            "truncation_strategy.last_messages",
            "Invalid 'truncation_strategy.last_messages': integer below minimum value. Expected a value >= 1, but "
            "got 0 instead.",
            "integer_below_min_value",
        ),
        (
            {"assistant_id": ASSISTANT, "tool_choice": "sometimes"},
            "tool_choice",
            "Invalid value: 'sometimes'. Supported values are: 'none', 'auto' and 'required'.",
            "invalid_value",
        ),
        (
            {"assistant_id": ASSISTANT, "stream": "yes"},
            "stream",
            "Invalid type for 'stream': expected a boolean, but got a string instead.",
            "invalid_type",
        ),
    ],
)
def test_create_run_validation(client: httpx.Client, body: dict[str, Any], param: str, message: str, code: str) -> None:
    thread_id = new_thread(client)
    assert error(client.post(f"/threads/{thread_id}/runs", json=body), 400) == {
        "message": message,
        "type": "invalid_request_error",
        "param": param,
        "code": code,
    }


def test_other_bodies_are_validated(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    assert error(client.post("/threads/runs", json={"assistant_id": ASSISTANT, "thread": {"x": 1}}), 400)["param"] == (
        "thread.x"
    )
    assert error(client.post("/threads", json={"messages": [{"role": "user"}]}), 400)["param"] == (
        "messages[0].content"
    )
    thread_id = new_thread(client)
    run = create_run(client, runs_emulator, thread_id)
    modify = error(client.post(f"/threads/{thread_id}/runs/{run['id']}", json={"status": "completed"}), 400)
    assert modify["message"] == "Unrecognized request argument supplied: status"
    submit = error(client.post(f"/threads/{thread_id}/runs/{run['id']}/submit_tool_outputs", json={}), 400)
    assert submit["param"] == "tool_outputs"


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        (
            {"limit": 0},
            "limit",
            "Invalid 'limit': integer below minimum value. Expected a value >= 1, but got 0 instead.",
        ),
        (
            {"limit": 101},
            "limit",
            "Invalid 'limit': integer above maximum value. Expected a value <= 100, but got 101 instead.",
        ),
        ({"limit": "x"}, "limit", "Invalid type for 'limit': expected an integer, but got a string instead."),
        ({"order": "up"}, "order", "Invalid value: 'up'. Supported values are: 'asc' and 'desc'."),
    ],
)
def test_list_query_validation(client: httpx.Client, params: dict[str, Any], param: str, message: str) -> None:
    body = error(client.get(f"/threads/{new_thread(client)}/runs", params=params), 400)
    assert (body["param"], body["message"]) == (param, message)


def test_cancel_terminal_and_cancelling_runs(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_script(RunScript(queued_seconds=0, in_progress_seconds=0))
    thread_id = new_thread(client)
    run = create_run(client, runs_emulator, thread_id)
    wait_status(runs_emulator, run["id"], "completed")
    assert error(client.post(f"/threads/{thread_id}/runs/{run['id']}/cancel"), 400) == {
        "message": "Cannot cancel run with status 'completed'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    runs_emulator.add_script(RunScript(queued_seconds=0, outcome="never", cancelling_delay=30))
    run = create_run(client, runs_emulator, thread_id)
    assert client.post(f"/threads/{thread_id}/runs/{run['id']}/cancel").json()["status"] == "cancelling"
    assert error(client.post(f"/threads/{thread_id}/runs/{run['id']}/cancel"), 400)["message"] == (
        "Cannot cancel run with status 'cancelling'."
    )


def test_one_active_run_per_thread(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.add_script(RunScript(outcome="never"))
    thread_id = new_thread(client)
    run = create_run(client, runs_emulator, thread_id)
    busy = error(client.post(f"/threads/{thread_id}/runs", json={"assistant_id": ASSISTANT}), 400)
    assert busy == {
        "message": f"Thread {thread_id} already has an active run {run['id']}.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    message = error(client.post(f"/threads/{thread_id}/messages", json={"role": "user", "content": "x"}), 400)
    assert message["message"] == f"Can't add messages to {thread_id} while a run {run['id']} is active."


def test_tool_outputs_errors(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.expires_after = 2.0  # room for the partial submit below on a loaded machine
    runs_emulator.add_script(
        RunScript(
            queued_seconds=0.2, in_progress_seconds=0, outcome="requires_action", tool_calls=[_call("a"), _call("b")]
        )
    )
    thread_id = new_thread(client)
    run = create_run(client, runs_emulator, thread_id)
    path = f"/threads/{thread_id}/runs/{run['id']}/submit_tool_outputs"
    early = error(client.post(path, json={"tool_outputs": []}), 400)
    assert early["message"] == 'Runs in status "queued" do not accept tool outputs.'  # queued for 0.2 s
    wait_status(runs_emulator, run["id"], "requires_action")
    ids = [
        c["id"]
        for c in client.get(f"/threads/{thread_id}/runs/{run['id']}").json()["required_action"]["submit_tool_outputs"][
            "tool_calls"
        ]
    ]
    partial = error(client.post(path, json={"tool_outputs": [{"tool_call_id": ids[0], "output": "x"}]}), 400)
    assert partial["param"] == "tool_outputs"
    assert partial["message"] == (
        f"Expected tool outputs for call_ids {sorted(ids)}, got {[ids[0]]}. Missing: {[ids[1]]}."
    )
    wait_status(runs_emulator, run["id"], "expired")
    expired = error(client.post(path, json={"tool_outputs": [{"tool_call_id": i, "output": "x"} for i in ids]}), 400)
    assert expired == {
        "message": 'Runs in status "expired" do not accept tool outputs.',
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def _call(name: str) -> Any:
    from prefect_openai_runs.testing import ToolCallSpec

    return ToolCallSpec(name=name)


def test_every_response_carries_standard_headers(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.poll_after_ms = 250
    for response in (
        client.get("/threads/thread_nope"),
        client.post("/threads", json={}),
    ):
        for header in (
            "x-request-id",
            "openai-processing-ms",
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ):
            assert header in response.headers, header
    thread_id = new_thread(client)
    run = create_run(client, runs_emulator, thread_id)
    assert client.get(f"/threads/{thread_id}/runs/{run['id']}").headers["openai-poll-after-ms"] == "250"
    assert "openai-poll-after-ms" not in client.get(f"/threads/{thread_id}/runs").headers
