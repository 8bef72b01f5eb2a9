"""Issue 11, hole 1: the deadline covers everything, from the moment following starts.

Not the create, not a stream held back by a buffering proxy (a real proxy process on loopback), not a
stream that stalls after its headers, not a ``retry-after`` sleep, not a hung request: each ends at
``max_wait_seconds`` plus the cancel, with the run cancelled.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flow_helpers import assert_nothing_active
from prefect_openai_runs import OpenAICredentials, RunStatus, RunTimedOut
from prefect_openai_runs.exceptions import OpenAIRunsError
from prefect_openai_runs.flows import run_assistant
from prefect_openai_runs.testing import FaultRule, RunScript, RunsEmulator

pytestmark = pytest.mark.usefixtures("prefect_server")

LONG = RunScript(queued_seconds=0.01, in_progress_seconds=60.0)
DEADLINE = 2.0
SLACK = 2.0
"""What ending "at the deadline" may take beyond it: the cancel (the emulator cancels in 50 ms) and the flow."""
CREATE = r"^/v1/threads/[^/]+/runs$"
RUN = r"^/v1/threads/[^/]+/runs/run_[^/]+$"


def _start_proxy(origin: str, *options: str) -> tuple[subprocess.Popen[str], str]:
    script = Path(__file__).with_name("buffering_proxy.py")
    process = subprocess.Popen([sys.executable, str(script), origin, *options], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}/v1"


@pytest.fixture(params=[(), ("--headers-first",)], ids=["buffered", "stalls-after-headers"])
def proxied(request: pytest.FixtureRequest, runs_emulator: RunsEmulator) -> Iterator[OpenAICredentials]:
    """Credentials whose requests go through a proxy that holds event streams back until they end."""
    process, base_url = _start_proxy(runs_emulator.base_url.removesuffix("/v1"), *request.param)
    try:
        yield OpenAICredentials(api_key=runs_emulator.api_key, base_url=base_url, timeout=5.0)
    finally:
        process.terminate()
        process.wait(10)


def _since_create(emulator: RunsEmulator) -> float:
    """Seconds since the first create-run request reached the emulator (following starts there: the
    flow run's own start-up is not the library's time)."""
    first = min(r.at for r in emulator.requests if r.method == "POST" and re.search(CREATE, r.path))
    return time.time() - first


def _cancelled_at_deadline(emulator: RunsEmulator, run_assistant_call: Callable[[], object]) -> None:
    with pytest.raises(RunTimedOut) as caught:
        run_assistant_call()
    elapsed = _since_create(emulator)
    assert elapsed < DEADLINE + SLACK, f"ended {elapsed:.1f}s after the create with a {DEADLINE}s deadline"
    run = caught.value.run
    assert run.status is RunStatus.CANCELLED
    assert emulator.run(run.id).status == "cancelled"
    assert emulator.request_count("POST", rf"/runs/{run.id}/cancel$") >= 1
    assert_nothing_active(emulator)


def test_a_proxy_that_holds_the_stream_back_does_not_hold_the_deadline(
    runs_emulator: RunsEmulator, proxied: OpenAICredentials
) -> None:
    runs_emulator.add_script(LONG)

    _cancelled_at_deadline(
        runs_emulator,
        lambda: run_assistant(
            proxied, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=DEADLINE, stream=True
        ),
    )


def test_a_long_retry_after_on_a_poll_does_not_hold_the_deadline(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_script(LONG)
    runs_emulator.add_fault(FaultRule(method="GET", path=RUN, status=429, headers={"retry-after": "8"}, times=1))

    _cancelled_at_deadline(
        runs_emulator,
        lambda: run_assistant(
            credentials, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=DEADLINE, stream=False
        ),
    )
    assert runs_emulator.request_count("GET", RUN) >= 1


def test_a_long_retry_after_on_the_create_does_not_hold_the_deadline(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, status=429, headers={"retry-after": "8"}, times=1))

    with pytest.raises(OpenAIRunsError):
        run_assistant(
            credentials, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=DEADLINE, stream=False
        )

    assert _since_create(runs_emulator) < DEADLINE + SLACK
    assert_nothing_active(runs_emulator)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "poll"])
def test_a_hung_create_ends_at_the_deadline(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, stream: bool
) -> None:
    runs_emulator.add_script(LONG)
    runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="hang", hang_seconds=30, times=1))

    # Whether the hung create left a run (then cancelled: RunTimedOut) or not (the timeout is raised).
    with pytest.raises(OpenAIRunsError):
        run_assistant(
            credentials, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=DEADLINE, stream=stream
        )

    elapsed = _since_create(runs_emulator)
    assert elapsed < DEADLINE + SLACK, f"ended {elapsed:.1f}s after the create with a {DEADLINE}s deadline"
    assert_nothing_active(runs_emulator)


@pytest.mark.parametrize(
    "fault",
    [
        FaultRule(method="POST", path=r"^/v1/threads$", kind="hang", hang_seconds=15, times=1),
        FaultRule(method="POST", path=r"^/v1/threads$", status=429, headers={"retry-after": "8"}, times=1),
    ],
    ids=["hung", "retry-after"],
)
def test_the_thread_create_is_under_the_deadline_too(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, fault: FaultRule
) -> None:
    """``run_assistant`` creates its thread first: that request and its retries count against the same
    ``max_wait_seconds`` (a hung one held the flow 15 s past a 2 s deadline, then ran the assistant)."""
    runs_emulator.add_script(LONG)
    runs_emulator.add_fault(fault)

    with pytest.raises(OpenAIRunsError):
        run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=DEADLINE)

    # from the thread's create (the flow run's own start-up is not the library's time)
    first = min(r.at for r in runs_emulator.requests if r.method == "POST" and r.path == "/v1/threads")
    elapsed = time.time() - first
    assert elapsed < DEADLINE + SLACK, f"ended {elapsed:.1f}s after the thread's create with a {DEADLINE}s deadline"
    assert_nothing_active(runs_emulator)


def test_a_hung_poll_ends_at_the_deadline_and_the_run_is_cancelled(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_script(LONG)
    runs_emulator.add_fault(FaultRule(method="GET", path=RUN, kind="hang", hang_seconds=30, times=1))

    _cancelled_at_deadline(
        runs_emulator,
        lambda: run_assistant(
            credentials, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=DEADLINE, stream=False
        ),
    )
