"""The polling schedule and the follower's deadline: the pure logic, then the waits seen over real HTTP."""

from __future__ import annotations

import itertools
import time

import pytest

from lifecycle_helpers import RunFollower, follow_async, follow_sync
from prefect_openai_runs import AsyncRunsClient, PollSchedule, RunsClient
from prefect_openai_runs._lifecycle._batch_kind import BATCH, BATCH_SCHEDULE
from prefect_openai_runs._lifecycle._follower import MIN_HINT_SECONDS, JobFollower
from prefect_openai_runs._lifecycle._sync._batches import BatchesApi
from prefect_openai_runs._lifecycle._sync._driver import follow
from prefect_openai_runs.client import BatchesClient
from prefect_openai_runs.exceptions import RunTimedOut
from prefect_openai_runs.models import Batch, RunStatus
from prefect_openai_runs.testing import BatchScript, RunScript, RunsEmulator


def test_default_schedule_is_steady_then_grows_to_the_cap() -> None:
    schedule = PollSchedule()
    waits = [schedule.delay(n) for n in range(1, 25)]

    assert waits[:10] == [0.9] * 10
    assert waits[10:13] == pytest.approx([0.9 * 1.25, 0.9 * 1.25**2, 0.9 * 1.25**3])
    assert all(b >= a for a, b in itertools.pairwise(waits))
    assert max(waits) == 5.0
    assert waits[-1] == 5.0


def test_server_hint_wins_over_the_schedule() -> None:
    schedule = PollSchedule()
    assert schedule.delay(1, hint_ms=250) == 0.25
    assert schedule.delay(30, hint_ms=250) == 0.25
    assert schedule.delay(1, hint_ms=0) == MIN_HINT_SECONDS  # a hint of 0 never makes a busy loop
    assert schedule.delay(1, hint_ms=-5) == MIN_HINT_SECONDS  # nor a nonsensical one a negative sleep


def test_next_delay_never_ends_past_the_deadline() -> None:
    follower = RunFollower("thread_1", "run_1", max_wait_seconds=10.0, schedule=PollSchedule(initial=4.0))
    follower.started -= 8.5  # 1.5 s left
    assert follower.next_delay(None) == pytest.approx(1.5, abs=0.05)
    assert follower.next_delay(60_000) == pytest.approx(1.5, abs=0.05)
    follower.started -= 5  # past the deadline
    assert follower.next_delay(None) == 0.0
    assert follower.timed_out


