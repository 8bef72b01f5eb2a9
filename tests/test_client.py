"""The synchronous ``RunsClient`` against the emulator, over real HTTP on loopback.

Every method, the headers it sends, the errors it raises (never carrying the key), and the ambiguous
create: a create whose answer is lost after the server created the run yields exactly one run.
"""

from __future__ import annotations

import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar
from urllib.parse import parse_qs

import pytest

from prefect_openai_runs import __version__
from prefect_openai_runs.client import IDEMPOTENCY_METADATA_KEY, RunsClient
from prefect_openai_runs.exceptions import (
    ActiveRunExistsError,
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    InvalidResponseError,
    NotFoundError,
    OpenAIRunsError,
    RunNotCancellableError,
)
from prefect_openai_runs.models import Run, RunStatus, StreamEvent
from prefect_openai_runs.retry import RetryPolicy
from prefect_openai_runs.testing import FaultRule, RunScript, RunsEmulator, ToolCallSpec

T = TypeVar("T")

CREATE_PATH = r"^/v1/threads/[^/]+/runs$"
FAST_RETRIES = RetryPolicy(max_attempts=4, initial_wait=0.02, max_wait=0.1, jitter=0.02, deadline_seconds=20)


def make_client(emu: RunsEmulator, **options: object) -> RunsClient:
    settings: dict[str, object] = {
        "api_key": emu.api_key,
        "base_url": emu.base_url,
        "timeout": 5.0,
        "retry_policy": FAST_RETRIES,
    }
    settings.update(options)
    return RunsClient(**settings)  # type: ignore[arg-type]


@pytest.fixture
def client(runs_emulator: RunsEmulator) -> Iterator[RunsClient]:
    with make_client(runs_emulator) as c:
        yield c


