"""Batch JSONL files, without HTTP: build and check input files, split them, read result files.

Everything streams: lines are checked and written one at a time, so memory stays flat in the number
of lines (the one exception is the set of ``custom_id`` seen, needed to refuse duplicates: a few
dozen bytes per line). A bad line raises :class:`BatchInputError` naming its line number and what to
fix, before anything is uploaded.

Example:
    ```python
    from prefect_openai_runs.batch_files import read_results, split_input

    bodies = ({"model": "gpt-5-mini", "input": q} for q in questions)
    for chunk in split_input(bodies, "/v1/responses"):
        print(chunk.path, chunk.lines)  # upload each chunk, create one batch per chunk
    results = read_results(output_jsonl_bytes)
    results.outputs["request-1"]  # the response body of the first request
    ```
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from prefect_openai_runs.models import BATCH_ENDPOINTS, BatchLineError, BatchResultLine

MAX_LINES = 50_000
"""Requests per batch input file."""
MAX_BYTES = 200 * 1024 * 1024
"""Bytes per batch input file."""
GENERATED_ID_PREFIX = "request-"
"""Requests given as bare bodies get ``custom_id`` ``request-<n>``, n their 1-based position."""

InputSource = str | os.PathLike[str] | Iterable[Mapping[str, Any]]
"""A path to a JSONL file, or request bodies, or ``{"custom_id", "body"}`` dicts."""
ResultSource = str | os.PathLike[str] | bytes | Iterable[bytes]
"""A path to a JSONL file, its bytes, or its bytes in chunks (as an HTTP response streams them)."""


class BatchInputError(ValueError):
    """A batch input line (or the whole input) breaks the API's rules.

    Attributes:
        line: The 1-based line (or request) number at fault, or ``None`` for the input as a whole.
    """

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


@dataclass(frozen=True)
class InputChunk:
    """One batch input file written by :func:`split_input`.

    Attributes:
        path: The JSONL file (the caller deletes it once uploaded).
        lines: Requests in it.
        bytes: Its size.
        first_line: The number of its first request in the whole input (1-based).
    """

    path: Path
    lines: int
    bytes: int
    first_line: int


class Outputs(MutableMapping[str, Any]):
    """Response bodies by ``custom_id``, held as compact JSON text and parsed when read.

    Fifty thousand parsed response bodies take several times the memory of their text (about 180 MB
    against 35 MB for typical ``/v1/responses`` answers): holding the text keeps a large batch's results
    within reach of a small worker. Reading ``outputs[custom_id]`` parses that one body.
    """

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._raw: dict[str, bytes] = {}
        self.update(items or {})

    def __getitem__(self, custom_id: str) -> Any:
        return json.loads(self._raw[custom_id])

    def __setitem__(self, custom_id: str, body: Any) -> None:
        self._raw[custom_id] = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    def __delitem__(self, custom_id: str) -> None:
        del self._raw[custom_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"Outputs({len(self._raw)} response bodies)"

    def raw(self, custom_id: str) -> bytes:
        """A body's JSON text, unparsed."""
        return self._raw[custom_id]

    def merge(self, other: Outputs) -> None:
        """Take every body of ``other`` (without parsing them)."""
        self._raw.update(other._raw)


@dataclass
class BatchResults:
    """The results of a batch, by ``custom_id``.

    Attributes:
        outputs: The response body of every request that succeeded (parsed when read).
        errors: Why every other request failed.
    """

    outputs: Outputs = field(default_factory=Outputs)
    errors: dict[str, BatchLineError] = field(default_factory=dict)


def _check_endpoint(endpoint: str) -> None:
    if endpoint not in BATCH_ENDPOINTS:
        raise BatchInputError(f"endpoint must be one of {', '.join(BATCH_ENDPOINTS)}; got {endpoint!r}")


