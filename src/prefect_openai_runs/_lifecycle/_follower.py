"""Following a job, without I/O: the deadline, the status timeline, the polling schedule, when to stop.

The polling schedule, when the server sends no ``openai-poll-after-ms`` hint: one poll every 0.9 s for
the first ten polls, then waits growing by a quarter each poll up to 5 s (1.13, 1.41, 1.76, 2.2, ...).
The official SDK polls every second and once right after the create (which can only say ``queued``);
skipping that poll pays for the slightly shorter wait, so a job of a few seconds is seen sooner on
median (0.45 s after it ends instead of 0.5 s) for fewer requests, and a job of many minutes costs one
request every 5 s instead of 60 a minute. A follower that already holds the job (from the create or the
cancel) waits before its first poll. No sleep ever ends past the deadline, and at the deadline no last
poll is spent: the cancel that follows tells whether the job had ended meanwhile. Measured in ``bench/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from prefect_openai_runs._lifecycle._kinds import JobKind, JobRef
from prefect_openai_runs.exceptions import JobTimedOut

J = TypeVar("J")


@dataclass(frozen=True)
class PollSchedule:
    """Waits between polls when the server gives no hint.

    The first ``steady_polls`` waits are ``initial``; after that each grows by ``factor``, up to ``cap``.

    Attributes:
        initial: The first waits, in seconds.
        factor: How much each later wait grows.
        cap: The longest wait, in seconds.
        steady_polls: How many polls wait ``initial`` before the waits start growing.

    Example:
        ```python
        from prefect_openai_runs import PollSchedule

        hourly_batch = PollSchedule(initial=5.0, factor=1.25, cap=60.0, steady_polls=6)
        ```
    """

    initial: float = 0.9
    factor: float = 1.25
    cap: float = 5.0
    steady_polls: int = 10

    def __post_init__(self) -> None:
        if not (self.initial > 0 and self.cap >= self.initial and self.factor >= 1 and self.steady_polls >= 0):
            raise ValueError(
                "PollSchedule needs initial > 0, cap >= initial, factor >= 1 and steady_polls >= 0, got "
                f"{self.initial}, {self.cap}, {self.factor}, {self.steady_polls}"
            )

    def delay(self, polls_done: int, hint_ms: int | None = None) -> float:
        """The wait before poll number ``polls_done + 1``: the server's hint when given (never less than
        :data:`MIN_HINT_SECONDS`: a hint of 0 must not make a busy loop), else the schedule."""
        if hint_ms is not None:
            return max(MIN_HINT_SECONDS, hint_ms / 1000.0)
        growth = max(0, polls_done - self.steady_polls)
        return float(min(self.cap, self.initial * self.factor**growth))


MIN_HINT_SECONDS = 0.05
"""The shortest wait a server's ``openai-poll-after-ms`` hint can ask for (0 or a negative hint gets this)."""

NO_POLL_MARGIN = 0.02
"""Seconds before the deadline within which no poll is sent (a sleep can wake a hair early): a poll's answer
would come after the deadline anyway, and the cancel that follows tells whether the job had ended."""

CANCEL_SCHEDULE = PollSchedule(initial=0.05, factor=1.5, cap=1.0, steady_polls=2)
"""Polling while a cancel finishes: servers take tens of milliseconds to a few seconds."""

DEFAULT_CANCEL_WAIT_SECONDS = 30.0
"""How long the end of a job waits for a cancel to finish, everywhere (flows, tasks, hooks, sweep)."""


@dataclass(frozen=True)
class StatusChange:
    """One entry of a job's timeline: the status and when it was first seen.

    Attributes:
        status: The new status, as the API spells it.
        at: Wall-clock time (``time.time()``) it was seen.
        elapsed: Seconds since following started.
    """

    status: str
    at: float
    elapsed: float


StatusCallback = Callable[[StatusChange, Any], None]
Polled = tuple[Any, "int | None"]


