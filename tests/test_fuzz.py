"""Fuzzing the parsers: whatever a server sends, parsing either succeeds or raises our typed error.

* ``Run.model_validate`` on arbitrary JSON values and on near-valid runs with random mutations: a
  :class:`Run` or a pydantic ``ValidationError``; a parsed run's helpers never raise and it round-trips.
* ``RunStatus`` on any text: a status that is terminal or active, never an error.
* ``SSEDecoder.feed`` on arbitrary lines: an event, nothing, or :class:`StreamError`.
* The clients' stream parsing (sync and async) on arbitrary bytes, split into arbitrary chunks, through
  an ``httpx.MockTransport``: events then the end, or :class:`StreamError`; the chunking never matters.
* The clients' JSON responses on arbitrary bodies, statuses and headers: the model, or
  :class:`InvalidResponseError` / ``ValidationError`` for a 200, an :class:`APIError` for an error status.

Parsing-only tests: no server is involved, so a mock transport stands in for one. Every test is
derandomized so CI is deterministic.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from prefect_openai_runs.client import AsyncRunsClient, RunsClient
from prefect_openai_runs.client._sse import SSEDecoder
from prefect_openai_runs.exceptions import APIError, InvalidResponseError, StreamError
from prefect_openai_runs.models import Run, RunStatus, StreamEvent
from prefect_openai_runs.models.status import TERMINAL_STATUSES
from prefect_openai_runs.retry import RetryPolicy

pytestmark = pytest.mark.filterwarnings(
    # Hypothesis notices the global ``random`` state moving while it draws; in a full run that is Prefect's
    # and the emulator's background threads of other tests in this process, not these strategies.
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NO_RETRY = RetryPolicy(max_attempts=1)
KEY = "sk-fuzz-0000000000000000"

# -- strategies ------------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
"""Arbitrary JSON-like values."""

STATUSES = [status.value for status in RunStatus]

VALID_RUN: dict[str, Any] = {
    "id": "run_abc123",
    "object": "thread.run",
    "created_at": 1_700_000_000,
    "thread_id": "thread_abc123",
    "assistant_id": "asst_abc123",
    "status": "requires_action",
    "required_action": {
        "type": "submit_tool_outputs",
        "submit_tool_outputs": {
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]
        },
    },
    "last_error": {"code": "server_error", "message": "boom"},
    "expires_at": 1_700_000_600,
    "started_at": 1_700_000_001,
    "cancelled_at": None,
    "failed_at": None,
    "completed_at": None,
    "incomplete_details": {"reason": "max_completion_tokens"},
    "model": "gpt-4o",
    "instructions": "Be brief.",
    "tools": [
        {"type": "code_interpreter"},
        {"type": "file_search", "file_search": {"max_num_results": 5}},
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    ],
    "metadata": {"pipeline": "nightly"},
    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    "temperature": 1.0,
    "top_p": 1.0,
    "max_prompt_tokens": 1000,
    "max_completion_tokens": 1000,
    "truncation_strategy": {"type": "auto", "last_messages": None},
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
}
"""A run using every field, so that mutations reach every nested model."""

Path = tuple[str | int, ...]


def paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every path into a JSON value, the root included."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


ALL_PATHS = [p for p in paths(VALID_RUN) if p]


def mutated(base: dict[str, Any], path: Path, action: str, value: Any) -> Any:
    """``base`` with the item at ``path`` deleted, replaced by ``value``, or given ``value`` as a sibling."""
    root: Any = json.loads(json.dumps(base))
    parent = root
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = value
    elif isinstance(parent, dict):
        parent[f"{last}_extra"] = value
    else:
        parent.append(value)
    return root


replacement: st.SearchStrategy[Any] = (
    json_values | st.sampled_from(STATUSES) | st.sampled_from([None, "", 0, -1, [], {}, "run_x"])
)
mutation = st.tuples(st.sampled_from(ALL_PATHS), st.sampled_from(["delete", "replace", "add"]), replacement)
near_valid_runs = st.lists(mutation, min_size=1, max_size=3).map(
    lambda steps: _apply(steps),
)


def _apply(steps: list[tuple[Path, str, Any]]) -> Any:
    run: Any = VALID_RUN
    for path, action, value in steps:
        try:
            run = mutated(run, path, action, value)
        except (KeyError, IndexError, TypeError):  # an earlier step removed or replaced the path
            continue
    return run


def check_parsed(run: Run) -> None:
    """What must hold for every run that parses: helpers work and it round-trips through JSON."""
    assert run.status.is_terminal != run.status.is_active
    assert run.status.is_known == (run.status.value in STATUSES)
    assert isinstance(run.tool_calls, list)
    summary = run.summary()
    assert summary["run_id"] == run.id and summary["status"] == str(run.status)
    again = Run.model_validate_json(run.model_dump_json(by_alias=True))
    assert again.status == run.status and again.id == run.id and again.tool_calls == run.tool_calls


# -- the Run model ---------------------------------------------------------------------------------


def test_the_template_is_a_valid_run() -> None:
    run = Run.model_validate(VALID_RUN)
    assert run.tool_calls[0].function.name == "get_weather"
    assert [type(tool).__name__ for tool in run.tools] == ["CodeInterpreterTool", "FileSearchTool", "FunctionTool"]
    check_parsed(run)


@FUZZ
@given(json_values)
def test_run_parses_any_json_value_or_raises_validation_error(value: Any) -> None:
    try:
        run = Run.model_validate(value)
    except ValidationError:
        return
    check_parsed(run)


@FUZZ
@given(near_valid_runs)
def test_run_parses_near_valid_runs_or_raises_validation_error(value: Any) -> None:
    try:
        run = Run.model_validate(value)
    except ValidationError:
        return
    check_parsed(run)


@FUZZ
@given(st.text())
def test_any_status_text_is_terminal_or_active(text: str) -> None:
    status = RunStatus(text)
    assert status.value == text
    assert status.is_terminal == (status in TERMINAL_STATUSES)
    assert status.is_active == (not status.is_terminal)
    assert status.is_known == (text in STATUSES)
    run = Run.model_validate({**VALID_RUN, "status": text})
    assert run.status is status or run.status == status


# -- the SSE decoder -------------------------------------------------------------------------------

EVENT_NAMES = [
    "thread.created",
    "thread.run.created",
    "thread.run.completed",
    "thread.run.step.created",
    "thread.message.created",
    "thread.message.delta",
    "error",
    "done",
]
data_payloads = (
    json_values.map(json.dumps)
    | st.just(json.dumps(VALID_RUN))
    | st.just("[DONE]")
    | st.text(max_size=30)
    | near_valid_runs.map(json.dumps)
)
sse_lines = st.one_of(
    st.just(""),
    st.sampled_from(EVENT_NAMES).map(lambda name: f"event: {name}"),
    st.text(max_size=20).map(lambda name: f"event:{name}"),
    data_payloads.map(lambda data: f"data: {data}"),
    st.text(max_size=20).map(lambda text: f":{text}"),
    st.sampled_from(["id: 7", "retry: 100", "retry: x", "data", "event", ":", "data:", "nonsense"]),
    st.text(max_size=40),
).filter(lambda line: "\n" not in line and "\r" not in line)


@FUZZ
@given(st.lists(sse_lines, max_size=30))
def test_sse_decoder_yields_events_or_raises_stream_error(lines: list[str]) -> None:
    decoder = SSEDecoder()
    for line in [*lines, ""]:
        try:
            event = decoder.feed(line)
        except StreamError:
            continue  # the decoder has reset; it takes the next event
        assert event is None or isinstance(event, StreamEvent)
    assert decoder.flush() is None  # the blank line dispatched everything


def test_sse_decoder_ignores_what_the_spec_says_to_ignore() -> None:
    decoder = SSEDecoder()
    run = json.dumps(VALID_RUN)
    lines = ["retry: 10", "id: 4", ": comment", "nonsense", "event: thread.run.created", f"data: {run}"]
    assert [decoder.feed(line) for line in lines] == [None] * len(lines)
    event = decoder.feed("")
    assert event is not None and event.run is not None and event.run.id == "run_abc123"


@pytest.mark.parametrize("depth", [50, 900, 100_000])
def test_deeply_nested_data_is_parsed_or_a_stream_error(depth: int) -> None:
    decoder = SSEDecoder()
    decoder.feed("event: thread.message.delta")
    decoder.feed("data: " + "[" * depth + "]" * depth)
    try:
        event = decoder.feed("")
    except StreamError as error:
        assert "not JSON" in str(error) or "schema" in str(error)
    else:
        assert event is not None


# -- the clients over a mock transport ---------------------------------------------------------------


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at the given offsets (wherever they fall, UTF-8 sequences and CRLFs included)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def sync_client(handler: Callable[[httpx.Request], httpx.Response]) -> RunsClient:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return RunsClient(api_key=KEY, base_url="http://fuzz.test/v1", retry_policy=NO_RETRY, http_client=http)


def stream_outcome_sync(chunks: list[bytes]) -> tuple[list[str], str | None]:
    """The event names the sync client yields for this body, and the error that ended them (if any)."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=iter(chunks))

    names: list[str] = []
    with sync_client(handler) as client:
        try:
            for event in client.stream_run("thread_1", assistant_id="asst_1"):
                assert isinstance(event, StreamEvent)
                names.append(event.event)
        except StreamError as error:
            return names, type(error).__name__
    return names, None


