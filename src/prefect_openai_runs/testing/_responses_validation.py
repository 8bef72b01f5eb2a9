"""The create-response request schema (the spec's ``CreateResponse``), with the API's error messages."""

from __future__ import annotations

from typing import Any

from ._validation import (
    METADATA,
    OPEN_OBJECT,
    Check,
    array,
    boolean,
    either,
    nullable,
    number,
    obj,
    string,
)

_OBJECT_OR_STRING = either(string(), OPEN_OBJECT)

CREATE_RESPONSE: Check = obj(
    {
        "model": string(),
        "input": either(string(), array(OPEN_OBJECT)),
        "background": nullable(boolean),
        "store": nullable(boolean),
        "stream": nullable(boolean),
        "stream_options": nullable(OPEN_OBJECT),
        "instructions": nullable(string()),
        "metadata": METADATA,
        "previous_response_id": nullable(string()),
        "conversation": nullable(_OBJECT_OR_STRING),
        "context_management": nullable(array(OPEN_OBJECT, min_items=1)),
        "include": nullable(array(string())),
        "tools": nullable(array(OPEN_OBJECT)),
        "tool_choice": nullable(_OBJECT_OR_STRING),
        "parallel_tool_calls": nullable(boolean),
        "max_output_tokens": nullable(number(minimum=16, integer=True)),
        "max_tool_calls": nullable(number(minimum=1, integer=True)),
        "temperature": nullable(number(minimum=0, maximum=2)),
        "top_p": nullable(number(minimum=0, maximum=1)),
        "top_logprobs": nullable(number(minimum=0, maximum=20, integer=True)),
        "text": nullable(OPEN_OBJECT),
        "reasoning": nullable(OPEN_OBJECT),
        "prompt": nullable(OPEN_OBJECT),
        "prompt_cache_key": nullable(string()),
        "prompt_cache_retention": nullable(string(enum=("in_memory", "24h"))),
        "prompt_cache_options": nullable(OPEN_OBJECT),
        "safety_identifier": nullable(string(max_length=64)),
        "service_tier": nullable(string()),
        "truncation": nullable(string(enum=("auto", "disabled"))),
        "moderation": nullable(OPEN_OBJECT),
        "user": nullable(string()),
    },
    required=("model",),
)
"""``POST /responses``: only the spec's fields, ``model`` required (the live API requires it)."""


def input_text(value: Any) -> str:
    """The text of a create's ``input``: the string itself, or the text of its message items."""
    if isinstance(value, str):
        return value
    texts: list[str] = []
    for item in value or []:
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "\n".join(texts)


def function_outputs(value: Any) -> set[str]:
    """The ``call_id`` of every ``function_call_output`` item of a create's ``input``."""
    if not isinstance(value, list):
        return set()
    return {
        str(item.get("call_id"))
        for item in value
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    }
