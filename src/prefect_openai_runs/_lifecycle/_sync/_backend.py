"""The synchronous side's own primitives (hand-written; the asynchronous twin is ``_async/_backend.py``)."""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from prefect_openai_runs.client._stream_watch import StreamWatch, watch_streams
from prefect_openai_runs.client._sync._backend import SLICE
from prefect_openai_runs.client._sync._backend import sleep as sleep

T = TypeVar("T")

_END = object()


class Reader(Generic[T]):
    """Reads a stream one item at a time, never waiting longer than asked.

    A blocking read cannot be given a deadline, so the stream is read on a helper thread (started with
    the caller's context, so the job's deadline holds there too) into a queue; waiting on the queue is
    done in quarter seconds, so that an exception Prefect raises into this thread (a flow timeout, a
    cancellation) lands soon, and ``on_idle`` is called meanwhile. The helper ends with the stream: at its
    end, or at once after :meth:`close`, which breaks off the read it may be blocked in (through a
    :class:`~prefect_openai_runs.client._stream_watch.StreamWatch` in the helper's context: a stalled
    stream has no read timeout), and it then closes the stream.
    """

    def __init__(self, items: Iterator[T]) -> None:
        self._items = items
        self._queue: queue.Queue[object] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch = StreamWatch()
        self.ended = False

    def _pump(self) -> None:
        watch_streams(self._watch)  # in the helper's own copy of the caller's context
        try:
            for item in self._items:
                if self._stop.is_set():
                    break
                self._queue.put(item)
        except BaseException as exc:  # handed to the reader, raised in its own thread
            self._queue.put(exc)
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()
            self._queue.put(_END)

    def next(self, seconds: float, on_idle: Callable[[], None] | None = None) -> T | None:
        """The next item; ``None`` at the end of the stream or when ``seconds`` pass. The stream's own
        errors are raised here."""
        if self.ended:
            return None
        if self._thread is None:
            context = contextvars.copy_context()
            self._thread = threading.Thread(target=context.run, args=(self._pump,), name="openai-job-stream")
            self._thread.daemon = True
            self._thread.start()
        end = time.monotonic() + max(seconds, 0.0)
        while (left := end - time.monotonic()) > 0:
            try:
                item = self._queue.get(timeout=min(SLICE, left))
            except queue.Empty:
                if on_idle is not None:
                    on_idle()
                continue
            if item is _END:
                self.ended = True
                return None
            if isinstance(item, BaseException):
                self.ended = True
                raise item
            return item  # type: ignore[return-value]
        return None

    def close(self) -> None:
        """Stop reading: the read the helper may be blocked in is broken off, and it closes the stream."""
        self.ended = True
        self._stop.set()
        self._watch.close()

    def close_soon(self) -> None:
        """The same as :meth:`close`, which never blocks on this side."""
        self.close()
