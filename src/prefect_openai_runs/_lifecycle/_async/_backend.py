"""The asynchronous side's own primitives (hand-written; the synchronous twin is ``_sync/_backend.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


async def sleep(seconds: float) -> None:
    """Sleep (cancellable, like every await)."""
    await asyncio.sleep(seconds)


class Reader(Generic[T]):
    """Reads a stream one item at a time, never waiting longer than asked.

    Once a wait runs out the stream is closed (its connection with it): a wait ends only at a deadline.
    """

    def __init__(self, items: AsyncIterator[T]) -> None:
        self._items = items
        self.ended = False

    async def next(self, seconds: float, on_idle: Callable[[], None] | None = None) -> T | None:
        """The next item; ``None`` at the end of the stream or when ``seconds`` pass. The stream's own
        errors propagate."""
        if self.ended:
            return None
        try:
            return await asyncio.wait_for(self._items.__anext__(), timeout=max(seconds, 0.0))
        except StopAsyncIteration:
            self.ended = True
            return None
        except asyncio.TimeoutError:
            await self.close()
            return None

    async def close(self) -> None:
        """Stop reading and close the stream."""
        self.ended = True
        aclose = getattr(self._items, "aclose", None)
        if aclose is not None:
            await aclose()
