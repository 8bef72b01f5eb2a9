"""The lifecycle core: follow a job (stream, else poll) under one deadline, cancel it, and end it in the
one way every job ends. Written once for every kind of job (through its adapter, ``_api.AsyncJobApi``)
and once for both sides: ``_sync/_driver.py`` is generated from this file."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from prefect_openai_runs import _deadline
from prefect_openai_runs._lifecycle._async._api import AsyncJobApi, JobHooks
from prefect_openai_runs._lifecycle._async._backend import Reader, sleep
from prefect_openai_runs._lifecycle._follower import CANCEL_SCHEDULE, JobFollower, PollSchedule
from prefect_openai_runs._lifecycle._kinds import JobRef
from prefect_openai_runs._lifecycle._outcome import (
    CancelOutcome,
    CancelResult,
    cancel_reason,
    cancel_result,
    describe_cancel,
    honest_outcome,
)
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs.client._throttle import unpaced
from prefect_openai_runs.exceptions import (
    APIConnectionError,
    APIError,
    InvalidResponseError,
    JobGone,
    JobOutcomeError,
    JobTimedOut,
    NotFoundError,
    OpenAIRunsError,
    StreamError,
)
from prefect_openai_runs.retry import is_retryable

J = TypeVar("J")
S = TypeVar("S")
T = TypeVar("T")

FALLBACK_ERRORS = (StreamError, APIConnectionError, InvalidResponseError)
"""Stream failures after which following goes on by polling."""
RECHECK_CANCELLED_DELAY = 1.0
"""How long after a job is seen ``cancelled`` it is read once more, for kinds whose cancel is best effort."""
CANCEL_REQUEST_SECONDS = 5.0
"""The least time the cancel request itself is given, even with ``cancel_wait_seconds=0``."""
STALL_SECONDS = 20.0
"""How long a job's stream may stay silent (open, no event) before the job is read with a GET: ended, it
is taken; still active, its stream is resumed where the kind allows (else read on)."""
GONE_REASON = "no longer exists (deleted or past retention)"
"""Why a job known to exist ended when the API answers 404 for it."""


class AsyncSteps(Protocol):
    """Runs the steps of a job's life (create, wait, cancel), e.g. each as a Prefect task so that the flow
    run's graph tells the story."""

    async def run(self, name: str, step: Callable[[], Awaitable[T]]) -> T:
        """Run ``step`` (named ``name``) and return what it returns; its exceptions propagate."""


class AsyncInline:
    """Runs each step as it is."""

    async def run(self, name: str, step: Callable[[], Awaitable[T]]) -> T:
        """Run ``step``."""
        return await step()


INLINE = AsyncInline()


def _interruption(failure: BaseException | None) -> bool:
    """Whether the following was interrupted from outside (a signal, a timeout, a cancellation): then the
    cancel runs at once, never through a step runner that could itself be stopped."""
    if failure is None:
        return False
    outside = isinstance(failure, TimeoutError) or "Cancelled" in type(failure).__name__
    return outside or not isinstance(failure, Exception)


async def follow(api: AsyncJobApi[J, Any], follower: JobFollower[J], events: Reader[J] | None = None) -> J:
    """Follow a job until it is terminal or needs the caller: by its stream when given, then by polling.

    Nothing waits past the follower's deadline: not a stream read, a request, nor a retry sleep (the
    client reads the deadline from :mod:`prefect_openai_runs._deadline`). A poll that fails in a way
    worth retrying is tried again on the schedule until the deadline.

    Raises:
        JobTimedOut: The deadline passed first (the job is *not* cancelled here).
        JobGone: The API answered 404 for the job once known (deleted, or past its retention).
    """
    with _deadline.deadline_scope(follower.deadline):
        if events is not None:
            try:
                while not follower.settled:
                    item = await events.next(min(follower.remaining, STALL_SECONDS), follower.tick)
                    if item is not None:
                        follower.take(item)
                    elif events.ended or follower.timed_out:
                        break
                    else:
                        events = await _silent(api, follower, events)
            except FALLBACK_ERRORS as exc:
                get_logger().info("The event stream of %s broke (%s); polling instead", follower.ref.describe(), exc)
            finally:
                if not events.ended:
                    # Settled, past the deadline or interrupted (a flow timeout, a cancellation): in the
                    # background, never holding up the cancel that may follow.
                    events.close_soon()
        plan = follower.polling(wait_first=events is None)
        try:
            step = next(plan)
            while True:
                if step is not None:
                    await sleep(step)
                    step = plan.send(None)
                    continue
                try:
                    polled = await api.poll(follower.ref)
                except NotFoundError as exc:
                    if follower.job is None:
                        raise
                    raise JobGone(follower.job, GONE_REASON) from exc
                except OpenAIRunsError as exc:
                    if follower.job is None or not (is_retryable(exc) or follower.timed_out):
                        raise
                    if follower.timed_out:
                        raise follower.timeout_error() from None
                    get_logger().warning("Polling %s failed (%s); trying again", follower.ref.describe(), exc)
                    await sleep(min(follower.schedule.delay(follower.polls), follower.remaining))
                    continue
                step = plan.send(polled)
        except StopIteration as done:
            job: J = done.value
            return job


