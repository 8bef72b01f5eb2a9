"""The official openai SDK drives the emulator without a parsing error, sync and async.

Every JSON response the SDK receives is also validated against the vendored spec (see emulator_helpers).
"""

from __future__ import annotations

import pytest

from emulator_helpers import async_openai_client, openai_client
from prefect_openai_runs.testing import RunScript, RunsEmulator, ToolCallSpec

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
FAST = RunScript(queued_seconds=0.01, in_progress_seconds=0.02, reply_text="SDK reply.")
POLL_MS = 10


def test_create_and_poll_and_messages(runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_script(FAST)
    client = openai_client(runs_emulator)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=runs_emulator.default_assistant_id, poll_interval_ms=POLL_MS
    )
    assert run.status == "completed" and run.usage is not None and run.usage.total_tokens == 20
    messages = client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id)
    assert messages.data[0].content[0].text.value == "SDK reply."  # type: ignore[union-attr]
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id)
    assert steps.data[0].type == "message_creation"
    again = client.beta.threads.create_and_run_poll(
        assistant_id=runs_emulator.default_assistant_id, poll_interval_ms=POLL_MS
    )
    assert again.status == "completed"


def test_cancel(runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_script(RunScript(outcome="never"))
    client = openai_client(runs_emulator)
    run = client.beta.threads.create_and_run(assistant_id=runs_emulator.default_assistant_id)
    cancelling = client.beta.threads.runs.cancel(run_id=run.id, thread_id=run.thread_id)
    assert cancelling.status == "cancelling"
    final = client.beta.threads.runs.poll(run_id=run.id, thread_id=run.thread_id, poll_interval_ms=POLL_MS)
    assert final.status == "cancelled"


def test_submit_tool_outputs_and_poll(runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_script(
        RunScript(
            queued_seconds=0.01,
            in_progress_seconds=0.01,
            outcome="requires_action",
            tool_calls=[ToolCallSpec("get_weather", '{"city": "Oslo"}')],
            then=FAST,
        )
    )
    client = openai_client(runs_emulator)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=runs_emulator.default_assistant_id, poll_interval_ms=POLL_MS
    )
    assert run.status == "requires_action" and run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert call.function.name == "get_weather" and call.function.arguments == '{"city": "Oslo"}'
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=run.thread_id,
        tool_outputs=[{"tool_call_id": call.id, "output": "cold"}],
        poll_interval_ms=POLL_MS,
    )
    assert done.status == "completed"


def test_list_auto_pagination(runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_script(RunScript(queued_seconds=0, in_progress_seconds=0))
    client = openai_client(runs_emulator)
    thread = client.beta.threads.create()
    ids = [
        client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=runs_emulator.default_assistant_id, poll_interval_ms=POLL_MS
        ).id
        for _ in range(7)
    ]
    listed = [r.id for r in client.beta.threads.runs.list(thread_id=thread.id, limit=3, order="asc")]
    assert listed == ids
    pages = runs_emulator.request_count("GET", rf"^/v1/threads/{thread.id}/runs$")
    assert pages == 3


def test_error_surfaces_as_sdk_exceptions(runs_emulator: RunsEmulator) -> None:
    import openai

    client = openai_client(runs_emulator, max_retries=0)
    with pytest.raises(openai.NotFoundError) as missing:
        client.beta.threads.runs.retrieve(run_id="run_x", thread_id="thread_x")
    assert missing.value.body == {  # type: ignore[comparison-overlap]
        "message": "No thread found with id 'thread_x'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    bad = openai.OpenAI(api_key="sk-not-the-key", base_url=runs_emulator.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.beta.threads.create()


def test_streamed_run(runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_script(FAST)
    client = openai_client(runs_emulator)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Stream please"}])
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=runs_emulator.default_assistant_id
    ) as stream:
        events = [event.event for event in stream]
        final = stream.get_final_run()
        text = "".join(m.content[0].text.value for m in stream.get_final_messages())  # type: ignore[union-attr]
    assert events[0] == "thread.run.created" and events[-1] == "thread.run.completed"
    assert final.status == "completed" and text == "SDK reply."
    raw = client.beta.threads.runs.create(
        thread_id=thread.id, assistant_id=runs_emulator.default_assistant_id, stream=True
    )
    assert [e.event for e in raw][-1] == "thread.run.completed"


async def test_async_sdk(runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_script(
        RunScript(queued_seconds=0.01, in_progress_seconds=0.01, outcome="requires_action", then=FAST)
    )
    client = async_openai_client(runs_emulator)
    run = await client.beta.threads.create_and_run_poll(
        assistant_id=runs_emulator.default_assistant_id, poll_interval_ms=POLL_MS
    )
    assert run.status == "requires_action" and run.required_action is not None
    outputs = [{"tool_call_id": c.id, "output": "x"} for c in run.required_action.submit_tool_outputs.tool_calls]
    async with client.beta.threads.runs.submit_tool_outputs_stream(
        run_id=run.id,
        thread_id=run.thread_id,
        tool_outputs=outputs,  # type: ignore[arg-type]
    ) as stream:
        await stream.until_done()
        final = await stream.get_final_run()
    assert final.status == "completed"
    pages = [r.id async for r in client.beta.threads.runs.list(thread_id=run.thread_id, limit=1)]
    assert pages == [run.id]
    runs_emulator.add_script(RunScript(outcome="never"))
    other = await client.beta.threads.create_and_run(assistant_id=runs_emulator.default_assistant_id)
    assert (await client.beta.threads.runs.cancel(run_id=other.id, thread_id=other.thread_id)).status == "cancelling"
    await client.close()
