"""Following a run to its end, and cancelling it: one state machine, a sync and an async driver.

:class:`RunFollower` holds the logic without I/O: the deadline, the status timeline, the polling
schedule and when to stop. The drivers (:func:`follow_sync`, :func:`follow_async`) only fetch: they
read the run's event stream when one is given (learning the end within milliseconds with one
request), and otherwise, or once the stream breaks, poll from the last known status.

The polling schedule, when the server sends no ``openai-poll-after-ms`` hint: one poll every 0.9 s for
the first ten polls, then waits growing by a quarter each poll up to 5 s (1.13, 1.41, 1.76, 2.2, ...).
The official SDK polls every second and once right after the create (which can only say ``queued``);
skipping that poll pays for the slightly shorter wait, so a run of a few seconds is seen sooner on
median (0.45 s after it ends instead of 0.5 s) for fewer requests, and a run of many minutes costs one
request every 5 s instead of 60 a minute. A follower that already holds the run (from the
create or the cancel) waits before its first poll. No sleep ever ends past the deadline, and at the
deadline no last poll is spent: the cancel that follows tells whether the run had ended meanwhile
(see :func:`completed_after_all`). Measured in ``bench/``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass, field
from enum import Enum

from prefect_openai_runs.client import AsyncRunsClient, RunsClient
from prefect_openai_runs.exceptions import (
    APIConnectionError,
    InvalidResponseError,
    RunNotCancellableError,
    RunTimedOut,
    StreamError,
)
from prefect_openai_runs.models import Run, RunStatus, StreamEvent

FALLBACK_ERRORS = (StreamError, APIConnectionError, InvalidResponseError)
"""Stream failures after which following goes on by polling."""


@dataclass(frozen=True)
class PollSchedule:
    """Waits between polls when the server gives no hint.

    The first ``steady_polls`` waits are ``initial``; after that each grows by ``factor``, up to ``cap``.

    Attributes:
        initial: The first waits, in seconds.
        factor: How much each later wait grows.
        cap: The longest wait, in seconds.
        steady_polls: How many polls wait ``initial`` before the waits start growing.
    """

    initial: float = 0.9
    factor: float = 1.25
    cap: float = 5.0
    steady_polls: int = 10

    def delay(self, polls_done: int, hint_ms: int | None = None) -> float:
        """The wait before poll number ``polls_done + 1``: the server's hint when given, else the schedule."""
        if hint_ms is not None:
            return max(0.0, hint_ms / 1000.0)
        growth = max(0, polls_done - self.steady_polls)
        return float(min(self.cap, self.initial * self.factor**growth))


@dataclass(frozen=True)
class StatusChange:
    """One entry of a run's timeline: the status and when it was first seen.

    Attributes:
        status: The new status.
        at: Wall-clock time (``time.time()``) it was seen.
        elapsed: Seconds since following started.
    """

    status: RunStatus
    at: float
    elapsed: float


StatusCallback = Callable[[StatusChange, Run], None]


