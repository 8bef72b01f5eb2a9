"""Issue 11, hole 15: a stream the server stalls without closing it keeps neither its reader nor its connection.

An event stream's body has no read timeout (the follower's deadline bounds it), so on the synchronous side
the helper thread reading it sits in the socket for as long as the server sends nothing. When following
ends (the deadline, a flow timeout), that read is broken off at once: no ``openai-job-stream`` thread is
left, and the emulator sees the client hang up (the stalled request is recorded with status 499).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from emulator_helpers import fault_statuses
from flow_helpers import wait_until
from prefect_openai_runs import JobTimedOut, OpenAICredentials, RunTimedOut
from prefect_openai_runs.flows import run_assistant, run_response
from prefect_openai_runs.testing import FaultRule, ResponseScript, RunScript, RunsEmulator

pytestmark = pytest.mark.usefixtures("prefect_server")

LONG = RunScript(queued_seconds=0.01, in_progress_seconds=60.0)
RUN_CREATE = r"/runs$"
RESPONSE_CREATE = r"^/v1/responses$"
LET_GO_SECONDS = 2.0
"""How soon after following ends the reader and the connection must be gone."""


def _stall(emulator: RunsEmulator, path: str, after_events: int) -> None:
    emulator.add_fault(
        FaultRule(method="POST", path=path, kind="stall_stream", after_events=after_events, hang_seconds=60)
    )


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "openai-job-stream" and t.is_alive()]


def _assert_let_go(emulator: RunsEmulator) -> None:
    """No stream reader thread is left and the emulator saw the client hang up on the stalled stream."""
    wait_until(lambda: not _readers(), timeout=LET_GO_SECONDS)
    wait_until(lambda: fault_statuses(emulator, "stall_stream") == [499], timeout=LET_GO_SECONDS)


@pytest.mark.parametrize("after_events", [0, 2], ids=["before-the-run", "after-run-events"])
def test_a_stalled_run_stream_is_let_go_at_the_deadline(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, after_events: int
) -> None:
    runs_emulator.add_script(LONG)
    _stall(runs_emulator, RUN_CREATE, after_events)
    started = time.monotonic()

    with pytest.raises(RunTimedOut) as caught:
        run_assistant(
            credentials,
            runs_emulator.default_assistant_id,
            messages=["hi"],
            max_wait_seconds=1,
            cancel_wait_seconds=1,
            stream=True,
        )

    assert time.monotonic() - started < 5
    assert runs_emulator.run(caught.value.run.id).status == "cancelled"
    _assert_let_go(runs_emulator)


@pytest.mark.parametrize("after_events", [1, 2])
def test_a_stalled_response_stream_is_let_go_at_the_deadline_and_not_resumed(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, after_events: int
) -> None:
    runs_emulator.add_response_script(ResponseScript(outcome="never"))
    _stall(runs_emulator, RESPONSE_CREATE, after_events)
    started = time.monotonic()

    with pytest.raises(JobTimedOut) as caught:
        run_response(credentials, "gpt-5", "hi", max_wait_seconds=1, cancel_wait_seconds=1, stream=True)

    assert time.monotonic() - started < 5
    [record] = runs_emulator.responses()
    assert caught.value.job.id == record.id and record.status == "cancelled"
    _assert_let_go(runs_emulator)
    assert not [r for r in runs_emulator.requests if "stream=true" in r.query]  # the broken-off stream is not resumed


@pytest.mark.parametrize("after_events", [0, 2], ids=["before-the-run", "after-run-events"])
def test_a_stalled_stream_is_let_go_when_the_flow_times_out(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, after_events: int
) -> None:
    runs_emulator.add_script(LONG)
    _stall(runs_emulator, RUN_CREATE, after_events)
    timed = run_assistant.with_options(timeout_seconds=1)

    state: Any = timed(  # a State: return_state is not in the flow's signature
        credentials,
        runs_emulator.default_assistant_id,
        messages=["hi"],
        max_wait_seconds=60,
        stream=True,
        return_state=True,
    )

    assert state.is_failed()
    [record] = runs_emulator.runs()
    assert record.status == "cancelled"
    _assert_let_go(runs_emulator)
