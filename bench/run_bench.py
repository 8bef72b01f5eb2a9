"""Benchmark: following OpenAI runs (and background responses, W6) with this library vs the official SDK.

Run with ``python3 dev.py bench`` (or ``.venv/bin/python bench/run_bench.py``); ``--quick`` scales
every workload down for a smoke check; ``--only w1,w3`` picks workloads. See bench/README.md.

The emulator is served from a subprocess (its CPU is not the clients'); W1, W2 and W6 run in this
process, each W3 contender in a fresh child process (``--worker w3-...``) so its CPU and peak RSS are
its own. Figures are printed as one table and written to ``bench/results/latest.json`` plus a dated
copy. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
import _w3
import psutil
from _common import PlannedRun, emulator_cpu
from _common import ratio as _ratio

from prefect_openai_runs import PollSchedule
from prefect_openai_runs.testing import RemoteEmulator, spawn_emulator_process

CANCELLING_DELAY = 0.05
POLL_ALTERNATIVES: list[tuple[str, PollSchedule | None, bool]] = [
    # (label, schedule (None: the default), over httpx2)
    ("ours poll, PollSchedule(initial=0.5)", PollSchedule(initial=0.5), False),
    ("ours poll, PollSchedule(steady_polls=0): grows from the start", PollSchedule(steady_polls=0), False),
    ("ours poll, default schedule, over httpx2 (experiment)", None, True),
]


@contextlib.contextmanager
def load_sampler(every: float = 5.0) -> Iterator[dict[str, Any]]:
    """The machine's 1-minute load average, sampled every ``every`` s over the block: start, max, end."""
    out: dict[str, Any] = {"cores": os.cpu_count()}
    samples = [os.getloadavg()[0]]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every):
            samples.append(os.getloadavg()[0])

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        samples.append(os.getloadavg()[0])
        out.update(start=samples[0], max=max(samples), mean=round(sum(samples) / len(samples), 2), end=samples[-1])


def find_emulator_process() -> psutil.Process | None:
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "prefect_openai_runs.testing" in " ".join(child.cmdline()):
                return child
    return None


# -- W1 ---------------------------------------------------------------------------------------------


async def w1(emu: RemoteEmulator, emu_proc: psutil.Process | None, n: int, seed: int, alts: bool) -> dict[str, Any]:
    import _contenders as k

    durations = common.spread(n, 0.5, 5.0, seed)
    clients = k.Clients.open(emu.base_url, emu.api_key, emu.default_assistant_id)
    contenders: list[tuple[str, str, k.Contender]] = [
        ("sdk", "SDK create_and_poll", k.w1_sdk(clients)),
        ("ours_stream", "ours stream (the core's streamed start + follow)", k.w1_ours_stream(clients)),
        ("ours_poll", "ours poll (create_run + the core's follow), default schedule", k.w1_ours_poll(clients)),
    ]
    out: dict[str, Any] = {"runs": n, "durations_s": [0.5, 5.0], "seed": seed, "contenders": {}}
    try:
        for key, label, contender in contenders:
            out["contenders"][key] = await _w1_one(emu, emu_proc, label, contender, durations)
        for i, (label, schedule, httpx2) in enumerate(POLL_ALTERNATIVES if alts else []):
            if httpx2 and clients.ours_httpx2 is None:
                print(f"  W1 {label}: skipped (httpx2 is not installed)", flush=True)
                continue
            contender = k.w1_ours_poll(clients, schedule, httpx2)
            out["contenders"][f"alt{i + 1}"] = await _w1_one(emu, emu_proc, label, contender, durations)
    finally:
        await clients.close()
    return out


def _poll_target_met(poll: dict[str, Any], sdk: dict[str, Any]) -> bool:
    return bool(poll["requests_per_run"] < sdk["requests_per_run"] and poll["lag"]["p50_ms"] <= sdk["lag"]["p50_ms"])


async def _w1_one(
    emu: RemoteEmulator, emu_proc: psutil.Process | None, label: str, contender: Any, durations: list[float]
) -> dict[str, Any]:
    import _contenders as k

    print(f"  W1 {label} ...", flush=True)
    plan = await common.prepare(emu, durations, "w1-")
    with emulator_cpu(emu_proc) as emu_cpu:
        t0 = time.perf_counter()
        seen = await k.drive(contender, plan)
        wall = time.perf_counter() - t0
    records = await asyncio.to_thread(common.runs_by_thread, emu)
    per_thread, kinds, _ = await asyncio.to_thread(common.requests_by_thread, emu)
    lags, not_completed = common.detection_lags((s, records.get(s.thread_id)) for s in seen)
    counts = [per_thread[p.thread_id] for p in plan]
    return {
        "label": label,
        "lag": common.summary_ms(lags),
        "requests_per_run": round(sum(counts) / len(counts), 2),
        "requests_per_run_min_max": [min(counts), max(counts)],
        "requests_by_kind": dict(kinds),
        "not_completed_or_errors": not_completed,
        "errors": sorted({s.error for s in seen if s.error})[:3],
        "wall_s": round(wall, 2),
        **emu_cpu,
    }


