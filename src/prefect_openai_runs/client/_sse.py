"""A sans-IO decoder of server-sent events into typed stream events, shared by both clients."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from prefect_openai_runs.exceptions import StreamError
from prefect_openai_runs.models import StreamEvent

E = TypeVar("E")


def _run_event_done() -> Any:
    return StreamEvent(event="done")


class SSEDecoder(Generic[E]):
    """Turns the lines of an event stream into typed events (by default the runs' :class:`StreamEvent`).

    Follows the SSE format: ``event:`` and ``data:`` fields, events ended by a blank line, comments
    (``:``) and unknown fields ignored. ``data: [DONE]`` is the ``done`` event. A data payload that is
    not JSON, or JSON that does not fit its event's model, raises :class:`StreamError`.
    """

    def __init__(
        self,
        parse: Callable[[str, Any], E] = StreamEvent.parse,  # type: ignore[assignment]
        done: Callable[[], E] = _run_event_done,
    ) -> None:
        self._parse = parse
        self._done = done
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> E | None:
        """Take one line (without its line ending); return an event when the line completes one."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def flush(self) -> E | None:
        """End of stream: dispatch what is pending, if anything."""
        return self._dispatch()

    def _dispatch(self) -> E | None:
        event, data = self._event, "\n".join(self._data)
        self._event, self._data = None, []
        if event is None and not data:
            return None
        if data.strip() == "[DONE]":
            return self._done()
        if event is None:
            event = "message"
        try:
            payload = json.loads(data) if data else None
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser's limit
            raise StreamError(f"event {event!r} carries data that is not JSON: {data[:120]!r}") from exc
        try:
            return self._parse(event, payload)
        except (ValidationError, AttributeError, TypeError) as exc:
            raise StreamError(f"event {event!r} carries data that does not fit its schema: {exc}") from exc
