"""The asynchronous side's own primitives (hand-written; its synchronous twin is ``_sync/_backend.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from prefect_openai_runs import _deadline
from prefect_openai_runs.client._pacing import RateBudget
from prefect_openai_runs.client._pool import ShardedAsyncTransport
from prefect_openai_runs.client._throttle import acquire_async, prefect_rate_limit_async


def new_http_client(options: dict[str, Any]) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose connections are spread over several small pools (see ``_pool``)."""
    options = dict(options)
    transport = ShardedAsyncTransport(options.pop("limits"))
    return httpx.AsyncClient(**options, transport=transport)


async def sleep(seconds: float) -> None:
    """Sleep (cancellable, like every await)."""
    await asyncio.sleep(seconds)


async def pace(budget: RateBudget | None, rate_limit: str | None = None) -> None:
    """Wait for this request's turn: a slot of the Prefect rate limit (when named), then the budget's, never
    past the current job's deadline (:class:`~prefect_openai_runs.client._throttle.TurnTimeout`)."""
    if rate_limit is not None:
        await prefect_rate_limit_async(rate_limit)
    if budget is not None:
        await acquire_async(budget, timeout=_deadline.remaining())
