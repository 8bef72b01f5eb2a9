"""Contract tests: the official ``openai`` SDK drives the emulator's background responses the way it
drives the live API (create with background, retrieve, resume a stream with a cursor, cancel, delete)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx2
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from emulator_helpers import wait_for
from prefect_openai_runs.testing import ResponseScript, RunsEmulator, ToolCallSpec
from responses_spec import validate_response

FAST = {"queued_seconds": 0.01, "in_progress_seconds": 0.02}


def _validate(body: Any) -> None:
    if isinstance(body, dict) and body.get("object") == "response" and "deleted" not in body:
        validate_response(body)


def _check(response: httpx2.Response) -> None:
    assert response.headers["x-request-id"].startswith("req_")
    if response.headers.get("content-type", "").startswith("application/json"):
        response.read()
        _validate(response.json())


async def _acheck(response: httpx2.Response) -> None:
    assert response.headers["x-request-id"].startswith("req_")
    if response.headers.get("content-type", "").startswith("application/json"):
        await response.aread()
        _validate(response.json())


def openai_client(emu: RunsEmulator, **kwargs: Any) -> OpenAI:
    """The SDK on the emulator, each response object checked against the responses spec."""
    http = httpx2.Client(event_hooks={"response": [_check]})
    return OpenAI(api_key=emu.api_key, base_url=emu.base_url, http_client=http, **kwargs)


def async_openai_client(emu: RunsEmulator, **kwargs: Any) -> AsyncOpenAI:
    """The async SDK on the emulator, each response object checked against the responses spec."""
    http = httpx2.AsyncClient(event_hooks={"response": [_acheck]})
    return AsyncOpenAI(api_key=emu.api_key, base_url=emu.base_url, http_client=http, **kwargs)


@pytest.fixture
def sdk(runs_emulator: RunsEmulator) -> Iterator[OpenAI]:
    with openai_client(runs_emulator, max_retries=0) as client:
        yield client


def wait_done(sdk: OpenAI, response_id: str) -> openai.types.responses.Response:
    """Poll like a caller would: no SDK helper polls a background response."""
    return wait_for(lambda: (r := sdk.responses.retrieve(response_id)).status not in ("queued", "in_progress") and r)


def test_create_background_then_poll_to_completion(runs_emulator: RunsEmulator, sdk: OpenAI) -> None:
    runs_emulator.add_response_script(ResponseScript(**FAST, output_text="Forty-two.", usage=(30, 5)))
    created = sdk.responses.create(model="gpt-5", input="The answer?", background=True, metadata={"job": "q"})
    assert created.status == "queued" and created.background is True and created.metadata == {"job": "q"}
    done = wait_done(sdk, created.id)
    assert done.status == "completed" and done.output_text == "Forty-two."
    assert done.usage is not None and (done.usage.input_tokens, done.usage.output_tokens) == (30, 5)


def test_streamed_background_create_has_sequence_numbers(runs_emulator: RunsEmulator, sdk: OpenAI) -> None:
    runs_emulator.add_response_script(ResponseScript(**FAST))
    events = list(sdk.responses.create(model="gpt-5", input="hi", background=True, stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"


def test_retrieve_stream_resumes_after_the_cursor(runs_emulator: RunsEmulator, sdk: OpenAI) -> None:
    runs_emulator.add_response_script(ResponseScript(queued_seconds=0.01, in_progress_seconds=0.2))
    created = sdk.responses.create(model="gpt-5", input="hi", background=True)
    wait_for(lambda: runs_emulator.response(created.id).status == "in_progress")
    events = list(sdk.responses.retrieve(created.id, stream=True, starting_after=1))
    assert events[0].sequence_number == 2 and events[-1].type == "response.completed"
    assert parse_qs(runs_emulator.requests[-1].query) == {"stream": ["true"], "starting_after": ["1"]}


def test_resume_refusal_is_a_bad_request(sdk: OpenAI) -> None:
    foreground = sdk.responses.create(model="gpt-5", input="hi")
    with pytest.raises(openai.BadRequestError, match="not created with background=true"):
        list(sdk.responses.retrieve(foreground.id, stream=True, starting_after=0))


def test_cancel_then_cancel_again(runs_emulator: RunsEmulator, sdk: OpenAI) -> None:
    runs_emulator.add_response_script(ResponseScript(outcome="never"))
    created = sdk.responses.create(model="gpt-5", input="hi", background=True)
    assert sdk.responses.cancel(created.id).status == "cancelled"
    assert sdk.responses.cancel(created.id).status == "cancelled"
    assert sdk.responses.retrieve(created.id).status == "cancelled"


def test_cancel_completed_is_bad_request(runs_emulator: RunsEmulator, sdk: OpenAI) -> None:
    runs_emulator.add_response_script(ResponseScript(**FAST))
    created = sdk.responses.create(model="gpt-5", input="hi", background=True)
    wait_done(sdk, created.id)
    with pytest.raises(openai.BadRequestError, match="Cannot cancel a completed response"):
        sdk.responses.cancel(created.id)


def test_function_call_round_trip(runs_emulator: RunsEmulator, sdk: OpenAI) -> None:
    runs_emulator.add_response_script(
        ResponseScript(
            **FAST,
            output_text="",
            function_calls=[ToolCallSpec("add", '{"a": 1, "b": 2}')],
            then=ResponseScript(**FAST, output_text="3"),
        ),
        model="calc",
    )
    first = wait_done(sdk, sdk.responses.create(model="calc", input="1+2?", background=True).id)
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "add" and call.arguments == '{"a": 1, "b": 2}'
    follow = sdk.responses.create(
        model="calc",
        background=True,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "3"}],
    )
    assert wait_done(sdk, follow.id).output_text == "3"


def test_delete_then_retrieve_is_not_found(sdk: OpenAI) -> None:
    created = sdk.responses.create(model="gpt-5", input="hi")
    sdk.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(created.id)


async def test_async_sdk_create_and_cancel(runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_response_script(ResponseScript(outcome="never"))
    async with async_openai_client(runs_emulator, max_retries=0) as client:
        created = await client.responses.create(model="gpt-5", input="hi", background=True)
        cancelled = await client.responses.cancel(created.id)
    assert cancelled.status == "cancelled" and runs_emulator.response(created.id).status == "cancelled"