# -- W2 ---------------------------------------------------------------------------------------------


async def w2(emu: RemoteEmulator, emu_proc: psutil.Process | None, n: int) -> dict[str, Any]:
    import _contenders as k

    clients = k.Clients.open(emu.base_url, emu.api_key, emu.default_assistant_id)
    contenders: list[tuple[str, str, k.Contender]] = [
        ("sdk_best", "SDK best effort: create, wait_for(poll, 1), cancel", k.w2_sdk_best(clients)),
        ("sdk_naive", "SDK naive: wait_for(create_and_poll, 1)", k.w2_sdk_naive(clients)),
        ("ours_poll", "ours poll: follow(1 s) + cancel_job", k.w2_ours_poll(clients)),
        ("ours_stream", "ours stream: follow(events, 1 s) + cancel_job", k.w2_ours_stream(clients)),
    ]
    out: dict[str, Any] = {"runs": n, "run_seconds": 60, "deadline_s": k.DEADLINE, "contenders": {}}
    out["cancelling_delay_s"] = CANCELLING_DELAY
    try:
        for key, label, contender in contenders:
            print(f"  W2 {label} ...", flush=True)
            plan = await common.prepare(emu, [60.0] * n, "w2-")
            with emulator_cpu(emu_proc) as emu_cpu:
                seen = await k.drive(contender, plan)
            active_at_return = len(await asyncio.to_thread(emu.active_runs))
            await asyncio.sleep(1.0)  # grace: longer than the cancelling delay
            active_after_grace = len(await asyncio.to_thread(emu.active_runs))
            records = await asyncio.to_thread(common.runs_by_thread, emu)
            per_thread, kinds, _ = await asyncio.to_thread(common.requests_by_thread, emu)
            to_cancelled, to_request = [], []
            cancelled = 0
            for s in seen:
                record = records.get(s.thread_id)
                if record is None or s.deadline_at is None:
                    continue
                at = common.when(record, "cancelled")
                if at is not None:
                    cancelled += 1
                    to_cancelled.append(at - s.deadline_at)
                if record.cancel_requested_at is not None:
                    to_request.append(record.cancel_requested_at - s.deadline_at)
            counts = [per_thread[p.thread_id] for p in plan]
            out["contenders"][key] = {
                "label": label,
                "cancelled": cancelled,
                "left_active_at_return": active_at_return,
                "left_active": active_after_grace,
                "deadline_to_cancelled": common.summary_ms(to_cancelled),
                "deadline_to_cancel_request": common.summary_ms(to_request),
                "requests_per_run": round(sum(counts) / len(counts), 2),
                "requests_by_kind": dict(kinds),
                "errors": sorted({s.error for s in seen if s.error})[:3],
                **emu_cpu,
            }
            await asyncio.to_thread(emu.reset)  # stops the runs nobody cancelled
    finally:
        await clients.close()
    return out


# -- W3 ---------------------------------------------------------------------------------------------


