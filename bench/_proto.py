"""Prototypes of library changes, measured by the benchmark only (not used by the library or its tests).

1. ``_following.follow_async`` / ``cancel_async``: the library's ``follow_async`` polls at once when it
   is called, even when the follower already holds the run that ``create_run`` (or ``cancel_run``) has
   just returned, milliseconds old. These copies wait the schedule's first delay instead when the
   follower already has a run: one request less per run (and per cancel). Otherwise unchanged.
2. ``_fanout``: Prefect events only inside a run (see :func:`install_events_only_inside_runs`).
"""

from __future__ import annotations

import asyncio

from prefect_openai_runs._following import (
    CancelResult,
    PollSchedule,
    RunFollower,
    StatusChange,
    _cancel_outcome,
    _requested_cancel,
)
from prefect_openai_runs.client import AsyncRunsClient
from prefect_openai_runs.exceptions import RunNotCancellableError, RunTimedOut
from prefect_openai_runs.models import Run


async def follow_async_known_start(client: AsyncRunsClient, follower: RunFollower) -> Run:
    """``follow_async`` without events, but no poll before the first delay when a run is already known."""
    if follower.run is not None and not follower.settled:
        await asyncio.sleep(follower.next_delay(None))
    while True:
        if follower.settled:
            assert follower.run is not None
            return follower.run
        run, hint = await client.poll_run(follower.thread_id, follower.run_id)
        follower.observe(run)
        if follower.settled:
            return run
        if follower.timed_out:
            raise follower.timeout_error()
        await asyncio.sleep(follower.next_delay(hint))


async def cancel_async_known_start(
    client: AsyncRunsClient, thread_id: str, run_id: str, wait_seconds: float
) -> CancelResult:
    """``cancel_async`` whose wait for the end does not poll right after the cancel's own answer."""
    requested = True
    try:
        run = await client.cancel_run(thread_id, run_id)
    except RunNotCancellableError as exc:
        requested = _requested_cancel(exc)
        run = await client.get_run(thread_id, run_id)
    if not run.status.is_terminal:
        follower = RunFollower(thread_id, run_id, wait_seconds, schedule=PollSchedule(0.05, 1.5, 1.0), run=run)
        try:
            run = await follow_async_known_start(client, follower)
        except RunTimedOut as exc:
            run = exc.run
    return _cancel_outcome(requested, run)


def install_events_only_inside_runs() -> None:
    """Prototype for ``_fanout._on_change`` / ``_recording.emit_status_event``: emit the Prefect event only
    inside a flow or task run. Outside one (``follow_many`` from bare asyncio) ``prefect.events.emit_event``
    with no ``PREFECT_API_URL`` starts Prefect's ephemeral server on first use."""
    import prefect_openai_runs._fanout as fanout
    from prefect_openai_runs._recording import current_flow_run_id, emit_status_event

    def emit_inside_runs(change: StatusChange, run: Run) -> None:
        if current_flow_run_id() is not None:
            emit_status_event(change, run)

    fanout.emit_status_event = emit_inside_runs  # type: ignore[assignment]
