"""Batch JSONL files: building, checking, splitting and reading, with flat memory."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prefect_openai_runs.batch_files import (
    MAX_LINES,
    BatchInputError,
    check_input,
    iter_input_lines,
    read_results,
    split_input,
    write_input,
)

ENDPOINT = "/v1/responses"


def body(i: int) -> dict[str, Any]:
    return {"model": "gpt-5-mini", "input": f"question {i}"}


def line(custom_id: str, url: str = ENDPOINT, method: str = "POST") -> bytes:
    return json.dumps({"custom_id": custom_id, "method": method, "url": url, "body": body(0)}).encode()


def test_bodies_get_generated_ids_and_the_endpoint() -> None:
    lines = [json.loads(raw) for raw in iter_input_lines([body(1), body(2)], ENDPOINT)]
    assert lines == [
        {"custom_id": "request-1", "method": "POST", "url": ENDPOINT, "body": body(1)},
        {"custom_id": "request-2", "method": "POST", "url": ENDPOINT, "body": body(2)},
    ]


def test_custom_id_dicts_keep_their_ids() -> None:
    lines = [json.loads(raw) for raw in iter_input_lines([{"custom_id": "a", "body": body(1)}], ENDPOINT)]
    assert lines == [{"custom_id": "a", "method": "POST", "url": ENDPOINT, "body": body(1)}]


@pytest.mark.parametrize(
    ("requests", "line_no", "fragment"),
    [
        ([{"custom_id": "a", "body": body(1)}, {"custom_id": "a", "body": body(2)}], 2, "used twice"),
        ([body(1), {"custom_id": "request-1", "body": body(2)}], 2, "used twice"),
        ([{"custom_id": "", "body": body(1)}], 1, "custom_id must be a non-empty string"),
        ([body(1), {"custom_id": "b", "body": "text"}], 2, "body must be a JSON object"),
        ([{"custom_id": "a", "url": "/v1/embeddings", "body": body(1)}], 1, "url must be the batch's endpoint"),
        ([{"custom_id": "a", "method": "GET", "body": body(1)}], 1, "method must be 'POST'"),
        ([{"custom_id": "a", "body": body(1), "extra": 1}], 1, "unknown field"),
        ([body(1), {"model": object()}], 2, "not JSON serialisable"),
    ],
)
def test_bad_requests_name_their_line(requests: list[dict[str, Any]], line_no: int, fragment: str) -> None:
    with pytest.raises(BatchInputError, match=fragment) as caught:
        list(iter_input_lines(requests, ENDPOINT))
    assert caught.value.line == line_no
    assert str(caught.value).startswith(f"line {line_no}: ")


def test_unknown_endpoint_is_refused_before_any_line() -> None:
    with pytest.raises(BatchInputError, match="endpoint must be one of"):
        iter_input_lines([body(1)], "/v1/threads")


@pytest.mark.parametrize(
    ("content", "line_no", "fragment"),
    [
        (line("a") + b"\n{oops\n", 2, "not valid JSON"),
        (line("a") + b"\n" + line("a") + b"\n", 2, "used twice"),
        (line("a") + b"\n\n" + line("b") + b"\n", 2, "empty"),
        (line("a") + b"\n" + line("b", url="/v1/chat/completions") + b"\n", 2, "url must be"),
        (b"[1, 2]\n", 1, "JSON object"),
    ],
)
def test_check_input_names_the_bad_line(tmp_path: Path, content: bytes, line_no: int, fragment: str) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    with pytest.raises(BatchInputError, match=fragment) as caught:
        check_input(path, ENDPOINT)
    assert caught.value.line == line_no


def test_check_input_counts_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(line("a") + b"\n" + line("b") + b"\n")
    checked = check_input(path, ENDPOINT)
    assert (checked.lines, checked.bytes) == (2, path.stat().st_size)
    with pytest.raises(BatchInputError, match="does not exist"):
        check_input(tmp_path / "missing.jsonl", ENDPOINT)


def test_write_input_round_trips_through_check(tmp_path: Path) -> None:
    written = write_input((body(i) for i in range(3)), ENDPOINT, tmp_path / "in.jsonl")
    assert written.lines == 3
    assert check_input(written.path, ENDPOINT).lines == 3


def test_split_by_lines_keeps_ids_unique_across_files(tmp_path: Path) -> None:
    chunks = list(split_input((body(i) for i in range(7)), ENDPOINT, directory=tmp_path, max_lines=3))
    assert [(c.lines, c.first_line) for c in chunks] == [(3, 1), (3, 4), (1, 7)]
    ids = [json.loads(raw)["custom_id"] for c in chunks for raw in c.path.read_bytes().splitlines()]
    assert ids == [f"request-{i}" for i in range(1, 8)]
    assert all(c.path.stat().st_size == c.bytes for c in chunks)


def test_split_by_bytes(tmp_path: Path) -> None:
    size = len(next(iter_input_lines([body(1)], ENDPOINT))) + 1
    chunks = list(split_input((body(i) for i in range(1, 6)), ENDPOINT, directory=tmp_path, max_bytes=2 * size + 2))
    assert [c.lines for c in chunks] == [2, 2, 1]
    assert all(c.bytes <= 2 * size + 2 for c in chunks)


def test_split_refuses_a_line_larger_than_a_file(tmp_path: Path) -> None:
    with pytest.raises(BatchInputError, match="more than a whole batch file") as caught:
        list(split_input([body(1), {"input": "x" * 500}], ENDPOINT, directory=tmp_path, max_bytes=200))
    assert caught.value.line == 2
    assert list(tmp_path.iterdir()) == []  # the unfinished file is removed


def test_split_limits_are_the_api_s(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_lines must be between 1 and 50000"):
        list(split_input([body(1)], ENDPOINT, directory=tmp_path, max_lines=MAX_LINES + 1))


def result_line(custom_id: str, status: int = 200, error: dict[str, str] | None = None) -> bytes:
    response = None if error else {"status_code": status, "request_id": "req_1", "body": {"id": custom_id}}
    if status >= 400:
        response = {"status_code": status, "request_id": "req_1", "body": {"error": {"message": "boom", "code": "x"}}}
    return json.dumps({"id": "batch_req_1", "custom_id": custom_id, "response": response, "error": error}).encode()


def test_read_results_from_bytes_chunks_and_paths(tmp_path: Path) -> None:
    output = result_line("a") + b"\n" + result_line("b") + b"\n"
    errors = result_line("c", 500) + b"\n" + result_line("d", error={"code": "batch_expired", "message": "late"})
    path = tmp_path / "errors.jsonl"
    path.write_bytes(errors)
    chunks = [output[i : i + 7] for i in range(0, len(output), 7)]  # split mid-line, as a stream arrives
    results = read_results(iter(chunks), path)
    assert results.outputs == {"a": {"id": "a"}, "b": {"id": "b"}}
    assert {k: (e.code, e.status_code) for k, e in results.errors.items()} == {
        "c": ("x", 500),
        "d": ("batch_expired", None),
    }
    assert read_results(output).outputs.keys() == {"a", "b"}


def test_read_results_names_a_bad_line() -> None:
    with pytest.raises(ValueError, match="result line 2 is not a batch result"):
        read_results(result_line("a") + b"\n{}\n")


def _bodies(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"model": "gpt-5-mini", "input": f"question number {i} " + "x" * 200}


def test_fifty_thousand_lines_with_flat_memory(tmp_path: Path) -> None:
    tracemalloc.start()
    try:
        chunks = list(split_input(_bodies(MAX_LINES), ENDPOINT, directory=tmp_path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [c.lines for c in chunks] == [MAX_LINES]
    assert chunks[0].bytes > 12_000_000  # the file is large...
    assert peak < 8_000_000  # ...memory is not: the ids seen, never the lines
    assert check_input(chunks[0].path, ENDPOINT).lines == MAX_LINES
