"""W4 (creation): a thousand prompts through the ``run_assistant_fan_out`` flow, on a temporary Prefect
server (``prefect_test_harness``), against the emulator in its own process.

Figure: seconds from the flow's call to the last run existing (the emulator's ``created_at_precise`` of
the newest run; same machine, same clock), with the first run's and the flow's wall time. Target: the
last run created within 5 s. The runs are short (0.5 s) so the follow-up does not dominate the wall
time. Also shown: the CPU seconds of the temporary Prefect server (a child process) during the flow,
per thousand runs, and the 1-minute load average before and after (the machine may be shared).

Run it alone: ``python bench/_w4.py [--runs N] [--concurrency C] [--json PATH]`` (N=1000 by default).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _w3 import _children_cpu

from prefect_openai_runs import OpenAICredentials
from prefect_openai_runs.flows import run_assistant_fan_out
from prefect_openai_runs.testing import spawn_emulator_process

RUN_SECONDS = 0.5
TARGET_SECONDS = 5.0


def measure(n: int, concurrency: int | None = None) -> dict[str, Any]:
    """Run the fan-out flow on ``n`` prompts; read the runs' creation times from the emulator."""
    from prefect.testing.utilities import prefect_test_harness

    with spawn_emulator_process(quiet=True, queued_seconds=0.05, in_progress_seconds=RUN_SECONDS) as emu:
        credentials = OpenAICredentials(api_key=emu.api_key, base_url=emu.base_url)
        prompts = [f"prompt {i}" for i in range(n)]
        with prefect_test_harness(server_startup_timeout=120):
            load_before = os.getloadavg()[0]
            server_cpu0 = _children_cpu()
            started = time.time()
            options = {} if concurrency is None else {"concurrency": concurrency}
            runs = run_assistant_fan_out(
                credentials, emu.default_assistant_id, prompts, max_wait_seconds=600, **options
            )
            ended = time.time()
            server_cpu = _children_cpu() - server_cpu0
            load_after = os.getloadavg()[0]
        created = sorted(r.created_at_precise for r in emu.runs())
    return {
        "runs": n,
        "concurrency": concurrency,
        "completed": sum(1 for r in runs if r.status == "completed"),
        "runs_on_server": len(created),
        "first_created": created[0] - started,
        "last_created": created[-1] - started,
        "flow_wall": ended - started,
        "server_cpu": server_cpu,
        "server_cpu_per_1000": server_cpu * 1000 / n,
        "load_before": load_before,
        "load_after": load_after,
        "cpus": os.cpu_count(),
    }


def table(row: dict[str, Any]) -> str:
    """The printed figures and the target."""
    met = row["last_created"] <= TARGET_SECONDS
    return "\n".join(
        [
            f"W4 creation: {row['runs']} prompts through run_assistant_fan_out (runs of {RUN_SECONDS}s), "
            f"load {row['load_before']:.1f} -> {row['load_after']:.1f} on {row['cpus']} CPUs",
            f"  first run created   {row['first_created']:8.2f} s after the flow's call",
            f"  last run created    {row['last_created']:8.2f} s",
            f"  flow wall           {row['flow_wall']:8.2f} s ({row['completed']}/{row['runs']} completed, "
            f"{row['runs_on_server']} runs on the server)",
            f"  Prefect server CPU  {row['server_cpu']:8.2f} s ({row['server_cpu_per_1000']:.1f} s per 1,000 runs)",
            "Targets",
            f"  [{'   met' if met else 'MISSED'}] W4: last run created within {TARGET_SECONDS:g} s: "
            f"{row['last_created']:.2f} s",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """``python bench/_w4.py [--runs N] [--concurrency C] [--json PATH]``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=None, help="creates in flight (default: the flow's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    row = measure(args.runs, args.concurrency)
    print(table(row))
    if args.json is not None:
        args.json.write_text(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
