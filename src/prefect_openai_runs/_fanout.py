"""Following many runs at once from one event loop, cancelling the siblings when one fails."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from prefect_openai_runs._following import RunFollower, StatusChange, cancel_async, follow_async
from prefect_openai_runs._lifecycle import log_cancel, outcome_error
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import RunRef, emit_status_event
from prefect_openai_runs.client import AsyncRunsClient
from prefect_openai_runs.exceptions import OpenAIRunsError, RunOutcomeError, RunTimedOut
from prefect_openai_runs.models import Run


def _on_change(change: StatusChange, run: Run) -> None:
    get_logger().info("OpenAI run %s is %s after %.2fs", run.id, change.status, change.elapsed)
    emit_status_event(change, run)


async def follow_many(
    client: AsyncRunsClient,
    refs: Sequence[RunRef],
    max_wait_seconds: float,
    fail_fast: bool = True,
    cancel_wait_seconds: float = 30.0,
) -> tuple[list[Run], BaseException | None]:
    """Follow every run concurrently (one coroutine each, no thread, no task run per poll).

    With ``fail_fast``, the first run that does not complete (or whose following fails) stops the
    others, and every one still active is cancelled, concurrently, before this returns. At the
    deadline, every run still active is cancelled.

    Returns:
        The last known state of every run, in the order given, and the first failure (or ``None``).
    """
    followers = [RunFollower(ref.thread_id, ref.run_id, max_wait_seconds, on_change=_on_change) for ref in refs]
    pending = {asyncio.ensure_future(follow_async(client, follower)): follower for follower in followers}
    first_failure: BaseException | None = None
    try:
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                pending.pop(future)
                failure = future.exception() or outcome_error(future.result())
                if failure is not None and first_failure is None:
                    first_failure = failure
            if first_failure is not None and (fail_fast or isinstance(first_failure, RunTimedOut)):
                break
    finally:
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    if first_failure is not None:
        await cancel_active(client, followers, _sibling_reason(first_failure), cancel_wait_seconds)
    return [_last_run(follower) for follower in followers], first_failure


def _sibling_reason(failure: BaseException) -> str:
    if isinstance(failure, RunTimedOut):
        return "deadline: max_wait_seconds passed"
    if isinstance(failure, RunOutcomeError):
        return f"upstream failure: sibling run {failure.run.id} ended {failure.run.status}"
    return f"upstream failure: {type(failure).__name__}: {failure}"


async def cancel_active(
    client: AsyncRunsClient, followers: Sequence[RunFollower], reason: str, wait_seconds: float
) -> None:
    """Cancel, concurrently, every followed run not known to be terminal, and record the results."""

    async def cancel_one(follower: RunFollower) -> None:
        try:
            result = await cancel_async(client, follower.thread_id, follower.run_id, wait_seconds)
        except OpenAIRunsError as exc:
            get_logger().error("Could not cancel OpenAI run %s (%s): %s", follower.run_id, reason, exc)
            return
        log_cancel(result, reason)
        follower.observe(result.run)

    active = [f for f in followers if f.run is None or not f.run.status.is_terminal]
    await asyncio.gather(*(cancel_one(follower) for follower in active))


def _last_run(follower: RunFollower) -> Run:
    if follower.run is None:
        raise RuntimeError(f"run {follower.run_id} was never seen")
    return follower.run
