"""Audit of issue 13 (background responses): the holes found after it was built, each proven closed over
real HTTP against the emulator.

Tool handlers are bounded by the deadline and get the model's arguments as one dict; a response someone
else cancelled is read once more; a response that disappears (404) ends the flow with ``JobGone``; a
stream closed without its terminal event is resumed; a stalled stream is read while it is silent; no
request carries the Assistants beta header; any 400 to a cancel means the response cannot be cancelled.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from emulator_helpers import fault_statuses
from flow_helpers import wait_until
from prefect_openai_runs import JobGone, JobTimedOut, OpenAICredentials, ToolCallError
from prefect_openai_runs._lifecycle._sync import _driver
from prefect_openai_runs.flows import run_response
from prefect_openai_runs.models import Response, ResponseStatus
from prefect_openai_runs.testing import FaultRule, ResponseScript, RunsEmulator, ToolCallSpec
from responses_helpers import assert_no_response_active, response_markdown, response_statuses

pytestmark = pytest.mark.usefixtures("prefect_server")

NEVER = ResponseScript(outcome="never")
CREATE = r"^/v1/responses$"
MARGIN_SECONDS = 4.0
"""How far past its deadline a flow may end (the tool task's teardown, the records on a loaded Prefect
server); far below the slow handler's 20 s."""


def _calls(name: str, arguments: str) -> ResponseScript:
    return ResponseScript(
        output_text="",
        function_calls=[ToolCallSpec(name=name, arguments=arguments)],
        then=ResponseScript(output_text="answered"),
    )


def _in_background(follow: Callable[[], Response]) -> tuple[threading.Thread, list[Response | BaseException]]:
    """Run ``follow`` in a thread; what it returns or raises is collected."""
    ended: list[Response | BaseException] = []

    def target() -> None:
        try:
            ended.append(follow())
        except BaseException as exc:
            ended.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, ended


def _first_response_in_progress(emulator: RunsEmulator) -> str:
    record = wait_until(lambda: next(iter(emulator.responses()), None))
    wait_until(lambda: emulator.response(record.id).status == "in_progress")
    return str(record.id)


# -- 1. tool handlers ---------------------------------------------------------------------------------


