"""A 50,000-line batch, built, uploaded, followed and its results parsed, against the emulator: peak RSS
growth above the process's baseline (target < 100 MB) and the upload and parse times, for this library
and for the official SDK doing the same by hand (``files.create`` + ``batches.create`` + ``retrieve``
polling + ``files.content`` + ``json.loads`` of every line).

Usage::

    python bench/_batch_memory.py            # both contenders, each in a fresh process
    python bench/_batch_memory.py --lines 5000

The emulator runs in a subprocess (its memory is not the contenders'); each contender runs in its own
child process, so one's peak does not hide the other's. Peak RSS is the kernel's high-water mark
(``ru_maxrss``); the baseline is read once everything is imported, before any work.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect_openai_runs.testing import DEFAULT_API_KEY, BatchScript, spawn_emulator_process

SCRIPT = BatchScript(validating_seconds=0.2, in_progress_seconds=2.0, finalizing_seconds=0.2)
MODEL = "gpt-5-mini"


def _rss_mb() -> float:
    """The current resident set size, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bodies(lines: int) -> Iterator[dict[str, Any]]:
    for n in range(lines):
        yield {"model": MODEL, "input": f"Summarise item {n} of the nightly export in one sentence."}


class _Quiet:
    """Hooks that record nothing (the bench runs outside Prefect)."""

    def intent(self, kind: str, key: str, parent_id: str | None) -> None: ...
    def created(self, job: Any) -> None: ...
    def changed(self, change: Any, job: Any) -> None: ...
    def tick(self, elapsed: float) -> None: ...
    def ended(self, job: Any, timeline: Any, reason: str) -> None: ...


def ours(base_url: str, api_key: str, lines: int) -> dict[str, Any]:
    """The library: streamed build and check, streamed upload, the core's follow, streamed download and parse."""
    from prefect_openai_runs._batch_run import collect_results
    from prefect_openai_runs._lifecycle._batch_kind import BATCH_SCHEDULE
    from prefect_openai_runs._lifecycle._follower import PollSchedule
    from prefect_openai_runs._lifecycle._sync._batches import BatchesApi, BatchSpec
    from prefect_openai_runs._lifecycle._sync._driver import run_job
    from prefect_openai_runs.batch_files import split_input
    from prefect_openai_runs.client import BatchesClient
    from prefect_openai_runs.models import CreateBatchParams

    del BATCH_SCHEDULE  # imported for a warm start only; the bench polls every 0.2 s like the SDK below
    baseline = _rss_mb()
    with tempfile.TemporaryDirectory() as tmp, BatchesClient(api_key=api_key, base_url=base_url) as client:
        t0 = time.perf_counter()
        [chunk] = list(split_input(_bodies(lines), "/v1/responses", directory=tmp))
        uploaded = client.upload_file(chunk.path, "bench.jsonl")
        t1 = time.perf_counter()
        params = CreateBatchParams(input_file_id=uploaded.id, endpoint="/v1/responses")
        batch = run_job(
            BatchesApi(client),
            BatchSpec(params, "bench-key-0000000000000000000000"),
            key="bench",
            parent_id=None,
            max_wait_seconds=600,
            cancel_wait_seconds=60,
            stream=False,
            hooks=_Quiet(),
            schedule=PollSchedule(initial=0.2, factor=1.0, cap=0.2, steady_polls=0),
        )
        t2 = time.perf_counter()
        results = collect_results(client, [batch])
        t3 = time.perf_counter()
    assert len(results.outputs) == lines, len(results.outputs)
    return _figures(baseline, t0, t1, t2, t3)


def sdk(base_url: str, api_key: str, lines: int) -> dict[str, Any]:
    """The official SDK by hand, as its docs show: a JSONL file written, uploaded, polled, read, parsed."""
    from openai import OpenAI

    baseline = _rss_mb()
    client = OpenAI(api_key=api_key, base_url=base_url, max_retries=2)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = Path(tmp) / "bench.jsonl"
        with path.open("w") as handle:
            for n, body in enumerate(_bodies(lines), start=1):
                line = {"custom_id": f"request-{n}", "method": "POST", "url": "/v1/responses", "body": body}
                handle.write(json.dumps(line) + "\n")
        with path.open("rb") as handle:
            uploaded = client.files.create(file=handle, purpose="batch")
        t1 = time.perf_counter()
        batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/responses", completion_window="24h")
        while batch.status not in ("completed", "failed", "expired", "cancelled"):
            time.sleep(0.2)
            batch = client.batches.retrieve(batch.id)
        t2 = time.perf_counter()
        assert batch.output_file_id is not None
        outputs: dict[str, Any] = {}
        for raw in client.files.content(batch.output_file_id).text.splitlines():
            if raw:
                line = json.loads(raw)
                outputs[line["custom_id"]] = line["response"]["body"]
        t3 = time.perf_counter()
    client.close()
    assert len(outputs) == lines, len(outputs)
    return _figures(baseline, t0, t1, t2, t3)


def _figures(baseline: float, t0: float, t1: float, t2: float, t3: float) -> dict[str, Any]:
    return {
        "baseline_mb": round(baseline, 1),
        "peak_growth_mb": round(_peak_mb() - baseline, 1),
        "build_upload_s": round(t1 - t0, 2),
        "follow_s": round(t2 - t1, 2),
        "download_parse_s": round(t3 - t2, 2),
    }


def main(argv: list[str]) -> int:
    """Run each contender in its own process against one emulator subprocess and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--contender", choices=("ours", "sdk"))
    parser.add_argument("--base-url")
    parser.add_argument("--api-key")
    args = parser.parse_args(argv)
    if args.contender:
        run = ours if args.contender == "ours" else sdk
        print(json.dumps(run(args.base_url, args.api_key, args.lines)))
        return 0
    figures: dict[str, Any] = {"lines": args.lines}
    with spawn_emulator_process(quiet=True) as emu:
        emu.add_batch_script(SCRIPT)
        api_key = DEFAULT_API_KEY
        for contender in ("ours", "sdk"):
            command = [sys.executable, __file__, "--contender", contender, "--lines", str(args.lines)]
            command += ["--base-url", emu.base_url, "--api-key", api_key]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            figures[contender] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
