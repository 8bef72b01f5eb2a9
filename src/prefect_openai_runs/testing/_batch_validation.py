"""What the emulator's batch validation finds in an input file: each bad line, with its number.

The codes are the emulator's own (the API does not document its list): ``invalid_json_line``,
``invalid_request``, ``duplicate_custom_id``, ``invalid_method``, ``mismatched_url``,
``too_many_requests``, ``empty_file``.
"""

from __future__ import annotations

import json
from typing import Any

MAX_REQUESTS = 50_000
MAX_ERRORS = 100
"""Validation stops after this many errors."""


def _error(code: str, message: str, line: int | None, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def _line_errors(number: int, raw: bytes, endpoint: str, seen: set[str]) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return _error("invalid_json_line", f"This line is not parseable as valid JSON (line {number}).", number)
    if not isinstance(data, dict) or not isinstance(data.get("body"), dict):
        return _error("invalid_request", "Each line must be an object with an object 'body'.", number, "body")
    custom_id = data.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return _error("invalid_request", "Missing required parameter: 'custom_id'.", number, "custom_id")
    if custom_id in seen:
        return _error(
            "duplicate_custom_id", f"The custom_id '{custom_id}' is duplicated; it must be unique.", number, "custom_id"
        )
    seen.add(custom_id)
    if data.get("method") != "POST":
        return _error("invalid_method", "Only the POST method is supported.", number, "method")
    if data.get("url") != endpoint:
        return _error(
            "mismatched_url",
            f"The URL provided for this request does not match the batch endpoint {endpoint}.",
            number,
            "url",
        )
    return None


def validate_input(content: bytes, endpoint: str) -> tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]]]:
    """Check every line of a batch input file.

    Returns:
        ``(requests, errors)``: ``(custom_id, body)`` of every line (meaningful only without errors),
        and the errors (``BatchError`` objects) of the bad lines, at most :data:`MAX_ERRORS`.
    """
    requests: list[tuple[str, dict[str, Any]]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    lines = content.split(b"\n")
    if lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return [], [_error("empty_file", "The input file is empty.", None)]
    for number, raw in enumerate(lines, start=1):
        problem = _line_errors(number, raw, endpoint, seen)
        if problem is not None:
            errors.append(problem)
            if len(errors) >= MAX_ERRORS:
                break
            continue
        data = json.loads(raw)
        requests.append((data["custom_id"], data["body"]))
    if len(lines) > MAX_REQUESTS:
        errors.append(
            _error("too_many_requests", f"The input file has {len(lines)} requests; at most {MAX_REQUESTS}.", None)
        )
    return requests, errors