async def _silent(api: AsyncJobApi[J, Any], follower: JobFollower[J], events: Reader[J]) -> Reader[J]:
    """After :data:`STALL_SECONDS` without an event: the job read with a GET; still active, its stream
    resumed (the silent one let go) where the kind allows, else the same stream read on.

    Raises:
        JobGone: The API answered 404 for the job (deleted, or past its retention).
    """
    get_logger().info("No event on the stream of %s for %gs; reading it", follower.ref.describe(), STALL_SECONDS)
    try:
        follower.observe(await api.get(follower.ref))
    except NotFoundError as exc:
        if follower.job is None:
            raise
        raise JobGone(follower.job, GONE_REASON) from exc
    except OpenAIRunsError as exc:
        get_logger().warning("Reading %s failed (%s); reading its stream on", follower.ref.describe(), exc)
        return events
    if follower.settled:
        return events
    fresh = await api.restream(follower.ref)
    if fresh is None:
        return events
    events.close_soon()
    return fresh


async def cancel_job(api: AsyncJobApi[J, Any], ref: JobRef, wait_seconds: float) -> CancelResult[J]:
    """Cancel a job (safe in every state) and wait, at most ``wait_seconds``, until it is terminal.

    ``wait_seconds=0`` sends the cancel and does not wait. A job the API says it cannot cancel is read to
    tell whether it had ended or a cancel was already in flight. For kinds whose cancel is best effort, a
    job seen ``cancelled`` is read once more before the result is decided. None of these requests waits
    for a turn under the rate limit (:func:`~prefect_openai_runs.client._throttle.unpaced`).
    """
    if wait_seconds < 0:
        raise ValueError(f"cancel_wait_seconds must be 0 or more, got {wait_seconds}")
    kind = api.kind
    budget = time.monotonic() + max(wait_seconds, CANCEL_REQUEST_SECONDS)
    with _deadline.deadline_scope(budget), unpaced():
        requested = True
        job = await api.cancel(ref)
        if job is None:
            job = await api.get(ref)
            requested = kind.is_cancelling(job)
        if wait_seconds > 0 and not kind.is_terminal(job):
            follower = JobFollower(kind, ref, wait_seconds, schedule=CANCEL_SCHEDULE, job=job)
            try:
                job = await follow(api, follower)
            except JobTimedOut as exc:
                job = exc.job
        if wait_seconds > 0 and kind.recheck_cancelled and kind.is_cancelled(job):
            await sleep(min(RECHECK_CANCELLED_DELAY, wait_seconds))
            job = await api.get(ref)
    return cancel_result(kind, requested, job, waited=wait_seconds > 0)


@dataclass
class Ending(Generic[J]):
    """How a job ended: its final state, why, the cancel (if one was sent) and the honest outcome.

    Attributes:
        job: The job's final (or last seen) state.
        reason: Why it ended this way, in words.
        cancel: What the cancel did, when one was sent.
        error: The outcome error the caller raises (``None``: it completed, or the interruption that
            ended the following is re-raised as it was).
    """

    job: J
    reason: str
    cancel: CancelResult[J] | None
    error: JobOutcomeError | None


