"""What the emulator reads from a create-response body's ``input``: its text, and the function outputs it answers."""

from __future__ import annotations

from typing import Any


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
