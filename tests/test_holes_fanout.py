"""Issue 11, hole 4: the fan-out's creation is concurrent, bounded and guarded.

When a create fails part way (a refused key, a ``retry-after`` longer than allowed), no further create
starts, the runs already created are cancelled and the error goes on.
"""

from __future__ import annotations

import random
import time
from typing import Any

import pytest
from prefect import flow
from prefect.context import get_run_context

from emulator_helpers import fault_statuses, wait_for
from flow_helpers import assert_nothing_active
from prefect_openai_runs import OpenAICredentials, RunStatus
from prefect_openai_runs._recording import RunRef, flush
from prefect_openai_runs.exceptions import AuthenticationError, RetryAfterTooLongError
from prefect_openai_runs.flows import run_assistant_fan_out
from prefect_openai_runs.guard import cancel_runs
from prefect_openai_runs.tasks import create_threads_and_runs
from prefect_openai_runs.testing import FaultRule, RunScript, RunsEmulator

pytestmark = pytest.mark.usefixtures("prefect_server")

CREATE = r"^/v1/threads/[^/]+/runs$"


def _seed_hitting_only(nth: int, probability: float = 0.5) -> int:
    """A seed whose draws spare the matching requests before the ``nth`` and hit the ``nth``."""
    for seed in range(1000):
        draws = random.Random(seed)
        if [draws.random() < probability for _ in range(nth)] == [False] * (nth - 1) + [True]:
            return seed
    raise AssertionError("no seed found")


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (FaultRule(status=401), AuthenticationError),
        (FaultRule(status=429, headers={"retry-after": "120"}), RetryAfterTooLongError),
    ],
    ids=["401", "retry-after-too-long"],
)
def test_a_failing_create_cancels_the_runs_already_created(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, fault: FaultRule, error: type[Exception]
) -> None:
    runs_emulator.add_script(RunScript(in_progress_seconds=60))
    seed = _seed_hitting_only(3)
    runs_emulator.add_fault(
        FaultRule(method="POST", path=CREATE, status=fault.status, headers=fault.headers, probability=0.5, seed=seed)
    )

    with pytest.raises(error):
        run_assistant_fan_out(
            credentials, runs_emulator.default_assistant_id, [f"prompt {i}" for i in range(5)], concurrency=1
        )

    records = runs_emulator.runs()
    assert len(records) == 2  # the third create failed; none was started after it
    assert [r.status for r in records] == ["cancelled", "cancelled"]
    assert_nothing_active(runs_emulator)


def test_an_interrupted_fan_out_also_cancels_the_run_whose_create_was_in_flight(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    """The flow's timeout strikes while the second create hangs: that create goes on in Prefect's event
    loop and makes its run after the task has cancelled the first (it was left in progress)."""
    runs_emulator.add_script(RunScript(in_progress_seconds=60))
    runs_emulator.add_fault(
        FaultRule(method="POST", path=CREATE, kind="hang", hang_seconds=3, probability=0.5, seed=_seed_hitting_only(2))
    )

    @flow(timeout_seconds=1.5)
    def pipeline() -> None:
        create_threads_and_runs(credentials, runs_emulator.default_assistant_id, ["a", "b", "c", "d"], concurrency=1)

    with pytest.raises(TimeoutError):
        pipeline()
    wait_for(lambda: fault_statuses(runs_emulator, "hang"), timeout=10)  # the hung create has ended

    records = runs_emulator.runs()
    assert len(records) == 2  # the second create was the last to start
    assert [r.status for r in records] == ["cancelled", "cancelled"]
    assert_nothing_active(runs_emulator)


def test_runs_created_together_each_emit_their_created_event(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, asserting_events_worker: Any
) -> None:
    """Runs a fan-out creates (and nobody follows yet) are announced like a single create's (they were not)."""
    from prefect.events.clients import AssertingEventsClient

    runs_emulator.add_script(RunScript(in_progress_seconds=60))

    @flow
    def pipeline() -> tuple[list[str], str]:
        runs = create_threads_and_runs(credentials, runs_emulator.default_assistant_id, ["a", "b", "c"], concurrency=2)
        return [run.id for run in runs], str(get_run_context().flow_run.id)  # type: ignore[union-attr]

    ids, flow_run_id = pipeline()
    asserting_events_worker.drain()

    created = [  # this flow run's only: the worker's clients also hold what earlier tests emitted late
        e.resource.id
        for client in AssertingEventsClient.all
        for e in client.events
        if e.event == "openai.run.created" and any(r.id == f"prefect.flow-run.{flow_run_id}" for r in e.related)
    ]
    assert sorted(created) == sorted(f"openai.run.{i}" for i in ids)
    cancel_runs(credentials, [RunRef(r.thread_id, r.id) for r in runs_emulator.runs()], "test over")


def test_bad_input_fails_before_any_request(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    @flow
    def pipeline() -> Any:
        return create_threads_and_runs(credentials, runs_emulator.default_assistant_id, ["a", {"role": "nobody"}])

    with pytest.raises(ValueError):
        pipeline()

    assert runs_emulator.requests == []


def test_200_runs_are_created_concurrently(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    prompts = [f"prompt {i}" for i in range(200)]

    @flow
    def pipeline() -> Any:
        started = time.monotonic()
        runs = create_threads_and_runs(credentials, runs_emulator.default_assistant_id, prompts)
        print(f"created {len(runs)} runs in {time.monotonic() - started:.2f}s")
        assert flush(30)  # the run cards were queued, not waited for, by the creates
        return runs

    runs = pipeline()

    assert len(runs) == 200 and len({r.thread_id for r in runs}) == 200
    assert all(r.status is not RunStatus.CANCELLED for r in runs)
    assert len(runs_emulator.runs()) == 200
    first = runs_emulator.run(runs[7].id)
    assert first.thread_id == runs[7].thread_id
    with credentials.get_client() as client:
        assert [m.text for m in client.list_messages(runs[7].thread_id) if m.role == "user"] == ["prompt 7"]
