"""The asynchronous ``AsyncRunsClient`` against the emulator, over real HTTP on loopback: every method, the
headers, the errors, and the ambiguous create that must leave exactly one run."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs

import pytest

from prefect_openai_runs import __version__
from prefect_openai_runs.client import IDEMPOTENCY_METADATA_KEY, AsyncRunsClient
from prefect_openai_runs.exceptions import (
    ActiveRunExistsError,
    APIConnectionError,
    AuthenticationError,
    NotFoundError,
    RunNotCancellableError,
)
from prefect_openai_runs.models import Run, RunStatus, StreamEvent
from prefect_openai_runs.retry import RetryPolicy
from prefect_openai_runs.testing import FaultRule, RunScript, RunsEmulator, ToolCallSpec

CREATE_PATH = r"^/v1/threads/[^/]+/runs$"
FAST_RETRIES = RetryPolicy(max_attempts=4, initial_wait=0.02, max_wait=0.1, jitter=0.02, deadline_seconds=20)


def make_client(emu: RunsEmulator, **options: object) -> AsyncRunsClient:
    settings: dict[str, object] = {
        "api_key": emu.api_key,
        "base_url": emu.base_url,
        "timeout": 5.0,
        "retry_policy": FAST_RETRIES,
    }
    settings.update(options)
    return AsyncRunsClient(**settings)  # type: ignore[arg-type]


@pytest.fixture
async def client(runs_emulator: RunsEmulator) -> AsyncIterator[AsyncRunsClient]:
    async with make_client(runs_emulator) as c:
        yield c


async def wait_status(client: AsyncRunsClient, run: Run, *statuses: RunStatus, timeout: float = 5.0) -> Run:
    """Poll the run until it has one of ``statuses`` (an observed condition), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        current = await client.get_run(run.thread_id, run.id)
        if current.status in statuses:
            return current
        assert time.monotonic() < deadline, f"run {run.id} still {current.status} after {timeout}s"
        await asyncio.sleep(0.01)


def runs_on(emu: RunsEmulator, thread_id: str) -> list[str]:
    return [r.id for r in emu.runs() if r.thread_id == thread_id]


def create_posts(emu: RunsEmulator) -> list[int]:
    return [r.status for r in emu.requests if r.method == "POST" and re.search(CREATE_PATH, r.path)]


async def test_threads_messages_and_runs(runs_emulator: RunsEmulator, client: AsyncRunsClient) -> None:
    runs_emulator.add_script(RunScript(reply_text="async reply 5"))
    thread = await client.create_thread(messages=[{"role": "user", "content": "first"}])
    added = await client.add_message(thread.id, "second")
    assert added.thread_id == thread.id and added.text == "second"
    run = await client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id, metadata={"a": "b"})
    assert run.metadata is not None and run.metadata["a"] == "b" and IDEMPOTENCY_METADATA_KEY in run.metadata
    assert (await client.get_run(thread.id, run.id)).id == run.id
    done = await wait_status(client, run, RunStatus.COMPLETED)
    assert done.usage is not None and done.usage.total_tokens > 0

    texts = [m.text async for m in client.list_messages(thread.id, order="asc")]
    assert texts == ["first", "second", "async reply 5"]
    by_run = [m async for m in client.list_messages(thread.id, run_id=run.id)]
    assert [(m.role, m.run_id) for m in by_run] == [("assistant", run.id)]

    steps = [s async for s in client.list_run_steps(thread.id, run.id)]
    assert steps and all(s.run_id == run.id for s in steps)

    found = await client.find_run(thread.id, run.metadata[IDEMPOTENCY_METADATA_KEY])
    assert found is not None and found.id == run.id
    modified = await client.modify_run(thread.id, run.id, metadata={"owner": "me"})
    assert modified.metadata == {"owner": "me"} and runs_emulator.run(run.id).metadata == {"owner": "me"}


async def test_create_thread_and_run_is_two_requests(runs_emulator: RunsEmulator, client: AsyncRunsClient) -> None:
    run = await client.create_thread_and_run(assistant_id=runs_emulator.default_assistant_id)
    assert [(r.method, r.path) for r in runs_emulator.requests] == [
        ("POST", "/v1/threads"),
        ("POST", f"/v1/threads/{run.thread_id}/runs"),
    ]
    assert runs_on(runs_emulator, run.thread_id) == [run.id]


async def test_poll_run_returns_the_hint(runs_emulator: RunsEmulator, client: AsyncRunsClient) -> None:
    runs_emulator.poll_after_ms = 400
    thread = await client.create_thread()
    run = await client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    polled, hint = await client.poll_run(thread.id, run.id)
    assert polled.id == run.id and hint == 400


async def test_list_runs_follows_pagination(runs_emulator: RunsEmulator, client: AsyncRunsClient) -> None:
    thread = await client.create_thread()
    created = []
    for _ in range(5):
        run = await client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
        await wait_status(client, run, RunStatus.COMPLETED)
        created.append(run.id)
    before = len(runs_emulator.requests)
    listed = [r.id async for r in client.list_runs(thread.id, limit=2)]
    assert listed == created[::-1]
    pages = [parse_qs(r.query) for r in runs_emulator.requests[before:]]
    assert [p.get("after") for p in pages] == [None, [listed[1]], [listed[3]]]


async def test_cancel_and_not_cancellable(runs_emulator: RunsEmulator, client: AsyncRunsClient) -> None:
    runs_emulator.add_script(RunScript(outcome="never"))
    thread = await client.create_thread()
    run = await client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    with pytest.raises(ActiveRunExistsError) as busy:
        await client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    assert busy.value.active_run_id == run.id
    assert (await client.cancel_run(thread.id, run.id)).status is RunStatus.CANCELLING
    await wait_status(client, run, RunStatus.CANCELLED)
    with pytest.raises(RunNotCancellableError) as info:
        await client.cancel_run(thread.id, run.id)
    assert info.value.run_status == "cancelled"