@dataclass
class JobFollower(Generic[J]):
    """What is known about a followed job, and what to do next; no I/O.

    Attributes:
        kind: The kind of job (its statuses).
        ref: The job's address.
        max_wait_seconds: The deadline, counted from the follower's creation.
        schedule: Polling waits when the server gives no hint.
        on_change: Called once per status change, with the change and the job.
        on_tick: Called with the elapsed seconds while waiting (each poll, and while a stream is quiet).
        job: The last state seen.
        timeline: Every status change seen.
    """

    kind: JobKind[J]
    ref: JobRef
    max_wait_seconds: float
    schedule: PollSchedule = field(default_factory=PollSchedule)
    on_change: StatusCallback | None = None
    on_tick: Callable[[float], None] | None = None
    job: J | None = None
    timeline: list[StatusChange] = field(default_factory=list)
    polls: int = 0
    started: float = field(default_factory=time.monotonic)
    stale: bool = False
    """Whether the last state seen is known to be out of date (the caller just answered it)."""

    def __post_init__(self) -> None:
        if not self.max_wait_seconds > 0:
            raise ValueError(f"max_wait_seconds must be positive, got {self.max_wait_seconds}")

    @property
    def deadline(self) -> float:
        """The deadline as a ``time.monotonic()`` value."""
        return self.started + self.max_wait_seconds

    @property
    def elapsed(self) -> float:
        """Seconds since following started."""
        return time.monotonic() - self.started

    @property
    def remaining(self) -> float:
        """Seconds left before the deadline (0 once it passed)."""
        return max(0.0, self.deadline - time.monotonic())

    @property
    def timed_out(self) -> bool:
        """Whether the deadline passed."""
        return self.remaining <= 0

    @property
    def settled(self) -> bool:
        """Whether following can stop: the job is terminal or waits for the caller."""
        job = self.job
        return job is not None and not self.stale and (self.kind.is_terminal(job) or self.kind.needs_action(job))

    def observe(self, job: J) -> bool:
        """Take a new state of the job; record and report a status change. Returns whether it changed."""
        status = self.kind.status(job)
        changed = self.job is None or self.kind.status(self.job) != status
        self.job = job
        self.stale = False
        if changed:
            change = StatusChange(status=status, at=time.time(), elapsed=self.elapsed)
            self.timeline.append(change)
            if self.on_change is not None:
                self.on_change(change, job)
        return changed

    def take(self, job: J) -> bool:
        """Take a job state from a stream (only this job's); returns whether following can stop."""
        if self.kind.ref(job).id == self.ref.id:
            self.observe(job)
        return self.settled

    def next_delay(self, hint_ms: int | None) -> float:
        """The wait before the next poll, never past the deadline."""
        self.polls += 1
        self.tick()
        return min(self.schedule.delay(self.polls, hint_ms), self.remaining)

    def tick(self) -> None:
        """Report the elapsed time to ``on_tick``."""
        if self.on_tick is not None:
            self.on_tick(self.elapsed)

    def polling(self, wait_first: bool) -> Generator[float | None, Polled | None, J]:
        """Polling from the last known status, without I/O: the drivers' only loop logic.

        Yields the seconds to sleep (answered with ``None``) or ``None`` for "poll now" (answered with
        the job and the server's ``openai-poll-after-ms`` hint); returns the job once it is terminal or
        needs the caller. With ``wait_first``, a job already held (from the create) is not polled at once.

        Raises:
            JobTimedOut: The deadline passed first; no poll is spent at the deadline.
        """
        if wait_first and self.job is not None and not self.settled:
            yield self.next_delay(None)
        while True:
            if self.settled:
                assert self.job is not None
                return self.job
            if self.job is not None and self.remaining <= NO_POLL_MARGIN:
                raise self.timeout_error()  # a poll now would answer after the deadline: the cancel tells
            polled = yield None
            assert polled is not None, "a poll step is answered with the poll's result"
            job, hint = polled
            self.observe(job)
            if self.settled:
                return job
            if self.timed_out:
                raise self.timeout_error()
            yield self.next_delay(hint)

    def timeout_error(self) -> JobTimedOut:
        """The error for a passed deadline, carrying the last state seen."""
        assert self.job is not None, "a job is always observed before the deadline error"
        return JobTimedOut(
            self.job,
            f"it was still {self.kind.status(self.job)} when the {self.max_wait_seconds:g}s deadline "
            "(max_wait_seconds) passed",
        )
