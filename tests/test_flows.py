"""run_assistant end to end against the emulator and a real (temporary) Prefect server.

Every cancel path is proven by the emulator's own record: the run ended ``cancelled`` and no run is
left active; every path leaves the run artifact with the right content.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client

from flow_helpers import assert_nothing_active, final_markdown, statuses, wait_until
from prefect_openai_runs import (
    OpenAICredentials,
    RunCancelled,
    RunExpired,
    RunFailed,
    RunIncomplete,
    RunStatus,
    RunTimedOut,
    ToolCallError,
)
from prefect_openai_runs.flows import run_assistant
from prefect_openai_runs.testing import FaultRule, RunScript, RunsEmulator, ToolCallSpec

pytestmark = pytest.mark.usefixtures("prefect_server")

LONG = RunScript(queued_seconds=0.01, in_progress_seconds=60.0)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "poll"])
def test_completed_run_returns_it_with_its_artifact(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, stream: bool
) -> None:
    runs_emulator.add_script(RunScript(in_progress_seconds=1.5, reply_text="The answer is 42.", usage=(30, 12)))

    run = run_assistant(credentials, runs_emulator.default_assistant_id, messages=["What is it?"], stream=stream)

    assert run.status is RunStatus.COMPLETED
    assert statuses(runs_emulator, run.id) == ["queued", "in_progress", "completed"]
    markdown = final_markdown(run.id)
    assert "**completed**" in markdown
    assert "The answer is 42." in markdown
    assert "total **42**" in markdown
    for step in ("queued", "in_progress", "completed"):
        assert f"| {step} |" in markdown
    assert run.thread_id in markdown and runs_emulator.default_assistant_id in markdown
    assert_nothing_active(runs_emulator)


def test_stream_mode_uses_one_request_to_follow(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    run = run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"], stream=True)

    polls = runs_emulator.request_count("GET", rf"^/v1/threads/{run.thread_id}/runs/{run.id}$")
    assert polls == 0
    assert runs_emulator.request_count("POST", rf"^/v1/threads/{run.thread_id}/runs$") == 1


def test_stream_dropped_after_create_recovers_the_run_and_polls(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/threads/[^/]+/runs$", kind="drop_after", times=1))

    run = run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"], stream=True)

    assert run.status is RunStatus.COMPLETED
    assert [r.id for r in runs_emulator.runs() if r.thread_id == run.thread_id] == [run.id]


@pytest.mark.parametrize(
    ("script", "error", "expected_in_artifact"),
    [
        (
            RunScript(outcome="failed", error_code="rate_limit_exceeded", error_message="Too many tokens"),
            RunFailed,
            "rate_limit_exceeded",
        ),
        (
            RunScript(outcome="incomplete", incomplete_reason="max_completion_tokens"),
            RunIncomplete,
            "max_completion_tokens",
        ),
    ],
    ids=["failed", "incomplete"],
)
def test_unsuccessful_outcomes_fail_the_flow_with_the_final_run(
    runs_emulator: RunsEmulator,
    credentials: OpenAICredentials,
    script: RunScript,
    error: type[Exception],
    expected_in_artifact: str,
) -> None:
    runs_emulator.add_script(script)

    with pytest.raises(error) as caught:
        run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"])

    run = caught.value.run  # type: ignore[attr-defined]
    assert run.status.is_terminal
    assert expected_in_artifact in final_markdown(run.id)
    assert_nothing_active(runs_emulator)


def test_expired_run_fails_with_run_expired(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.expires_after = 0.5
    runs_emulator.add_script(RunScript(outcome="never"))

    with pytest.raises(RunExpired) as caught:
        run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=20)

    assert caught.value.run.status is RunStatus.EXPIRED
    assert "**expired**" in final_markdown(caught.value.run.id)


def test_run_cancelled_by_someone_else_fails_with_run_cancelled(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_script(LONG)

    def cancel_when_in_progress() -> None:
        record = wait_until(lambda: next((r for r in runs_emulator.runs() if r.status == "in_progress"), None))
        with credentials.get_client() as client:
            client.cancel_run(record.thread_id, record.id)

    canceller = threading.Thread(target=cancel_when_in_progress)
    canceller.start()
    with pytest.raises(RunCancelled) as caught:
        run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=30)
    canceller.join()

    assert caught.value.run.status is RunStatus.CANCELLED
    assert_nothing_active(runs_emulator)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "poll"])
def test_deadline_cancels_the_run(runs_emulator: RunsEmulator, credentials: OpenAICredentials, stream: bool) -> None:
    runs_emulator.add_script(LONG)

    with pytest.raises(RunTimedOut) as caught:
        run_assistant(
            credentials, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=0.5, stream=stream
        )

    run = caught.value.run
    assert run.status is RunStatus.CANCELLED
    assert statuses(runs_emulator, run.id)[-2:] == ["cancelling", "cancelled"]
    markdown = final_markdown(run.id)
    assert "deadline" in markdown and "**cancelled**" in markdown
    assert_nothing_active(runs_emulator)


def test_flow_timeout_cancels_the_run_in_finally(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_script(LONG)
    timed = run_assistant.with_options(timeout_seconds=1)

    state = timed(
        credentials, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=60, return_state=True
    )

    assert state.is_failed()
    [record] = runs_emulator.runs()
    assert record.status == "cancelled"
    markdown = final_markdown(record.id)
    assert "flow timeout" in markdown
    assert_nothing_active(runs_emulator)


def test_cancel_the_server_ignores_is_reported(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_script(RunScript(in_progress_seconds=1.0, ignore_cancel=True, reply_text="done anyway"))

    with pytest.raises(RunTimedOut) as caught:
        run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=0.3)

    assert caught.value.run.status is RunStatus.COMPLETED
    assert "did not honour the cancel" in final_markdown(caught.value.run.id)


def test_tool_call_round_trip(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_script(
        RunScript(
            outcome="requires_action",
            tool_calls=[ToolCallSpec(name="get_weather", arguments='{"city": "Paris"}')],
            then=RunScript(reply_text="It is 21 degrees in Paris."),
        )
    )
    seen: list[str] = []

    def get_weather(city: str) -> dict[str, Any]:
        seen.append(city)
        return {"city": city, "celsius": 21}

    run = run_assistant(
        credentials,
        runs_emulator.default_assistant_id,
        messages=["Weather?"],
        tool_handlers={"get_weather": get_weather},
    )

    assert run.status is RunStatus.COMPLETED
    assert seen == ["Paris"]
    [submit] = [r for r in runs_emulator.requests if r.path.endswith("/submit_tool_outputs")]
    assert submit.body is not None
    assert submit.body["tool_outputs"][0]["output"] == '{"city": "Paris", "celsius": 21}'
    assert statuses(runs_emulator, run.id) == [
        "queued",
        "in_progress",
        "requires_action",
        "queued",
        "in_progress",
        "completed",
    ]
    card = final_markdown(run.id)
    assert "It is 21 degrees in Paris." in card
    # the card tells the whole story: the prompt, the time against the deadline, the tool calls with their
    # outputs, and the usage of every job of the flow run
    assert "## Prompt" in card and "Weather?" in card
    assert "of a 600 s deadline" in card
    assert "## Tool calls" in card and "`get_weather`" in card and "celsius" in card
    assert "Whole flow run (every job it made, retries included)" in card


@pytest.mark.parametrize("handlers", [{}, {"get_weather": lambda city: 1 / 0}], ids=["no-handler", "handler-raises"])
def test_failing_tool_call_cancels_the_run(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, handlers: dict[str, Any]
) -> None:
    runs_emulator.add_script(
        RunScript(
            outcome="requires_action", tool_calls=[ToolCallSpec(name="get_weather", arguments='{"city": "Oslo"}')]
        )
    )

    with pytest.raises(ToolCallError) as caught:
        run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"], tool_handlers=handlers)

    assert caught.value.function_name == "get_weather"
    assert "get_weather" in str(caught.value)
    assert caught.value.run.status is RunStatus.CANCELLED
    assert "tool call failed" in final_markdown(caught.value.run.id)
    assert_nothing_active(runs_emulator)


def test_existing_thread_and_run_parameters(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    with credentials.get_client() as client:
        thread = client.create_thread()

    run = run_assistant(
        credentials,
        runs_emulator.default_assistant_id,
        messages=["Add this"],
        thread_id=thread.id,
        temperature=0.2,
        metadata={"pipeline": "nightly"},
    )

    assert run.thread_id == thread.id
    assert run.temperature == 0.2
    assert run.metadata is not None and run.metadata["pipeline"] == "nightly"


def test_bad_input_fails_before_any_request(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    with pytest.raises(ValueError, match="temperature"):
        run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"], temperature=3)
    with pytest.raises(ValueError, match="max_wait_seconds"):
        run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=0)
    with pytest.raises(ValueError, match="messages"):
        run_assistant(credentials, runs_emulator.default_assistant_id)

    assert runs_emulator.request_count() == 0


def test_run_assistant_as_subflow_of_an_async_flow(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    @flow
    async def parent() -> str:
        await asyncio.sleep(0)
        run = run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"])
        return str(run.status)

    assert asyncio.run(parent()) == "completed"


def test_status_changes_emit_prefect_events(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, asserting_events_worker: Any
) -> None:
    from prefect.events.clients import AssertingEventsClient

    run = run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"])
    asserting_events_worker.drain()

    ours = [e for client in AssertingEventsClient.all for e in client.events if e.resource.id == f"openai.run.{run.id}"]
    assert [e.event for e in ours] == [
        "openai.run.created",
        "openai.run.queued",
        "openai.run.in_progress",
        "openai.run.completed",
    ]
    assert all(any(r.role == "flow-run" for r in e.related) for e in ours)


def test_flow_run_shows_failed_in_prefect(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_script(RunScript(outcome="failed"))

    state = run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"], return_state=True)

    assert state.is_failed()
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
    assert flow_run.state is not None and flow_run.state.is_failed()
