"""Following many jobs at once from one event loop: fail fast, end every job the one way.

Asynchronous only (concurrency is its point); the sync tasks reach it through Prefect's
``run_coro_as_sync``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from prefect_openai_runs._lifecycle._async._api import AsyncJobApi, JobHooks
from prefect_openai_runs._lifecycle._async._driver import Ending, end_job, follow
from prefect_openai_runs._lifecycle._follower import JobFollower, PollSchedule
from prefect_openai_runs._lifecycle._kinds import JobRef
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs.exceptions import APIError, JobOutcomeError, JobTimedOut, OpenAIRunsError, ToolCallError

J = TypeVar("J")


@dataclass
class FanOut(Generic[J]):
    """What following many jobs found.

    Attributes:
        followers: One per job, in the order given: its last known state and observed timeline.
        endings: How each job that ended (or was ended) ended, by id.
        failure: The first failure (``None`` when every job completed).
    """

    followers: list[JobFollower[J]]
    endings: dict[str, Ending[J]] = field(default_factory=dict)
    failure: BaseException | None = None


def _needs_action_error(follower: JobFollower[Any]) -> ToolCallError:
    job = follower.job
    calls = getattr(job, "tool_calls", []) or []
    names = ", ".join(sorted({c.function.name for c in calls})) or "unknown"
    return ToolCallError(
        job,
        f"it waits for tool outputs (functions: {names}) that this task cannot give; follow it with "
        "run_assistant and tool_handlers, or answer it with submit_tool_outputs",
        names,
    )


async def follow_many(
    api: AsyncJobApi[J, Any],
    refs: Sequence[JobRef],
    max_wait_seconds: float,
    *,
    fail_fast: bool = True,
    cancel_wait_seconds: float,
    hooks_for: Callable[[JobRef], JobHooks[J]],
    schedule: PollSchedule | None = None,
) -> FanOut[J]:
    """Follow every job concurrently (one coroutine each, no thread, no task run per poll).

    Each job is ended by :func:`~._async._driver.end_job` as soon as it settles, while the others are
    followed. A job that waits for the caller (a run in ``requires_action``) is ended too, as what it is.
    With ``fail_fast``, the first job that does not complete stops the others, and every one still active
    is ended (cancelled), concurrently, before this returns; at the deadline, every job still active is.

    Returns:
        Every job's follower, how each ended, and the first failure.
    """
    followers: list[JobFollower[J]] = []
    hooks: dict[str, JobHooks[J]] = {}
    for ref in refs:
        hooks[ref.id] = hooks_for(ref)
        followers.append(
            JobFollower(
                api.kind,
                ref,
                max_wait_seconds,
                schedule=schedule or PollSchedule(),
                on_change=hooks[ref.id].changed,
            )
        )
    fan = FanOut(followers)
    pending = {asyncio.ensure_future(follow(api, f)): f for f in followers}
    endings: list[asyncio.Future[None]] = []
    errors: list[BaseException] = []

    async def finish(follower: JobFollower[J], failure: BaseException | None, reason: str | None = None) -> None:
        try:
            ending = await end_job(api, follower, failure, cancel_wait_seconds, hooks[follower.ref.id], reason)
        except OpenAIRunsError as exc:
            get_logger().error("Could not end %s: %s", follower.ref.describe(), exc)
            errors.append(failure or exc)
            return
        fan.endings[follower.ref.id] = ending
        if ending.error is not None:
            errors.append(ending.error)
        elif failure is not None and not isinstance(failure, JobOutcomeError) and reason is None:
            errors.append(failure)

    def settle(future: asyncio.Future[J], follower: JobFollower[J]) -> BaseException | None:
        """End a job whose following stopped; return its failure, if any."""
        exc = future.exception()
        failure: BaseException | None
        if exc is not None:
            failure = cause = exc
        elif follower.job is not None and api.kind.needs_action(follower.job):
            failure = cause = _needs_action_error(follower)
        else:
            job = future.result()
            failure, cause = (None if api.kind.is_completed(job) else api.kind.outcome_error(job)), None
        if follower.job is None and isinstance(exc, APIError) and exc.status_code < 500:
            errors.append(exc)  # refused before anything was seen (a wrong key, an unknown run): nothing to end
        else:
            endings.append(asyncio.ensure_future(finish(follower, cause)))
        return failure

    timed_out = False
    first: BaseException | None = None
    try:
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                failure = settle(future, pending.pop(future))
                timed_out = timed_out or isinstance(failure, JobTimedOut)
                first = first or failure
            if timed_out or (first is not None and fail_fast):
                break
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        reason = _sibling_reason(first, timed_out, api.kind.name)
        endings.extend(asyncio.ensure_future(finish(f, first, reason)) for f in pending.values())
        await asyncio.gather(*endings, return_exceptions=True)
    finally:
        for future in pending:
            future.cancel()
    fan.failure = errors[0] if errors else None
    return fan


def _sibling_reason(failure: BaseException | None, timed_out: bool, kind: str) -> str:
    if timed_out or isinstance(failure, JobTimedOut):
        return "deadline: max_wait_seconds passed"
    if isinstance(failure, JobOutcomeError):
        return f"upstream failure: sibling {kind} {failure.job.id} ended {failure.job.status}"
    return f"upstream failure: {type(failure).__name__}: {failure}"
