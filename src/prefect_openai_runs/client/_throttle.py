"""Waiting for a turn to send: the process' :class:`~prefect_openai_runs.client._pacing.RateBudget`, and
Prefect's global rate limits for a budget shared by several processes and machines.

:func:`acquire_sync` / :func:`acquire_async` wait what the budget says before one request. They wake
early when the budget changes: a 429 pushed every booked turn back (they wait that much longer), or
the turns became void (the first headers, or the first reply after a 429's retry moment: they book
again). The sync one sleeps in short slices so that a signal or a timeout reaches the caller promptly,
the async one is cancellable at any point; an interrupted wait gives its turn back
(:meth:`RateBudget.release`). Given a ``timeout`` (what is left of the job's deadline), a wait never
outlasts it: when the turn would come later, the wait ends at the timeout, gives its turn back and
raises :class:`TurnTimeout`.
Within :func:`unpaced` (ending a job: its cancel and the reads that confirm it) requests do not wait.

:func:`prefect_rate_limit_sync` / :func:`prefect_rate_limit_async` take one slot of a Prefect global
concurrency limit that has a slot decay (``prefect gcl create openai-requests --limit 50
--slot-decay-per-second 8``): every process of every worker that names the same limit shares its
rate. They are no-ops when the name is None.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from prefect_openai_runs.client._pacing import RateBudget

SLICE_SECONDS = 0.1
"""The longest a synchronous wait sleeps before looking again."""

_UNPACED: ContextVar[bool] = ContextVar("prefect_openai_runs_unpaced", default=False)


class TurnTimeout(TimeoutError):
    """The timeout given to a wait for a turn passed before the turn came (the turn was given back)."""


@contextlib.contextmanager
def unpaced() -> Iterator[None]:
    """Within the block (in this thread or task, and the tasks it starts), requests do not wait for a turn.

    For ending a job: its cancel and the reads that confirm it must not be held behind a ``retry-after``
    until their own short deadline passes. Their answers still teach the budget.

    Example:
        ```python
        with unpaced():
            client.cancel_run(thread_id, run_id)
        ```
    """
    token = _UNPACED.set(True)
    try:
        yield
    finally:
        _UNPACED.reset(token)


def is_unpaced() -> bool:
    """Whether the current code runs within :func:`unpaced`."""
    return _UNPACED.get()


def acquire_sync(
    budget: RateBudget, *, tokens: int = 0, timeout: float | None = None, slice_seconds: float = SLICE_SECONDS
) -> float:
    """Wait until ``budget`` gives this request its turn (call right before sending it).

    Args:
        budget: The budget of the server and key the request goes to.
        tokens: Tokens the request is estimated to use, if known.
        timeout: Wait at most this many seconds (None: as long as the budget says).
        slice_seconds: The longest single sleep.

    Returns:
        Seconds waited.

    Raises:
        TurnTimeout: The turn would have come after ``timeout`` (which was waited out; the turn is given back).

    Example:
        ```python
        acquire_sync(budget)
        response = http.request("GET", url)
        budget.observe(response.status_code, response.headers)
        ```
    """
    started = time.monotonic()
    for delay, version in _turns(budget, tokens, _end(started, timeout)):
        changed = threading.Event()
        with _watching(budget, changed.set):
            until = time.monotonic() + delay
            while budget.version == version and (left := until - time.monotonic()) > 0:
                changed.wait(min(left, slice_seconds))
    return time.monotonic() - started


async def acquire_async(budget: RateBudget, *, tokens: int = 0, timeout: float | None = None) -> float:
    """Wait, without blocking the event loop, until ``budget`` gives this request its turn.

    Args:
        budget: The budget of the server and key the request goes to.
        tokens: Tokens the request is estimated to use, if known.
        timeout: Wait at most this many seconds (None: as long as the budget says).

    Returns:
        Seconds waited.

    Raises:
        TurnTimeout: The turn would have come after ``timeout`` (which was waited out; the turn is given back).

    Example:
        ```python
        await acquire_async(budget)
        response = await http.request("GET", url)
        budget.observe(response.status_code, response.headers)
        ```
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    for delay, version in _turns(budget, tokens, _end(time.monotonic(), timeout)):
        changed = asyncio.Event()
        with _watching(budget, _waker(loop, changed)):
            if budget.version == version:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(changed.wait(), delay)
    return loop.time() - started


