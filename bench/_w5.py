"""W5 (a rate-limited server): N runs created and followed at once against an emulator that enforces a
requests-per-minute limit per key (``--rpm``, enforced per second: ``rate_burst_seconds=1``).

Contenders, one after the other on the same emulator (reset, fresh buckets):

* SDK: ``create_and_poll`` x N under ``asyncio.gather`` (its default 2 retries, which obey
  ``retry-after-ms``); a run whose call raises is *failed* (the caller lost it).
* ours: the library as a user gets it: one :class:`~prefect_openai_runs.client.AsyncRunsClient` (paced by
  default: its N coroutines share one budget fed by the ``x-ratelimit-*`` headers), ``create_run`` x N
  under ``asyncio.gather``, then ``follow_many`` (the lifecycle core's fan-out: the default poll schedule,
  its retry policy); a run whose create raises, or that does not end completed, is *failed*.

Figures: share of the runs' requests answered 429, runs failed, wall time (first create to last
result), and wall over the ideal: ``2 N / rate`` (one create and one poll per run, at the limit) or the
longest run if longer. Run it alone: ``python bench/_w5.py --quick`` (N=100 at 3,000 rpm, about 30 s) or
``python bench/_w5.py`` (N=300 at 6,000 rpm, about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PlannedRun, percentile, prepare, requests_by_thread
from openai import AsyncOpenAI

from prefect_openai_runs._lifecycle._async._runs import AsyncRunsApi
from prefect_openai_runs._lifecycle._fanout import follow_many
from prefect_openai_runs._lifecycle._hooks import SilentHooks
from prefect_openai_runs._lifecycle._run_kind import RUN
from prefect_openai_runs.client import AsyncRunsClient
from prefect_openai_runs.models import Run
from prefect_openai_runs.testing import RateLimits, RemoteEmulator, spawn_emulator_process

RUN_SECONDS = 0.3
TARGET_429_SHARE = 0.01
TARGET_WALL_RATIO = 1.2


async def _sdk(emu: RemoteEmulator, plan: list[PlannedRun]) -> list[str]:
    client = AsyncOpenAI(api_key=emu.api_key, base_url=emu.base_url)

    async def one(p: PlannedRun) -> str:
        try:
            run = await client.beta.threads.runs.create_and_poll(
                thread_id=p.thread_id, assistant_id=emu.default_assistant_id, metadata={"bench": p.key}
            )
        except Exception as exc:  # the run may exist, but the caller lost it
            return f"raised {type(exc).__name__}"
        return str(run.status)

    try:
        return list(await asyncio.gather(*(one(p) for p in plan)))
    finally:
        await client.close()


async def _ours(emu: RemoteEmulator, plan: list[PlannedRun]) -> list[str]:
    async with AsyncRunsClient(api_key=emu.api_key, base_url=emu.base_url) as client:

        async def create(p: PlannedRun) -> Run | str:
            try:
                return await client.create_run(
                    p.thread_id, assistant_id=emu.default_assistant_id, metadata={"bench": p.key}
                )
            except Exception as exc:  # the run may exist, but the caller lost it
                return f"raised {type(exc).__name__}"

        created = await asyncio.gather(*(create(p) for p in plan))
        runs = [c for c in created if isinstance(c, Run)]
        fan = await follow_many(
            AsyncRunsApi(client),
            [RUN.ref(r) for r in runs],
            600.0,
            fail_fast=False,
            cancel_wait_seconds=30.0,
            hooks_for=lambda ref: SilentHooks(),
        )
    ended = {f.job.id: str(f.job.status) for f in fan.followers if f.job is not None}
    return [c if isinstance(c, str) else ended.get(c.id, "not followed") for c in created]


CONTENDERS = {"SDK create_and_poll x N (asyncio.gather)": _sdk, "ours: AsyncRunsClient + follow_many": _ours}


async def measure(emu: RemoteEmulator, name: str, n: int, rpm: int) -> dict[str, Any]:
    """One contender: fresh emulator state, N threads and scripts (unlimited), then the limit, then the runs."""
    emu.rate_limits = RateLimits()
    plan = await prepare(emu, [RUN_SECONDS] * n, prefix="w5-")
    emu.rate_limits = RateLimits(rpm=rpm, burst_seconds=1)
    started = time.monotonic()
    outcomes = await CONTENDERS[name](emu, plan)
    wall = time.monotonic() - started
    emu.rate_limits = RateLimits()
    per_thread, _, _ = requests_by_thread(emu)
    ours = {p.thread_id for p in plan}
    records = [r for r in emu.requests if r.path.startswith("/v1/threads/thread_") and r.path.split("/")[3] in ours]
    limited = sum(1 for r in records if r.status == 429)
    rate = rpm / 60
    ideal = max(2 * n / rate, RUN_SECONDS)
    return {
        "contender": name,
        "runs": n,
        "rpm": rpm,
        "requests": len(records),
        "answered_429": limited,
        "share_429": limited / max(1, len(records)),
        "runs_failed": sum(1 for o in outcomes if o != "completed"),
        "outcomes": {o: outcomes.count(o) for o in sorted(set(outcomes))},
        "wall": wall,
        "ideal": ideal,
        "wall_over_ideal": wall / ideal,
        "requests_per_run_p50": percentile([float(per_thread[t]) for t in ours], 50),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The printed figures and targets."""
    first = rows[0]
    columns = f"{'requests':>9}{'429s':>7}{'429 %':>8}{'failed':>8}{'wall':>8}{'ideal':>8}{'x ideal':>9}"
    lines = [
        f"W5 rate-limited server: {first['runs']} runs of {RUN_SECONDS}s, {first['rpm']} rpm enforced per second",
        f"  {'contender':<45}{columns}",
    ]
    for r in rows:
        lines.append(
            f"  {r['contender']:<45}{r['requests']:>9}{r['answered_429']:>7}{100 * r['share_429']:>7.2f}%"
            f"{r['runs_failed']:>8}{r['wall']:>7.1f}s{r['ideal']:>7.1f}s{r['wall_over_ideal']:>9.2f}"
        )
    ours = rows[-1]
    share = f"{100 * ours['share_429']:.2f}%"
    checks = [
        (ours["share_429"] < TARGET_429_SHARE, f"W5 ours: under 1% of requests answered 429: {share}"),
        (ours["runs_failed"] == 0, f"W5 ours: no run failed: {ours['runs_failed']}"),
        (
            ours["wall_over_ideal"] <= TARGET_WALL_RATIO,
            f"W5 ours: wall within {TARGET_WALL_RATIO}x of the ideal: {ours['wall']:.1f}s vs {ours['ideal']:.1f}s",
        ),
    ]
    lines += ["Targets"] + [f"  [{'   met' if ok else 'MISSED'}] {text}" for ok, text in checks]
    return "\n".join(lines)


async def main_async(n: int, rpm: int) -> list[dict[str, Any]]:
    with spawn_emulator_process(quiet=True, cancelling_delay=0.05) as emu:
        return [await measure(emu, name, n, rpm) for name in CONTENDERS]


def main(argv: list[str] | None = None) -> int:
    """``python bench/_w5.py [--quick] [--runs N] [--rpm R] [--json PATH]``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 runs at 3,000 rpm")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--rpm", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    n = args.runs or (100 if args.quick else 300)
    rpm = args.rpm or (3000 if args.quick else 6000)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK's Assistants deprecation notice
    rows = asyncio.run(main_async(n, rpm))
    print(table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