def wait_until(probe: Callable[[], T | None], timeout: float = 5.0) -> T:
    """Poll an observed condition until it holds (returns something truthy), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        time.sleep(0.01)


def wait_status(client: RunsClient, run: Run, *statuses: RunStatus) -> Run:
    def probe() -> Run | None:
        current = client.get_run(run.thread_id, run.id)
        return current if current.status in statuses else None

    return wait_until(probe)


def runs_on(emu: RunsEmulator, thread_id: str) -> list[str]:
    return [r.id for r in emu.runs() if r.thread_id == thread_id]


def create_posts(emu: RunsEmulator) -> list[int]:
    """Statuses the emulator recorded for the create-run requests, in order."""
    return [r.status for r in emu.requests if r.method == "POST" and re.search(CREATE_PATH, r.path)]


# -- threads and messages --------------------------------------------------------------------------


def test_create_thread_add_and_list_messages_by_run(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    runs_emulator.add_script(RunScript(reply_text="scripted reply 17"))
    thread = client.create_thread(messages=[{"role": "user", "content": "first"}], metadata={"team": "a"})
    assert thread.id.startswith("thread_") and thread.metadata == {"team": "a"}
    added = client.add_message(thread.id, "second")
    assert added.thread_id == thread.id and added.role == "user" and added.text == "second"

    run = client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    wait_status(client, run, RunStatus.COMPLETED)

    everything = list(client.list_messages(thread.id, order="asc"))
    assert [m.text for m in everything] == ["first", "second", "scripted reply 17"]
    by_run = list(client.list_messages(thread.id, run_id=run.id))
    assert [(m.role, m.run_id, m.text) for m in by_run] == [("assistant", run.id, "scripted reply 17")]
    query = parse_qs(runs_emulator.requests[-1].query)
    assert query["run_id"] == [run.id]


# -- runs --------------------------------------------------------------------------------------------


def test_create_run_tags_it_with_an_idempotency_key(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    thread = client.create_thread()
    run = client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id, metadata={"job": "x"})
    assert run.thread_id == thread.id and run.status.is_active
    key = (run.metadata or {})[IDEMPOTENCY_METADATA_KEY]
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    assert run.metadata == {"job": "x", IDEMPOTENCY_METADATA_KEY: key}
    assert runs_emulator.run(run.id).metadata == run.metadata
    found = client.find_run(thread.id, key)
    assert found is not None and found.id == run.id
    assert client.find_run(thread.id, "0" * 32) is None


def test_create_thread_and_run_is_two_requests(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    run = client.create_thread_and_run(
        assistant_id=runs_emulator.default_assistant_id,
        thread={"messages": [{"role": "user", "content": "hi"}]},
        temperature=0.5,
    )
    posts = [(r.method, r.path) for r in runs_emulator.requests]
    assert posts == [("POST", "/v1/threads"), ("POST", f"/v1/threads/{run.thread_id}/runs")]
    assert runs_emulator.requests[1].body["temperature"] == 0.5
    assert runs_on(runs_emulator, run.thread_id) == [run.id]


def test_get_run_and_poll_run_hint(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    thread = client.create_thread()
    run = client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    assert client.get_run(thread.id, run.id).id == run.id
    assert client.poll_run(thread.id, run.id)[1] is None
    runs_emulator.poll_after_ms = 250
    polled, hint = client.poll_run(thread.id, run.id)
    assert polled.id == run.id and hint == 250


def test_list_runs_follows_pagination(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    thread = client.create_thread()
    created: list[str] = []
    for _ in range(5):  # one active run per thread: each completes before the next is created
        run = client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
        wait_status(client, run, RunStatus.COMPLETED)
        created.append(run.id)
    before = len(runs_emulator.requests)
    listed = [r.id for r in client.list_runs(thread.id, limit=2)]
    assert listed == created[::-1]
    pages = runs_emulator.requests[before:]
    assert [r.path for r in pages] == [f"/v1/threads/{thread.id}/runs"] * 3
    queries = [parse_qs(r.query) for r in pages]
    assert [q.get("after") for q in queries] == [None, [listed[1]], [listed[3]]]
    assert all(q["limit"] == ["2"] for q in queries)
    assert [r.id for r in client.list_runs(thread.id, order="asc", limit=3)] == created


def test_modify_run(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    thread = client.create_thread()
    run = client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    modified = client.modify_run(thread.id, run.id, metadata={"owner": "pipeline-7"})
    assert modified.metadata == {"owner": "pipeline-7"}
    assert runs_emulator.run(run.id).metadata == {"owner": "pipeline-7"}


def test_cancel_run_goes_cancelling_then_cancelled(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    runs_emulator.add_script(RunScript(outcome="never"))
    thread = client.create_thread()
    run = client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    cancelling = client.cancel_run(thread.id, run.id)
    assert cancelling.status is RunStatus.CANCELLING
    final = wait_status(client, run, RunStatus.CANCELLED)
    assert final.cancelled_at is not None
    assert [s for s, _ in runs_emulator.run(run.id).history][-2:] == ["cancelling", "cancelled"]


def test_cancel_completed_run_is_not_cancellable(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    thread = client.create_thread()
    run = client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    wait_status(client, run, RunStatus.COMPLETED)
    with pytest.raises(RunNotCancellableError) as info:
        client.cancel_run(thread.id, run.id)
    assert info.value.run_status == "completed" and info.value.status_code == 400


def test_second_run_on_a_busy_thread_names_the_active_run(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    runs_emulator.add_script(RunScript(outcome="never"))
    thread = client.create_thread()
    first = client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    with pytest.raises(ActiveRunExistsError) as info:
        client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    assert info.value.active_run_id == first.id
    assert create_posts(runs_emulator) == [200, 400]  # a 400 is never retried


def test_submit_tool_outputs_round_trip(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    runs_emulator.add_script(
        RunScript(
            outcome="requires_action",
            tool_calls=(ToolCallSpec(name="lookup", arguments='{"q": "tides"}'),),
            reply_text="tides noted",
        )
    )
    thread = client.create_thread()
    run = client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    waiting = wait_status(client, run, RunStatus.REQUIRES_ACTION)
    assert waiting.status.needs_action
    [call] = waiting.tool_calls
    assert (call.function.name, call.function.arguments) == ("lookup", '{"q": "tides"}')

    after = client.submit_tool_outputs(thread.id, run.id, {call.id: "high at 6"})
    assert after.id == run.id and not after.status.needs_action
    submitted = runs_emulator.requests[-1]
    assert submitted.path.endswith("/submit_tool_outputs")
    assert submitted.body == {"tool_outputs": [{"tool_call_id": call.id, "output": "high at 6"}]}
    wait_status(client, run, RunStatus.COMPLETED)
    assert [m.text for m in client.list_messages(thread.id, run_id=run.id)] == ["tides noted"]


def test_list_run_steps(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    thread = client.create_thread()
    run = client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    wait_status(client, run, RunStatus.COMPLETED)
    steps = list(client.list_run_steps(thread.id, run.id, limit=1))
    assert steps, "a completed run has at least its message_creation step"
    assert all(step.run_id == run.id and step.thread_id == thread.id for step in steps)
    assert "message_creation" in {step.type for step in steps}


# -- streaming ---------------------------------------------------------------------------------------


def run_events(events: list[StreamEvent]) -> list[str]:
    return [e.event for e in events if e.event.startswith("thread.run.") and not e.event.startswith("thread.run.step")]


def test_stream_run_yields_typed_events_until_done(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    thread = client.create_thread(messages=[{"role": "user", "content": "stream please"}])
    events = list(client.stream_run(thread.id, assistant_id=runs_emulator.default_assistant_id))
    assert events[-1].is_done and events[-1].data is None
    assert run_events(events)[0] == "thread.run.created" and run_events(events)[-1] == "thread.run.completed"
    runs = [e.run for e in events if e.run is not None]
    assert {r.id for r in runs} == {runs_on(runs_emulator, thread.id)[0]}
    assert runs[-1].status is RunStatus.COMPLETED
    # a stream's request is recorded when its last byte goes out, which may be just after ``done`` arrived
    posted = wait_until(lambda: [r for r in runs_emulator.requests if re.search(CREATE_PATH, r.path)])
    assert [r.body["stream"] for r in posted] == [True]


def test_stream_thread_and_run(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    events = list(client.stream_thread_and_run(assistant_id=runs_emulator.default_assistant_id))
    created = next(e.run for e in events if e.event == "thread.run.created")
    assert created is not None
    wait_until(lambda: len(runs_emulator.requests) == 2)  # a stream is recorded once its last byte is out
    assert [(r.method, r.path) for r in runs_emulator.requests] == [
        ("POST", "/v1/threads"),
        ("POST", f"/v1/threads/{created.thread_id}/runs"),
    ]
    assert events[-1].is_done


def test_stream_requires_action_then_stream_tool_outputs(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    runs_emulator.add_script(RunScript(outcome="requires_action", tool_calls=(ToolCallSpec(name="add"),)))
    thread = client.create_thread()
    events = list(client.stream_run(thread.id, assistant_id=runs_emulator.default_assistant_id))
    assert run_events(events)[-1] == "thread.run.requires_action"
    assert [e.event for e in events if e.event != "done"][-1] == "thread.run.requires_action"
    waiting = next(e.run for e in events if e.event == "thread.run.requires_action")
    assert waiting is not None
    [call] = waiting.tool_calls
    assert call.function.name == "add"

    more = list(client.stream_submit_tool_outputs(thread.id, waiting.id, {call.id: "3"}))
    assert run_events(more)[-1] == "thread.run.completed"
    assert more[-1].is_done
    assert runs_emulator.run(waiting.id).status == "completed"


# -- headers -----------------------------------------------------------------------------------------


def test_headers_and_query_on_every_request(runs_emulator: RunsEmulator) -> None:
    with make_client(
        runs_emulator,
        organization="org_test1",
        project="proj_test2",
        default_headers={"X-Team": "data"},
        default_query={"api-version": "2024-05-01-preview"},
    ) as client:
        thread = client.create_thread()
        run = client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
        client.get_run(thread.id, run.id)
        list(client.list_runs(thread.id))
    records = runs_emulator.requests
    assert len(records) == 4
    for record in records:
        headers = record.headers
        assert runs_emulator.api_key not in headers["authorization"]
        assert headers["openai-beta"] == "assistants=v2"
        assert headers["user-agent"] == f"prefect-openai-runs/{__version__}"
        assert headers["openai-organization"] == "org_test1"
        assert headers["openai-project"] == "proj_test2"
        assert headers["x-team"] == "data"
        assert parse_qs(record.query)["api-version"] == ["2024-05-01-preview"]
    assert parse_qs(records[-1].query)["limit"] == ["20"]


def test_no_organization_headers_unless_set(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    client.create_thread()
    headers = runs_emulator.requests[-1].headers
    assert "openai-organization" not in headers and "openai-project" not in headers


# -- errors ------------------------------------------------------------------------------------------

WRONG_KEY = "sk-wrongkey1234567890abcdXYZ"


def test_wrong_key_is_authentication_error_without_the_key(runs_emulator: RunsEmulator) -> None:
    with make_client(runs_emulator, api_key=WRONG_KEY) as client, pytest.raises(AuthenticationError) as info:
        client.create_thread()
    exc = info.value
    assert exc.status_code == 401 and exc.code == "invalid_api_key"
    assert exc.request_id == runs_emulator.requests[-1].request_id and exc.request_id.startswith("req_")
    assert len(runs_emulator.requests) == 1
    texts = [str(exc), repr(exc), *map(str, exc.args), exc.message]
    for form in (WRONG_KEY, WRONG_KEY.removeprefix("sk-"), WRONG_KEY.removeprefix("sk-")[:8]):
        assert not [t for t in texts if form in t], f"{form!r} leaked"
    assert "Incorrect API key provided" in str(exc)


def test_not_found_carries_the_api_message(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    with pytest.raises(NotFoundError) as info:
        client.get_run("thread_missing", "run_missing")
    assert info.value.message == "No thread found with id 'thread_missing'."
    assert info.value.status_code == 404
    assert runs_emulator.request_count("GET") == 1


def test_html_body_is_invalid_response(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    page = "<html><body><h1>Welcome to nginx</h1></body></html>"
    runs_emulator.add_fault(
        FaultRule(
            method="POST", path=r"^/v1/threads$", status=200, raw_body=page, headers={"content-type": "text/html"}
        ),
    )
    with pytest.raises(InvalidResponseError) as info:
        client.create_thread()
    assert "expected JSON" in str(info.value) and "text/html" in str(info.value)
    assert "base_url" in str(info.value)


def test_html_error_page_is_an_api_error_quoting_it(runs_emulator: RunsEmulator) -> None:
    page = "<html><body>502 Bad Gateway</body></html>"
    runs_emulator.add_fault(
        FaultRule(path=r"^/v1/threads$", status=502, raw_body=page, headers={"content-type": "text/html"}, times=None)
    )
    policy = RetryPolicy(max_attempts=2, initial_wait=0.01, jitter=0)
    with make_client(runs_emulator, retry_policy=policy) as client, pytest.raises(OpenAIRunsError) as info:
        client.create_thread()
    assert "502 Bad Gateway" in str(info.value)
    assert runs_emulator.request_count("POST") == 2


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_refused_connection_is_not_sent(runs_emulator: RunsEmulator) -> None:
    with (
        RunsClient(
            api_key=runs_emulator.api_key,
            base_url=f"http://127.0.0.1:{closed_port()}/v1",
            retry_policy=RetryPolicy(max_attempts=2, initial_wait=0.01, jitter=0),
        ) as client,
        pytest.raises(APIConnectionError) as info,
    ):
        client.create_thread()
    assert info.value.request_sent is False
    assert "POST /threads" in str(info.value)


def test_repr_has_no_key(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    text = repr(client)
    assert runs_emulator.base_url in text
    assert runs_emulator.api_key not in text and runs_emulator.api_key[3:11] not in text


def test_invalid_ids_are_refused_before_sending(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    for bad in ("", "thread/../x", "a b"):
        with pytest.raises(ValueError, match="thread_id"):
            client.get_run(bad, "run_1")
    assert runs_emulator.requests == []


# -- the ambiguous create ------------------------------------------------------------------------------


def test_create_dropped_after_the_server_applied_it_gives_one_run(runs_emulator: RunsEmulator) -> None:
    with make_client(runs_emulator) as client:
        thread = client.create_thread()
        runs_emulator.add_fault(FaultRule(method="POST", path=CREATE_PATH, kind="drop_after", times=1))
        run = client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    assert runs_on(runs_emulator, thread.id) == [run.id]
    assert create_posts(runs_emulator) == [0]  # the dropped create was not sent again: it was recovered


def test_create_timing_out_in_a_hang_gives_one_run(runs_emulator: RunsEmulator) -> None:
    with make_client(runs_emulator, timeout=0.5) as client:
        thread = client.create_thread()
        runs_emulator.add_fault(FaultRule(method="POST", path=CREATE_PATH, kind="hang", hang_seconds=5, times=1))
        run = client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    assert runs_on(runs_emulator, thread.id) == [run.id]
    statuses = wait_until(lambda: create_posts(runs_emulator) if len(create_posts(runs_emulator)) == 2 else None)
    assert statuses == [499, 200]


class AnswerLosingProxy:
    """A TCP proxy on loopback in front of the emulator that loses the answer to create-run requests.

    The first ``times`` requests whose request line is ``POST /v1/threads/<id>/runs`` are forwarded,
    so the server really applies them, but their response never reaches the client: it is swallowed
    (the client times out) or replaced by ``replacement`` (raw HTTP bytes, e.g. a 500). Everything
    else passes through unchanged.
    """

    CREATE_LINE = re.compile(rb"(?m)^POST /v1/threads/[A-Za-z0-9_-]+/runs HTTP/1\.1\r$")

    def __init__(self, upstream_port: int, replacement: bytes | None = None, times: int = 1) -> None:
        self.upstream_port = upstream_port
        self.replacement = replacement
        self.remaining = times
        self.tampered = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self._closed.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._server.close()

    def _take(self, data: bytes) -> bool:
        with self._lock:
            if self.remaining > 0 and self.CREATE_LINE.search(data):
                self.remaining -= 1
                self.tampered += 1
                return True
        return False

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([self._server], [], [], 0.05)
                if not ready:
                    continue
                conn, _ = self._server.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._pipe, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _pipe(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        losing = False
        try:
            while not self._closed.is_set():
                readable, _, _ = select.select([client, upstream], [], [], 0.05)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        losing = losing or self._take(data)
                        upstream.sendall(data)
                    elif not losing:
                        client.sendall(data)
                    elif self.replacement is not None:
                        client.sendall(self.replacement)
                        return
        except OSError:
            return
        finally:
            client.close()
            upstream.close()


def raw_response(status: str, body: str, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"x-request-id: req_proxy\r\n{extra}connection: close\r\n\r\n{body}"
    ).encode()


@pytest.fixture
def proxy_factory(runs_emulator: RunsEmulator) -> Iterator[Callable[..., AnswerLosingProxy]]:
    proxies: list[AnswerLosingProxy] = []

    def make(replacement: bytes | None = None) -> AnswerLosingProxy:
        proxy = AnswerLosingProxy(runs_emulator.port, replacement)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


def test_create_timing_out_after_the_server_created_the_run_gives_one_run(
    runs_emulator: RunsEmulator, proxy_factory: Callable[..., AnswerLosingProxy]
) -> None:
    """The acceptance criterion: the server created the run, the client timed out waiting for the answer."""
    proxy = proxy_factory()
    with make_client(runs_emulator, base_url=proxy.base_url(), timeout=0.5) as client:
        thread = client.create_thread()
        run = client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    assert proxy.tampered == 1
    assert runs_on(runs_emulator, thread.id) == [run.id]
    assert create_posts(runs_emulator) == [200]  # applied once, recovered by its idempotency key


def test_timeout_without_retries_is_an_ambiguous_timeout_error(
    runs_emulator: RunsEmulator, proxy_factory: Callable[..., AnswerLosingProxy]
) -> None:
    proxy = proxy_factory()
    once = RetryPolicy(max_attempts=1)
    with make_client(runs_emulator, base_url=proxy.base_url(), timeout=0.3, retry_policy=once) as c:
        thread = c.create_thread()
        with pytest.raises(APITimeoutError) as info:
            c.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id, idempotency_key="k" * 16)
        assert info.value.request_sent is True
    with make_client(runs_emulator) as direct:  # the lookup with a timeout a loaded machine can meet
        found = direct.find_run(thread.id, "k" * 16)
    assert found is not None and runs_on(runs_emulator, thread.id) == [found.id]


def test_create_answered_500_after_the_server_created_the_run_gives_one_run(
    runs_emulator: RunsEmulator, proxy_factory: Callable[..., AnswerLosingProxy]
) -> None:
    body = '{"error": {"message": "The server had an error", "type": "server_error", "param": null, "code": null}}'
    proxy = proxy_factory(raw_response("500 Internal Server Error", body))
    with make_client(runs_emulator, base_url=proxy.base_url()) as client:
        thread = client.create_thread()
        run = client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    assert proxy.tampered == 1
    assert runs_on(runs_emulator, thread.id) == [run.id]
    assert create_posts(runs_emulator) == [200]


def test_retry_meeting_our_own_active_run_returns_it(
    runs_emulator: RunsEmulator, proxy_factory: Callable[..., AnswerLosingProxy]
) -> None:
    """A 429 is not ambiguous, so the create is sent again; the server answers 400 naming our own run."""
    runs_emulator.add_script(RunScript(outcome="never"))
    body = (
        '{"error": {"message": "Rate limit reached", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}'
    )
    proxy = proxy_factory(raw_response("429 Too Many Requests", body, "retry-after-ms: 20\r\n"))
    with make_client(runs_emulator, base_url=proxy.base_url()) as client:
        thread = client.create_thread()
        run = client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    assert runs_on(runs_emulator, thread.id) == [run.id]
    assert create_posts(runs_emulator) == [200, 400]
    assert run.metadata is not None and IDEMPOTENCY_METADATA_KEY in run.metadata


def test_active_run_of_someone_else_is_not_taken_for_ours(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    runs_emulator.add_script(RunScript(outcome="never"))
    thread = client.create_thread()
    theirs = client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id, idempotency_key="theirs")
    with pytest.raises(ActiveRunExistsError) as info:
        client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id, idempotency_key="ours")
    assert info.value.active_run_id == theirs.id
    assert runs_on(runs_emulator, thread.id) == [theirs.id]
