"""The background responses client over real HTTP (the emulator), and its stream codec.

A create is never sent twice after an ambiguous failure: the emulator's record shows exactly one
response, carrying the key the error names.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from prefect_openai_runs import OpenAICredentials
from prefect_openai_runs.client import IDEMPOTENCY_METADATA_KEY, ResponsesClient
from prefect_openai_runs.client._responses_stream import STREAM_DONE, ResponseStreamCodec
from prefect_openai_runs.exceptions import ResponseMayExistError, ResponseNotCancellableError, StreamError
from prefect_openai_runs.models import ResponseStatus, ResponseStreamEvent
from prefect_openai_runs.testing import FaultRule, ResponseScript, RunsEmulator

SECRET = "sk-test-secret-0123456789"


def _events(codec: ResponseStreamCodec, lines: list[str]) -> list[ResponseStreamEvent]:
    decoder = codec.decoder()
    events = [decoder.feed(line) for line in lines]
    return [codec.see(event) for event in events if event is not None]


def test_codec_tracks_the_response_and_the_cursor_and_ends_after_the_terminal_event() -> None:
    codec = ResponseStreamCodec([SECRET])
    created = (
        '{"type": "response.created", "sequence_number": 0, '
        '"response": {"id": "resp_1", "created_at": 1, "status": "queued"}}'
    )
    delta = '{"type": "response.output_text.delta", "sequence_number": 1, "delta": "Hi"}'
    done = (
        '{"type": "response.completed", "sequence_number": 2, '
        '"response": {"id": "resp_1", "created_at": 1, "status": "completed"}}'
    )

    events = _events(
        codec, [f"data: {created}", "", "event: response.output_text.delta", f"data: {delta}", "", f"data: {done}", ""]
    )

    assert [e.type for e in events] == ["response.created", "response.output_text.delta", "response.completed"]
    assert (codec.response_id, codec.last_sequence) == ("resp_1", 2)
    assert [codec.is_end(e) for e in events] == [False, False, True]
    assert "resp_1" in str(codec.broken(ConnectionError())) and "after event 2" in str(codec.broken(ConnectionError()))


def test_codec_masks_an_error_event_and_ends_on_done() -> None:
    codec = ResponseStreamCodec([SECRET])
    error = f'{{"type": "error", "sequence_number": 4, "code": "server_error", "message": "bad key {SECRET}"}}'

    with pytest.raises(StreamError) as caught:
        _events(codec, [f"data: {error}", ""])
    [done] = _events(codec, ["data: [DONE]", ""])

    assert SECRET not in str(caught.value) and "server_error" in str(caught.value)
    assert done.type == STREAM_DONE and codec.is_end(done)


def test_create_get_cancel_and_delete(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_response_script(ResponseScript(outcome="never"))

    with credentials.get_responses_client() as client:
        response = client.create_response(model="gpt-5", input="hi", idempotency_key="key-1")
        assert response.status is ResponseStatus.QUEUED and response.background is True
        assert (response.metadata or {})[IDEMPOTENCY_METADATA_KEY] == "key-1"
        assert client.poll_response(response.id)[0].id == response.id
        assert client.cancel_response(response.id).status is ResponseStatus.CANCELLED
        assert client.cancel_response(response.id).status is ResponseStatus.CANCELLED  # idempotent
        assert client.delete_response(response.id).deleted

    assert runs_emulator.responses() == []


def test_cancel_of_a_completed_response_is_refused(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    with credentials.get_responses_client() as client:
        events = list(client.stream_response(model="gpt-5", input="hi"))
        with pytest.raises(ResponseNotCancellableError) as caught:
            client.cancel_response(events[-1].response.id if events[-1].response else "")

    assert caught.value.response_status == "completed"


def test_async_stream_ends_after_the_terminal_event_and_resumes_after_a_cursor(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    async def scenario() -> tuple[list[ResponseStreamEvent], list[ResponseStreamEvent]]:
        async with credentials.get_async_responses_client() as client:
            events = [event async for event in client.stream_response(model="gpt-5", input="hi")]
            response_id = events[0].response.id if events[0].response else ""
            resumed = [event async for event in client.resume_stream(response_id, starting_after=2)]
            return events, resumed

    events, resumed = asyncio.run(scenario())

    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.sequence_number for e in resumed] == list(range(3, len(events)))


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "plain"])
@pytest.mark.parametrize("fault", ["drop_after", "status"])
def test_an_ambiguous_create_is_never_sent_again(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, stream: bool, fault: Any
) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/responses$", kind=fault, status=500, times=1))

    with credentials.get_responses_client() as client, pytest.raises(ResponseMayExistError) as caught:
        if stream:
            list(client.stream_response(model="gpt-5", input="hi", idempotency_key="the-key"))
        else:
            client.create_response(model="gpt-5", input="hi", idempotency_key="the-key")

    assert caught.value.idempotency_key == "the-key" and "the-key" in str(caught.value)
    assert "not sent again" in str(caught.value)
    assert runs_emulator.request_count("POST", r"^/v1/responses$") == 1
    if fault == "drop_after":  # applied, then the answer was lost: exactly one response, with the key
        [record] = runs_emulator.responses()
        assert record.metadata[IDEMPOTENCY_METADATA_KEY] == "the-key"


def test_a_refused_create_is_retried(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/responses$", kind="status", status=429, times=1))

    with ResponsesClient(api_key=runs_emulator.api_key, base_url=runs_emulator.base_url) as client:
        response = client.create_response(model="gpt-5", input="hi")

    assert response.status is ResponseStatus.QUEUED
    assert len(runs_emulator.responses()) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"input": "hi"}, "model"),
        ({"model": "gpt-5", "input": ""}, "input"),
        ({"model": "gpt-5", "input": "hi", "store": False}, "store"),
        ({"model": "gpt-5", "input": "hi", "temprature": 0.2}, "temprature"),
        ({"model": "gpt-5", "input": "hi", "metadata": {f"k{i}": "v" for i in range(16)}}, "metadata"),
    ],
)
def test_bad_input_fails_before_any_request(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, options: dict[str, Any], message: str
) -> None:
    with credentials.get_responses_client() as client, pytest.raises(ValueError, match=message):
        client.create_response(**options)

    assert runs_emulator.requests == []


def test_azure_style_key_header(runs_emulator: RunsEmulator) -> None:
    credentials = OpenAICredentials(
        api_key=runs_emulator.api_key, api_key_header="api-key", base_url=runs_emulator.base_url
    )

    with credentials.get_responses_client() as client:
        response = client.create_response(model="my-deployment", input="hi")

    [request] = runs_emulator.requests
    assert "authorization" not in request.headers and "api-key" in request.headers
    assert response.model == "my-deployment"
