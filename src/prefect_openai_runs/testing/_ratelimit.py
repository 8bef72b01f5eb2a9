"""Rate limits: requests and tokens per minute, per API key, as continuously refilling buckets.

Each limit is a bucket holding up to ``limit * burst_seconds / 60`` units that refills at
``limit / 60`` units per second, continuously (the API's "refills continuously" model: after a
full bucket is spent, one request is back ``60 / limit`` seconds later). ``burst_seconds=60`` lets a
whole minute's budget go at once; a smaller value enforces the limit over shorter periods, as the
API may do ("quantized" limits, e.g. 60,000 requests/minute enforced as 1,000 per second).

A request is admitted when both buckets hold what it asks for (one request; its estimated tokens),
and then takes it from both; a refused request takes nothing. The API counts refused requests too,
so the emulator is the more lenient of the two. Every answer carries the
``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` headers; ``reset`` is the time until the
bucket is full again, written like the API writes durations (``120ms``, ``1s``, ``59.9s``,
``6m0s``). A limit that is not set is reported at a fixed, generous level and never enforced.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from . import _errors as errors

Kind = Literal["requests", "tokens"]
Header = tuple[bytes, bytes]

_NOMINAL: dict[Kind, list[Header]] = {
    "requests": [
        (b"x-ratelimit-limit-requests", b"10000"),
        (b"x-ratelimit-remaining-requests", b"9999"),
        (b"x-ratelimit-reset-requests", b"6ms"),
    ],
    "tokens": [
        (b"x-ratelimit-limit-tokens", b"30000000"),
        (b"x-ratelimit-remaining-tokens", b"29999000"),
        (b"x-ratelimit-reset-tokens", b"2ms"),
    ],
}
"""What an unset limit reports: a generous account that one request barely dents."""


@dataclass(frozen=True)
class RateLimits:
    """The limits the emulator enforces per API key.

    Attributes:
        rpm: Requests per minute (None: not enforced).
        tpm: Tokens per minute (None: not enforced).
        burst_seconds: How many seconds' worth of the limit a full bucket holds (60: a minute's).
    """

    rpm: int | None = None
    tpm: int | None = None
    burst_seconds: float = 60.0

    def __post_init__(self) -> None:
        for name, unit in (("rpm", "requests"), ("tpm", "tokens")):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive whole number of {unit} per minute, or None; got {value!r}")
        if not (0 < self.burst_seconds <= 60):
            raise ValueError(f"burst_seconds must be in (0, 60], not {self.burst_seconds!r}")

    def limit(self, kind: Kind) -> int | None:
        """The per-minute limit of ``kind``."""
        return self.rpm if kind == "requests" else self.tpm


@dataclass
class Bucket:
    """One continuously refilling bucket.

    Attributes:
        limit: Units per minute.
        capacity: Units a full bucket holds.
        level: Units held at ``at`` (refilled lazily).
        at: The clock reading ``level`` is for.
    """

    limit: int
    capacity: float
    level: float
    at: float

    @classmethod
    def full(cls, limit: int, burst_seconds: float, now: float) -> Bucket:
        """A full bucket for ``limit`` units per minute."""
        capacity = max(1.0, limit * burst_seconds / 60.0)
        return cls(limit=limit, capacity=capacity, level=capacity, at=now)

    @property
    def rate(self) -> float:
        """Units refilled per second."""
        return self.limit / 60.0

    def refill(self, now: float) -> None:
        """Bring ``level`` up to ``now``."""
        if now > self.at:
            self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
            self.at = now

    def wait_for(self, amount: float) -> float:
        """Seconds until the bucket holds ``amount`` (0 if it already does)."""
        return max(0.0, (amount - self.level) / self.rate)

    def headers(self, kind: Kind) -> list[Header]:
        """The ``x-ratelimit-*-{kind}`` trio for the current level."""
        reset = (self.capacity - self.level) / self.rate
        return [
            (f"x-ratelimit-limit-{kind}".encode(), str(self.limit).encode()),
            (f"x-ratelimit-remaining-{kind}".encode(), str(max(0, math.floor(self.level))).encode()),
            (f"x-ratelimit-reset-{kind}".encode(), format_duration(reset).encode()),
        ]


@dataclass(frozen=True)
class Verdict:
    """What the limiter says about one request.

    Attributes:
        headers: The ``x-ratelimit-*`` headers to answer with (and, when refused, ``retry-after`` and
            ``retry-after-ms``).
        error: The 429 to answer instead of handling the request, or None if it is admitted.
        kind: Which limit refused it, or None.
    """

    headers: list[Header]
    error: errors.ApiError | None = None
    kind: Kind | None = None


@dataclass
class RateLimiter:
    """The buckets of every API key, for the limits :attr:`limits` returns; safe to use from any thread.

    Args:
        limits: Reads the limits in force (they may change while serving: new limits start full).
        clock: A monotonic clock in seconds.
    """

    limits: Callable[[], RateLimits]
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[tuple[str, Kind], Bucket] = field(default_factory=dict)
    _for: RateLimits | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, api_key: str, tokens: int) -> Verdict:
        """Take one request and ``tokens`` tokens from ``api_key``'s buckets, or refuse the request.

        Args:
            api_key: The key the request carries (buckets are per key).
            tokens: Tokens the request asks for (see :func:`estimate_tokens`).

        Returns:
            The headers to answer with, and the 429 to answer if the request is refused.
        """
        asks: dict[Kind, int] = {"requests": 1, "tokens": tokens}
        with self._lock:
            buckets = self._current(api_key)
            for kind, bucket in buckets.items():
                if asks[kind] > bucket.capacity:
                    too_large = errors.request_too_large(kind, bucket.limit, asks[kind])
                    return Verdict(self._headers(buckets), too_large, kind)
                wait = bucket.wait_for(asks[kind])
                if wait > 0:
                    used = bucket.limit - max(0, math.floor(bucket.level))
                    error = errors.rate_limited(kind, bucket.limit, used, asks[kind], format_duration(wait))
                    retry = [
                        (b"retry-after", str(max(1, math.ceil(wait))).encode()),
                        (b"retry-after-ms", str(max(1, math.ceil(wait * 1000))).encode()),
                    ]
                    return Verdict(self._headers(buckets) + retry, error, kind)
            for kind, bucket in buckets.items():
                bucket.level -= asks[kind]
            return Verdict(self._headers(buckets))

    def peek(self, api_key: str | None) -> list[Header]:
        """The headers for a request that is answered without being counted (a fault, a 401)."""
        with self._lock:
            return self._headers(self._current(api_key or "", keep=False))

    def reset(self) -> None:
        """Forget every bucket (they start full again)."""
        with self._lock:
            self._buckets.clear()

    def _current(self, api_key: str, keep: bool = True) -> dict[Kind, Bucket]:
        """``api_key``'s buckets for the limits in force, refilled to now (new ones kept if ``keep``)."""
        limits, now = self.limits(), self.clock()
        if limits != self._for:
            self._buckets.clear()
            self._for = limits
        owner = _fingerprint(api_key)
        buckets: dict[Kind, Bucket] = {}
        for kind in ("requests", "tokens"):
            limit = limits.limit(kind)
            if limit is None:
                continue
            bucket = self._buckets.get((owner, kind))
            if bucket is None:
                bucket = Bucket.full(limit, limits.burst_seconds, now)
                if keep:
                    self._buckets[(owner, kind)] = bucket
            bucket.refill(now)
            buckets[kind] = bucket
        return buckets

    @staticmethod
    def _headers(buckets: dict[Kind, Bucket]) -> list[Header]:
        headers: list[Header] = []
        for kind in ("requests", "tokens"):
            bucket = buckets.get(kind)
            headers += bucket.headers(kind) if bucket is not None else _NOMINAL[kind]
        return headers


def estimate_tokens(method: str, body: bytes) -> int:
    """Tokens a request asks for: about one per four bytes of its JSON body, plus the output it allows.

    Like the API, the estimate counts the most the request may produce: ``max_completion_tokens``
    (runs) or ``max_output_tokens`` (responses). Requests without a body ask for none.
    """
    if method == "GET" or not body.strip():
        return 0
    tokens = math.ceil(len(body) / 4)
    try:
        parsed = json.loads(body)
    except ValueError:
        return tokens
    if isinstance(parsed, dict):
        for name in ("max_completion_tokens", "max_output_tokens"):
            value = parsed.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                tokens += value
    return tokens


def format_duration(seconds: float) -> str:
    """A duration the way the API writes it in headers and messages: ``120ms``, ``1s``, ``59.9s``, ``6m0s``.

    Rounded up to the millisecond, so waiting that long is always enough.
    """
    ms = math.ceil(seconds * 1000 - 1e-6)
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    head = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
    return f"{head}{secs}s"


def _fingerprint(api_key: str) -> str:
    """What the buckets are keyed by: a short hash, so the limiter never holds a key."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]