def stream_outcome_async(chunks: list[bytes]) -> tuple[list[str], str | None]:
    """The same through the async client."""

    async def body() -> Any:
        for chunk in chunks:
            yield chunk

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    async def read() -> tuple[list[str], str | None]:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        names: list[str] = []
        async with AsyncRunsClient(
            api_key=KEY, base_url="http://fuzz.test/v1", retry_policy=NO_RETRY, http_client=http
        ) as client:
            try:
                async for event in client.stream_run("thread_1", assistant_id="asst_1"):
                    assert isinstance(event, StreamEvent)
                    names.append(event.event)
            except StreamError as error:
                return names, type(error).__name__
        return names, None

    return asyncio.run(read())


sse_documents = st.lists(sse_lines, max_size=20).map(lambda lines: "\n".join(lines).encode())
stream_bodies = st.binary(max_size=300) | sse_documents | sse_documents.map(lambda b: b.replace(b"\n", b"\r\n"))


@FUZZ
@given(stream_bodies, st.lists(st.integers(min_value=0, max_value=400), max_size=6))
def test_client_stream_parsing_of_arbitrary_bytes(data: bytes, cuts: list[int]) -> None:
    whole = stream_outcome_sync([data] if data else [])
    assert stream_outcome_sync(chunked(data, cuts)) == whole, "chunk boundaries changed what was parsed"