def _encode(line: int, data: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise BatchInputError(
            f"the request is not JSON serialisable ({exc}); use plain dicts, lists, strings and numbers", line
        ) from exc


def _check_line(line: int, data: Any, endpoint: str, seen: set[str]) -> None:
    """Check one parsed input line: ``{custom_id, method: POST, url: endpoint, body: {...}}``."""
    if not isinstance(data, dict):
        raise BatchInputError("each line must be a JSON object {custom_id, method, url, body}", line)
    unknown = sorted(set(data) - {"custom_id", "method", "url", "body"})
    if unknown:
        raise BatchInputError(f"unknown field(s) {unknown}; a line has only custom_id, method, url and body", line)
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise BatchInputError("custom_id must be a non-empty string", line)
    if custom_id in seen:
        raise BatchInputError(f"custom_id {custom_id!r} is used twice; every custom_id must be unique", line)
    seen.add(custom_id)
    if data.get("method") != "POST":
        raise BatchInputError(f"method must be 'POST', got {data.get('method')!r}", line)
    if data.get("url") != endpoint:
        raise BatchInputError(f"url must be the batch's endpoint {endpoint!r}, got {data.get('url')!r}", line)
    if not isinstance(data.get("body"), dict):
        raise BatchInputError("body must be a JSON object (the request body for the endpoint)", line)


def _from_requests(requests: Iterable[Mapping[str, Any]], endpoint: str) -> Iterator[bytes]:
    seen: set[str] = set()
    for number, item in enumerate(requests, start=1):
        if not isinstance(item, Mapping):
            raise BatchInputError(
                f"each request must be a dict (a body, or {{custom_id, body}}), got {type(item).__name__}", number
            )
        if "custom_id" in item:
            data = {"custom_id": item["custom_id"], "method": "POST", "url": endpoint, **item}
        else:
            data = {"custom_id": f"{GENERATED_ID_PREFIX}{number}", "method": "POST", "url": endpoint, "body": item}
        _check_line(number, data, endpoint, seen)
        yield _encode(number, data)


def _from_file(path: Path, endpoint: str) -> Iterator[bytes]:
    seen: set[str] = set()
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.rstrip(b"\r\n")
            if not text.strip():
                raise BatchInputError("the line is empty; remove blank lines", number)
            try:
                data = json.loads(text)
            except ValueError as exc:
                raise BatchInputError(
                    f"not valid JSON ({exc.args[0] if exc.args else exc}); fix or remove the line", number
                ) from None
            _check_line(number, data, endpoint, seen)
            yield text


def iter_input_lines(source: InputSource, endpoint: str) -> Iterator[bytes]:
    """Every request of ``source`` as one checked JSONL line (without its newline), one at a time.

    Args:
        source: A JSONL file path, or an iterable of request bodies (their ``custom_id`` becomes
            ``request-<n>``) or of ``{"custom_id": ..., "body": ...}`` dicts.
        endpoint: The batch's endpoint, e.g. ``/v1/responses``; every line's ``url`` must be it.

    Raises:
        BatchInputError: At the first bad line, naming it and what to fix.
    """
    _check_endpoint(endpoint)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise BatchInputError(f"input file {str(path)!r} does not exist")
        return _from_file(path, endpoint)
    return _from_requests(source, endpoint)


def _line_fits(number: int, line: bytes, max_bytes: int) -> None:
    if len(line) + 1 > max_bytes:
        raise BatchInputError(
            f"the request is {len(line) + 1} bytes, more than a whole batch file may be ({max_bytes}); make it smaller",
            number,
        )


def split_input(
    source: InputSource,
    endpoint: str,
    *,
    directory: str | os.PathLike[str] | None = None,
    max_lines: int = MAX_LINES,
    max_bytes: int = MAX_BYTES,
) -> Iterator[InputChunk]:
    """Write ``source`` into as few batch input files as the limits allow, yielding each when complete.

    ``custom_id`` values are unique across all the files, so their results can be merged.

    Args:
        source: See :func:`iter_input_lines`.
        endpoint: The batch's endpoint.
        directory: Where to write the files (default: the system's temporary directory).
        max_lines: Requests per file (at most the API's 50,000).
        max_bytes: Bytes per file (at most the API's 200 MB).

    Raises:
        BatchInputError: On a bad line, or a line larger than ``max_bytes``.
        ValueError: If a limit is outside the API's.
    """
    if not 1 <= max_lines <= MAX_LINES:
        raise ValueError(f"max_lines must be between 1 and {MAX_LINES}, got {max_lines}")
    if not 1 <= max_bytes <= MAX_BYTES:
        raise ValueError(f"max_bytes must be between 1 and {MAX_BYTES}, got {max_bytes}")
    lines = iter_input_lines(source, endpoint)
    handle = None
    count = size = first = 0
    try:
        for number, line in enumerate(lines, start=1):
            _line_fits(number, line, max_bytes)
            if handle is not None and (count >= max_lines or size + len(line) + 1 > max_bytes):
                handle.close()
                yield InputChunk(Path(handle.name), count, size, first)
                handle = None
            if handle is None:
                handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed when the chunk is full)
                    "wb", suffix=".jsonl", prefix="batch-", dir=directory, delete=False
                )
                count = size = 0
                first = number
            handle.write(line + b"\n")
            count += 1
            size += len(line) + 1
        if handle is not None:
            handle.close()
            yield InputChunk(Path(handle.name), count, size, first)
            handle = None
    finally:
        if handle is not None:
            handle.close()
            os.unlink(handle.name)


