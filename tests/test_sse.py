"""The sans-IO event-stream decoder, and how the clients turn an ``error`` event into ``StreamError``.

Parsing only: the decoder is fed lines directly, and the clients read canned streams from an
``httpx.MockTransport`` (the emulator's real streams are covered in test_client.py).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from prefect_openai_runs.client import AsyncRunsClient, RunsClient
from prefect_openai_runs.client._sse import SSEDecoder
from prefect_openai_runs.exceptions import StreamError
from prefect_openai_runs.models import ErrorDetail, Message, Run, RunStep, StreamEvent, Thread
from prefect_openai_runs.retry import RetryPolicy

RUN = {
    "id": "run_1",
    "object": "thread.run",
    "created_at": 1,
    "thread_id": "thread_1",
    "assistant_id": "asst_1",
    "status": "queued",
}


def decode(lines: list[str]) -> list[StreamEvent]:
    decoder = SSEDecoder()
    events = [event for line in lines if (event := decoder.feed(line)) is not None]
    last = decoder.flush()
    return [*events, last] if last is not None else events


def test_event_and_data_make_a_typed_event() -> None:
    [event] = decode(["event: thread.run.created", f"data: {json.dumps(RUN)}", ""])
    assert event.event == "thread.run.created"
    assert isinstance(event.data, Run) and event.run is not None and event.run.id == "run_1"


def test_multi_line_data_is_joined_with_newlines() -> None:
    text = json.dumps(RUN, indent=2).splitlines()
    [event] = decode(["event: thread.run.in_progress", *(f"data: {line}" for line in text), ""])
    assert isinstance(event.data, Run) and event.data.thread_id == "thread_1"


def test_comments_and_unknown_fields_are_ignored() -> None:
    lines = [
        ": keep-alive",
        "id: 7",
        "retry: 1000",
        "event: thread.run.created",
        "x-custom: yes",
        f"data:{json.dumps(RUN)}",
        "",
    ]
    [event] = decode(lines)
    assert event.event == "thread.run.created" and event.run is not None


def test_blank_lines_alone_dispatch_nothing() -> None:
    assert decode(["", "", ": ping", ""]) == []


def test_done() -> None:
    [event] = decode(["event: done", "data: [DONE]", ""])
    assert event.is_done and event.data is None


def test_pending_event_is_dispatched_by_flush() -> None:
    [event] = decode(["event: done", "data: [DONE]"])
    assert event.is_done


@pytest.mark.parametrize(
    ("name", "payload", "kind"),
    [
        (
            "thread.run.step.created",
            {
                "id": "step_1",
                "created_at": 1,
                "assistant_id": "asst_1",
                "thread_id": "thread_1",
                "run_id": "run_1",
                "type": "message_creation",
                "status": "in_progress",
                "step_details": {"type": "message_creation", "message_creation": {"message_id": "msg_1"}},
            },
            RunStep,
        ),
        (
            "thread.message.completed",
            {"id": "msg_1", "created_at": 1, "thread_id": "thread_1", "role": "assistant", "content": []},
            Message,
        ),
        ("thread.created", {"id": "thread_1", "created_at": 1}, Thread),
        ("thread.message.delta", {"id": "msg_1", "delta": {"content": []}}, dict),
    ],
)
def test_event_families(name: str, payload: dict[str, Any], kind: type) -> None:
    [event] = decode([f"event: {name}", f"data: {json.dumps(payload)}", ""])
    assert isinstance(event.data, kind)


def test_error_event_carries_the_error_detail() -> None:
    body = {"error": {"message": "Something broke", "type": "server_error", "code": "internal", "param": None}}
    [event] = decode(["event: error", f"data: {json.dumps(body)}", ""])
    assert isinstance(event.data, ErrorDetail)
    assert (event.data.message, event.data.type, event.data.code) == ("Something broke", "server_error", "internal")


def test_non_json_data_is_a_stream_error() -> None:
    decoder = SSEDecoder()
    decoder.feed("event: thread.run.created")
    decoder.feed("data: {not json")
    with pytest.raises(StreamError, match="not JSON"):
        decoder.feed("")


def test_data_not_fitting_its_model_is_a_stream_error() -> None:
    decoder = SSEDecoder()
    decoder.feed("event: thread.run.created")
    decoder.feed('data: {"id": "run_1"}')
    with pytest.raises(StreamError, match="does not fit"):
        decoder.feed("")


# -- the clients on an error event ---------------------------------------------------------------------

ERROR_STREAM = (
    f"event: thread.run.created\ndata: {json.dumps(RUN)}\n\n"
    'event: error\ndata: {"error": {"message": "Upstream overloaded", "type": "server_error"}}\n\n'
    "event: done\ndata: [DONE]\n\n"
)


def stream_handler(request: httpx.Request) -> httpx.Response:
    assert json.loads(request.content)["stream"] is True
    return httpx.Response(200, text=ERROR_STREAM, headers={"content-type": "text/event-stream"})


def test_sync_client_raises_stream_error_on_an_error_event() -> None:
    http = httpx.Client(transport=httpx.MockTransport(stream_handler))
    client = RunsClient(api_key="sk-test-123456789", base_url="http://api.test/v1", http_client=http)
    seen: list[str] = []
    with client, pytest.raises(StreamError, match="Upstream overloaded") as info:
        for event in client.stream_run("thread_1", assistant_id="asst_1", idempotency_key="k1"):
            seen.append(event.event)
    assert seen == ["thread.run.created"]
    assert (info.value.run_id, info.value.thread_id) == ("run_1", "thread_1")


async def test_async_client_raises_stream_error_on_an_error_event() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(stream_handler))
    client = AsyncRunsClient(
        api_key="sk-test-123456789", base_url="http://api.test/v1", http_client=http, retry_policy=RetryPolicy()
    )
    seen: list[str] = []
    async with client:
        with pytest.raises(StreamError, match="Upstream overloaded") as info:
            async for event in client.stream_run("thread_1", assistant_id="asst_1"):
                seen.append(event.event)
    assert seen == ["thread.run.created"]
    assert info.value.run_id == "run_1"
