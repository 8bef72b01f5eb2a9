"""Following many runs at once from one event loop, cancelling the siblings when one fails."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from prefect_openai_runs._following import RunFollower, StatusChange, cancel_async, follow_async
from prefect_openai_runs._lifecycle import describe_cancel, log_cancel, outcome_error
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import RunRef, emit_status_event
from prefect_openai_runs.client import AsyncRunsClient
from prefect_openai_runs.exceptions import OpenAIRunsError, RunOutcomeError, RunTimedOut
from prefect_openai_runs.models import Run


def _on_change(change: StatusChange, run: Run) -> None:
    get_logger().info("OpenAI run %s is %s after %.2fs", run.id, change.status, change.elapsed)
    emit_status_event(change, run)


@dataclass
class FanOut:
    """What following many runs found.

    Attributes:
        followers: One per run, in the order given: its last known state and observed timeline.
        failure: The first failure, or ``None`` when every run completed.
        notes: For each run this cancelled, why and how the cancel ended.
    """

    followers: list[RunFollower]
    failure: BaseException | None = None
    notes: dict[str, str] = field(default_factory=dict)


RunEnded = Callable[[Run, Sequence[StatusChange], str], Awaitable[None]]
"""Called with a run that ended, its observed timeline and why it ended (e.g. to write its artifact)."""


async def follow_many(
    client: AsyncRunsClient,
    refs: Sequence[RunRef],
    max_wait_seconds: float,
    fail_fast: bool = True,
    cancel_wait_seconds: float = 30.0,
    on_end: RunEnded | None = None,
) -> FanOut:
    """Follow every run concurrently (one coroutine each, no thread, no task run per poll).

    With ``fail_fast``, the first run that does not complete (or whose following fails) stops the
    others, and every one still active is cancelled, concurrently, before this returns. At the
    deadline, every run still active is cancelled.

    ``on_end`` is called once for each run known to have ended, as soon as it ends (a cancelled run:
    once its cancel is done), concurrently with the following of the others; every call has finished
    when this returns.

    Returns:
        Every run's follower (a run never seen, because its first poll failed, has ``run`` None), the
        first failure, and the notes of the cancels.
    """
    followers = [RunFollower(ref.thread_id, ref.run_id, max_wait_seconds, on_change=_on_change) for ref in refs]
    pending = {asyncio.ensure_future(follow_async(client, follower)): follower for follower in followers}
    endings: list[asyncio.Future[None]] = []
    reported: set[int] = set()

    def report(follower: RunFollower, notes: dict[str, str]) -> None:
        run = follower.run
        if on_end is None or run is None or not run.status.is_terminal or id(follower) in reported:
            return
        reported.add(id(follower))
        endings.append(asyncio.ensure_future(on_end(run, follower.timeline, notes.get(run.id, f"ended {run.status}"))))

    first_failure: BaseException | None = None
    notes: dict[str, str] = {}
    try:
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                report(pending.pop(future), notes)
                failure = future.exception() or outcome_error(future.result())
                if failure is not None and first_failure is None:
                    first_failure = failure
            if first_failure is not None and (fail_fast or isinstance(first_failure, RunTimedOut)):
                break
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if first_failure is not None:
            notes = await cancel_active(client, followers, _sibling_reason(first_failure), cancel_wait_seconds)
        for follower in followers:
            report(follower, notes)
    finally:
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, *endings, return_exceptions=True)
    return FanOut(followers, first_failure, notes)


def _sibling_reason(failure: BaseException) -> str:
    if isinstance(failure, RunTimedOut):
        return "deadline: max_wait_seconds passed"
    if isinstance(failure, RunOutcomeError):
        return f"upstream failure: sibling run {failure.run.id} ended {failure.run.status}"
    return f"upstream failure: {type(failure).__name__}: {failure}"


async def cancel_active(
    client: AsyncRunsClient, followers: Sequence[RunFollower], reason: str, wait_seconds: float
) -> dict[str, str]:
    """Cancel, concurrently, every followed run not known to be terminal.

    Returns:
        For each run cancelled, the reason and how the cancel ended.
    """
    notes: dict[str, str] = {}

    async def cancel_one(follower: RunFollower) -> None:
        try:
            result = await cancel_async(client, follower.thread_id, follower.run_id, wait_seconds)
        except OpenAIRunsError as exc:
            get_logger().error("Could not cancel OpenAI run %s (%s): %s", follower.run_id, reason, exc)
            return
        log_cancel(result, reason)
        follower.observe(result.run)
        notes[follower.run_id] = f"{reason}; {describe_cancel(result)}"

    active = [f for f in followers if f.run is None or not f.run.status.is_terminal]
    await asyncio.gather(*(cancel_one(follower) for follower in active))
    return notes
