"""Shared helpers of the benchmark: workload plans, emulator set-up, request attribution, statistics,
machine description. Plain Python; nothing here is imported by the library or its tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import random
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import psutil

from prefect_openai_runs.testing import RemoteEmulator, ResponseRecord, RunRecord, RunScript

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
QUEUED_SECONDS = 0.1
"""Every scripted run is queued this long, then in progress for the rest of its duration."""

_THREAD_PATH = re.compile(r"^/v1/threads/(thread_[^/]+)")


@dataclass(frozen=True)
class PlannedRun:
    """One run of a workload: its own thread, the metadata key its script is matched by, its duration."""

    thread_id: str
    key: str
    duration: float


def spread(n: int, low: float, high: float, seed: int) -> list[float]:
    """``n`` durations evenly spaced over ``[low, high]``, in a seeded random order (deterministic)."""
    if n == 1:
        return [high]
    values = [low + (high - low) * i / (n - 1) for i in range(n)]
    random.Random(seed).shuffle(values)
    return values


def script_for(duration: float, outcome: str = "completed") -> RunScript:
    """A run that is queued :data:`QUEUED_SECONDS` then in progress until ``duration``."""
    return RunScript(
        queued_seconds=min(QUEUED_SECONDS, duration / 2),
        in_progress_seconds=max(0.0, duration - min(QUEUED_SECONDS, duration / 2)),
        outcome=outcome,  # type: ignore[arg-type]
    )


async def create_threads(emu: RemoteEmulator, n: int) -> list[str]:
    """``n`` empty threads (set-up: these requests are not attributed to any run)."""
    headers = {"Authorization": f"Bearer {emu.api_key}", "OpenAI-Beta": "assistants=v2"}
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=emu.base_url, headers=headers, limits=limits, timeout=30) as http:
        sem = asyncio.Semaphore(50)

        async def one() -> str:
            async with sem:
                response = await http.post("/threads", json={})
                response.raise_for_status()
                return str(response.json()["id"])

        return list(await asyncio.gather(*(one() for _ in range(n))))


async def prepare(
    emu: RemoteEmulator, durations: Sequence[float], prefix: str, outcome: str = "completed"
) -> list[PlannedRun]:
    """Reset the emulator, then give each duration its own thread and script rule."""
    await asyncio.to_thread(emu.reset)
    plan: list[PlannedRun] = []

    def add_rules() -> None:
        for i, duration in enumerate(durations):
            emu.add_script(script_for(duration, outcome), metadata={"bench": f"{prefix}{i}"})

    await asyncio.to_thread(add_rules)
    threads = await create_threads(emu, len(durations))
    for i, (thread_id, duration) in enumerate(zip(threads, durations, strict=True)):
        plan.append(PlannedRun(thread_id, f"{prefix}{i}", duration))
    return plan


def requests_by_thread(emu: RemoteEmulator) -> tuple[Counter[str], Counter[str], int]:
    """Requests attributed to each run (by its thread, one run per thread), requests by kind, and the
    requests not attributable to a run (thread creation during set-up)."""
    per_thread: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    unattributed = 0
    for record in emu.requests:
        match = _THREAD_PATH.match(record.path)
        if match is None:
            unattributed += 1
            continue
        per_thread[match.group(1)] += 1
        kinds[_kind(record.method, record.path)] += 1
    return per_thread, kinds, unattributed


def _kind(method: str, path: str) -> str:
    if path.endswith("/cancel"):
        return "cancel"
    if method == "POST" and path.endswith("/runs"):
        return "create"
    if method == "GET" and "/runs/" in path:
        return "get"
    return f"{method} other"


def runs_by_thread(emu: RemoteEmulator) -> dict[str, RunRecord]:
    """The emulator's run records keyed by thread (one run per thread)."""
    return {record.thread_id: record for record in emu.runs()}


def when(record: RunRecord | ResponseRecord, status: str) -> float | None:
    """When the run (or response) first entered ``status`` (emulator clock, ``time.time()``)."""
    for name, at in record.history:
        if name == status:
            return at
    return None


def detection_lags(pairs: Iterable[tuple[Any, RunRecord | ResponseRecord | None]]) -> tuple[list[float], int]:
    """Seconds from the emulator's ``terminal_at`` to the caller holding the final job, for each
    ``(seen, record)`` pair whose caller got it ``completed``; and how many did not (or raised).
    ``seen`` has ``error``, ``status`` and ``have_at`` (``time.time()``)."""
    lags, not_completed = [], 0
    for seen, record in pairs:
        ended = record.terminal_at if record is not None else None
        if seen.error or ended is None or seen.have_at is None or seen.status != "completed":
            not_completed += 1
        else:
            lags.append(seen.have_at - ended)
    return lags, not_completed


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def ratio(a: float | None, b: float | None) -> str:
    """``a / b`` to two decimals, or ``-`` when either is missing, NaN or ``b`` is 0."""
    if a is None or b is None or b == 0 or a != a or b != b:
        return "-"
    return f"{a / b:.2f}"


def summary_ms(values: Iterable[float]) -> dict[str, float]:
    """p50 / p95 / max of seconds, in milliseconds."""
    seconds = list(values)
    return {
        "p50_ms": round(percentile(seconds, 50) * 1000, 1),
        "p95_ms": round(percentile(seconds, 95) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1) if seconds else float("nan"),
        "n": len(seconds),
    }


@contextlib.contextmanager
def emulator_cpu(emu_proc: psutil.Process | None) -> Iterator[dict[str, float]]:
    """The emulator process' CPU seconds and utilisation (of one core) over the block."""
    out: dict[str, float] = {}

    def cpu() -> float:
        if emu_proc is None:
            return float("nan")
        t = emu_proc.cpu_times()
        return float(t.user + t.system)

    c0, t0 = cpu(), time.perf_counter()
    yield out
    out["emulator_cpu_s"] = round(cpu() - c0, 2)
    out["emulator_core_utilisation"] = round(out["emulator_cpu_s"] / max(time.perf_counter() - t0, 1e-9), 2)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "os": platform.platform(),
        "git_commit": _git_commit(),
        "versions": {
            name: _version(name)
            for name in (
                "prefect-openai-runs",
                "openai",
                "prefect",
                "httpx",
                "httpcore",
                "httpx2",
                "httpcore2",
                "uvicorn",
                "h11",
                "psutil",
            )
        },
    }


def as_dict(plan: Sequence[PlannedRun]) -> list[dict[str, Any]]:
    """JSON-ready plan."""
    return [asdict(p) for p in plan]