async def test_submit_tool_outputs(runs_emulator: RunsEmulator, client: AsyncRunsClient) -> None:
    runs_emulator.add_script(RunScript(outcome="requires_action", tool_calls=(ToolCallSpec(name="f", arguments="{}"),)))
    thread = await client.create_thread()
    run = await client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    waiting = await wait_status(client, run, RunStatus.REQUIRES_ACTION)
    [call] = waiting.tool_calls
    await client.submit_tool_outputs(thread.id, run.id, {call.id: "ok"})
    assert runs_emulator.requests[-1].body == {"tool_outputs": [{"tool_call_id": call.id, "output": "ok"}]}
    await wait_status(client, run, RunStatus.COMPLETED)


def run_event_names(events: list[StreamEvent]) -> list[str]:
    return [e.event for e in events if e.run is not None]


async def test_streams(runs_emulator: RunsEmulator, client: AsyncRunsClient) -> None:
    thread = await client.create_thread()
    events = [e async for e in client.stream_run(thread.id, assistant_id=runs_emulator.default_assistant_id)]
    assert run_event_names(events)[0] == "thread.run.created"
    assert run_event_names(events)[-1] == "thread.run.completed" and events[-1].is_done

    runs_emulator.add_script(RunScript(outcome="requires_action", tool_calls=(ToolCallSpec(name="g"),)))
    stream = await client.stream_thread_and_run(assistant_id=runs_emulator.default_assistant_id)
    events = [e async for e in stream]
    assert [e.event for e in events if not e.is_done][-1] == "thread.run.requires_action"
    waiting = events[-2].run if events[-1].is_done else events[-1].run
    assert waiting is not None and waiting.status.needs_action
    [call] = waiting.tool_calls
    more = [e async for e in client.stream_submit_tool_outputs(waiting.thread_id, waiting.id, {call.id: "1"})]
    assert run_event_names(more)[-1] == "thread.run.completed"


async def test_headers(runs_emulator: RunsEmulator) -> None:
    async with make_client(
        runs_emulator,
        organization="org_a",
        project="proj_b",
        default_headers={"X-Extra": "1"},
        default_query={"api-version": "v9"},
    ) as client:
        thread = await client.create_thread()
        await client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    for record in runs_emulator.requests:
        assert record.headers["authorization"] != f"Bearer {runs_emulator.api_key}"
        assert runs_emulator.api_key not in record.headers["authorization"]
        assert record.headers["openai-beta"] == "assistants=v2"
        assert record.headers["user-agent"] == f"prefect-openai-runs/{__version__}"
        assert (record.headers["openai-organization"], record.headers["openai-project"]) == ("org_a", "proj_b")
        assert record.headers["x-extra"] == "1" and parse_qs(record.query)["api-version"] == ["v9"]


async def test_wrong_key(runs_emulator: RunsEmulator) -> None:
    wrong = "sk-asyncwrong0987654321zyx"
    async with make_client(runs_emulator, api_key=wrong) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.create_thread()
    exc = info.value
    assert exc.code == "invalid_api_key" and exc.status_code == 401 and exc.request_id
    assert len(runs_emulator.requests) == 1
    for text in (str(exc), repr(exc), *map(str, exc.args)):
        assert wrong not in text and wrong[3:] not in text and wrong[3:11] not in text


async def test_not_found_and_refused(runs_emulator: RunsEmulator, client: AsyncRunsClient) -> None:
    thread = await client.create_thread()
    with pytest.raises(NotFoundError) as info:
        await client.get_run(thread.id, "run_nope")
    assert info.value.message == "No run found with id 'run_nope'."
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    refused = make_client(
        runs_emulator, base_url=f"http://127.0.0.1:{port}/v1", retry_policy=RetryPolicy(max_attempts=1)
    )
    async with refused:
        with pytest.raises(APIConnectionError) as refused_info:
            await refused.create_thread()
    assert refused_info.value.request_sent is False
    assert runs_emulator.api_key not in repr(refused)


async def test_dropped_create_gives_one_run(runs_emulator: RunsEmulator, client: AsyncRunsClient) -> None:
    thread = await client.create_thread()
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE_PATH, kind="drop_after", times=1))
    run = await client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    assert runs_on(runs_emulator, thread.id) == [run.id]
    assert create_posts(runs_emulator) == [0]


async def test_hanging_create_gives_one_run(runs_emulator: RunsEmulator) -> None:
    async with make_client(runs_emulator, timeout=0.5) as client:
        thread = await client.create_thread()
        runs_emulator.add_fault(FaultRule(method="POST", path=CREATE_PATH, kind="hang", hang_seconds=5, times=1))
        run = await client.create_run(thread.id, assistant_id=runs_emulator.default_assistant_id)
    assert runs_on(runs_emulator, thread.id) == [run.id]
    assert runs_emulator.run(run.id).metadata.get(IDEMPOTENCY_METADATA_KEY) == (run.metadata or {}).get(
        IDEMPOTENCY_METADATA_KEY
    )


async def test_concurrent_creates_on_separate_threads(runs_emulator: RunsEmulator, client: AsyncRunsClient) -> None:
    threads = await asyncio.gather(*(client.create_thread() for _ in range(10)))
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE_PATH, kind="drop_after", times=3))
    runs = await asyncio.gather(
        *(client.create_run(t.id, assistant_id=runs_emulator.default_assistant_id) for t in threads)
    )
    for thread, run in zip(threads, runs, strict=True):
        assert runs_on(runs_emulator, thread.id) == [run.id]