@dataclass
class RunFollower:
    """What is known about a followed run, and what to do next; no I/O.

    Attributes:
        thread_id: The run's thread.
        run_id: The run.
        max_wait_seconds: The deadline, counted from creation of the follower.
        schedule: Polling waits when the server gives no hint.
        on_change: Called once per status change, with the change and the run.
        on_tick: Called with the elapsed seconds while waiting (each poll, and while a stream is quiet).
    """

    thread_id: str
    run_id: str
    max_wait_seconds: float
    schedule: PollSchedule = field(default_factory=PollSchedule)
    on_change: StatusCallback | None = None
    on_tick: Callable[[float], None] | None = None
    run: Run | None = None
    timeline: list[StatusChange] = field(default_factory=list)
    polls: int = 0
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if not self.max_wait_seconds > 0:
            raise ValueError(f"max_wait_seconds must be positive, got {self.max_wait_seconds}")

    @property
    def elapsed(self) -> float:
        """Seconds since following started."""
        return time.monotonic() - self.started

    @property
    def remaining(self) -> float:
        """Seconds left before the deadline (0 once it passed)."""
        return max(0.0, self.max_wait_seconds - self.elapsed)

    @property
    def timed_out(self) -> bool:
        """Whether the deadline passed."""
        return self.remaining <= 0

    @property
    def settled(self) -> bool:
        """Whether following can stop: the run is terminal or waits for tool outputs."""
        return self.run is not None and (self.run.status.is_terminal or self.run.status.needs_action)

    def observe(self, run: Run) -> bool:
        """Take a new state of the run; record and report a status change. Returns whether it changed."""
        changed = self.run is None or self.run.status != run.status
        self.run = run
        if changed:
            change = StatusChange(status=run.status, at=time.time(), elapsed=self.elapsed)
            self.timeline.append(change)
            if self.on_change is not None:
                self.on_change(change, run)
        return changed

    def observe_event(self, event: StreamEvent) -> None:
        """Take a stream event; only run events carry a status."""
        if event.run is not None and event.run.id == self.run_id:
            self.observe(event.run)

    def next_delay(self, hint_ms: int | None) -> float:
        """The wait before the next poll, never past the deadline."""
        self.polls += 1
        self.tick()
        return min(self.schedule.delay(self.polls, hint_ms), self.remaining)

    def tick(self) -> None:
        """Report the elapsed time to ``on_tick``."""
        if self.on_tick is not None:
            self.on_tick(self.elapsed)

    def polling(self, wait_first: bool) -> Generator[float | None, tuple[Run, int | None] | None, Run]:
        """Polling from the last known status, without I/O: the drivers' only loop logic.

        Yields the seconds to sleep (answered with ``None``) or ``None`` for "poll now" (answered with
        the run and the server's ``openai-poll-after-ms`` hint); returns the run once it is terminal or
        needs action. With ``wait_first``, a run already held (from the create) is not polled at once.

        Raises:
            RunTimedOut: The deadline passed first; no poll is spent at the deadline.
        """
        if wait_first and self.run is not None and not self.settled:
            yield self.next_delay(None)
        while True:
            if self.settled:
                assert self.run is not None
                return self.run
            if self.timed_out and self.run is not None:
                raise self.timeout_error()
            polled = yield None
            assert polled is not None, "a poll step is answered with the poll's result"
            run, hint = polled
            self.observe(run)
            if self.settled:
                return run
            if self.timed_out:
                raise self.timeout_error()
            yield self.next_delay(hint)

    def timeout_error(self) -> RunTimedOut:
        """The error for a passed deadline, carrying the last run seen."""
        assert self.run is not None, "a run is always observed before the deadline error"
        return RunTimedOut(
            self.run,
            f"it was still {self.run.status} when the {self.max_wait_seconds:g}s deadline (max_wait_seconds) passed",
        )


def follow_sync(client: RunsClient, follower: RunFollower, events: Iterator[StreamEvent] | None = None) -> Run:
    """Follow a run until it is terminal or needs action, by its stream then by polling.

    Raises:
        RunTimedOut: The deadline passed first (the run is *not* cancelled here).
    """
    if events is not None:
        _read_events_sync(follower, events)
    plan = follower.polling(wait_first=events is None)
    try:
        step = next(plan)
        while True:
            if step is None:
                step = plan.send(client.poll_run(follower.thread_id, follower.run_id))
            else:
                time.sleep(step)
                step = plan.send(None)
    except StopIteration as done:
        run: Run = done.value
        return run


_END = object()
QUEUE_WAIT = 0.25
"""Longest single wait on the event queue, so that an exception Prefect injects (a flow timeout) lands soon."""


def _pump(events: Iterator[StreamEvent], sink: queue.Queue[object]) -> None:
    try:
        for event in events:
            sink.put(event)
    except FALLBACK_ERRORS as exc:
        sink.put(exc)
    finally:
        sink.put(_END)


def _read_events_sync(follower: RunFollower, events: Iterator[StreamEvent]) -> None:
    """Read the stream on a helper thread so that waiting for the next event never outlasts the deadline.

    The helper thread ends with the stream: at the run's terminal event, or when the server closes it
    after the cancel that follows a passed deadline.
    """
    sink: queue.Queue[object] = queue.Queue()
    threading.Thread(target=_pump, args=(events, sink), name="openai-run-stream", daemon=True).start()
    while not follower.settled and not follower.timed_out:
        try:
            item = sink.get(timeout=min(QUEUE_WAIT, max(follower.remaining, 0.001)))
        except queue.Empty:
            follower.tick()
            continue
        if not isinstance(item, StreamEvent):
            return
        follower.observe_event(item)


