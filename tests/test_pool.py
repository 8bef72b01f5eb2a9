"""The sharded connection pool of the async client, over real HTTP to the emulator."""

from __future__ import annotations

import asyncio

import httpx

from prefect_openai_runs import AsyncRunsClient
from prefect_openai_runs.client._pool import ShardedAsyncTransport
from prefect_openai_runs.testing import RunsEmulator


def test_pool_count_follows_the_connection_limit() -> None:
    transport = ShardedAsyncTransport(httpx.Limits(max_connections=1000, max_keepalive_connections=1000))
    assert transport.pool_count == 32
    assert ShardedAsyncTransport(httpx.Limits(max_connections=10)).pool_count == 1


def test_pools_share_one_tls_context() -> None:
    # One CA bundle loaded, not one per pool (25 MB and half a second of CPU for 32 pools).
    transport = ShardedAsyncTransport(httpx.Limits(max_connections=1000))
    contexts = {id(pool._pool._ssl_context) for pool in transport._pools}
    assert transport.pool_count == 32
    assert len(contexts) == 1


async def test_concurrent_requests_spread_over_the_pools(runs_emulator: RunsEmulator) -> None:
    async with AsyncRunsClient(api_key=runs_emulator.api_key, base_url=runs_emulator.base_url) as client:
        threads = await asyncio.gather(*(client.create_thread() for _ in range(64)))
        runs = await asyncio.gather(
            *(client.create_run(t.id, assistant_id=runs_emulator.default_assistant_id) for t in threads)
        )
        transport = client._http._transport
        assert isinstance(transport, ShardedAsyncTransport)
        used = [len(pool._pool.connections) > 0 for pool in transport._pools]

    assert len({run.id for run in runs}) == 64
    assert runs_emulator.counters["runs_created"] == 64
    assert sum(used) == transport.pool_count
