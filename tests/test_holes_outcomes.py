"""Issue 11, holes 7, 9, 10, 11, 13 and part of 15: outcomes are honest on every path.

``requires_action`` in a fan-out is what it is; the job block cancels like the flows; tool arguments
reach their handler unchanged, under the deadline; a run that ends just before the deadline is
reported as it ended; a lost answer to a needless cancel is not "not honoured"; ``cancel_wait_seconds=0``
sends the cancel and does not wait; a flow run off the main thread is interruptible; a stream that
never ends does not keep its reader thread.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from typing import Any

import pytest
from prefect import flow

from emulator_helpers import wait_for
from flow_helpers import final_markdown, wait_until
from prefect_openai_runs import (
    OpenAIAssistantRun,
    OpenAICredentials,
    RunExpired,
    RunFailed,
    RunIncomplete,
    RunStatus,
    RunTimedOut,
    ToolCallError,
)
from prefect_openai_runs._lifecycle._kinds import JobRef
from prefect_openai_runs._lifecycle._outcome import CancelOutcome, cancel_reason, describe_cancel
from prefect_openai_runs._lifecycle._run_kind import RUN
from prefect_openai_runs._lifecycle._sync._driver import cancel_job
from prefect_openai_runs._lifecycle._sync._runs import RunsApi
from prefect_openai_runs.client import AsyncRunsClient
from prefect_openai_runs.exceptions import AuthenticationError
from prefect_openai_runs.flows import run_assistant
from prefect_openai_runs.models import CreateRunParams
from prefect_openai_runs.tasks import create_thread_and_run, wait_for_runs
from prefect_openai_runs.testing import FaultRule, RunScript, RunsEmulator, ToolCallSpec

pytestmark = pytest.mark.usefixtures("prefect_server")

LONG = RunScript(queued_seconds=0.01, in_progress_seconds=60.0)


def _interruptible_sleep(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.02)


# -- hole 7 -----------------------------------------------------------------------------------------------


def test_requires_action_in_wait_for_runs_is_reported_and_siblings_run_on(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_script(RunScript(in_progress_seconds=1.5))
    runs_emulator.add_script(RunScript(outcome="requires_action"), match=lambda c: c.last_user_message == "job 0")

    @flow
    def pipeline() -> list[Any]:
        runs = [create_thread_and_run(credentials, runs_emulator.default_assistant_id, [f"job {i}"]) for i in range(3)]
        return wait_for_runs(credentials, runs, max_wait_seconds=60, fail_fast=False)

    with pytest.raises(ToolCallError) as caught:
        pipeline()

    assert "tool outputs" in str(caught.value) and "deadline" not in str(caught.value)
    needing, *siblings = runs_emulator.runs()
    assert needing.status == "cancelled"
    assert [s.status for s in siblings] == ["completed", "completed"]
    assert "deadline" not in final_markdown(needing.id)


# -- hole 9 -----------------------------------------------------------------------------------------------


def _job(emulator: RunsEmulator, credentials: OpenAICredentials) -> OpenAIAssistantRun:
    return OpenAIAssistantRun(
        credentials=credentials, assistant_id=emulator.default_assistant_id, messages=["hi"], max_wait_seconds=60
    )


def test_the_job_block_cancels_on_a_flow_timeout(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_script(LONG)

    @flow(timeout_seconds=1)
    async def pipeline() -> None:
        job_run = await _job(runs_emulator, credentials).trigger()
        try:
            await job_run.wait_for_completion()
        finally:
            await job_run.close()

    state = asyncio.run(pipeline(return_state=True))  # type: ignore[call-overload]

    assert state.is_failed()
    [record] = runs_emulator.runs()
    assert record.status == "cancelled"
    assert "timeout" in final_markdown(record.id)


def test_the_job_block_cancels_on_a_cancellation(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_script(LONG)

    @flow
    async def pipeline() -> None:
        job_run = await _job(runs_emulator, credentials).trigger()
        waiting = asyncio.ensure_future(job_run.wait_for_completion())
        while not runs_emulator.request_count("GET", rf"/runs/{job_run.run.id}$"):  # it is being followed
            await asyncio.sleep(0.02)
        waiting.cancel()
        try:
            await waiting
        finally:
            await job_run.close()

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(pipeline())

    [record] = runs_emulator.runs()
    assert record.status == "cancelled"
    assert "cancellation" in final_markdown(record.id)


def test_the_job_block_closes_its_client_when_the_create_fails(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/threads/[^/]+/runs$", status=401))

    def open_clients() -> int:
        gc.collect()
        return sum(1 for c in gc.get_objects() if isinstance(c, AsyncRunsClient) and not c._http.is_closed)

    before = open_clients()

    @flow
    async def pipeline() -> None:
        await _job(runs_emulator, credentials).trigger()

    with pytest.raises(AuthenticationError):
        asyncio.run(pipeline())

    assert open_clients() <= before


# -- hole 10 ----------------------------------------------------------------------------------------------


def _tool_run(arguments: str) -> RunScript:
    return RunScript(
        outcome="requires_action", tool_calls=[ToolCallSpec(name="lookup", arguments=arguments)], then=RunScript()
    )


@pytest.mark.parametrize("as_task", [False, True], ids=["function", "task"])
def test_tool_arguments_named_like_prefect_options_reach_the_handler(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, as_task: bool
) -> None:
    from prefect import task

    runs_emulator.add_script(_tool_run('{"return_state": true, "wait_for": 3, "timeout_seconds": 1}'))
    seen: list[dict[str, Any]] = []

    def lookup(**arguments: Any) -> str:
        seen.append(arguments)
        return "looked up"

    handler = task(name="my lookup")(lookup) if as_task else lookup
    run = run_assistant(
        credentials, runs_emulator.default_assistant_id, messages=["hi"], tool_handlers={"lookup": handler}
    )

    assert run.status is RunStatus.COMPLETED
    assert seen == [{"return_state": True, "wait_for": 3, "timeout_seconds": 1}]
    [call] = [r for r in runs_emulator.requests if r.path.endswith("/submit_tool_outputs")]
    assert call.body is not None and call.body["tool_outputs"][0]["output"] == "looked up"


def test_a_tool_handler_gets_the_remaining_deadline(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_script(_tool_run("{}"))

    def lookup() -> str:
        _interruptible_sleep(30)
        return "too late"

    started = time.monotonic()
    with pytest.raises((ToolCallError, RunTimedOut)):
        run_assistant(
            credentials,
            runs_emulator.default_assistant_id,
            messages=["hi"],
            max_wait_seconds=3,
            tool_handlers={"lookup": lookup},
            stream=False,
        )

    assert time.monotonic() - started < 15
    [record] = runs_emulator.runs()
    assert record.status == "cancelled"


# -- hole 11 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "error"),
    [
        (RunScript(in_progress_seconds=0.5, outcome="failed"), RunFailed),
        (RunScript(in_progress_seconds=0.5, outcome="incomplete"), RunIncomplete),
        (RunScript(outcome="never"), RunExpired),
    ],
    ids=["failed", "incomplete", "expired"],
)
def test_a_run_that_ends_just_before_the_deadline_raises_what_it_did(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, script: RunScript, error: type[Exception]
) -> None:
    runs_emulator.add_script(script)
    if script.outcome == "never":
        runs_emulator.expires_after = 0.5
    runs_emulator.poll_after_ms = 10_000  # the last poll before the deadline saw it in progress

    with pytest.raises(error):
        run_assistant(
            credentials, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=2, stream=False
        )


def test_wait_for_runs_returns_a_run_the_cancel_found_completed(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_script(RunScript(in_progress_seconds=0.5))
    runs_emulator.poll_after_ms = 10_000

    @flow
    def pipeline() -> list[Any]:
        run = create_thread_and_run(credentials, runs_emulator.default_assistant_id, ["hi"])
        return wait_for_runs(credentials, [run], max_wait_seconds=2)

    [run] = pipeline()

    assert run.status is RunStatus.COMPLETED


def test_a_lost_answer_to_a_needless_cancel_is_not_called_not_honoured(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    with credentials.get_client() as client:
        thread = client.create_thread()
        run = client.create_run(thread.id, CreateRunParams(assistant_id=runs_emulator.default_assistant_id))
        wait_until(lambda: runs_emulator.run(run.id).status == "completed")
        ended = runs_emulator.run(run.id).terminal_at or 0.0
        wait_until(lambda: time.time() > ended + 3)  # seconds-resolution timestamps tell "before the cancel"
        # The cancel (sent on a stale view of the run) gets no answer: was it applied? The run says no.
        runs_emulator.add_fault(FaultRule(method="POST", path=r"/cancel$", kind="drop_before", times=1))

        result = cancel_job(RunsApi(client), JobRef(RUN.name, run.id, run.thread_id), 1.0)

    assert runs_emulator.request_count("POST", r"/cancel$") >= 1
    assert result.outcome is CancelOutcome.ALREADY_ENDED
    assert "did not honour" not in describe_cancel(RUN, result)


def test_a_socket_timeout_is_not_called_a_flow_timeout() -> None:
    @flow(timeout_seconds=60)
    def pipeline() -> str:
        return cancel_reason(TimeoutError("timed out"))

    assert "flow timeout" not in pipeline()


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "poll"])
def test_a_run_expiring_while_its_tool_runs_ends_the_same_in_both_modes(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, stream: bool
) -> None:
    runs_emulator.expires_after = 1.0
    runs_emulator.add_script(_tool_run("{}"))

    def lookup() -> str:
        wait_for(lambda: runs_emulator.runs()[0].status == "expired", timeout=10)
        return "too late"

    with pytest.raises(RunExpired):
        run_assistant(
            credentials,
            runs_emulator.default_assistant_id,
            messages=["hi"],
            max_wait_seconds=20,
            tool_handlers={"lookup": lookup},
            stream=stream,
        )


# -- hole 13 ----------------------------------------------------------------------------------------------


def test_cancel_wait_zero_sends_the_cancel_and_does_not_wait(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_script(LONG)
    runs_emulator.cancelling_delay = 30.0  # waiting for the cancel would show

    started = time.monotonic()
    with pytest.raises(RunTimedOut) as caught:
        run_assistant(
            credentials, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=1, cancel_wait_seconds=0
        )

    assert time.monotonic() - started < 10
    run = caught.value.run
    assert runs_emulator.run(run.id).status == "cancelling"
    assert "not waited for" in final_markdown(run.id)


# -- hole 15 ----------------------------------------------------------------------------------------------


def test_a_flow_off_the_main_thread_is_interrupted_by_its_timeout(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_script(LONG)
    states: list[Any] = []
    timed = run_assistant.with_options(timeout_seconds=1)

    def in_a_thread() -> None:
        states.append(
            timed(
                credentials,
                runs_emulator.default_assistant_id,
                messages=["hi"],
                max_wait_seconds=60,
                stream=False,
                return_state=True,
            )
        )

    worker = threading.Thread(target=in_a_thread)
    worker.start()
    worker.join(20)

    assert not worker.is_alive() and states[0].is_failed()
    [record] = runs_emulator.runs()
    assert record.status == "cancelled"


def test_a_stream_that_never_ends_does_not_keep_its_reader(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_script(RunScript(in_progress_seconds=60, ignore_cancel=True))

    with pytest.raises(RunTimedOut):
        run_assistant(
            credentials,
            runs_emulator.default_assistant_id,
            messages=["hi"],
            max_wait_seconds=1,
            cancel_wait_seconds=1,
            stream=True,
        )

    wait_until(lambda: not [t for t in threading.enumerate() if t.name == "openai-job-stream"], timeout=5)
