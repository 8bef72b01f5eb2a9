"""Pacing requests against the server's rate limits, without I/O: read the headers, decide the waits.

A :class:`RateBudget` is what one scope knows of one account's limits: one per base URL, API key and
Prefect flow run (or the process, outside any flow run), from :func:`shared_budget`, so that the
requests of one flow run pace together and unrelated flow runs of one process never hold each other
back. The process keeps the most recently used few hundred (:data:`MAX_BUDGETS`). It learns from every
response (:meth:`RateBudget.observe`): the ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``
headers and, on a 429, ``retry-after-ms`` / ``retry-after``. Before each request,
:meth:`RateBudget.delay_before` books the request a turn and says how long to wait for it. It models the
server's limit as the API describes it, a bucket that refills continuously at ``limit / 60`` per second,
and books turns against its own estimate of that bucket:

* while the bucket holds more than a small reserve, requests go at once;
* below it, turns are spaced ``60 / limit`` seconds apart, so requests spread evenly over the reset
  window instead of bursting into 429s;
* after a 429, every caller of the scope waits for the shared retry moment: the turns already booked
  are pushed back together, in their order and spacing, so that the first comes at that moment and they
  do not all come back at the same instant (nor does a 429 send anyone to the back of the queue);
* before anything is known, one request goes alone and the others wait (at most ``probe_timeout``)
  for its headers, so that a cold start with a thousand coroutines does not burst either (a server
  that sends no ``x-ratelimit-*`` headers is not paced at all after that first answer).

The estimate only ever moves down to what the server reports (other processes may spend the same
budget), and refills on its own. Nothing here sleeps or sends: the waiting is
:mod:`prefect_openai_runs.client._throttle`'s. Every method is thread-safe; the clock is injected.

Wiring into a client's send path (every attempt of every request; cancels, and the reads that end a job,
observe without waiting)::

    budget = shared_budget(base_url, api_key, scope)   # once per client, in its constructor
    # per attempt, inside the retry loop (so a retried 429 takes a fresh turn):
    await prefect_rate_limit_async(rate_limit_name)    # optional: the cross-process budget first
    await acquire_async(budget, timeout=left)          # then this scope's turn, never past the deadline
    try:
        response = await http.request(...)             # or http.send(..., stream=True): headers suffice
    except httpx.HTTPError:
        budget.release()                               # no response will be observed for this turn
        raise
    budget.observe(response.status_code, response.headers)   # before raising for an error status

Example:
    ```python
    budget = shared_budget(base_url, api_key, scope=flow_run_id)
    await acquire_async(budget)            # before each request (prefect_openai_runs.client._throttle)
    response = await http.request(...)
    budget.observe(response.status_code, response.headers)
    ```
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prefect_openai_runs.client._http import parse_retry_after

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|ns|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(text: str | None) -> float | None:
    """Seconds in a duration as the API writes them (``120ms``, ``1s``, ``59.9s``, ``6m0s``, ``1h2m``).

    A bare number is seconds. Anything else is None (an unreadable header is ignored, never fatal).

    Example:
        ```python
        assert parse_duration("6m0s") == 360.0
        ```
    """
    if text is None:
        return None
    raw = text.strip().lower()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        return value if value >= 0 else None
    parts = _DURATION_PART.findall(raw)
    if not parts or "".join(number + unit for number, unit in parts) != raw:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _whole(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(float(text.strip()))
    except ValueError:
        return None
    return value if value >= 0 else None


@dataclass(frozen=True)
class LimitReading:
    """One limit (requests or tokens) as one response reported it.

    Attributes:
        limit: ``x-ratelimit-limit-*``: units per minute.
        remaining: ``x-ratelimit-remaining-*``: units left now.
        reset: ``x-ratelimit-reset-*`` in seconds: time until the bucket is full again.
    """

    limit: int | None
    remaining: int | None
    reset: float | None

    @classmethod
    def read(cls, headers: Mapping[str, str], kind: str) -> LimitReading:
        """Read the ``x-ratelimit-*-{kind}`` trio from lower-cased ``headers``."""
        return cls(
            limit=_whole(headers.get(f"x-ratelimit-limit-{kind}")),
            remaining=_whole(headers.get(f"x-ratelimit-remaining-{kind}")),
            reset=parse_duration(headers.get(f"x-ratelimit-reset-{kind}")),
        )


@dataclass
class _Estimate:
    """This process' estimate of one server bucket, less what is booked and not yet answered.

    ``level`` goes below zero for turns booked ahead. ``outstanding`` (turns booked whose response is
    not observed yet) is what the server has not counted yet: the server's bucket holds at most
    ``capacity``, so the estimate never refills above ``capacity - outstanding`` (refill the server
    spends on a full bucket while our requests are still on their way is lost for real).
    """

    rate: float | None = None
    capacity: float | None = None
    level: float = 0.0
    at: float = 0.0
    known: bool = False

    def refill(self, now: float, outstanding: int = 0) -> None:
        if self.rate is not None and now > self.at:
            top = self.capacity - outstanding if self.capacity is not None else float("inf")
            self.level = max(self.level, min(top, self.level + (now - self.at) * self.rate))
        self.at = max(self.at, now)

    def learn(self, reading: LimitReading, now: float, outstanding: int = 0, trust: bool = False) -> bool:
        """Take in what a response said; True if the level moved up (the first reading with a rate, or a
        ``trust``-ed reading above the estimate: the turns booked on the old estimate are void).

        A reading only moves the estimate down (replies arrive out of order, other senders spend the same
        bucket), unless ``trust``: the first reply to a request sent after a 429's retry moment says where
        the bucket really is (a 429 may come from a short burst window while the minute's bucket is full).
        """
        if reading.limit:
            self.rate = reading.limit / 60.0
        if self.rate is None or reading.remaining is None:
            return False
        self.refill(now, outstanding)
        full = reading.remaining + self.rate * reading.reset if reading.reset is not None else reading.limit
        if full is not None:
            self.capacity = max(float(full), float(reading.remaining))
        first = not self.known
        seen = float(reading.remaining - outstanding)
        raised = first or (trust and seen > self.level)
        self.level = seen if raised else min(self.level, seen)
        self.known = True
        return raised

    def refuse(self, wait: float, now: float, push: float) -> None:
        """The server refused a request and will have one unit again in ``wait`` seconds; the turns booked
        ahead were pushed back ``push`` seconds (new turns come after them)."""
        if self.rate is None:
            return
        self.refill(now)
        self.level = min(self.level - self.rate * push, 1.0 - self.rate * wait)
        self.at = now

    def book(
        self, amount: float, now: float, reserve_fraction: float, reserve_seconds: float, outstanding: int = 0
    ) -> float:
        """Take ``amount`` at ``now``; seconds until the estimate says it may go.

        The reserve (what is kept unspent) is ``reserve_fraction`` of a full bucket, at most
        ``reserve_seconds`` of refill: an emptied bucket of a minute's limit would otherwise hold every
        request back for 3 s (5% of a minute) before spacing them.
        """
        if not self.known or self.rate is None or amount <= 0:
            return 0.0
        self.refill(now, outstanding)
        self.level -= amount
        reserve = min((self.capacity or 0.0) * reserve_fraction, self.rate * reserve_seconds)
        if self.level >= reserve:
            return 0.0
        return (reserve - self.level) / self.rate


@dataclass(frozen=True)
class BudgetState:
    """A snapshot of a :class:`RateBudget`, for logs and tests.

    Attributes:
        requests_per_second: The requests limit as a rate, or None if unknown.
        requests_level: Estimated requests left (negative: turns booked ahead).
        tokens_per_second: The tokens limit as a rate, or None if unknown.
        tokens_level: Estimated tokens left.
        resume_at: Clock reading before which no request should go (after a 429), or None.
        generation: Bumped whenever booked turns are void (the first reading, a trusted reading above the estimate).
        pushed: Seconds every turn booked so far was pushed back by 429s, in total (see :attr:`RateBudget.pushed`).
        waiters: Callers waiting to be told of the next change (see :meth:`RateBudget.on_change`).
        outstanding: Turns booked whose response is not observed yet.
    """

    requests_per_second: float | None
    requests_level: float
    tokens_per_second: float | None
    tokens_level: float
    resume_at: float | None
    generation: int
    pushed: float
    waiters: int
    outstanding: int


class RateBudget:
    """One scope's shared view of one account's rate limits: observe responses, book turns.

    Args:
        clock: A monotonic clock in seconds (injected for tests; ``now`` arguments default to it).
        reserve_fraction: Share of a full bucket kept unspent, to absorb other senders and jitter.
        reserve_seconds: The reserve is at most this many seconds of the limit's refill.
        probe_timeout: Before the first response is observed, how long others wait for it at most.
        default_retry_after: The back-off after a 429 that says neither ``retry-after`` nor a rate.
        outstanding_ttl: A booked turn whose response is never observed stops counting this long after
            its time (see :meth:`release`).
        label: Shown in the repr (never the key).

    Example:
        ```python
        budget = RateBudget()
        delay = budget.delay_before()          # book a turn, wait ``delay`` seconds, send
        budget.observe(429, {"retry-after-ms": "200"})
        assert budget.delay_before() >= 0.2    # everyone sharing it backs off together
        ```
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        reserve_fraction: float = 0.05,
        reserve_seconds: float = 0.25,
        probe_timeout: float = 1.0,
        default_retry_after: float = 1.0,
        outstanding_ttl: float = 60.0,
        label: str = "",
    ) -> None:
        if not 0 <= reserve_fraction < 1:
            raise ValueError(f"reserve_fraction must be in [0, 1), got {reserve_fraction!r}")
        if probe_timeout < 0 or default_retry_after < 0 or reserve_seconds < 0:
            raise ValueError("probe_timeout, default_retry_after and reserve_seconds must be 0 or more seconds")
        self.clock = clock
        self.reserve_fraction = reserve_fraction
        self.reserve_seconds = reserve_seconds
        self.probe_timeout = probe_timeout
        self.default_retry_after = default_retry_after
        self.outstanding_ttl = outstanding_ttl
        self.label = label
        self._outstanding: list[float] = []  # the send times of turns booked and not yet answered
        self._lock = threading.Lock()
        self._requests = _Estimate()
        self._tokens = _Estimate()
        self._resume_at: float | None = None
        self._probe_at: float | None = None
        self._observed = False
        self._generation = 0
        self._pushed = 0.0
        self._version = 0
        self._refused_until: float | None = None  # the last 429's retry moment, until a later request's reply
        self._listeners: dict[int, Callable[[], None]] = {}
        self._listener_ids = itertools.count()

    def __repr__(self) -> str:
        return f"RateBudget({self.label!r})" if self.label else "RateBudget()"

    @property
    def generation(self) -> int:
        """Changes whenever booked turns become void (the first reading, or the first reply after a 429's
        retry moment showing more room than estimated); a waiter that sees it change books again."""
        return self._generation

    @property
    def pushed(self) -> float:
        """Seconds every turn booked so far was pushed back, in total: a 429 pushes the turns booked ahead
        back together so that the first comes at the retry moment. A waiter's turn is the time it was
        given plus how much this grew since it was booked."""
        return self._pushed

    @property
    def version(self) -> int:
        """Changes whenever :attr:`generation` or :attr:`pushed` does: what a waiter watches."""
        return self._version

    def delay_before(self, now: float | None = None, *, tokens: int = 0) -> float:
        """Book a turn for one request and return the seconds to wait before sending it.

        Call once per request (each call books a turn). If :attr:`generation` changes while waiting,
        the turn is void: call again; if :attr:`pushed` grows, the turn comes that much later (a waiter
        reads both with the delay, at once: :meth:`book`).

        Args:
            now: The clock reading (default: the budget's clock).
            tokens: Tokens the request is estimated to use, if known (0: pace requests only).

        Returns:
            Seconds to wait; 0 to send at once.
        """
        return self.book(now, tokens=tokens)[0]

    def book(self, now: float | None = None, *, tokens: int = 0) -> tuple[float, int, float]:
        """Book a turn like :meth:`delay_before`; returns its delay with the :attr:`generation` and
        :attr:`pushed` it was booked under, read together (a waiter compares them as it waits)."""
        now = self.clock() if now is None else now
        with self._lock:
            if not self._observed:
                if self._probe_at is None:
                    self._probe_at = now
                    return 0.0, self._generation, self._pushed
                if now < self._probe_at + self.probe_timeout:
                    return self._probe_at + self.probe_timeout - now, self._generation, self._pushed
            delay = max(0.0, self._resume_at - now) if self._resume_at is not None else 0.0
            pending = self._pending(now)
            delay = max(delay, self._requests.book(1, now, self.reserve_fraction, self.reserve_seconds, pending))
            delay = max(delay, self._tokens.book(tokens, now, self.reserve_fraction, self.reserve_seconds))
            if self._requests.known:
                self._outstanding.append(now + delay)
            return delay, self._generation, self._pushed

    def release(self) -> None:
        """Say that one booked turn will get no response to observe (the request failed to send or was
        abandoned), so it stops counting as on its way."""
        with self._lock:
            if self._outstanding:
                self._outstanding.pop(0)

    def _pending(self, now: float) -> int:
        """Turns booked and not answered, forgetting those past ``outstanding_ttl``."""
        stale = now - self.outstanding_ttl
        while self._outstanding and self._outstanding[0] < stale:
            self._outstanding.pop(0)
        return len(self._outstanding)

    def observe(
        self, status: int, headers: Mapping[str, str], now: float | None = None, *, sent_at: float | None = None
    ) -> None:
        """Learn from one response (any status, including errors).

        Args:
            status: The HTTP status.
            headers: The response headers (any case).
            now: The clock reading (default: the budget's clock).
            sent_at: When its request was sent (the budget's clock). The first reply to a request sent
                after a 429's retry moment is believed even above the estimate (see :meth:`_Estimate.learn`).
        """
        now = self.clock() if now is None else now
        lowered = {name.lower(): value for name, value in headers.items()}
        requests, tokens = LimitReading.read(lowered, "requests"), LimitReading.read(lowered, "tokens")
        with self._lock:
            if self._outstanding:
                self._outstanding.pop(0)
            trust = status != 429 and self._after_refusal(sent_at)
            void = not self._observed
            self._observed = True
            ahead = [at for at in self._outstanding if at > now]  # turns booked and still to come
            # A 429's reading: the requests on their way will be refused too (a refusal spends nothing), so
            # only the turns still to come count against what it says is left.
            coming = self._pending(now) if status != 429 else len(ahead)
            void = self._requests.learn(requests, now, coming, trust) or void
            self._tokens.learn(tokens, now, trust=trust)
            changed = void
            if status == 429:
                changed = True
                wait = self._retry_wait(lowered)
                self._resume_at = max(self._resume_at or 0.0, now + wait)
                self._refused_until = self._resume_at
                push = max(0.0, now + wait - min(ahead)) if ahead and not void else 0.0
                if push:  # every turn booked ahead moves back together, the first to the retry moment
                    self._outstanding = [at + push if at > now else at for at in self._outstanding]
                    self._pushed += push
                self._requests.refuse(wait, now, push)
                # Without a known rate no turn is booked ahead to push: the waiters (held by the retry
                # moment alone) book again, to wait for this later one.
                void = void or not self._requests.known
            if void:  # the turns booked ahead are void: their waiters book again, taking them anew
                self._outstanding = [at for at in self._outstanding if at <= now]
                self._requests.level += len(ahead)  # counted in the reading's level: not twice
                self._generation += 1
            if changed:
                self._version += 1
                listeners = list(self._listeners.values())
        if changed:
            for listener in listeners:
                listener()

    def _after_refusal(self, sent_at: float | None) -> bool:
        """Whether a reply is the first to a request sent after the last 429's retry moment (it clears it)."""
        if sent_at is None or self._refused_until is None or sent_at < self._refused_until:
            return False
        self._refused_until = None
        return True

    def _retry_wait(self, headers: Mapping[str, str]) -> float:
        hinted = parse_retry_after(headers, now=time.time())
        if hinted is not None:
            return hinted
        rate = self._requests.rate
        return 1.0 / rate if rate else self.default_retry_after

    def on_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` (from the observing thread) whenever :attr:`version` changes.

        Returns:
            A function that unsubscribes it.
        """
        with self._lock:
            key = next(self._listener_ids)
            self._listeners[key] = listener

        def unsubscribe() -> None:
            with self._lock:
                self._listeners.pop(key, None)

        return unsubscribe

    def state(self, now: float | None = None) -> BudgetState:
        """A snapshot of the estimate at ``now``."""
        now = self.clock() if now is None else now
        with self._lock:
            self._requests.refill(now, self._pending(now))
            self._tokens.refill(now)
            return BudgetState(
                requests_per_second=self._requests.rate,
                requests_level=self._requests.level,
                tokens_per_second=self._tokens.rate,
                tokens_level=self._tokens.level,
                resume_at=self._resume_at if self._resume_at is not None and self._resume_at > now else None,
                generation=self._generation,
                pushed=self._pushed,
                waiters=len(self._listeners),
                outstanding=len(self._outstanding),
            )


def key_fingerprint(api_key: str) -> str:
    """A short hash naming an API key without revealing it (12 hex digits of its SHA-256)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:12]


PROCESS_SCOPE = "process"
"""The scope of a budget used outside any Prefect flow run."""

MAX_BUDGETS = 256
"""Budgets kept at most; the least recently used goes first (a long-lived worker sees many flow runs)."""

_BUDGETS: OrderedDict[tuple[str, str, str], RateBudget] = OrderedDict()
_BUDGETS_LOCK = threading.Lock()


def shared_budget(base_url: str, api_key: str, scope: str | None = None) -> RateBudget:
    """The budget for this server, key and scope, created on first use; every client of the scope shares it.

    The scope is what shares one view of the limits: the clients of one Prefect flow run share one
    budget (a 429 backs them all off together), and unrelated flow runs in the same process never wait
    for each other. Only the :data:`MAX_BUDGETS` most recently used budgets are kept (a dropped one is
    created again, cold, on next use), and only a fingerprint of the key (:func:`key_fingerprint`).

    Args:
        base_url: The API's base URL.
        api_key: The key the requests carry.
        scope: What shares the budget, e.g. a flow run's id; None: the whole process (:data:`PROCESS_SCOPE`).

    Example:
        ```python
        budget = shared_budget("https://api.openai.com/v1", api_key, scope=str(flow_run_id))
        ```
    """
    owner = (base_url.rstrip("/"), key_fingerprint(api_key), scope or PROCESS_SCOPE)
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(owner)
        if budget is None:
            budget = _BUDGETS[owner] = RateBudget(label=f"{owner[0]} key#{owner[1]} {owner[2]}")
            while len(_BUDGETS) > MAX_BUDGETS:
                _BUDGETS.popitem(last=False)
        else:
            _BUDGETS.move_to_end(owner)
        return budget


def forget_budgets(base_url: str | None = None) -> None:
    """Drop the budgets of ``base_url`` (None: every budget), e.g. when a test server is reset.

    Clients built before keep the budget they hold; clients built after start cold.

    Example:
        ```python
        forget_budgets(emulator.base_url)
        ```
    """
    with _BUDGETS_LOCK:
        for owner in [owner for owner in _BUDGETS if base_url is None or owner[0] == base_url.rstrip("/")]:
            del _BUDGETS[owner]


def budget_count() -> int:
    """How many budgets the process holds (at most :data:`MAX_BUDGETS`)."""
    with _BUDGETS_LOCK:
        return len(_BUDGETS)


__all__ = [
    "MAX_BUDGETS",
    "PROCESS_SCOPE",
    "BudgetState",
    "LimitReading",
    "RateBudget",
    "budget_count",
    "forget_budgets",
    "key_fingerprint",
    "parse_duration",
    "shared_budget",
]
