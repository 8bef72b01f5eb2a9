"""Bad input and bad servers: each fails at once with an error that says what to fix, sends nothing it
should not (``runs_emulator.request_count()``), and loses nothing.

Requests: how many reach the emulator. ``VE`` = ``ValueError``, ``PVE`` = pydantic ``ValidationError``.

=====================  ==========================  ===========================  =======================================
Case                   Input                       Error raised (requests)      The message says
=====================  ==========================  ===========================  =======================================
Empty id               thread_id / run_id ``""``   ``VE`` (0)                   thread_id must be a non-empty id such
                                                                                as 'thread_abc123'
Malformed id           ``a/b``, ``x y``,           ``VE`` (0): client, async    run_id 'a/b' is not a valid id: use
                       ``../x``, ``run_1?x=y``     client, tasks, flow          only letters, digits, '_' and '-'
Malformed assistant    ``asst/``, ``asst x``       ``PVE`` (0)                  assistant_id: String should match
                                                                                pattern
Unknown thread         ``thread_missing``          ``NotFoundError`` (1)        No thread found with id
                                                                                'thread_missing'.
Unknown run            ``run_missing``             ``NotFoundError`` (1)        No run found with id 'run_missing'.
Unknown assistant      ``asst_missing``            ``NotFoundError``; no run    No assistant found with id
                                                                                'asst_missing'.
No /v1 in base_url     the emulator's root URL     ``NotFoundError`` (1)        Invalid URL (GET /threads/...)
Not an http(s) URL     ``api.openai.com/v1``       ``VE`` (0)                   base_url must be an http(s) URL such as
                                                                                ...
Wrong API key          ``sk-wrong-...``            ``AuthenticationError`` 401  Incorrect API key provided:
                                                   (1), never retried           sk-wro***def (never the whole key)
Wrong key, fan-in      ``wait_for_runs``           ``AuthenticationError``      Incorrect API key provided (was hidden
                                                   (1 poll, never retried)      by a RuntimeError 'run ... never seen')
Missing API key        no key, no                  ``VE`` (0)                   ... or the OPENAI_API_KEY environment
                       ``OPENAI_API_KEY``                                       variable
17 metadata keys       ``metadata`` of 17 keys     ``PVE`` (0)                  at most 16 keys are allowed, got 17
16 metadata keys       no room for the library's   ``VE`` (0)                   at most 15 keys may be given, got 16;
                       idempotency key                                          the library adds '..._idempotency_key'
Long metadata          65-char key, 513-char       ``PVE`` (0)                  keys are at most 64 / values are at
                       value                                                    most 512
Too many tools         21 tools                    ``PVE`` (0)                  tools: at most 20 items
Misspelt parameter     ``temprature=0.2``          ``PVE`` (0)                  temprature: Extra inputs are not
                                                                                permitted
Token limit too low    max_completion_tokens=10    ``PVE`` (0)                  max_completion_tokens: >= 256
Non-positive deadline  0, -1, NaN to               ``VE`` (0)                   max_wait_seconds must be positive, got
                       run_assistant,                                           0
                       wait_for_run, RunFollower
Same, wait_for_runs    0, -1 with two live runs    ``VE`` (0), runs untouched   max_wait_seconds must be positive
HTML, not JSON         200 with a ``text/html``    ``InvalidResponseError``     expected JSON from GET /v1/threads/...,
                       page                        (1), never retried           got text/html (N bytes) that does not
                                                                                parse ... Is base_url the API's /v1
                                                                                URL?
Truncated / empty      200 ``{"id": "run_abc",     ``InvalidResponseError``     ... got application/json (N bytes) ...
                       "ob``, or no body           (1)
Proxy error page       502 with an HTML body       none: retried (2)            warning: HTTP 502 (server_error)
HTML while following   ``wait_for_run``            ``InvalidResponseError``     got text/html
Garbage in a stream    unknown fields, comments,   ``StreamError``; the run is  event 'thread.run.completed' carries
                       ``data: {not json``         found by its key             data that is not JSON
Same, in a flow        run_assistant, streaming    none: falls back to polling  (warning) ... carries data that is not
                                                                                JSON
Unknown run status     ``"status": "thinking"``,   none: parsed, active,        the artifact's timeline shows
                       answered twice              followed to ``completed``    ``thinking``
Connection refused     base_url on a closed port   ``APIConnectionError``,      GET /threads/thread_1/runs/run_1: could
                                                   ``request_sent=False``       not connect to 127.0.0.1:... (...)
Key echoed back        a 400 whose message holds   ``BadRequestError``          the key masked out: bad key ***
                       the API key
=====================  ==========================  ===========================  =======================================
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import socket
from collections.abc import Callable
from typing import Any, cast

import pytest
from prefect import flow
from prefect.client.schemas.objects import State
from pydantic import ValidationError

from flow_helpers import assert_nothing_active, final_markdown, statuses
from lifecycle_helpers import RunFollower
from prefect_openai_runs import OpenAICredentials, RunStatus
from prefect_openai_runs.client import AsyncRunsClient, RunsClient
from prefect_openai_runs.exceptions import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    InvalidResponseError,
    NotFoundError,
    StreamError,
)
from prefect_openai_runs.flows import run_assistant
from prefect_openai_runs.models import Run
from prefect_openai_runs.tasks import create_run, create_thread_and_run, get_run, wait_for_run, wait_for_runs
from prefect_openai_runs.testing import FaultRule, RunScript, RunsEmulator

pytestmark = pytest.mark.usefixtures("prefect_server")

RUN = r"^/v1/threads/[^/]+/runs/[^/]+$"
CREATE = r"^/v1/threads/[^/]+/runs$"
WRONG_KEY = "sk-wrong-0123456789abcdef"
BAD_IDS = ["", "a/b", "x y", "../runs", "run_1?x=y"]


def client_of(emu: RunsEmulator, **options: Any) -> RunsClient:
    options.setdefault("api_key", emu.api_key)
    return RunsClient(base_url=options.pop("base_url", emu.base_url), **options)


def fresh_run(emu: RunsEmulator, script: RunScript | None = None) -> Run:
    """A run on a new thread (two requests); the request log is not cleared."""
    if script is not None:
        emu.add_script(script)
    with client_of(emu) as client:
        thread = client.create_thread()
        return client.create_run(thread.id, assistant_id=emu.default_assistant_id)


def id_message(name: str, value: str) -> str:
    return "non-empty id" if value == "" else f"{name} {value!r} is not a valid id: use only letters"


# -- ids ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD_IDS)
def test_malformed_ids_fail_before_any_request(runs_emulator: RunsEmulator, bad: str) -> None:
    calls: list[tuple[str, Callable[[RunsClient], object]]] = [
        ("thread_id", lambda c: c.get_run(bad, "run_1")),
        ("run_id", lambda c: c.get_run("thread_1", bad)),
        ("run_id", lambda c: c.cancel_run("thread_1", bad)),
        ("thread_id", lambda c: c.create_run(bad, assistant_id="asst_1")),
        ("thread_id", lambda c: c.stream_run(bad, assistant_id="asst_1")),
        ("thread_id", lambda c: list(c.list_runs(bad))),
        ("thread_id", lambda c: c.add_message(bad, "hi")),
        ("run_id", lambda c: c.submit_tool_outputs("thread_1", bad, {"call_1": "x"})),
        ("run_id", lambda c: c.modify_run("thread_1", bad, metadata={"a": "b"})),
        ("thread_id", lambda c: c.find_run(bad, "key")),
    ]
    with client_of(runs_emulator) as client:
        for name, call in calls:
            with pytest.raises(ValueError, match=re.escape(id_message(name, bad))):
                call(client)

    assert runs_emulator.request_count() == 0


@pytest.mark.parametrize("bad", ["", "a/b", "x y"])
def test_malformed_ids_in_the_async_client(runs_emulator: RunsEmulator, bad: str) -> None:
    async def attempt() -> None:
        async with AsyncRunsClient(api_key=runs_emulator.api_key, base_url=runs_emulator.base_url) as client:
            with pytest.raises(ValueError, match="thread_id"):
                await client.get_run(bad, "run_1")
            with pytest.raises(ValueError, match="run_id"):
                await client.cancel_run("thread_1", bad)

    asyncio.run(attempt())
    assert runs_emulator.request_count() == 0


@pytest.mark.parametrize("bad", ["", "a/b", "x y"])
def test_malformed_ids_in_tasks_and_flows(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, bad: str
) -> None:
    with pytest.raises(ValueError, match="thread_id"):
        get_run(credentials, bad, "run_1")
    with pytest.raises(ValueError, match="run_id"):
        wait_for_run(credentials, "thread_1", bad, max_wait_seconds=5)
    with pytest.raises(ValueError, match="thread_id"):
        run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"], thread_id=bad)
    with pytest.raises(ValidationError, match="assistant_id"):
        run_assistant(credentials, f"asst{bad or '/'}", messages=["hi"])

    assert runs_emulator.request_count() == 0


# -- what does not exist --------------------------------------------------------------------------


def test_unknown_thread_and_run_give_the_apis_message_once(runs_emulator: RunsEmulator) -> None:
    run = fresh_run(runs_emulator)
    before = runs_emulator.request_count()

    with client_of(runs_emulator) as client:
        with pytest.raises(NotFoundError) as no_thread:
            client.get_run("thread_missing", run.id)
        with pytest.raises(NotFoundError) as no_run:
            client.get_run(run.thread_id, "run_missing")

    assert no_thread.value.message == "No thread found with id 'thread_missing'."
    assert no_run.value.message == "No run found with id 'run_missing'."
    assert (no_thread.value.status_code, no_run.value.status_code) == (404, 404)
    assert no_run.value.request_id is not None and no_run.value.request_id.startswith("req_")
    assert runs_emulator.request_count() - before == 2  # 404s are never retried


def test_unknown_run_in_wait_for_run_and_unknown_thread_in_run_assistant(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    run = fresh_run(runs_emulator)

    with pytest.raises(NotFoundError, match="No run found with id 'run_missing'"):
        wait_for_run(credentials, run.thread_id, "run_missing", max_wait_seconds=5)
    with pytest.raises(NotFoundError, match="No thread found with id 'thread_missing'"):
        run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"], thread_id="thread_missing")

    assert [r.id for r in runs_emulator.runs()] == [run.id]
    assert all(r.status == 404 for r in runs_emulator.requests if "missing" in r.path)


def test_unknown_assistant_fails_the_flow_and_creates_no_run(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    with pytest.raises(NotFoundError, match="No assistant found with id 'asst_missing'"):
        run_assistant(credentials, "asst_missing", messages=["hi"], stream=False)

    assert runs_emulator.runs() == []
    assert runs_emulator.request_count("POST", CREATE) == 1


def test_base_url_without_v1_says_invalid_url(runs_emulator: RunsEmulator) -> None:
    root = runs_emulator.base_url.removesuffix("/v1")

    with client_of(runs_emulator, base_url=root) as client, pytest.raises(NotFoundError, match="Invalid URL"):
        client.get_run("thread_1", "run_1")

    [record] = runs_emulator.requests
    assert record.path == "/threads/thread_1/runs/run_1"


# -- credentials ----------------------------------------------------------------------------------


def test_wrong_api_key_fails_at_once_without_retry(runs_emulator: RunsEmulator) -> None:
    credentials = OpenAICredentials(api_key=WRONG_KEY, base_url=runs_emulator.base_url, max_retries=5)

    with credentials.get_client() as client, pytest.raises(AuthenticationError) as caught:
        client.create_thread()

    error = caught.value
    assert (error.status_code, error.code) == (401, "invalid_api_key")
    assert "Incorrect API key provided" in error.message
    assert WRONG_KEY not in str(error) and WRONG_KEY[3:] not in str(error)
    assert runs_emulator.request_count() == 1


def test_wrong_api_key_in_a_flow_sends_one_request(runs_emulator: RunsEmulator) -> None:
    credentials = OpenAICredentials(api_key=WRONG_KEY, base_url=runs_emulator.base_url)

    state = cast(
        "State[Any]", run_assistant(credentials, runs_emulator.default_assistant_id, ["hi"], return_state=True)
    )

    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), AuthenticationError)
    assert runs_emulator.request_count() == 1


def test_wrong_api_key_in_wait_for_runs_raises_the_authentication_error(runs_emulator: RunsEmulator) -> None:
    run = fresh_run(runs_emulator)
    credentials = OpenAICredentials(api_key=WRONG_KEY, base_url=runs_emulator.base_url)

    @flow
    def fan_in() -> list[Run]:
        return wait_for_runs(credentials, [(run.thread_id, run.id)], max_wait_seconds=5)

    with pytest.raises(AuthenticationError, match="Incorrect API key"):
        fan_in()

    polls = [r for r in runs_emulator.requests if r.method == "GET" and r.path.endswith(run.id)]
    assert [r.status for r in polls] == [401]  # never retried


def test_missing_api_key_names_the_environment_variable(
    runs_emulator: RunsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    credentials = OpenAICredentials(base_url=runs_emulator.base_url)

    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        credentials.get_client()
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        credentials.get_async_client()
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        RunsClient(api_key="", base_url=runs_emulator.base_url)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"])
    assert runs_emulator.request_count() == 0

    monkeypatch.setenv("OPENAI_API_KEY", runs_emulator.api_key)
    with credentials.get_client() as client:
        assert client.create_thread().id.startswith("thread_")


def test_base_url_that_is_not_http(runs_emulator: RunsEmulator) -> None:
    with pytest.raises(ValueError, match="base_url must be an http"):
        RunsClient(api_key=runs_emulator.api_key, base_url="api.openai.com/v1")
    assert runs_emulator.request_count() == 0


# -- parameters over the limits -------------------------------------------------------------------


def many(n: int) -> dict[str, str]:
    return {f"key{i}": "value" for i in range(n)}


LIMITS = [
    pytest.param({"metadata": many(17)}, ValidationError, "at most 16 keys are allowed, got 17", id="17-keys"),
    pytest.param({"metadata": many(16)}, ValueError, "at most 15 keys may be given, got 16", id="16-keys"),
    pytest.param({"metadata": {"k" * 65: "v"}}, ValidationError, "keys are at most 64", id="long-key"),
    pytest.param({"metadata": {"k": "v" * 513}}, ValidationError, "values are at most 512", id="long-value"),
    pytest.param({"tools": [{"type": "code_interpreter"}] * 21}, ValidationError, "at most 20 items", id="21-tools"),
    pytest.param({"temprature": 0.2}, ValidationError, "temprature", id="misspelt"),
    pytest.param({"max_completion_tokens": 10}, ValidationError, "max_completion_tokens", id="tokens"),
]


@pytest.mark.parametrize(("options", "error", "says"), LIMITS)
def test_parameters_over_the_limits_fail_before_any_request(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, options: dict[str, Any], error: type, says: str
) -> None:
    with client_of(runs_emulator) as client:
        with pytest.raises(error, match=says):
            client.create_run("thread_1", assistant_id="asst_1", **options)
        with pytest.raises(error, match=says):
            client.create_thread_and_run(assistant_id="asst_1", **options)
        with pytest.raises(error, match=says):
            client.stream_thread_and_run(assistant_id="asst_1", **options)
    with pytest.raises(error, match=says):
        create_run(credentials, "thread_1", runs_emulator.default_assistant_id, **options)
    with pytest.raises(error, match=says):
        create_thread_and_run(credentials, runs_emulator.default_assistant_id, ["hi"], **options)
    with pytest.raises(error, match=says):
        run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"], **options)

    assert runs_emulator.request_count() == 0


def test_run_assistant_with_no_room_for_the_idempotency_key_sends_nothing(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    with pytest.raises(ValueError, match="at most 15 keys may be given, got 16"):
        run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"], metadata=many(16))
    assert runs_emulator.request_count() == 0


def test_metadata_error_names_the_field(runs_emulator: RunsEmulator) -> None:
    with client_of(runs_emulator) as client, pytest.raises(ValidationError) as caught:
        client.create_run("thread_1", assistant_id="asst_1", metadata=many(17))
    assert caught.value.errors()[0]["loc"] == ("metadata",)
    assert runs_emulator.request_count() == 0


# -- deadlines ------------------------------------------------------------------------------------


@pytest.mark.parametrize("deadline", [0, -1, math.nan], ids=["zero", "negative", "nan"])
def test_non_positive_deadline_is_refused_before_any_request(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, deadline: float
) -> None:
    says = "max_wait_seconds must be positive"
    with pytest.raises(ValueError, match=says):
        run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=deadline)
    with pytest.raises(ValueError, match=says):
        wait_for_run(credentials, "thread_1", "run_1", max_wait_seconds=deadline)
    with pytest.raises(ValueError, match=says):
        RunFollower("thread_1", "run_1", deadline)

    assert runs_emulator.request_count() == 0


@pytest.mark.parametrize("deadline", [0, -1], ids=["zero", "negative"])
def test_non_positive_deadline_in_wait_for_runs_leaves_the_runs_alone(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, deadline: float
) -> None:
    runs_emulator.add_script(RunScript(queued_seconds=0.01, in_progress_seconds=30.0))
    live = [fresh_run(runs_emulator) for _ in range(2)]
    before = runs_emulator.request_count()

    with pytest.raises(ValueError, match="max_wait_seconds must be positive"):
        wait_for_runs(credentials, [(run.thread_id, run.id) for run in live], max_wait_seconds=deadline)

    assert [runs_emulator.run(run.id).cancel_requested_at for run in live] == [None, None]
    assert runs_emulator.request_count() == before
    with client_of(runs_emulator) as client:
        for run in live:
            client.cancel_run(run.thread_id, run.id)


# -- servers that answer nonsense -----------------------------------------------------------------

HTML = "<!DOCTYPE html><html><head><title>Welcome</title></head><body>Sign in</body></html>"


@pytest.mark.parametrize(
    ("raw_body", "content_type", "says"),
    [
        (HTML, "text/html; charset=utf-8", "got text/html"),
        ('{"id": "run_abc", "object": "thread.r', "application/json", "got application/json"),
        ("", "application/json", "(0 bytes)"),
    ],
    ids=["html", "truncated-json", "empty"],
)
def test_a_200_that_is_not_json_is_an_invalid_response_never_retried(
    runs_emulator: RunsEmulator, raw_body: str, content_type: str, says: str
) -> None:
    run = fresh_run(runs_emulator)
    runs_emulator.add_fault(
        FaultRule(method="GET", path=RUN, status=200, raw_body=raw_body, headers={"content-type": content_type})
    )
    before = runs_emulator.request_count()

    with client_of(runs_emulator) as client, pytest.raises(InvalidResponseError) as caught:
        client.get_run(run.thread_id, run.id)

    message = str(caught.value)
    assert f"expected JSON from GET /v1/threads/{run.thread_id}/runs/{run.id}" in message
    assert says in message and "Is base_url the API's /v1 URL?" in message
    assert caught.value.status_code == 200 and caught.value.request_id is not None
    assert runs_emulator.request_count() - before == 1
    with client_of(runs_emulator) as client:
        assert client.get_run(run.thread_id, run.id).id == run.id  # the fault was the server's, once


def test_a_proxy_error_page_is_retried(runs_emulator: RunsEmulator, caplog: pytest.LogCaptureFixture) -> None:
    run = fresh_run(runs_emulator)
    page = "<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
    runs_emulator.add_fault(
        FaultRule(method="GET", path=RUN, status=502, raw_body=page, headers={"content-type": "text/html"})
    )

    with caplog.at_level(logging.WARNING), client_of(runs_emulator) as client:
        assert client.get_run(run.thread_id, run.id).id == run.id

    assert [r.status for r in runs_emulator.requests if r.method == "GET"] == [502, 200]
    assert any("HTTP 502" in record.getMessage() for record in caplog.records)


def test_invalid_response_in_wait_for_run_fails_the_task_clearly(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    run = fresh_run(runs_emulator, RunScript(in_progress_seconds=0.5))
    runs_emulator.add_fault(
        FaultRule(method="GET", path=RUN, status=200, raw_body=HTML, headers={"content-type": "text/html"})
    )

    with pytest.raises(InvalidResponseError, match="got text/html"):
        wait_for_run(credentials, run.thread_id, run.id, max_wait_seconds=10)


GARBAGE = (
    "retry: 100\nid: 7\n: just a comment\nnonsense without a colon\nevent: thread.run.completed\ndata: {not json\n\n"
)


def test_garbage_in_an_event_stream_is_a_stream_error_and_the_run_is_not_lost(runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="cut_stream", raw_body=GARBAGE))

    with client_of(runs_emulator) as client:
        thread = client.create_thread()
        events = client.stream_run(thread.id, assistant_id=runs_emulator.default_assistant_id, idempotency_key="k1")
        with pytest.raises(StreamError, match=r"event 'thread\.run\.completed' carries data that is not JSON"):
            list(events)
        found = client.find_run(thread.id, "k1")

    [record] = runs_emulator.runs()
    assert found is not None and found.id == record.id


def test_a_flow_following_a_garbled_stream_completes_by_polling(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, caplog: pytest.LogCaptureFixture
) -> None:
    runs_emulator.add_script(RunScript(in_progress_seconds=0.3, reply_text="made it"))
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="cut_stream", raw_body=GARBAGE))

    run = run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"], stream=True)

    assert run.status is RunStatus.COMPLETED
    [record] = runs_emulator.runs()
    assert record.id == run.id
    assert runs_emulator.request_count("GET", rf"^/v1/threads/{run.thread_id}/runs$") == 1  # found by its key
    assert any("carries data that is not JSON" in r.getMessage() for r in caplog.records)
    assert "made it" in final_markdown(run.id)
    assert_nothing_active(runs_emulator)


def test_a_status_never_seen_is_active_and_followed(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    run = fresh_run(runs_emulator, RunScript(queued_seconds=0.01, in_progress_seconds=0.5))
    thinking = {**runs_emulator.run(run.id).object, "status": "thinking"}
    runs_emulator.add_fault(FaultRule(method="GET", path=RUN, status=200, body=thinking, times=2))

    parsed = Run.model_validate(thinking)
    assert parsed.status == "thinking" and parsed.status.is_active and not parsed.status.is_known

    @flow
    def follow() -> Run:
        return wait_for_run(credentials, run.thread_id, run.id, max_wait_seconds=10)

    final = follow()

    assert final.status is RunStatus.COMPLETED
    polls = [r for r in runs_emulator.requests if r.method == "GET" and r.path.endswith(run.id)]
    assert [p.fault for p in polls[:2]] == ["status", "status"] and len(polls) >= 3
    markdown = final_markdown(run.id)
    assert "| thinking |" in markdown and "**completed**" in markdown
    assert statuses(runs_emulator, run.id)[-1] == "completed"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_connection_refused_is_a_clear_connection_error(runs_emulator: RunsEmulator) -> None:
    base_url = f"http://127.0.0.1:{closed_port()}/v1"
    credentials = OpenAICredentials(api_key=runs_emulator.api_key, base_url=base_url, max_retries=1)

    with credentials.get_client() as client, pytest.raises(APIConnectionError) as caught:
        client.get_run("thread_1", "run_1")

    assert caught.value.request_sent is False
    assert str(caught.value).startswith("GET /threads/thread_1/runs/run_1: could not connect to 127.0.0.1:")
    assert runs_emulator.api_key not in str(caught.value)

    state = cast("State[Any]", run_assistant(credentials, "asst_1", messages=["hi"], return_state=True))
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, APIConnectionError) and "POST /threads: could not connect to" in str(error)


def test_error_bodies_never_echo_the_key(runs_emulator: RunsEmulator) -> None:
    echo = {"error": {"message": f"bad key {runs_emulator.api_key}", "type": "x", "param": None, "code": None}}
    runs_emulator.add_fault(FaultRule(path=r"^/v1/threads$", status=400, body=echo))

    with client_of(runs_emulator) as client, pytest.raises(BadRequestError) as caught:
        client.create_thread()

    assert caught.value.message == "bad key ***"
    assert runs_emulator.api_key not in str(caught.value)
