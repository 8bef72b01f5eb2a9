"""Pacing proven end to end: many coroutines sharing one :class:`RateBudget` against the emulator's
requests-per-minute limit, and two processes sharing one Prefect global rate limit."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from prefect_openai_runs.client._pacing import RateBudget
from prefect_openai_runs.client._throttle import acquire_async
from prefect_openai_runs.testing import RateLimits, RunsEmulator

RPM = 3000
"""50 requests a second, enforced per second (``burst_seconds=1``: bursts of 50 at most)."""


async def paced_requests(emu: RunsEmulator, budget: RateBudget | None, n: int, concurrency: int) -> list[int]:
    """Send ``n`` GETs from ``concurrency`` coroutines (a 429 is sent again); the statuses, in order."""
    statuses: list[int] = []
    left = iter(range(n))
    headers = {"Authorization": f"Bearer {emu.api_key}", "OpenAI-Beta": "assistants=v2"}
    async with httpx.AsyncClient(base_url=emu.base_url, headers=headers, timeout=10) as http:

        async def worker() -> None:
            for _ in left:
                status = 429
                while status == 429:
                    if budget is not None:
                        await acquire_async(budget)
                    response = await http.get(f"/assistants/{emu.default_assistant_id}")
                    if budget is not None:
                        budget.observe(response.status_code, response.headers)
                    status = response.status_code
                    statuses.append(status)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


async def test_fifty_coroutines_sharing_a_budget_meet_almost_no_429_at_the_ideal_pace(
    runs_emulator: RunsEmulator,
) -> None:
    runs_emulator.rate_limits = RateLimits(rpm=RPM, burst_seconds=1)
    n, ideal = 200, 200 / (RPM / 60)
    started = time.monotonic()
    statuses = await paced_requests(runs_emulator, RateBudget(), n, concurrency=50)
    wall = time.monotonic() - started
    assert statuses.count(200) == n
    assert statuses.count(429) / len(statuses) < 0.01, statuses.count(429)
    assert wall <= 1.3 * ideal, f"{wall:.2f}s for an ideal of {ideal:.2f}s"
    assert runs_emulator.counters.get("rate_limited", 0) == statuses.count(429)


async def test_without_a_budget_the_same_load_meets_a_429_storm(runs_emulator: RunsEmulator) -> None:
    # 10 a second: 50 coroutines exceed it even on a loaded machine (at 50 a second they did not always)
    runs_emulator.rate_limits = RateLimits(rpm=600, burst_seconds=1)
    statuses = await paced_requests(runs_emulator, None, 100, concurrency=50)
    assert statuses.count(429) / len(statuses) > 0.05  # what the budget above prevents


_ACQUIRER = """
import sys, time
from prefect_openai_runs.client._throttle import prefect_rate_limit_sync
prefect_rate_limit_sync(sys.argv[1], timeout_seconds=30)  # warm: imports and the connection, before the start
print("ready", flush=True)
sys.stdin.readline()
print("asking", time.time(), flush=True)
for _ in range(int(sys.argv[2])):
    prefect_rate_limit_sync(sys.argv[1], timeout_seconds=30)
    print(time.time(), flush=True)
"""


@pytest.fixture
def global_rate_limit(prefect_server: None) -> Iterator[str]:
    """A global concurrency limit with a slot decay: bursts of 4, then 8 slots a second."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    name = f"openai-test-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        limit = GlobalConcurrencyLimitCreate(name=name, limit=4, slot_decay_per_second=8)
        client.create_global_concurrency_limit(limit)
        yield name
        client.delete_global_concurrency_limit_by_name(name)


@pytest.mark.timeout(120)
def test_two_processes_share_one_prefect_global_rate_limit(global_rate_limit: str) -> None:
    from prefect.settings import PREFECT_API_URL

    each = 12
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _ACQUIRER, global_rate_limit, str(each)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:  # both imported and connected: start them together
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        outputs = [worker.communicate(timeout=60)[0] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    asking = [float(output.splitlines()[0].split()[1]) for output in outputs]
    times = [[float(line) for line in output.splitlines()[1:]] for output in outputs]
    assert [len(t) for t in times] == [each, each]
    # Both were asking for slots at once (who wins each slot is up to Prefect's server: one process may get
    # them all first, and the other waits, which is sharing too).
    assert max(asking) < min(max(times[0]), max(times[1]))
    merged = sorted(times[0] + times[1])
    # Alone, one process' 12 slots take (12 - 4) / 8 = 1 s; sharing the limit, the 24 take about 2.5 s.
    assert merged[-1] - merged[0] >= 2.0
    for i, start in enumerate(merged):  # never more than the burst plus the decay, in any window
        window = [t for t in merged[i:] if t - start <= 1.0]
        assert len(window) <= 4 + 8 + 2, f"{len(window)} slots within a second"
