"""Request validation, as the spec's request schemas say, with the API's error messages.

Schemas are built from a few combinators; each check takes ``(value, param_path)`` and raises
:class:`._errors.ApiError` naming the offending parameter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from . import _errors as errors

Check = Callable[[Any, str], None]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def nullable(check: Check) -> Check:
    """Allow null as well."""

    def run(value: Any, path: str) -> None:
        if value is not None:
            check(value, path)

    return run


def anything(value: Any, path: str) -> None:
    """Accept any value."""


def string(*, max_length: int | None = None, pattern: str | None = None, enum: tuple[str, ...] = ()) -> Check:
    """A string, optionally bounded, matching a pattern, or from an enum."""
    compiled = re.compile(pattern) if pattern else None

    def run(value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise errors.invalid_type(path, "a string", value)
        if enum and value not in enum:
            raise errors.unsupported_value(path, value, enum)
        if max_length is not None and len(value) > max_length:
            raise errors.invalid_value(
                path,
                f"string too long. Expected a string with maximum length {max_length}, "
                f"but got a string with length {len(value)} instead.",
                "string_above_max_length",
            )
        if compiled is not None and not compiled.fullmatch(value):
            raise errors.invalid_value(
                path, f"string does not match pattern. Expected a string that matches the pattern '{pattern}'."
            )

    return run


def number(*, minimum: float | None = None, maximum: float | None = None, integer: bool = False) -> Check:
    """A number (or an integer) within optional bounds."""
    kind = "integer" if integer else "decimal"

    def run(value: Any, path: str) -> None:
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or (isinstance(value, float) and not math.isfinite(value)):
            raise errors.invalid_type(path, "an integer" if integer else "a decimal", value)
        if minimum is not None and value < minimum:
            raise errors.invalid_value(
                path,
                f"{kind} below minimum value. Expected a value >= {minimum:g}, but got {value} instead.",
                f"{kind}_below_min_value",
            )
        if maximum is not None and value > maximum:
            raise errors.invalid_value(
                path,
                f"{kind} above maximum value. Expected a value <= {maximum:g}, but got {value} instead.",
                f"{kind}_above_max_value",
            )

    return run


def boolean(value: Any, path: str) -> None:
    """A boolean."""
    if not isinstance(value, bool):
        raise errors.invalid_type(path, "a boolean", value)


def array(items: Check, *, max_items: int | None = None, min_items: int = 0) -> Check:
    """An array of items, with optional length bounds."""

    def run(value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise errors.invalid_type(path, "an array", value)
        if max_items is not None and len(value) > max_items:
            raise errors.invalid_value(
                path,
                f"array too long. Expected an array with maximum length {max_items}, "
                f"but got an array with length {len(value)} instead.",
                "array_above_max_length",
            )
        if len(value) < min_items:
            raise errors.invalid_value(
                path,
                f"array too short. Expected an array with minimum length {min_items}, "
                f"but got an array with length {len(value)} instead.",
                "empty_array" if min_items == 1 else "array_below_min_length",
            )
        for i, item in enumerate(value):
            items(item, f"{path}[{i}]")

    return run


def obj(fields: Mapping[str, Check], *, required: tuple[str, ...] = (), closed: bool = True) -> Check:
    """An object with known fields; ``closed`` objects reject unknown ones (additionalProperties: false)."""

    def run(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise errors.invalid_type(path or "body", "an object", value)
        if closed:
            for name in value:
                if name not in fields:
                    raise errors.unknown_parameter(_join(path, name))
        for name in required:
            if name not in value:
                raise errors.missing_parameter(_join(path, name))
        for name, check in fields.items():
            if name in value:
                check(value[name], _join(path, name))

    return run


def tagged(variants: Mapping[str, Check]) -> Check:
    """An object whose ``type`` field picks the schema that applies."""
    names = tuple(variants)

    def run(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise errors.invalid_type(path, "an object", value)
        if "type" not in value:
            raise errors.missing_parameter(_join(path, "type"))
        kind = value["type"]
        if kind not in variants:
            raise errors.unsupported_value(_join(path, "type"), kind, names)
        variants[kind](value, path)

    return run


def either(first: Check, second: Check) -> Check:
    """``first`` if the value has its JSON kind (string vs. other), else ``second``."""

    def run(value: Any, path: str) -> None:
        (first if isinstance(value, str) else second)(value, path)

    return run


def _metadata(value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise errors.invalid_type(path, "an object", value)
    if len(value) > 16:
        raise errors.invalid_value(
            path,
            f"too many properties. Expected an object with at most 16 properties, "
            f"but got an object with {len(value)} properties instead.",
            "object_above_max_properties",
        )
    for key, item in value.items():
        if len(key) > 64:
            raise errors.invalid_value(
                path,
                f"key too long. Expected keys with maximum length 64, but got a key with length {len(key)} instead.",
                "string_above_max_length",
            )
        string(max_length=512)(item, f"{path}.{key}")


METADATA = nullable(_metadata)
FUNCTION_NAME = r"^[a-zA-Z0-9_-]{1,64}$"
OPEN_OBJECT = obj({}, closed=False)

TOOL = tagged(
    {
        "code_interpreter": obj({"type": anything}),
        "file_search": obj({"type": anything, "file_search": OPEN_OBJECT}),
        "function": obj(
            {
                "type": anything,
                "function": obj(
                    {
                        "name": string(pattern=FUNCTION_NAME),
                        "description": string(),
                        "parameters": OPEN_OBJECT,
                        "strict": nullable(boolean),
                    },
                    required=("name",),
                ),
            },
            required=("function",),
        ),
    }
)
TOOLS = nullable(array(TOOL, max_items=20))
CONTENT = either(
    string(),
    array(
        tagged(
            {
                "text": obj({"type": anything, "text": string()}, required=("text",)),
                "image_url": obj({"type": anything, "image_url": OPEN_OBJECT}, required=("image_url",)),
                "image_file": obj({"type": anything, "image_file": OPEN_OBJECT}, required=("image_file",)),
            }
        ),
        min_items=1,
    ),
)
MESSAGE = obj(
    {
        "role": string(enum=("user", "assistant")),
        "content": CONTENT,
        "attachments": nullable(array(OPEN_OBJECT)),
        "metadata": METADATA,
    },
    required=("role", "content"),
)
TRUNCATION = nullable(
    obj(
        {
            "type": string(enum=("auto", "last_messages")),
            "last_messages": nullable(number(minimum=1, integer=True)),
        },
        required=("type",),
    )
)
TOOL_CHOICE = nullable(
    either(
        string(enum=("none", "auto", "required")),
        obj(
            {
                "type": string(enum=("function", "code_interpreter", "file_search")),
                "function": obj({"name": string()}, required=("name",)),
            },
            required=("type",),
        ),
    )
)
RESPONSE_FORMAT = nullable(
    either(
        string(enum=("auto",)),
        tagged(
            {
                "text": obj({"type": anything}),
                "json_object": obj({"type": anything}),
                "json_schema": obj({"type": anything, "json_schema": OPEN_OBJECT}, required=("json_schema",)),
            }
        ),
    )
)
TEMPERATURE = nullable(number(minimum=0, maximum=2))
TOP_P = nullable(number(minimum=0, maximum=1))
TOKENS = nullable(number(minimum=256, integer=True))
REASONING = nullable(string(enum=("none", "minimal", "low", "medium", "high", "xhigh", "max")))

_RUN_FIELDS: dict[str, Check] = {
    "assistant_id": string(),
    "model": nullable(string()),
    "reasoning_effort": REASONING,
    "instructions": nullable(string()),
    "tools": TOOLS,
    "metadata": METADATA,
    "temperature": TEMPERATURE,
    "top_p": TOP_P,
    "stream": nullable(boolean),
    "max_prompt_tokens": TOKENS,
    "max_completion_tokens": TOKENS,
    "truncation_strategy": TRUNCATION,
    "tool_choice": TOOL_CHOICE,
    "parallel_tool_calls": boolean,
    "response_format": RESPONSE_FORMAT,
}

CREATE_THREAD = obj({"messages": array(MESSAGE), "tool_resources": nullable(OPEN_OBJECT), "metadata": METADATA})
CREATE_RUN = obj(
    {
        **_RUN_FIELDS,
        "additional_instructions": nullable(string()),
        "additional_messages": nullable(array(MESSAGE)),
    },
    required=("assistant_id",),
)
CREATE_THREAD_AND_RUN = obj(
    {**_RUN_FIELDS, "thread": CREATE_THREAD, "tool_resources": nullable(OPEN_OBJECT)},
    required=("assistant_id",),
)
MODIFY_RUN = obj({"metadata": METADATA})
SUBMIT_TOOL_OUTPUTS = obj(
    {
        "tool_outputs": array(obj({"tool_call_id": string(), "output": string()}, closed=False)),
        "stream": nullable(boolean),
    },
    required=("tool_outputs",),
)
CREATE_MESSAGE = MESSAGE
CREATE_ASSISTANT = obj(
    {
        "model": string(),
        "name": nullable(string(max_length=256)),
        "description": nullable(string(max_length=512)),
        "instructions": nullable(string(max_length=256_000)),
        "reasoning_effort": REASONING,
        "tools": TOOLS,
        "tool_resources": nullable(OPEN_OBJECT),
        "metadata": METADATA,
        "temperature": TEMPERATURE,
        "top_p": TOP_P,
        "response_format": RESPONSE_FORMAT,
    },
    required=("model",),
)


def validate(schema: Check, body: Any) -> dict[str, Any]:
    """Check a request body against a schema and return it.

    Raises:
        ApiError: 400 naming the first offending parameter.
    """
    schema(body, "")
    return cast(dict[str, Any], body)


@dataclass(frozen=True)
class ListQuery:
    """The query of a cursor-paged list endpoint."""

    limit: int = 20
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    before: str | None = None
    run_id: str | None = None


def list_query(query: Mapping[str, str]) -> ListQuery:
    """Parse and check ``limit`` (1..100), ``order`` (asc|desc), ``after``, ``before``, ``run_id``.

    Raises:
        ApiError: 400 for a bad value.
    """
    raw_limit = query.get("limit")
    limit = 20
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            raise errors.invalid_type("limit", "an integer", raw_limit) from None
        number(minimum=1, maximum=100, integer=True)(limit, "limit")
    order = query.get("order", "desc")
    string(enum=("asc", "desc"))(order, "order")
    return ListQuery(
        limit=limit,
        order=cast(Literal["asc", "desc"], order),
        after=query.get("after") or None,
        before=query.get("before") or None,
        run_id=query.get("run_id") or None,
    )