@settings(FUZZ, max_examples=60)
@given(stream_bodies, st.lists(st.integers(min_value=0, max_value=400), max_size=6))
def test_async_client_stream_parsing_agrees_with_the_sync_client(data: bytes, cuts: list[int]) -> None:
    assert stream_outcome_async(chunked(data, cuts)) == stream_outcome_sync([data] if data else [])


def test_a_valid_stream_round_trips_through_the_client() -> None:
    run = json.dumps(VALID_RUN)
    body = f"event: thread.run.created\ndata: {run}\n\n: keep-alive\n\nevent: done\ndata: [DONE]\n\n".encode()
    assert stream_outcome_sync(chunked(body, [3, 17, 18, 200])) == (["thread.run.created", "done"], None)


header_values = st.text(st.characters(codec="latin-1", exclude_characters="\r\n\x00"), max_size=12)
json_bodies = st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode())
run_bodies = json_bodies | near_valid_runs.map(lambda v: json.dumps(v).encode())


def json_client(status: int, body: bytes, headers: dict[str, str]) -> RunsClient:
    """A client whose every request is answered ``status``, ``headers`` (sent as latin-1 bytes) and ``body``."""
    raw = [(name.encode(), value.encode("latin-1")) for name, value in headers.items()]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=raw, content=body)

    return sync_client(handler)


@FUZZ
@given(run_bodies, header_values, st.sampled_from(["application/json", "text/html", "text/plain"]))
def test_a_200_body_gives_a_run_or_a_typed_error(body: bytes, hint: str, content_type: str) -> None:
    headers = {"content-type": content_type, "openai-poll-after-ms": hint}
    with json_client(200, body, headers) as client:
        try:
            run, poll_after_ms = client.poll_run("thread_1", "run_1")
        except (InvalidResponseError, ValidationError):
            return
    check_parsed(run)
    assert poll_after_ms is None or poll_after_ms >= 0


@FUZZ
@given(
    st.integers(min_value=400, max_value=599),
    json_bodies | json_values.map(lambda v: json.dumps({"error": v}).encode()),
    st.dictionaries(st.sampled_from(["retry-after", "retry-after-ms", "x-should-retry"]), header_values),
)
def test_an_error_status_gives_an_api_error(status: int, body: bytes, headers: dict[str, str]) -> None:
    with json_client(status, body, headers) as client, pytest.raises(APIError) as caught:
        client.get_run("thread_1", "run_1")
    error = caught.value
    assert error.status_code == status
    assert error.retry_after is None or error.retry_after >= 0
    assert KEY not in str(error)


@FUZZ
@given(json_bodies)
def test_a_list_page_gives_runs_or_a_typed_error(body: bytes) -> None:
    with json_client(200, body, {"content-type": "application/json"}) as client:
        try:
            runs = list(client.list_runs("thread_1"))
        except (InvalidResponseError, ValidationError):
            return
    assert all(isinstance(run, Run) for run in runs)


@FUZZ
@given(json_bodies)
def test_find_run_gives_a_run_none_or_a_typed_error(body: bytes) -> None:
    with json_client(200, body, {"content-type": "application/json"}) as client:
        try:
            found = client.find_run("thread_1", "key")
        except (InvalidResponseError, ValidationError):
            return
    assert found is None or isinstance(found, Run)


@pytest.mark.parametrize("hint", ["²", "١٢", "+5", " 5", "5.0", "-1"])
def test_a_poll_hint_that_is_not_ascii_digits_is_ignored(hint: str) -> None:
    body = json.dumps(VALID_RUN).encode()
    with json_client(200, body, {"openai-poll-after-ms": hint.encode("utf-8").decode("latin-1")}) as client:
        _, poll_after_ms = client.poll_run("thread_1", "run_1")
    assert poll_after_ms is None


def test_json_nested_deeper_than_the_parser_allows_is_an_invalid_response() -> None:
    with (
        json_client(200, b"[" * 100_000, {"content-type": "application/json"}) as client,
        pytest.raises(InvalidResponseError, match="does not parse"),
    ):
        client.get_run("thread_1", "run_1")
