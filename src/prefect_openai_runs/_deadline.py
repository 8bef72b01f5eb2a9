"""One deadline for everything a job's following does: every request, retry sleep and stream read.

The lifecycle core opens a scope (:func:`deadline_scope`) when following starts; the client reads it
(:func:`remaining`) to cap each request's timeout and to stop retrying before a sleep would end past it.
A context variable carries it, so it holds in a thread and in an asyncio task (and the tasks it starts)
alike, and code that runs outside a scope is bounded only by its own timeouts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_DEADLINE: ContextVar[float | None] = ContextVar("prefect_openai_runs_deadline", default=None)


def remaining() -> float | None:
    """Seconds left before the current deadline (0 once it passed), or ``None`` outside any scope."""
    at = _DEADLINE.get()
    return None if at is None else max(0.0, at - time.monotonic())


def passed() -> bool:
    """Whether the current scope's deadline has passed (never outside a scope)."""
    left = remaining()
    return left is not None and left <= 0


@contextmanager
def deadline_scope(at: float | None) -> Iterator[None]:
    """Within the block, no request or retry sleep ends past ``at`` (a ``time.monotonic()`` value).

    ``None`` lifts any outer deadline (the cancel that follows a passed deadline has its own budget).
    """
    token = _DEADLINE.set(at)
    try:
        yield
    finally:
        _DEADLINE.reset(token)
