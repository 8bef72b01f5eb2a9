"""The asynchronous side's own primitives (hand-written; the synchronous twin is ``_sync/_backend.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


async def sleep(seconds: float) -> None:
    """Sleep (cancellable, like every await)."""
    await asyncio.sleep(seconds)


class Reader(Generic[T]):
    """Reads a stream one item at a time, never waiting longer than asked.

    A wait that runs out leaves the pending read in place (it is not cancelled): closing a stream in the
    middle of a read costs a connection teardown, which must not delay the cancel that follows a passed
    deadline. :meth:`close_soon` closes it off the caller's path.
    """

    def __init__(self, items: AsyncIterator[T]) -> None:
        self._items = items
        self._pending: asyncio.Future[T] | None = None
        self._closed = False
        self.ended = False

    async def next(self, seconds: float, on_idle: Callable[[], None] | None = None) -> T | None:
        """The next item; ``None`` at the end of the stream or when ``seconds`` pass. The stream's own
        errors propagate."""
        if self.ended:
            return None
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._items.__anext__())
        done, _ = await asyncio.wait({self._pending}, timeout=max(seconds, 0.0))
        if not done:
            return None
        read, self._pending = self._pending, None
        try:
            return read.result()
        except StopAsyncIteration:
            self.ended = True
            return None
        except BaseException:
            self.ended = True
            raise

    async def close(self) -> None:
        """Stop reading and close the stream (once)."""
        if self._closed:
            return
        self._closed = self.ended = True
        if self._pending is not None:
            self._pending.cancel()
            await asyncio.gather(self._pending, return_exceptions=True)
            self._pending = None
        aclose = getattr(self._items, "aclose", None)
        if aclose is not None:
            await aclose()

    def close_soon(self) -> None:
        """Close the stream in the background (the caller goes on at once)."""
        self.ended = True
        if self._closed:
            return
        _closing.add(task := asyncio.ensure_future(self.close()))
        task.add_done_callback(_closing.discard)


_closing: set[asyncio.Future[Any]] = set()