def w3(emu: RemoteEmulator, emu_proc: psutil.Process | None, n: int, low: float, high: float, seed: int) -> dict:
    durations = common.spread(n, low, high, seed)
    out: dict[str, Any] = {"runs": n, "durations_s": [low, high], "seed": seed, "contenders": {}}
    labels = {
        "w3-sdk": "SDK create_and_poll x N (asyncio.gather)",
        "w3-ours": "ours follow_many (bare asyncio)",
        "w3-prefect": "ours wait_for_runs task in a Prefect flow",
    }
    with tempfile.TemporaryDirectory(prefix="bench-w3-") as tmp:
        for kind, label in labels.items():
            print(f"  W3 {label} ...", flush=True)
            plan: list[PlannedRun] = asyncio.run(common.prepare(emu, durations, "w3-"))
            spec_path = Path(tmp) / f"{kind}.json"
            spec = {
                "base_url": emu.base_url,
                "api_key": emu.api_key,
                "assistant_id": emu.default_assistant_id,
                "max_wait": high * 4 + 60,
                "runs": common.as_dict(plan),
            }
            spec_path.write_text(json.dumps(spec))
            env = {**os.environ, "PREFECT_HOME": str(Path(tmp) / f"prefect-home-{kind}"), "PYTHONWARNINGS": "ignore"}
            with emulator_cpu(emu_proc) as emu_cpu:
                proc = subprocess.run(
                    [sys.executable, __file__, "--worker", kind, str(spec_path)],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=high * 4 + 240,
                )
            result = _parse_worker(proc)
            if result is None:
                out["contenders"][kind] = {"label": label, "error": (proc.stderr or proc.stdout)[-2000:]}
                print(f"    worker failed:\n{(proc.stderr or proc.stdout)[-2000:]}", flush=True)
                continue
            records = common.runs_by_thread(emu)
            per_thread, kinds, _ = common.requests_by_thread(emu)
            counts = [per_thread[p.thread_id] for p in plan]
            completed = sum(1 for p in plan if (r := records.get(p.thread_id)) is not None and r.status == "completed")
            longest = max(durations)
            last_terminal = max((r.terminal_at or 0.0) for r in records.values())
            seen = result.pop("seen")
            out["contenders"][kind] = {
                "label": label,
                **{k: round(v, 3) if isinstance(v, float) else v for k, v in result.items() if k != "kind"},
                "longest_run_s": round(longest, 3),
                "over_longest_s": round(result["wall_s"] - longest, 3),
                "completed": completed,
                "requests": sum(counts),
                "requests_per_run": round(sum(counts) / len(counts), 2),
                "requests_by_kind": dict(kinds),
                "last_terminal_to_done_s": round(max(s["have_at"] for s in seen) - last_terminal, 3),
                **emu_cpu,
            }
    return out


def _parse_worker(proc: subprocess.CompletedProcess[str]) -> dict[str, Any] | None:
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_w3.RESULT_PREFIX):
            data: dict[str, Any] = json.loads(line[len(_w3.RESULT_PREFIX) :])
            return data
    return None


# -- report -----------------------------------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target, its figures and whether it was met."""
    out: list[dict[str, Any]] = []
    if "w1" in results:
        c = results["w1"]["contenders"]
        sdk, stream, poll = c["sdk"], c["ours_stream"], c["ours_poll"]
        out.append(
            {
                "target": "W1 stream: p50 lag < 20 ms and exactly 1 request per run",
                "figures": f"p50 {stream['lag']['p50_ms']} ms, requests/run {stream['requests_per_run']} "
                f"(min {stream['requests_per_run_min_max'][0]}, max {stream['requests_per_run_min_max'][1]})",
                "met": stream["lag"]["p50_ms"] < 20 and stream["requests_per_run_min_max"] == [1, 1],
            }
        )
        out.append(
            {
                "target": "W1 poll (default schedule): fewer requests/run than the SDK at a p50 lag no worse",
                "figures": f"requests/run {poll['requests_per_run']} vs SDK {sdk['requests_per_run']}; "
                f"p50 {poll['lag']['p50_ms']} ms vs SDK {sdk['lag']['p50_ms']} ms",
                "met": _poll_target_met(poll, sdk),
            }
        )
        for key, alt in c.items():
            if key.startswith("alt"):
                out.append(
                    {
                        "target": f"  (alternative) {alt['label']}",
                        "figures": f"requests/run {alt['requests_per_run']} vs SDK {sdk['requests_per_run']}; "
                        f"p50 {alt['lag']['p50_ms']} ms vs SDK {sdk['lag']['p50_ms']} ms",
                        "met": _poll_target_met(alt, sdk),
                    }
                )
    if "w2" in results:
        w = results["w2"]
        limit = 100 + w["cancelling_delay_s"] * 1000
        for key in ("ours_poll", "ours_stream"):
            o = w["contenders"][key]
            out.append(
                {
                    "target": f"W2 {key}: all {w['runs']} cancelled, none active, "
                    f"p50 deadline->cancelled < {limit:g} ms",
                    "figures": f"cancelled {o['cancelled']}, left active {o['left_active']}, "
                    f"p50 {o['deadline_to_cancelled']['p50_ms']} ms",
                    "met": o["cancelled"] == w["runs"]
                    and o["left_active"] == 0
                    and o["deadline_to_cancelled"]["p50_ms"] < limit,
                }
            )
    if "w3" in results:
        c = results["w3"]["contenders"]
        sdk, ours, pf = c.get("w3-sdk", {}), c.get("w3-ours", {}), c.get("w3-prefect", {})
        if "wall_s" in sdk and "wall_s" in ours:
            out.append(
                {
                    "target": "W3 ours CPU seconds <= SDK (workload CPU; total incl. imports in brackets)",
                    "figures": f"{ours['cpu_work_s']} s vs {sdk['cpu_work_s']} s "
                    f"({ours['cpu_total_s']} s vs {sdk['cpu_total_s']} s)",
                    "met": ours["cpu_work_s"] <= sdk["cpu_work_s"],
                }
            )
            out.append(
                {
                    "target": "W3 ours peak RSS <= SDK",
                    "figures": f"{ours['peak_rss_mb']} MB vs {sdk['peak_rss_mb']} MB (after imports: "
                    f"{ours['rss_after_import_mb']} vs {sdk['rss_after_import_mb']} MB)",
                    "met": ours["peak_rss_mb"] <= sdk["peak_rss_mb"],
                }
            )
        if "wall_s" in ours and "wall_s" in pf:
            out.append(
                {
                    "target": "W3 Prefect flow within 2x of ours (bare asyncio), wall time over the longest run",
                    "figures": f"over longest {pf['over_longest_s']} s vs {ours['over_longest_s']} s "
                    f"(wall {pf['wall_s']} vs {ours['wall_s']} s)",
                    "met": pf["over_longest_s"] <= 2 * max(ours["over_longest_s"], 0.0),
                }
            )
    if "w6" in results:
        import _w6  # not at the top: the W3 workers (this file) must not import the SDK with it

        out += _w6.targets(results["w6"])
    return out