def write_input(source: InputSource, endpoint: str, path: str | os.PathLike[str]) -> InputChunk:
    """Write ``source`` as one checked batch input file at ``path``.

    Raises:
        BatchInputError: On a bad line, or if the input exceeds 50,000 requests or 200 MB (use
            :func:`split_input` to write several files).
    """
    target = Path(path)
    count = size = 0
    with target.open("wb") as handle:
        for number, line in enumerate(iter_input_lines(source, endpoint), start=1):
            _line_fits(number, line, MAX_BYTES)
            count, size = number, size + len(line) + 1
            if count > MAX_LINES or size > MAX_BYTES:
                handle.close()
                target.unlink()
                raise BatchInputError(
                    f"a batch file holds at most {MAX_LINES} requests and {MAX_BYTES} bytes; "
                    "use split_input() to write several files",
                    number,
                )
            handle.write(line + b"\n")
    return InputChunk(target, count, size, 1)


def check_input(path: str | os.PathLike[str], endpoint: str) -> InputChunk:
    """Check an existing batch input file: every line, and the file's limits.

    Returns:
        What the file holds.

    Raises:
        BatchInputError: Naming the first bad line and what to fix.
    """
    count = size = 0
    for number, line in enumerate(iter_input_lines(path, endpoint), start=1):
        count, size = number, size + len(line) + 1
        if count > MAX_LINES:
            raise BatchInputError(f"a batch file holds at most {MAX_LINES} requests; split the file", number)
    if size > MAX_BYTES:
        raise BatchInputError(f"the file is {size} bytes, more than the {MAX_BYTES} a batch file may be; split it")
    if count == 0:
        raise BatchInputError("the file has no requests")
    return InputChunk(Path(path), count, size, 1)


def _chunks_of(source: ResultSource) -> Iterator[bytes]:
    if isinstance(source, bytes):
        yield source
    elif isinstance(source, (str, os.PathLike)):
        with Path(source).open("rb") as handle:
            yield from iter(lambda: handle.read(1 << 16), b"")
    else:
        yield from source


def _split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from complete
    yield pending


def iter_results(source: ResultSource) -> Iterator[BatchResultLine]:
    """Every line of a batch output or error file, parsed, one at a time.

    Raises:
        ValueError: Naming the line that is not a result line.
    """
    for number, raw in enumerate(_split_lines(_chunks_of(source)), start=1):
        if not raw.strip():
            continue
        try:
            yield BatchResultLine.model_validate_json(raw)
        except ValidationError as exc:
            raise ValueError(f"result line {number} is not a batch result: {exc.errors()[0]['msg']}") from None


def read_results(*sources: ResultSource) -> BatchResults:
    """Read output and error files into ``{custom_id: response body}`` and ``{custom_id: error}``.

    Args:
        sources: The output file and the error file (either may be left out), or several of each.
    """
    results = BatchResults()
    for source in sources:
        for number, raw in enumerate(_split_lines(_chunks_of(source)), start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except ValueError:
                raise ValueError(f"result line {number} is not a batch result: not JSON") from None
            success = _success(data)
            if success is not None:
                results.outputs[success[0]] = success[1]
                continue
            line = _result_line(number, data)
            if line.succeeded and line.response is not None:
                results.outputs[line.custom_id] = line.response.body
            else:
                results.errors[line.custom_id] = line.failure()
    return results


def _success(data: Any) -> tuple[str, Any] | None:
    """``(custom_id, body)`` of a plainly successful result line (the common case, read without a model)."""
    if not isinstance(data, dict) or data.get("error") is not None or not isinstance(data.get("custom_id"), str):
        return None
    response = data.get("response")
    status = response.get("status_code") if isinstance(response, dict) else None
    if type(status) is not int or not 200 <= status < 300:
        return None
    return data["custom_id"], response.get("body") if isinstance(response, dict) else None


def _result_line(number: int, data: Any) -> BatchResultLine:
    try:
        return BatchResultLine.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"result line {number} is not a batch result: {exc.errors()[0]['msg']}") from None


__all__ = [
    "GENERATED_ID_PREFIX",
    "MAX_BYTES",
    "MAX_LINES",
    "BatchInputError",
    "BatchResults",
    "InputChunk",
    "Outputs",
    "check_input",
    "iter_input_lines",
    "iter_results",
    "read_results",
    "split_input",
    "write_input",
]