async def end_job(
    api: AsyncJobApi[J, Any],
    follower: JobFollower[J],
    failure: BaseException | None,
    cancel_wait_seconds: float,
    hooks: JobHooks[J] | None = None,
    reason: str | None = None,
    steps: AsyncSteps = INLINE,
) -> Ending[J]:
    """The one way a job ends: cancel it if still active, wait for the cancel, read it again, decide the
    honest outcome, log it and record it (event, artifact) through ``hooks``. A job of a kind whose cancel
    is best effort, seen cancelled without a cancel of ours, is read once more after
    :data:`RECHECK_CANCELLED_DELAY` (at most ``cancel_wait_seconds``). A job the API no longer knows
    (:class:`~prefect_openai_runs.exceptions.JobGone`, or a 404 to the cancel) is recorded as last seen.
    Its requests do not wait for a turn under the rate limit: a ``retry-after`` must not hold a job's end.

    Args:
        api: The job's API.
        follower: What is known of the job (its last state and timeline).
        failure: What ended the following (``None``: it settled, or a cancel was asked for).
        cancel_wait_seconds: How long to wait for a cancel to finish (0: send it, do not wait).
        hooks: Where the end is recorded.
        reason: Why the job is being ended, when the caller knows better than ``failure`` says.
        steps: Runs the cancel as a step (not when the following was interrupted from outside).
    """
    kind = api.kind
    deadline_passed = follower.timed_out
    if isinstance(failure, JobGone):
        return _gone(follower, failure, hooks)
    with _deadline.deadline_scope(time.monotonic() + max(cancel_wait_seconds, CANCEL_REQUEST_SECONDS)), unpaced():
        job = follower.job if follower.job is not None else await api.get(follower.ref)
        follower.observe(job)
        recheck = kind.recheck_cancelled and kind.is_cancelled(job) and cancel_wait_seconds > 0
        if recheck:  # cancelled by someone else, best effort: it has been seen to complete after all
            job = await _read_again(api, follower, min(RECHECK_CANCELLED_DELAY, cancel_wait_seconds))
    cancel: CancelResult[J] | None = None
    if not kind.is_terminal(job):
        cause = reason or cancel_reason(failure, deadline_passed)
        runner = INLINE if _interruption(failure) else steps
        try:
            cancel = await runner.run(
                f"Cancel OpenAI {kind.name}", lambda: cancel_job(api, follower.ref, cancel_wait_seconds)
            )
        except (NotFoundError, JobGone) as exc:
            gone = exc if isinstance(exc, JobGone) else JobGone(job, GONE_REASON)
            return _gone(follower, gone, hooks, cause)
        follower.observe(cancel.job)
        job = cancel.job
        log_cancel(kind, cancel, cause)
        why = f"{cause}; {describe_cancel(kind, cancel)}"
    elif isinstance(failure, JobOutcomeError) and not isinstance(failure, JobTimedOut):
        why = failure.reason
    elif isinstance(failure, JobTimedOut) and kind.is_completed(job):
        why = "completed just before the deadline"
    elif recheck and not kind.is_cancelled(job):
        why = reason or f"seen cancelled (not by this flow), then {kind.status(job)} when read again"
    else:
        why = reason or f"ended {kind.status(job)}"
    error = honest_outcome(kind, job, failure, why, cancel)
    if error is not None and cancel is None and failure is None:
        why = error.reason  # ended by itself: the kind says best why (e.g. the run's last_error)
    if hooks is not None:
        hooks.ended(job, follower.timeline, why)
    return Ending(job, why, cancel, error)


WAITS_FOR_CALLER = "waits for the caller's answer (tool outputs); returned to the caller, still active"
"""Why a ``wait_for_*`` task returned a job that needs action, on its card."""


async def _read_again(api: AsyncJobApi[J, Any], follower: JobFollower[J], delay: float) -> J:
    """The job read once more after ``delay`` (its last known state if it is gone meanwhile)."""
    await sleep(delay)
    try:
        job = await api.get(follower.ref)
    except NotFoundError:
        assert follower.job is not None
        return follower.job
    follower.observe(job)
    return job


def _gone(follower: JobFollower[J], gone: JobGone, hooks: JobHooks[J] | None, cause: str | None = None) -> Ending[J]:
    """The end of a job the API no longer knows (404): recorded with its last known state, never cancelled."""
    job: J = gone.job
    why = gone.reason if cause is None else f"{cause}; then it {gone.reason}"
    get_logger().warning("%s %s; last seen %s", follower.ref.describe(), GONE_REASON, follower.kind.status(job))
    if hooks is not None:
        hooks.ended(job, follower.timeline, why)
    return Ending(job, why, None, JobGone(job, why))


