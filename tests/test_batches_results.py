"""Batch results in memory: outputs held as compact JSON (parsed when read), merged across batches.

The 50,000-line figure (built, uploaded, followed, parsed: peak RSS) is ``bench/_batch_memory.py``'s; here
10,000 outputs bound the memory held per output, which is what makes 50,000 fit.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator

from prefect_openai_runs._batch_run import BatchRunResult
from prefect_openai_runs.batch_files import BatchResults, Outputs, read_results
from prefect_openai_runs.models import Batch, BatchUsage

BODY = {
    "object": "response",
    "status": "completed",
    "model": "gpt-5-mini",
    "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "x" * 200}]}],
    "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
}


def _output_file(lines: int) -> Iterator[bytes]:
    """An output file as an HTTP response streams it: chunks of lines, never all in memory."""
    for start in range(0, lines, 1000):
        chunk = [
            json.dumps({"id": f"r{n}", "custom_id": f"request-{n}", "response": {"status_code": 200, "body": BODY}})
            for n in range(start, min(start + 1000, lines))
        ]
        yield ("\n".join(chunk) + "\n").encode()


LINES = 10_000


def test_outputs_hold_their_text_not_parsed_objects() -> None:
    tracemalloc.start()
    try:
        results = read_results(_output_file(LINES))
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert len(results.outputs) == LINES
    assert results.outputs[f"request-{LINES - 1}"] == BODY
    per_output = held / LINES
    text = len(json.dumps(BODY, separators=(",", ":")))
    assert per_output < text + 400, f"{per_output:.0f} bytes held per output of {text} bytes of JSON"


def test_outputs_behave_as_a_mapping_and_merge_unparsed() -> None:
    first, second = Outputs({"a": {"n": 1}}), Outputs({"b": [1, 2]})
    first.merge(second)
    first["c"] = "text"
    del first["c"]

    assert first == {"a": {"n": 1}, "b": [1, 2]}
    assert first.raw("b") == b"[1,2]" and repr(first) == "Outputs(2 response bodies)"


def test_run_result_sums_usage_over_batches() -> None:
    merged = BatchRunResult()
    for n in range(2):
        batch = Batch.model_validate(
            {
                "id": f"batch_{n}",
                "endpoint": "/v1/responses",
                "input_file_id": "file-1",
                "completion_window": "24h",
                "status": "completed",
                "created_at": 1,
                "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
            }
        )
        merged.add(batch, BatchResults(outputs=Outputs({f"q{n}": {}})))

    assert merged.usage == BatchUsage(input_tokens=6, output_tokens=4, total_tokens=10)
    assert sorted(merged.outputs) == ["q0", "q1"] and len(merged.batches) == 2
