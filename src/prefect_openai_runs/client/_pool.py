"""Connection pools that stay cheap with a thousand runs in flight.

httpcore 1.x (under httpx 0.28) re-examines every queued request against every pooled connection each
time a request starts or ends, so one pool of N connections costs O(N²) work per round of polls: at
200 runs polled together, ``bench/`` saw the event loop stall for seconds. Spreading requests over
several smaller pools keeps each pool's bookkeeping small; the total connection limit is unchanged.

The pools share one TLS context: each ``httpx.AsyncHTTPTransport`` would otherwise load the CA bundle
into a context of its own (about 0.8 MB and 17 ms of CPU each, 25 MB for the 32 pools of a
1,000-connection client).

Passing a transport to ``httpx.AsyncClient`` turns off its handling of the environment, so this transport
does it itself, as httpx does for a client built with ``trust_env=True``: ``HTTP_PROXY``, ``HTTPS_PROXY``,
``ALL_PROXY`` and ``NO_PROXY`` choose, per request URL, a proxy (with pools of its own) or the direct
pools; ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` pick the CA bundle of the shared TLS context. The sync client
(a plain ``httpx.Client``) gets the same behaviour from httpx.
"""

from __future__ import annotations

import itertools
import math
import ssl

import httpx
from httpx._utils import URLPattern, get_environment_proxies  # what httpx.AsyncClient(trust_env=True) uses

CONNECTIONS_PER_POOL = 32
"""Connections in each pool; the number of pools follows from the client's connection limit."""


class ShardedAsyncTransport(httpx.AsyncBaseTransport):
    """An async transport that hands requests round-robin to several connection pools.

    Args:
        limits: The connection limits of the whole transport (shared out between the pools).
        per_pool: Connections in each pool.
        ssl_context: The TLS context every pool uses (default: httpx's, honouring ``SSL_CERT_FILE`` and
            ``SSL_CERT_DIR`` when ``trust_env``).
        trust_env: Honour the proxy and CA environment variables, like ``httpx.AsyncClient(trust_env=True)``.
    """

    def __init__(
        self,
        limits: httpx.Limits,
        per_pool: int = CONNECTIONS_PER_POOL,
        ssl_context: ssl.SSLContext | None = None,
        trust_env: bool = True,
    ) -> None:
        total = limits.max_connections or per_pool
        count = max(1, math.ceil(total / per_pool))
        keepalive = limits.max_keepalive_connections
        shard_limits = httpx.Limits(
            max_connections=math.ceil(total / count),
            max_keepalive_connections=None if keepalive is None else math.ceil(keepalive / count),
            keepalive_expiry=limits.keepalive_expiry,
        )
        shared_tls = ssl_context or httpx.create_ssl_context(trust_env=trust_env)

        def pools(proxy: str | None) -> list[httpx.AsyncHTTPTransport]:
            via = None if proxy is None else httpx.Proxy(proxy)
            return [httpx.AsyncHTTPTransport(verify=shared_tls, limits=shard_limits, proxy=via) for _ in range(count)]

        self._pools = pools(None)
        proxies = get_environment_proxies() if trust_env else {}
        self._routes: list[tuple[URLPattern, list[httpx.AsyncHTTPTransport]]] = sorted(
            ((URLPattern(key), self._pools if proxy is None else pools(proxy)) for key, proxy in proxies.items()),
            key=lambda route: route[0],
        )
        self._turn = itertools.cycle(range(count))

    @property
    def pool_count(self) -> int:
        """How many pools requests are spread over."""
        return len(self._pools)

    def _pools_for(self, url: httpx.URL) -> list[httpx.AsyncHTTPTransport]:
        """The pools for a URL: the first matching environment route's (proxy or direct), else direct."""
        for pattern, pools in self._routes:
            if pattern.matches(url):
                return pools
        return self._pools

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request through the next pool in turn (of its proxy's pools when one applies)."""
        return await self._pools_for(request.url)[next(self._turn)].handle_async_request(request)

    async def aclose(self) -> None:
        """Close every pool."""
        for pools in [self._pools, *(pools for _, pools in self._routes if pools is not self._pools)]:
            for pool in pools:
                await pool.aclose()