async def wait_job(
    api: AsyncJobApi[J, Any],
    follower: JobFollower[J],
    *,
    cancel_on_timeout: bool,
    cancel_wait_seconds: float,
    hooks: JobHooks[J],
    events: Reader[J] | None = None,
) -> J:
    """Follow a job that exists until it settles, and end it the one way (the body of the ``wait_for_*``
    tasks).

    A job that waits for the caller (a run's tool calls) is returned as it is. At the deadline the job is
    cancelled, unless ``cancel_on_timeout`` is false (then it is recorded and left running). Whatever
    interrupts the following (a flow timeout, a cancellation, a crash signal) ends the job first; a
    failure to end it then is logged, never hides the interruption.

    Returns:
        The completed job, or the job waiting for the caller.

    Raises:
        JobOutcomeError: How the job ended otherwise (``JobTimedOut`` at the deadline, ``JobFailed``, ...).
        BaseException: What interrupted the following, re-raised after the job was ended.
    """
    failure: JobTimedOut | None = None
    try:
        job = await follow(api, follower, events)
    except JobTimedOut as exc:
        if not cancel_on_timeout:
            hooks.ended(exc.job, follower.timeline, f"{exc.reason}; not cancelled (cancel_on_timeout=False)")
            raise
        failure = exc
    except BaseException as exc:
        try:
            await end_job(api, follower, exc, cancel_wait_seconds, hooks)
        except OpenAIRunsError as error:
            get_logger().error("Could not cancel or record %s: %s", follower.ref.describe(), error)
        raise
    else:
        if api.kind.needs_action(job):  # its card and progress say so: it is the caller's to answer now
            hooks.ended(job, follower.timeline, WAITS_FOR_CALLER)
            return job
    ending = await end_job(api, follower, failure, cancel_wait_seconds, hooks)
    if ending.error is not None:
        raise ending.error
    return ending.job


def log_cancel(kind: Any, result: CancelResult[Any], reason: str) -> None:
    """Log a cancel's outcome: info when it worked or was not needed, warning otherwise."""
    ok = result.outcome in {CancelOutcome.CANCELLED, CancelOutcome.ALREADY_ENDED, CancelOutcome.SENT}
    (get_logger().info if ok else get_logger().warning)("Cancel (%s): %s", reason, describe_cancel(kind, result))


class AsyncActionHandler(Protocol[J]):
    """Answers a job that waits for the caller (a run's tool calls); returns the job's next state, or the
    stream its next states come from."""

    async def __call__(self, job: J, follower: JobFollower[J]) -> tuple[J | None, Reader[J] | None]:
        """Answer ``job``; the follower holds the deadline (``follower.remaining``)."""


async def start_job(
    api: AsyncJobApi[J, S],
    spec: S,
    *,
    key: str,
    parent_id: str | None,
    stream: bool,
    hooks: JobHooks[J],
    known: list[tuple[J, Reader[J] | None]] | None = None,
) -> tuple[J, Reader[J] | None]:
    """Create a job and record it at once, never losing it.

    The intent is recorded before the create is sent. If the create fails in a way that may have left
    a job (a timeout, a dropped answer, a 5xx, an answer that is not the job), the job is looked for by
    its key before the error is raised, where the API allows. The job (and its stream) is appended to
    ``known`` the moment it exists: a caller interrupted before this returns still knows what to end.
    """
    hooks.intent(api.kind.name, key, parent_id)
    try:
        job, events = await api.start(spec, stream)
    except Exception as exc:
        if not _may_have_created(exc):
            raise
        with _deadline.deadline_scope(time.monotonic() + CANCEL_REQUEST_SECONDS * 2), unpaced():
            found = await api.recover(spec)
        if found is None:
            raise
        get_logger().warning("The create failed (%s) but %s exists: using it", exc, api.kind.ref(found).describe())
        job, events = found, None
    if known is not None:
        known.append((job, events))
    hooks.created(job)
    return job, events


