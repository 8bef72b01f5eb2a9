"""Server-sent events: each stream is a subscription to one run's events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from ._state import STREAM_END, status_event

_END_EVENTS = frozenset(status_event(status) for status in STREAM_END)
DONE = b"event: done\ndata: [DONE]\n\n"


def sse(event: str, data: Any) -> bytes:
    """Format one server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Subscription:
    """The events of one stream, queued as formatted bytes as they happen.

    A run's stream ends after the run's terminal event or ``thread.run.requires_action`` (then
    ``event: done``), or when the emulator closes it (reset, shutdown).

    Args:
        end_events: The events after which the stream ends (default: a run's).
        done: What is written after an ending event (default ``event: done``); None for nothing (a
            response's stream simply ends).
    """

    def __init__(self, end_events: frozenset[str] = _END_EVENTS, done: bytes | None = DONE) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._end_events = end_events
        self._done = done
        self.finished = False

    def push(self, event: str, data: Any) -> None:
        """Queue an event; a stream-ending event also queues ``done`` and finishes the subscription."""
        if self.finished:
            return
        self._queue.put_nowait(sse(event, data))
        if event in self._end_events:
            if self._done is not None:
                self._queue.put_nowait(self._done)
            self.close()

    def close(self) -> None:
        """End the stream after what is already queued."""
        if not self.finished:
            self.finished = True
            self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._queue.get()
            if chunk is None:
                return
            yield chunk


class EventHub:
    """Who listens to which run."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Subscription]] = {}

    def subscribe(self, run_id: str, subscription: Subscription) -> None:
        """Send ``run_id``'s future events to ``subscription``."""
        self._subscribers.setdefault(run_id, []).append(subscription)

    def publish(self, run_id: str, event: str, data: Any) -> None:
        """Send an event to every open subscription of the run."""
        subs = self._subscribers.get(run_id)
        if not subs:
            return
        for sub in subs:
            sub.push(event, data)
        alive = [s for s in subs if not s.finished]
        if alive:
            self._subscribers[run_id] = alive
        else:
            del self._subscribers[run_id]

    def close(self, key: str) -> None:
        """End every stream of one object (what is already queued is still sent)."""
        for sub in self._subscribers.pop(key, []):
            sub.close()

    def close_all(self) -> None:
        """End every stream."""
        for subs in self._subscribers.values():
            for sub in subs:
                sub.close()
        self._subscribers.clear()