def test_timeline_records_each_status_once(runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_script(RunScript(queued_seconds=0.2, in_progress_seconds=0.3))
    seen: list[str] = []
    with RunsClient(api_key=runs_emulator.api_key, base_url=runs_emulator.base_url) as client:
        run = client.create_thread_and_run(assistant_id=runs_emulator.default_assistant_id)
        follower = RunFollower(
            run.thread_id,
            run.id,
            10.0,
            schedule=PollSchedule(initial=0.05, steady_polls=100),
            on_change=lambda change, _: seen.append(change.status),
        )
        follower.observe(run)
        final = follow_sync(client, follower)

    assert final.status is RunStatus.COMPLETED
    assert seen == ["queued", "in_progress", "completed"]
    assert [c.status for c in follower.timeline] == seen
    assert [c.elapsed for c in follower.timeline] == sorted(c.elapsed for c in follower.timeline)


def _poll_gaps(emu: RunsEmulator, run_id: str) -> list[float]:
    polls = [r.at for r in emu.requests if r.method == "GET" and r.path.endswith(f"/runs/{run_id}")]
    return [b - a for a, b in itertools.pairwise(polls)]


SCHEDULE = PollSchedule(initial=0.1, factor=2.0, cap=0.4, steady_polls=2)
"""Waits 0.1, 0.1, then 0.2, 0.4, 0.4, ..."""


def test_sync_polls_follow_the_schedule_and_stop_at_the_deadline(runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_script(RunScript(in_progress_seconds=30))
    with RunsClient(api_key=runs_emulator.api_key, base_url=runs_emulator.base_url) as client:
        run = client.create_thread_and_run(assistant_id=runs_emulator.default_assistant_id)
        follower = RunFollower(run.thread_id, run.id, 1.5, schedule=SCHEDULE)
        follower.observe(run)
        with pytest.raises(RunTimedOut):
            follow_sync(client, follower)
        client.cancel_run(run.thread_id, run.id)

    _assert_schedule_kept(runs_emulator, run.id, follower)


async def test_async_polls_follow_the_schedule_and_stop_at_the_deadline(runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_script(RunScript(in_progress_seconds=30))
    async with AsyncRunsClient(api_key=runs_emulator.api_key, base_url=runs_emulator.base_url) as client:
        run = await client.create_thread_and_run(assistant_id=runs_emulator.default_assistant_id)
        follower = RunFollower(run.thread_id, run.id, 1.5, schedule=SCHEDULE)
        follower.observe(run)
        with pytest.raises(RunTimedOut):
            await follow_async(client, follower)
        await client.cancel_run(run.thread_id, run.id)

    _assert_schedule_kept(runs_emulator, run.id, follower)


def _assert_schedule_kept(emu: RunsEmulator, run_id: str, follower: RunFollower) -> None:
    # The follower held the run from the create, so its first poll came after a wait. Polls at about
    # 0.1, 0.2, 0.4, 0.8, 1.2 s; the next wait is cut at the 1.5 s deadline and no poll is spent there.
    gaps = _poll_gaps(emu, run_id)
    expected = [0.1, 0.2, 0.4, 0.4]
    assert len(gaps) == len(expected), gaps
    for gap, want in zip(gaps, expected, strict=True):
        assert want - 0.01 <= gap <= want + 0.15, gaps
    assert follower.elapsed >= 1.5
    assert follower.job is not None and follower.job.status is RunStatus.IN_PROGRESS


BATCH_LINE = b'{"custom_id": "a", "method": "POST", "url": "/v1/responses", "body": {"model": "m", "input": "x"}}\n'


def follow_batch(emu: RunsEmulator, in_progress_seconds: float, schedule: PollSchedule) -> tuple[Batch, float]:
    """Create a batch on the emulator and follow it to its end: the batch and the seconds it took."""
    emu.default_batch_script = BatchScript(
        validating_seconds=0.01, in_progress_seconds=in_progress_seconds, finalizing_seconds=0.01
    )
    with BatchesClient(api_key=emu.api_key, base_url=emu.base_url) as client:
        uploaded = client.upload_file(BATCH_LINE, "in.jsonl")
        batch = client.create_batch(input_file_id=uploaded.id, endpoint="/v1/responses", completion_window="24h")
        follower: JobFollower[Batch] = JobFollower(BATCH, BATCH.ref(batch), 30.0, schedule=schedule)
        follower.observe(batch)
        started = time.monotonic()
        final = follow(BatchesApi(client), follower)
    return final, time.monotonic() - started


def test_batches_are_polled_at_their_own_slow_cadence() -> None:
    waits = [BATCH_SCHEDULE.delay(n) for n in range(1, 40)]

    assert 1.0 <= waits[0] <= 5.0, "a batch is first read again within seconds"
    assert max(waits) == 60.0 and waits[-1] == 60.0, "then about once a minute"


def test_a_servers_hint_wins_over_the_batch_schedule(runs_emulator: RunsEmulator) -> None:
    """The schedule's first wait (2 s, before any answer) then the hint's 100 ms, not the schedule's 2 s."""
    runs_emulator.poll_after_ms = 100

    final, took = follow_batch(runs_emulator, 2.5, BATCH_SCHEDULE)

    assert final.status == "completed"
    assert took < 3.5, "seen ending within the hint's 100 ms, not at the schedule's next poll (4 s)"
    polls = [r.at for r in runs_emulator.requests if r.method == "GET" and r.path.startswith("/v1/batches/")]
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert gaps and max(gaps) < 1.0, f"read again at the hint's cadence, not the schedule's 2 s: {gaps}"


def test_a_hint_of_zero_is_floored_not_a_busy_loop(runs_emulator: RunsEmulator) -> None:
    runs_emulator.poll_after_ms = 0

    final, took = follow_batch(runs_emulator, 0.5, PollSchedule(initial=0.05))

    assert final.status == "completed"
    polls = runs_emulator.request_count("GET", r"^/v1/batches/batch_[^/]+$")
    assert polls <= took / MIN_HINT_SECONDS + 2, f"{polls} polls in {took:.2f}s"