def table(results: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    if load := results.get("load"):
        add(
            f"Load average (1 min) on {load['cores']} cores during the run: start {load['start']:.2f}, "
            f"mean {load['mean']:.2f}, max {load['max']:.2f}, end {load['end']:.2f}"
        )
        add("")
    if "w1" in results:
        w = results["w1"]
        c = w["contenders"]
        sdk = c["sdk"]
        add(f"W1 detection: {w['runs']} runs of {w['durations_s'][0]}-{w['durations_s'][1]} s started together")
        add(f"  {'contender':<72} {'lag p50':>8} {'p95':>7} {'max':>7} {'req/run':>8} {'p50/SDK':>8} {'req/SDK':>8}")
        for v in c.values():
            lag = v["lag"]
            add(
                f"  {v['label']:<72} {lag['p50_ms']:>6.1f}ms {lag['p95_ms']:>5.0f}ms {lag['max_ms']:>5.0f}ms "
                f"{v['requests_per_run']:>8.2f} {_ratio(lag['p50_ms'], sdk['lag']['p50_ms']):>8} "
                f"{_ratio(v['requests_per_run'], sdk['requests_per_run']):>8}"
                + (f"  [{v['not_completed_or_errors']} not completed]" if v["not_completed_or_errors"] else "")
            )
        add("")
    if "w2" in results:
        w = results["w2"]
        c = w["contenders"]
        sdk = c["sdk_best"]
        add(
            f"W2 cancel: {w['runs']} runs of {w['run_seconds']} s, {w['deadline_s']:g} s deadline "
            f"(emulator cancelling delay {w['cancelling_delay_s'] * 1000:g} ms)"
        )
        add(
            f"  {'contender':<56} {'cancelled':>9} {'active':>6} {'->cancelled p50':>15} {'p95':>7} {'max':>7}"
            f" {'->request p50':>13} {'req/run':>8} {'p50/SDK':>8}"
        )
        for v in c.values():
            dc, dr = v["deadline_to_cancelled"], v["deadline_to_cancel_request"]
            add(
                f"  {v['label']:<56} {v['cancelled']:>9} {v['left_active']:>6} {dc['p50_ms']:>13.1f}ms "
                f"{dc['p95_ms']:>5.0f}ms {dc['max_ms']:>5.0f}ms {dr['p50_ms']:>11.1f}ms {v['requests_per_run']:>8.2f} "
                f"{_ratio(dc['p50_ms'], sdk['deadline_to_cancelled']['p50_ms']):>8}"
            )
        add("")
    if "w3" in results:
        w = results["w3"]
        c = w["contenders"]
        sdk = c.get("w3-sdk", {})
        low, high = w["durations_s"]
        add(f"W3 fan-out: {w['runs']} concurrent runs of {low}-{high} s, each contender in a fresh process")
        add(
            f"  {'contender':<44} {'wall':>7} {'over':>6} {'cpu work':>8} {'cpu tot':>8} {'rss imp':>8} "
            f"{'peak rss':>8} {'requests':>8} {'req/run':>7} {'emu core':>8} {'cpu/SDK':>7} {'rss/SDK':>7}"
        )
        for v in c.values():
            if "wall_s" not in v:
                add(f"  {v['label']:<44} FAILED")
                continue
            add(
                f"  {v['label']:<44} {v['wall_s']:>6.1f}s {v['over_longest_s']:>5.1f}s {v['cpu_work_s']:>7.1f}s "
                f"{v['cpu_total_s']:>7.1f}s {v['rss_after_import_mb']:>6.0f}MB {v['peak_rss_mb']:>6.0f}MB "
                f"{v['requests']:>8} {v['requests_per_run']:>7.1f} {v['emulator_core_utilisation']:>8.2f} "
                f"{_ratio(v['cpu_work_s'], sdk.get('cpu_work_s')):>7} "
                f"{_ratio(v['peak_rss_mb'], sdk.get('peak_rss_mb')):>7}"
                + (f"  [+{v['children_cpu_s']:.1f}s Prefect server CPU]" if v.get("children_cpu_s") else "")
            )
        add("")
    if "w6" in results:
        import _w6

        lines += _w6.table(results["w6"])
    add("Targets")
    for t in results.get("targets", []):
        add(f"  [{'met' if t['met'] else 'MISSED':>6}] {t['target']}: {t['figures']}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="scale every workload down (smoke check)")
    parser.add_argument("--only", default="w1,w2,w3,w6", help="comma-separated workloads (default w1,w2,w3,w6)")
    parser.add_argument("--seed", type=int, default=20240501, help="seed of the duration spread")
    parser.add_argument("--no-alternatives", action="store_true", help="skip the W1 poll alternatives")
    parser.add_argument("--no-save", action="store_true", help="print only; do not write bench/results")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _w3.worker(*args.worker)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    only = {w.strip() for w in args.only.split(",") if w.strip()}
    if unknown := only - {"w1", "w2", "w3", "w6"}:
        parser.error(f"unknown workloads: {sorted(unknown)}")
    sizes = (
        {"w1": 40, "w2": 20, "w3": 100, "w3_low": 2.0, "w3_high": 6.0, "w6": 30}
        if args.quick
        else {"w1": 200, "w2": 100, "w3": 1000, "w3_low": 5.0, "w3_high": 30.0, "w6": 100}
    )
    started = time.perf_counter()
    results: dict[str, Any] = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": common.machine(),
    }
    with (
        load_sampler() as results["load"],
        spawn_emulator_process(quiet=True, cancelling_delay=CANCELLING_DELAY, expires_after=900) as emu,
    ):
        emu_proc = find_emulator_process()
        results["emulator"] = {
            "http": "h11 (uvicorn, one process)",
            "cancelling_delay_s": CANCELLING_DELAY,
        }
        if "w1" in only:
            print(f"W1: {sizes['w1']} runs", flush=True)
            results["w1"] = asyncio.run(w1(emu, emu_proc, sizes["w1"], args.seed, not args.no_alternatives))
        if "w2" in only:
            print(f"W2: {sizes['w2']} runs", flush=True)
            results["w2"] = asyncio.run(w2(emu, emu_proc, sizes["w2"]))
        if "w3" in only:
            print(f"W3: {sizes['w3']} runs", flush=True)
            results["w3"] = w3(emu, emu_proc, sizes["w3"], sizes["w3_low"], sizes["w3_high"], args.seed)
        if "w6" in only:
            import _w6

            print(f"W6: {sizes['w6']} background responses", flush=True)
            results["w6"] = asyncio.run(_w6.w6(emu, emu_proc, sizes["w6"], args.seed))
    results["targets"] = targets(results)
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    text = table(results)
    print()
    print(text)
    print(f"\n(whole benchmark: {results['elapsed_s']} s)")
    if not args.no_save:
        common.RESULTS_DIR.mkdir(exist_ok=True)
        payload = json.dumps({**results, "table": text.splitlines()}, indent=2)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        suffix = "-quick" if args.quick else ""
        name = f"{stamp}{suffix}.json"
        (common.RESULTS_DIR / name).write_text(payload)
        latest = f"latest{suffix}.json"
        (common.RESULTS_DIR / latest).write_text(payload)
        print(f"written: bench/results/{name} and bench/results/{latest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