def test_a_slow_tool_handler_is_stopped_at_the_deadline(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_response_script(_calls("slow", "{}"))
    stop = threading.Event()

    finished: list[bool] = []
    started: list[float] = []

    def slow() -> str:  # busy in Python (interruptible), as a real handler's work is
        started.append(time.monotonic())
        end = started[0] + 20
        while time.monotonic() < end and not stop.wait(0.02):
            pass
        finished.append(True)
        return "too late"

    with pytest.raises(JobTimedOut) as caught:
        run_response(credentials, "gpt-5", "hi", max_wait_seconds=2, tool_handlers={"slow": slow})
    stop.set()

    # The handler started before the deadline: it was stopped, not waited for.
    assert time.monotonic() - started[0] < 2 + MARGIN_SECONDS and finished == []
    assert "tool handlers" in caught.value.reason
    assert len(runs_emulator.responses()) == 1  # no follow-up was sent
    assert_no_response_active(runs_emulator)


def test_an_argument_named_like_a_prefect_option_reaches_the_handler(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_response_script(_calls("lookup", '{"return_state": true, "wait_for": "x"}'))
    seen: list[tuple[Any, Any]] = []

    def lookup(return_state: bool, wait_for: str) -> str:
        seen.append((return_state, wait_for))
        return "found"

    response = run_response(credentials, "gpt-5", "hi", tool_handlers={"lookup": lookup})

    assert seen == [(True, "x")]
    assert response.output_text == "answered"


def test_arguments_that_are_not_an_object_are_a_tool_call_error(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_response_script(_calls("lookup", "[1, 2]"))
    called: list[Any] = []

    with pytest.raises(ToolCallError) as caught:
        run_response(credentials, "gpt-5", "hi", tool_handlers={"lookup": lambda *a, **k: called.append(a)})

    assert "not a JSON object" in caught.value.reason and caught.value.function_name == "lookup"
    assert called == [] and len(runs_emulator.responses()) == 1


# -- 2. a response someone else cancelled --------------------------------------------------------------


def test_a_response_cancelled_by_someone_else_is_read_again(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_response_script(ResponseScript(in_progress_seconds=0.6, ignore_cancel=True, output_text="anyway"))
    # Streamed, the cancel is seen at once (its stream closes): the completion 0.6 s later comes before
    # the read again, 1 s later.
    thread, ended = _in_background(lambda: run_response(credentials, "gpt-5", "hi", max_wait_seconds=20))
    response_id = _first_response_in_progress(runs_emulator)
    with credentials.get_responses_client() as client:
        client.cancel_response(response_id)
    thread.join(timeout=20)

    [response] = ended
    assert isinstance(response, Response), response
    assert response.status is ResponseStatus.COMPLETED and response.output_text == "anyway"
    assert response_statuses(runs_emulator, response_id)[-2:] == ["cancelled", "completed"]
    assert "**completed**" in response_markdown(response_id)


# -- 3. a response that disappears ----------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "poll"])
def test_a_deleted_response_ends_the_flow_with_job_gone(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, stream: bool
) -> None:
    runs_emulator.add_response_script(NEVER)
    thread, ended = _in_background(lambda: run_response(credentials, "gpt-5", "hi", max_wait_seconds=20, stream=stream))
    response_id = _first_response_in_progress(runs_emulator)
    with credentials.get_responses_client() as client:
        client.delete_response(response_id)
    thread.join(timeout=20)

    [error] = ended
    assert isinstance(error, JobGone) and error.job.id == response_id
    assert error.job.status in {ResponseStatus.QUEUED, ResponseStatus.IN_PROGRESS}  # the last known state
    assert "no longer exists (deleted or past retention)" in error.reason
    assert "no longer exists (deleted or past retention)" in response_markdown(response_id)


def test_a_response_gone_before_its_cancel_ends_with_job_gone(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_response_script(NEVER)
    runs_emulator.add_fault(FaultRule(method="POST", path=r"/cancel$", kind="status", status=404, times=1))

    with pytest.raises(JobGone) as caught:
        run_response(credentials, "gpt-5", "hi", max_wait_seconds=0.5)

    assert "deadline" in caught.value.reason and "no longer exists" in caught.value.reason
    assert "no longer exists" in response_markdown(caught.value.job.id)


# -- 4. a stream the server ends early --------------------------------------------------------------------


def test_a_stream_ended_before_its_terminal_event_is_resumed_not_polled(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_response_script(ResponseScript(in_progress_seconds=0.4, output_text="resumed fine"))
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="end_stream", after_events=2))

    response = run_response(credentials, "gpt-5", "hi")

    assert response.status is ResponseStatus.COMPLETED and response.output_text == "resumed fine"
    gets = [r for r in runs_emulator.requests if r.method == "GET"]
    assert gets and all("stream=true" in r.query for r in gets)  # no poll
    assert "starting_after=1" in gets[0].query


# -- 5. an event without its sequence number ------------------------------------------------------------------


def test_a_created_event_without_sequence_number_still_names_the_response(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    created = {
        "type": "response.created",
        "response": {"id": "resp_unnumbered", "object": "response", "created_at": 1_700_000_000, "status": "queued"},
    }
    body = f"event: response.created\ndata: {json.dumps(created)}\n\n"
    runs_emulator.add_fault(
        FaultRule(method="POST", path=CREATE, status=200, headers={"content-type": "text/event-stream"}, raw_body=body)
    )

    with pytest.raises(JobGone) as caught:  # the emulator never created it: it is unknown to every read
        run_response(credentials, "gpt-5", "hi", max_wait_seconds=5)

    assert caught.value.job.id == "resp_unnumbered"
    assert any("resp_unnumbered" in r.path for r in runs_emulator.requests)


# -- 6. no Assistants beta header --------------------------------------------------------------------------


def test_no_responses_request_carries_the_assistants_beta_header(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_response_script(NEVER)

    with pytest.raises(JobTimedOut):
        run_response(credentials, "gpt-5", "hi", max_wait_seconds=0.5)

    methods = {(r.method, r.path.rsplit("/", 1)[-1] == "cancel") for r in runs_emulator.requests}
    assert ("POST", True) in methods and ("POST", False) in methods  # the create and the cancel at least
    assert [r.headers.get("openai-beta") for r in runs_emulator.requests] == [None] * len(runs_emulator.requests)


# -- 8. a stalled stream ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("in_progress_seconds", "resumed"), [(1.5, True), (0.1, False)], ids=["still-active", "ended-meanwhile"]
)
def test_a_silent_stream_is_noticed_and_the_response_read(
    runs_emulator: RunsEmulator,
    credentials: OpenAICredentials,
    monkeypatch: pytest.MonkeyPatch,
    in_progress_seconds: float,
    resumed: bool,
) -> None:
    monkeypatch.setattr(_driver, "STALL_SECONDS", 0.5)
    runs_emulator.add_response_script(ResponseScript(in_progress_seconds=in_progress_seconds, output_text="heard"))
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="stall_stream", after_events=2, hang_seconds=60))
    started = time.monotonic()

    response = run_response(credentials, "gpt-5", "hi", max_wait_seconds=30)

    assert response.status is ResponseStatus.COMPLETED and response.output_text == "heard"
    assert time.monotonic() - started < 15  # not at the 30 s deadline
    gets = [r for r in runs_emulator.requests if r.method == "GET"]
    assert any("stream" not in r.query for r in gets)  # read once it went silent
    assert any("starting_after=1" in r.query for r in gets) is resumed
    wait_until(lambda: fault_statuses(runs_emulator, "stall_stream") == [499])  # the silent stream let go


# -- 7. any 400 to a cancel ------------------------------------------------------------------------------------


def test_any_400_to_a_cancel_means_not_cancellable_and_the_status_is_read(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_response_script(ResponseScript(in_progress_seconds=0.1, output_text="just in time"))
    runs_emulator.add_fault(FaultRule(method="POST", path=r"/cancel$", kind="status", status=400, times=1))

    response = run_response(credentials, "gpt-5", "hi", max_wait_seconds=0.6, stream=False)

    assert response.status is ResponseStatus.COMPLETED and response.output_text == "just in time"
    [cancel] = [r for r in runs_emulator.requests if r.path.endswith("/cancel")]
    assert cancel.status == 400
    assert "already ended completed" in response_markdown(response.id)
