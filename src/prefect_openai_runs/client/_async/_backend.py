"""The asynchronous side's own primitives (hand-written; its synchronous twin is ``_sync/_backend.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from prefect_openai_runs.client._pool import ShardedAsyncTransport


def new_http_client(options: dict[str, Any]) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose connections are spread over several small pools (see ``_pool``)."""
    options = dict(options)
    transport = ShardedAsyncTransport(options.pop("limits"))
    return httpx.AsyncClient(**options, transport=transport)


async def sleep(seconds: float) -> None:
    """Sleep (cancellable, like every await)."""
    await asyncio.sleep(seconds)