async def follow_async(
    client: AsyncRunsClient, follower: RunFollower, events: AsyncIterator[StreamEvent] | None = None
) -> Run:
    """The async twin of :func:`follow_sync`; the stream is read no longer than the deadline allows."""
    if events is not None:
        try:
            await asyncio.wait_for(_read_events(follower, events), timeout=follower.remaining)
        except (*FALLBACK_ERRORS, asyncio.TimeoutError):
            pass
    plan = follower.polling(wait_first=events is None)
    try:
        step = next(plan)
        while True:
            if step is None:
                step = plan.send(await client.poll_run(follower.thread_id, follower.run_id))
            else:
                await asyncio.sleep(step)
                step = plan.send(None)
    except StopIteration as done:
        run: Run = done.value
        return run


async def _read_events(follower: RunFollower, events: AsyncIterator[StreamEvent]) -> None:
    async for event in events:
        follower.observe_event(event)
        if follower.settled:
            return


CANCEL_SCHEDULE = PollSchedule(initial=0.05, factor=1.5, cap=1.0, steady_polls=2)
"""Polling while a cancel finishes: servers take tens of milliseconds to a few seconds."""


class CancelOutcome(str, Enum):
    """How a cancel ended."""

    CANCELLED = "cancelled"
    """The run was active and is now ``cancelled``."""
    ALREADY_ENDED = "already_ended"
    """The run was already terminal; nothing was changed."""
    NOT_HONOURED = "not_honoured"
    """The server accepted the cancel but the run ended otherwise (e.g. ``completed``)."""
    STILL_CANCELLING = "still_cancelling"
    """The run was still ``cancelling`` when the wait for it ended."""


@dataclass(frozen=True)
class CancelResult:
    """What cancelling a run did: the outcome and the run's last state."""

    outcome: CancelOutcome
    run: Run


def completed_after_all(result: CancelResult) -> bool:
    """Whether a cancel found the run had completed by itself (e.g. in the last moments before a deadline)."""
    return result.outcome is CancelOutcome.ALREADY_ENDED and result.run.status is RunStatus.COMPLETED


def _cancel_outcome(requested: bool, run: Run) -> CancelResult:
    if not run.status.is_terminal:
        return CancelResult(CancelOutcome.STILL_CANCELLING, run)
    if not requested:
        return CancelResult(CancelOutcome.ALREADY_ENDED, run)
    if run.status is RunStatus.CANCELLED:
        return CancelResult(CancelOutcome.CANCELLED, run)
    return CancelResult(CancelOutcome.NOT_HONOURED, run)


def _requested_cancel(exc: RunNotCancellableError) -> bool:
    """A 400 on a run already ``cancelling`` means a cancel is in flight (ours or another's)."""
    return exc.run_status == RunStatus.CANCELLING.value


def cancel_sync(client: RunsClient, thread_id: str, run_id: str, wait_seconds: float) -> CancelResult:
    """Cancel a run (safe in every state) and wait, at most ``wait_seconds``, until it is terminal."""
    requested = True
    try:
        run = client.cancel_run(thread_id, run_id)
    except RunNotCancellableError as exc:
        requested = _requested_cancel(exc)
        run = client.get_run(thread_id, run_id)
    if not run.status.is_terminal:
        follower = RunFollower(thread_id, run_id, wait_seconds, schedule=CANCEL_SCHEDULE, run=run)
        try:
            run = follow_sync(client, follower)
        except RunTimedOut as exc:
            run = exc.run
    return _cancel_outcome(requested, run)


async def cancel_async(client: AsyncRunsClient, thread_id: str, run_id: str, wait_seconds: float) -> CancelResult:
    """The async twin of :func:`cancel_sync`."""
    requested = True
    try:
        run = await client.cancel_run(thread_id, run_id)
    except RunNotCancellableError as exc:
        requested = _requested_cancel(exc)
        run = await client.get_run(thread_id, run_id)
    if not run.status.is_terminal:
        follower = RunFollower(thread_id, run_id, wait_seconds, schedule=CANCEL_SCHEDULE, run=run)
        try:
            run = await follow_async(client, follower)
        except RunTimedOut as exc:
            run = exc.run
    return _cancel_outcome(requested, run)
