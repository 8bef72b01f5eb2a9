"""Connection pools that stay cheap with a thousand runs in flight.

httpcore 1.x (under httpx 0.28) re-examines every queued request against every pooled connection each
time a request starts or ends, so one pool of N connections costs O(N²) work per round of polls: at
200 runs polled together, ``bench/`` saw the event loop stall for seconds. Spreading requests over
several smaller pools keeps each pool's bookkeeping small; the total connection limit is unchanged.

The pools share one TLS context: each ``httpx.AsyncHTTPTransport`` would otherwise load the CA bundle
into a context of its own (about 0.8 MB and 17 ms of CPU each, 25 MB for the 32 pools of a
1,000-connection client).
"""

from __future__ import annotations

import itertools
import math
import ssl

import httpx

CONNECTIONS_PER_POOL = 32
"""Connections in each pool; the number of pools follows from the client's connection limit."""


class ShardedAsyncTransport(httpx.AsyncBaseTransport):
    """An async transport that hands requests round-robin to several connection pools."""

    def __init__(
        self, limits: httpx.Limits, per_pool: int = CONNECTIONS_PER_POOL, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        total = limits.max_connections or per_pool
        count = max(1, math.ceil(total / per_pool))
        keepalive = limits.max_keepalive_connections
        shard_limits = httpx.Limits(
            max_connections=math.ceil(total / count),
            max_keepalive_connections=None if keepalive is None else math.ceil(keepalive / count),
            keepalive_expiry=limits.keepalive_expiry,
        )
        shared_tls = ssl_context or httpx.create_ssl_context()
        self._pools = [httpx.AsyncHTTPTransport(verify=shared_tls, limits=shard_limits) for _ in range(count)]
        self._turn = itertools.cycle(range(count))

    @property
    def pool_count(self) -> int:
        """How many pools requests are spread over."""
        return len(self._pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request through the next pool in turn."""
        return await self._pools[next(self._turn)].handle_async_request(request)

    async def aclose(self) -> None:
        """Close every pool."""
        for pool in self._pools:
            await pool.aclose()
