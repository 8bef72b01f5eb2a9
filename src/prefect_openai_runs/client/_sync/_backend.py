"""The synchronous side's own primitives (hand-written; its asynchronous twin is ``_async/_backend.py``)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from prefect_openai_runs import _deadline
from prefect_openai_runs.client._pacing import RateBudget
from prefect_openai_runs.client._throttle import acquire_sync, prefect_rate_limit_sync

SLICE = 0.25
"""The longest single blocking sleep: Prefect interrupts a flow running off the main thread (its timeout,
a cancellation) by raising into it, which only lands between Python instructions."""


def new_http_client(options: dict[str, Any]) -> httpx.Client:
    """An ``httpx.Client`` with one pool."""
    return httpx.Client(**options)


def sleep(seconds: float) -> None:
    """Sleep in short slices, so that an exception Prefect raises into this thread lands soon."""
    end = time.monotonic() + max(0.0, seconds)
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(SLICE, left))


def pace(budget: RateBudget | None, rate_limit: str | None = None) -> None:
    """Wait for this request's turn: a slot of the Prefect rate limit (when named), then the budget's, never
    past the current job's deadline (:class:`~prefect_openai_runs.client._throttle.TurnTimeout`)."""
    if rate_limit is not None:
        prefect_rate_limit_sync(rate_limit)
    if budget is not None:
        acquire_sync(budget, timeout=_deadline.remaining())
