"""run_response end to end against the emulator and a real (temporary) Prefect server.

Every exit path is proven by the emulator's own record (the response's statuses, no response left
active, exactly the requests expected) and by the response artifact.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from flow_helpers import wait_until
from prefect_openai_runs import JobCancelled, JobFailed, JobIncomplete, JobTimedOut, OpenAICredentials, ToolCallError
from prefect_openai_runs.exceptions import ResponseMayExistError
from prefect_openai_runs.flows import run_response
from prefect_openai_runs.models import ResponseStatus
from prefect_openai_runs.testing import FaultRule, ResponseScript, RunsEmulator, ToolCallSpec
from responses_helpers import assert_no_response_active, response_markdown, response_statuses, resume_window

pytestmark = pytest.mark.usefixtures("prefect_server")

NEVER = ResponseScript(outcome="never")
CREATE = r"^/v1/responses$"


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "poll"])
def test_completed_response_is_returned_with_its_artifact(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, stream: bool
) -> None:
    runs_emulator.add_response_script(
        ResponseScript(
            in_progress_seconds=0.2,
            output_text="The answer is 42.",
            usage=(30, 12),
            cached_tokens=7,
            reasoning_tokens=5,
        )
    )

    response = run_response(credentials, "gpt-5", "What is it?", instructions="Be brief.", stream=stream)

    assert response.status is ResponseStatus.COMPLETED and response.output_text == "The answer is 42."
    assert response_statuses(runs_emulator, response.id) == ["queued", "in_progress", "completed"]
    markdown = response_markdown(response.id)
    assert "**completed**" in markdown and "The answer is 42." in markdown
    assert "input 30, cached 7, output 12, reasoning 5, total **42**" in markdown
    assert "## Prompt" in markdown and "What is it?" in markdown and "of a 600 s deadline" in markdown
    assert "Whole flow run (every job it made, retries included)" in markdown
    seen = ("queued", "in_progress", "completed") if stream else ("queued", "completed")  # a poll skips a 0.2 s status
    assert all(f"| {status} |" in markdown for status in seen)
    polls = runs_emulator.request_count("GET", rf"^/v1/responses/{response.id}$")
    assert (polls == 0) if stream else (polls >= 1)
    assert runs_emulator.request_count("POST", CREATE) == 1


@pytest.mark.parametrize(
    ("script", "error", "words"),
    [
        (ResponseScript(outcome="failed", error_code="server_error", error_message="It broke"), JobFailed, "It broke"),
        (
            ResponseScript(outcome="incomplete", incomplete_reason="max_output_tokens"),
            JobIncomplete,
            "max_output_tokens",
        ),
    ],
)
def test_a_response_that_does_not_complete_raises_its_outcome(
    runs_emulator: RunsEmulator,
    credentials: OpenAICredentials,
    script: ResponseScript,
    error: type[Exception],
    words: str,
) -> None:
    runs_emulator.add_response_script(script)

    with pytest.raises(error) as caught:
        run_response(credentials, "gpt-5", "hi")

    assert words in str(caught.value) and words in response_markdown(caught.value.job.id)  # type: ignore[attr-defined]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "poll"])
def test_own_deadline_cancels_the_response(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, stream: bool
) -> None:
    runs_emulator.add_response_script(NEVER)

    with pytest.raises(JobTimedOut) as caught:
        run_response(credentials, "gpt-5", "hi", max_wait_seconds=0.5, stream=stream)

    assert caught.value.job.status is ResponseStatus.CANCELLED
    assert response_statuses(runs_emulator, caught.value.job.id)[-1] == "cancelled"
    assert "deadline" in response_markdown(caught.value.job.id)
    assert_no_response_active(runs_emulator)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "poll"])
def test_a_deadline_shorter_than_the_create_still_learns_and_cancels_the_response(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, stream: bool
) -> None:
    runs_emulator.add_response_script(NEVER)
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="hang", hang_seconds=0.3))

    with pytest.raises(JobTimedOut) as caught:
        run_response(credentials, "gpt-5", "hi", max_wait_seconds=0.05, stream=stream)

    [record] = runs_emulator.responses()
    assert caught.value.job.id == record.id and record.status == "cancelled"


def test_a_dropped_stream_is_resumed_after_the_last_event(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_response_script(ResponseScript(in_progress_seconds=0.3, output_text="resumed fine"))
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="cut_stream", after_events=3))

    response = run_response(credentials, "gpt-5", "hi")

    assert response.status is ResponseStatus.COMPLETED and response.output_text == "resumed fine"
    [resume] = [r for r in runs_emulator.requests if r.method == "GET"]
    assert "stream=true" in resume.query and "starting_after=2" in resume.query
    assert runs_emulator.request_count("POST", CREATE) == 1


def test_a_refused_resume_falls_back_to_polling(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_response_script(ResponseScript(in_progress_seconds=0.3))
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="cut_stream", after_events=2))

    with resume_window(runs_emulator, 0.0):
        response = run_response(credentials, "gpt-5", "hi")

    assert response.status is ResponseStatus.COMPLETED
    gets = [r for r in runs_emulator.requests if r.method == "GET"]
    assert gets[0].status == 400 and "stream=true" in gets[0].query
    assert any(r.status == 200 and "stream" not in r.query for r in gets[1:])


def test_a_response_that_completed_before_the_cancel_is_reported_completed(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_response_script(ResponseScript(in_progress_seconds=0.1, output_text="just in time"))

    response = run_response(credentials, "gpt-5", "hi", max_wait_seconds=0.6, stream=False)  # no poll before 0.6 s

    assert response.status is ResponseStatus.COMPLETED and response.output_text == "just in time"
    [cancel] = [r for r in runs_emulator.requests if r.path.endswith("/cancel")]
    assert cancel.status == 400
    assert "already ended completed" in response_markdown(response.id)


def test_a_response_seen_cancelled_is_read_again_and_its_completion_reported(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    # it completes after the cancel at 0.3 s (with room for a slow create) and before the read again 1 s later
    runs_emulator.add_response_script(ResponseScript(in_progress_seconds=0.9, ignore_cancel=True, output_text="anyway"))

    with pytest.raises(JobTimedOut) as caught:
        run_response(credentials, "gpt-5", "hi", max_wait_seconds=0.3)

    response = caught.value.job
    assert response.status is ResponseStatus.COMPLETED and response.output_text == "anyway"
    assert response_statuses(runs_emulator, response.id)[-2:] == ["cancelled", "completed"]
    assert "did not honour the cancel" in response_markdown(response.id)


def test_someone_else_cancelling_it_raises_cancelled(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_response_script(NEVER)
    raised: list[BaseException] = []

    def follow() -> None:
        try:
            run_response(credentials, "gpt-5", "hi", max_wait_seconds=20)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=follow)
    thread.start()
    record = wait_until(lambda: next(iter(runs_emulator.responses()), None))
    wait_until(lambda: runs_emulator.response(record.id).status == "in_progress")
    with credentials.get_responses_client() as client:
        client.cancel_response(record.id)
    thread.join(timeout=20)

    [error] = raised
    assert isinstance(error, JobCancelled) and error.job.id == record.id
    assert "**cancelled**" in response_markdown(record.id)


def test_flow_timeout_cancels_the_response(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_response_script(NEVER)
    timed = run_response.with_options(timeout_seconds=1)

    state = timed(credentials, "gpt-5", "hi", max_wait_seconds=60, return_state=True)

    assert state.is_failed()
    [record] = runs_emulator.responses()
    assert record.status == "cancelled"
    assert "flow timeout" in response_markdown(record.id)


def test_function_calls_round_trip(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_response_script(
        ResponseScript(
            output_text="",
            function_calls=[ToolCallSpec(name="get_weather", arguments='{"city": "Paris"}')],
            then=ResponseScript(output_text="It is sunny in Paris."),
        )
    )
    asked: list[str] = []

    def get_weather(city: str) -> dict[str, Any]:
        asked.append(city)
        return {"city": city, "forecast": "sunny"}

    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": False}]
    response = run_response(credentials, "gpt-5", "Weather?", tools=tools, tool_handlers={"get_weather": get_weather})

    assert asked == ["Paris"]
    assert response.output_text == "It is sunny in Paris."
    first, second = runs_emulator.responses()
    assert second.id == response.id and response.previous_response_id == first.id
    [output] = runs_emulator.requests[-1].body["input"] if runs_emulator.requests[-1].body else [None]
    assert output["type"] == "function_call_output" and "sunny" in output["output"]
    first_card = response_markdown(first.id)
    assert "## Tool calls" in first_card and "get_weather" in first_card and "sunny" in first_card
    assert "It is sunny in Paris." in response_markdown(second.id)
    assert_no_response_active(runs_emulator)


def test_a_failing_tool_handler_stops_before_any_follow_up(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_response_script(
        ResponseScript(output_text="", function_calls=[ToolCallSpec(name="lookup", arguments="{}")])
    )

    def lookup() -> str:
        raise RuntimeError("the warehouse is down")

    with pytest.raises(ToolCallError) as caught:
        run_response(credentials, "gpt-5", "hi", tool_handlers={"lookup": lookup})

    assert "the warehouse is down" in caught.value.reason and caught.value.function_name == "lookup"
    assert len(runs_emulator.responses()) == 1
    assert_no_response_active(runs_emulator)


def test_an_ambiguous_create_fails_naming_the_key_and_leaves_one_response(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="drop_after", times=1))

    with pytest.raises(ResponseMayExistError) as caught:
        run_response(credentials, "gpt-5", "hi")

    [record] = runs_emulator.responses()
    assert record.metadata["prefect_openai_runs_idempotency_key"] == caught.value.idempotency_key
    assert runs_emulator.request_count("POST", CREATE) == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"model": "", "input": "hi"}, "model"),
        ({"model": "gpt-5", "input": ""}, "input"),
        ({"model": "gpt-5", "input": "hi", "store": False}, "store"),
        ({"model": "gpt-5", "input": "hi", "temprature": 1}, "temprature"),
        ({"model": "gpt-5", "input": "hi", "background": False}, "background"),
    ],
)
def test_bad_input_fails_before_any_request(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        run_response(credentials, **arguments)

    assert runs_emulator.requests == []


def test_status_changes_emit_prefect_events(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, asserting_events_worker: Any
) -> None:
    from prefect.events.clients import AssertingEventsClient

    runs_emulator.add_response_script(ResponseScript(in_progress_seconds=0.1))
    response = run_response(credentials, "gpt-5", "hi")
    asserting_events_worker.drain()

    resource = f"openai.response.{response.id}"
    ours = [e for client in AssertingEventsClient.all for e in client.events if e.resource.id == resource]
    assert [e.event for e in ours] == [
        "openai.response.created",
        "openai.response.queued",
        "openai.response.in_progress",
        "openai.response.completed",
    ]
    assert all(any(r.role == "flow-run" for r in e.related) for e in ours)
    assert ours[-1].payload["status"] == "completed" and ours[-1].payload["usage"]["cached"] == 0
