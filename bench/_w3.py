"""W3 (fan-out) workers: each contender runs alone in a fresh process (``run_bench.py --worker w3-...``)
so that CPU time and peak RSS are its own. The parent prepares threads and scripts, and passes the
plan as a JSON file; the worker creates the runs itself, follows them all, and prints one
``BENCH_RESULT {json}`` line.

Only what a contender needs is imported: the SDK worker never imports this library (nor Prefect).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    """This process' peak RSS: ``VmHWM``, the high-water mark of its own address space.

    Not ``getrusage().ru_maxrss``: Linux carries that across ``fork`` + ``exec``, so a worker started by a
    big parent (the benchmark, after W1 and W2: about 180 MB) would report the parent's peak as its own.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _children_cpu() -> float:
    """CPU of this process' live children (the temporary Prefect server), read before they end."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def _sdk(spec: dict[str, Any]) -> list[dict[str, Any]]:
    import asyncio

    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key=spec["api_key"], base_url=spec["base_url"])

    async def one(r: dict[str, Any]) -> dict[str, Any]:
        run = await client.beta.threads.runs.create_and_poll(
            thread_id=r["thread_id"], assistant_id=spec["assistant_id"], metadata={"bench": r["key"]}
        )
        return {"thread_id": r["thread_id"], "run_id": run.id, "status": run.status, "have_at": time.time()}

    try:
        return list(await asyncio.gather(*(one(r) for r in spec["runs"])))
    finally:
        await client.close()


async def _create_ours(spec: dict[str, Any]) -> list[Any]:
    import asyncio

    from prefect_openai_runs.client import AsyncRunsClient

    async with AsyncRunsClient(api_key=spec["api_key"], base_url=spec["base_url"]) as client:
        return list(
            await asyncio.gather(
                *(
                    client.create_run(r["thread_id"], assistant_id=spec["assistant_id"], metadata={"bench": r["key"]})
                    for r in spec["runs"]
                )
            )
        )


async def _ours(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Bare asyncio: create every run, then ``follow_many`` (one coroutine per run, polling)."""
    from prefect_openai_runs._lifecycle._async._runs import AsyncRunsApi
    from prefect_openai_runs._lifecycle._fanout import follow_many
    from prefect_openai_runs._lifecycle._hooks import SilentHooks
    from prefect_openai_runs._lifecycle._run_kind import RUN
    from prefect_openai_runs.client import AsyncRunsClient

    runs = await _create_ours(spec)
    async with AsyncRunsClient(api_key=spec["api_key"], base_url=spec["base_url"]) as client:
        fan_out = await follow_many(
            AsyncRunsApi(client),
            [RUN.ref(r) for r in runs],
            spec["max_wait"],
            cancel_wait_seconds=30.0,
            hooks_for=lambda ref: SilentHooks(),
        )
    done_at = time.time()
    if fan_out.failure is not None:
        raise RuntimeError(f"follow_many failed: {fan_out.failure!r}")
    final = [f.job for f in fan_out.followers if f.job is not None]
    return [{"thread_id": r.thread_id, "run_id": r.id, "status": r.status.value, "have_at": done_at} for r in final]


def _prefect(spec: dict[str, Any], marks: dict[str, float]) -> list[dict[str, Any]]:
    """A Prefect flow that creates the runs, then calls the ``wait_for_runs`` task, on a temporary server."""
    import asyncio

    from prefect import flow
    from prefect.testing.utilities import prefect_test_harness

    from prefect_openai_runs import OpenAICredentials
    from prefect_openai_runs.tasks import wait_for_runs

    credentials = OpenAICredentials(api_key=spec["api_key"], base_url=spec["base_url"])

    @flow(name="bench-fan-out")
    def fan_out() -> list[Any]:
        runs = asyncio.run(_create_ours(spec))
        return wait_for_runs(credentials, runs, max_wait_seconds=spec["max_wait"])

    with prefect_test_harness(server_startup_timeout=120):
        marks["cpu0"], marks["t0"] = _cpu(), time.perf_counter()
        final = fan_out()
        marks["t1"], marks["cpu1"] = time.perf_counter(), _cpu()
        marks["children_cpu"] = _children_cpu()
    done_at = time.time()
    return [{"thread_id": r.thread_id, "run_id": r.id, "status": r.status.value, "have_at": done_at} for r in final]


def _start_rss_sampler(into: list[tuple[float, float]], every: float = 0.05, step_mb: float = 2.0) -> None:
    """Append (seconds since start, RSS MB) to ``into`` from a daemon thread: RSS is read every ``every``
    s and kept when it moved by ``step_mb`` or more since the last kept sample (short peaks show)."""
    import threading

    t0 = time.perf_counter()

    def sample() -> None:
        last = -step_mb
        while True:
            rss = _rss_mb()
            if abs(rss - last) >= step_mb:
                into.append((round(time.perf_counter() - t0, 2), round(rss, 1)))
                last = rss
            time.sleep(every)

    threading.Thread(target=sample, daemon=True).start()


def worker(kind: str, spec_path: str) -> int:
    """Entry point of ``run_bench.py --worker w3-sdk|w3-ours|w3-prefect SPEC``."""
    import asyncio
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    with open(spec_path) as f:
        spec = json.load(f)
    if kind == "w3-sdk":
        import openai  # noqa: F401
    else:
        import prefect_openai_runs._lifecycle._fanout
        import prefect_openai_runs.client  # noqa: F401
    rss_after_import = _rss_mb()
    _start_rss_sampler(marks_rss := [])
    cpu_import = _cpu()
    marks: dict[str, float] = {}
    if kind == "w3-prefect":
        import prefect.testing.utilities  # noqa: F401

        seen = _prefect(spec, marks)
    else:
        marks["cpu0"], marks["t0"] = _cpu(), time.perf_counter()
        seen = asyncio.run(_sdk(spec) if kind == "w3-sdk" else _ours(spec))
        marks["t1"], marks["cpu1"] = time.perf_counter(), _cpu()
    result = {
        "kind": kind,
        "wall_s": marks["t1"] - marks["t0"],
        "cpu_work_s": marks["cpu1"] - marks["cpu0"],
        "cpu_total_s": _cpu(),
        "cpu_import_s": cpu_import,
        "rss_after_import_mb": rss_after_import,
        "peak_rss_mb": _peak_mb(),
        "children_cpu_s": marks.get("children_cpu"),
        "rss_timeline_mb": marks_rss,
        "seen": seen,
    }
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0