def _end(now: float, timeout: float | None) -> float | None:
    return None if timeout is None else now + max(0.0, timeout)


def _turns(budget: RateBudget, tokens: int, end: float | None = None) -> Iterator[tuple[float, int]]:
    """Book a turn and wait for it: yields ``(seconds, version)`` to wait on (a change of the budget's
    :attr:`~RateBudget.version` ends the wait early), without waiting itself.

    The turn comes at the time it was given plus what a 429 has pushed every booked turn back since
    (:attr:`~RateBudget.pushed`). If the budget voided the turns meanwhile (its
    :attr:`~RateBudget.generation` changed), another is booked. A turn that would come after ``end`` (a
    ``time.monotonic()`` reading) is waited for only until ``end``, then given back, and
    :class:`TurnTimeout` raised.
    """
    while True:
        delay, generation, pushed = budget.book(tokens=tokens)
        if delay <= 0:
            return
        turn_at = time.monotonic() + delay
        while True:
            version = budget.version  # first: a change after it wakes the wait at once
            if budget.generation != generation:
                break
            now = time.monotonic()
            due = turn_at + (budget.pushed - pushed)
            if due <= now:
                return
            if end is not None and end <= now:
                budget.release()
                raise TurnTimeout(f"no turn to send before the deadline (the next was {due - now:.2f}s away)")
            yield (due - now if end is None else min(due, end) - now), version


@contextlib.contextmanager
def _watching(budget: RateBudget, listener: Callable[[], None]) -> Iterator[None]:
    """Call ``listener`` on the budget's changes while waiting; an interrupted wait gives its turn back."""
    unsubscribe = budget.on_change(listener)
    try:
        yield
    except BaseException:
        budget.release()  # interrupted or cancelled: the turn will not be used
        raise
    finally:
        unsubscribe()


def _waker(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> Callable[[], None]:
    """A callback, safe from any thread, that sets ``event`` on ``loop``."""

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(event.set)

    return wake


def _missing_limit(name: str, cause: BaseException) -> ValueError:
    return ValueError(
        f"Prefect global concurrency limit {name!r} could not be used as a rate limit ({cause}). Create it "
        f"with a slot decay, e.g. `prefect gcl create {name} --limit 50 --slot-decay-per-second 8` "
        "(about 8 requests a second, bursts of 50), or pass rate_limit=None."
    )


def prefect_rate_limit_sync(name: str | None, *, occupy: int = 1, timeout_seconds: float | None = None) -> None:
    """Take ``occupy`` slots of the Prefect global rate limit ``name``, waiting for them (no-op if None).

    Args:
        name: A global concurrency limit with ``slot_decay_per_second`` set on the Prefect server.
        occupy: Slots to take (one per request).
        timeout_seconds: Give up after this long (``TimeoutError``); None waits as long as it takes.

    Raises:
        ValueError: If the limit does not exist on the server.
        TimeoutError: If the slots were not free in time.

    Example:
        ```python
        prefect_rate_limit_sync("openai-requests")   # before each request
        ```
    """
    if name is None:
        return
    from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
    from prefect.concurrency.sync import rate_limit

    try:
        rate_limit(name, occupy=occupy, timeout_seconds=timeout_seconds, strict=True)
    except ConcurrencySlotAcquisitionError as exc:
        raise _missing_limit(name, exc) from exc


async def prefect_rate_limit_async(name: str | None, *, occupy: int = 1, timeout_seconds: float | None = None) -> None:
    """:func:`prefect_rate_limit_sync` for coroutines: the same arguments and errors, without blocking the loop."""
    if name is None:
        return
    from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError, rate_limit

    try:
        await rate_limit(name, occupy=occupy, timeout_seconds=timeout_seconds, strict=True)
    except ConcurrencySlotAcquisitionError as exc:
        raise _missing_limit(name, exc) from exc


__all__ = [
    "SLICE_SECONDS",
    "TurnTimeout",
    "acquire_async",
    "acquire_sync",
    "is_unpaced",
    "prefect_rate_limit_async",
    "prefect_rate_limit_sync",
    "unpaced",
]