async def run_job(
    api: AsyncJobApi[J, S],
    spec: S,
    *,
    key: str,
    parent_id: str | None,
    max_wait_seconds: float,
    cancel_wait_seconds: float,
    stream: bool,
    hooks: JobHooks[J],
    schedule: PollSchedule | None = None,
    on_action: AsyncActionHandler[J] | None = None,
    on_started: Callable[[JobFollower[J]], None] | None = None,
    steps: AsyncSteps = INLINE,
) -> J:
    """Start a job, follow it to its end under one deadline, and end it on every path.

    The intent is recorded before the create is sent; the job is recorded the moment it exists. Whatever
    ends the following (the deadline, a failed action, a flow timeout, a cancellation, a crash signal, an
    error upstream), the job is ended by :func:`end_job`: cancelled if still active, recorded, and the
    honest outcome raised. A job interrupted before it was known is found again where the API allows.

    Returns:
        The completed job.

    Raises:
        JobOutcomeError: How the job ended otherwise (``JobTimedOut`` at the deadline, ``JobFailed``, ...).
        BaseException: What interrupted the following, re-raised after the job was ended.
    """
    if not max_wait_seconds > 0:
        raise ValueError(f"max_wait_seconds must be positive, got {max_wait_seconds}")
    kind = api.kind
    started = time.monotonic()
    follower: JobFollower[J] | None = None
    failure: BaseException | None = None
    known: list[tuple[J, Reader[J] | None]] = []

    def following(job: J) -> JobFollower[J]:
        return JobFollower(
            kind,
            kind.ref(job),
            max_wait_seconds,
            schedule=schedule or PollSchedule(),
            on_change=hooks.changed,
            on_tick=hooks.tick,
            started=started,
        )

    try:
        with _deadline.deadline_scope(started + max_wait_seconds):
            job, events = await steps.run(
                f"Create OpenAI {kind.name}",
                lambda: start_job(
                    api, spec, key=key, parent_id=parent_id, stream=stream, hooks=hooks, known=known
                ),
            )
            current = follower = following(job)
            current.observe(job)
            if on_started is not None:
                on_started(current)
            wait = f"Wait for OpenAI {kind.name}"
            job = await steps.run(wait, lambda: follow(api, current, events))
            while kind.needs_action(job) and on_action is not None:
                answered, events = await on_action(job, current)
                if answered is not None:
                    current.observe(answered)
                else:
                    current.stale = True  # its next state comes from the stream (or the next poll)
                job = await steps.run(wait, lambda stream=events: follow(api, current, stream))  # type: ignore[misc]
    except BaseException as exc:
        failure = exc
    finally:
        if follower is None and known:  # interrupted once the job existed, before its create step returned
            created, stream_of_it = known[0]
            if stream_of_it is not None:
                await stream_of_it.close()
            follower = following(created)
            follower.observe(created)
        elif follower is None and _may_have_created(failure):
            follower = await _recover(api, spec, started, max_wait_seconds, failure)
        ending: Ending[J] | None = None
        if follower is not None:
            try:
                ending = await end_job(api, follower, failure, cancel_wait_seconds, hooks, steps=steps)
            except OpenAIRunsError as exc:
                get_logger().error("Could not end %s: %s", follower.ref.describe(), exc)
                if failure is None or isinstance(failure, JobOutcomeError):
                    raise
    if ending is not None and ending.error is not None:
        if failure is not None and not isinstance(failure, JobOutcomeError | OpenAIRunsError):
            raise failure
        raise ending.error from None
    if failure is not None and (ending is None or not kind.is_completed(ending.job)):
        raise failure
    assert ending is not None
    return ending.job


def _may_have_created(failure: BaseException | None) -> bool:
    """Whether what interrupted a start may have left a job behind (not a refused or invalid request)."""
    if isinstance(failure, (ValueError, TypeError)):
        return False
    return not (isinstance(failure, APIError) and failure.status_code < 500)


async def _recover(
    api: AsyncJobApi[J, S], spec: S, started: float, max_wait_seconds: float, failure: BaseException | None
) -> JobFollower[J] | None:
    """After an interruption before the job was known: find it by its key, where the API allows.

    A failure here is logged, never raised: it must not hide the error that interrupted the following.
    """
    try:
        with _deadline.deadline_scope(time.monotonic() + CANCEL_REQUEST_SECONDS * 2), unpaced():
            job = await api.recover(spec)
    except OpenAIRunsError as exc:
        get_logger().error("Could not look for a %s created before the interruption: %s", api.kind.name, exc)
        return None
    if job is None:
        return None
    get_logger().warning(
        "Found %s created before the interruption (%s); it will be ended",
        api.kind.ref(job).describe(),
        type(failure).__name__ if failure is not None else "no error",
    )
    follower = JobFollower(api.kind, api.kind.ref(job), max_wait_seconds, started=started)
    follower.observe(job)
    return follower
