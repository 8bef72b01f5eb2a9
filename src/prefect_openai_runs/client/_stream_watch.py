"""Breaking off, from another thread, a stream read that blocks in its socket.

An event stream's body reads have no read timeout (the follower's deadline bounds them, see
``ClientConfig._unbound_body_reads``). On the synchronous side a stream is read on a helper thread, and a
server that stalls the stream without closing it would keep that thread blocked in the socket, and the
connection open, for as long as the server likes. So the reader puts a :class:`StreamWatch` in the
context its thread runs in (:func:`watch_streams`); the client's ``_stream`` shows the watch each response
it opens (:func:`current_watch`); closing the watch shuts that response's socket down, the blocked read
returns at once, and the thread ends, closing the response. Through an HTTP proxy the socket is the one to
the proxy, which ends the same way. The asynchronous side cancels its reads instead and sets no watch.
"""

from __future__ import annotations

import socket
import threading
from contextvars import ContextVar

import httpx


class StreamWatch:
    """The response a thread is reading a stream from, which another thread may break off.

    Once closed, the watch breaks off every stream shown to it, and ``_stream`` opens no new one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._response: httpx.Response | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def opened(self, response: httpx.Response) -> None:
        """A stream's response is open and about to be read (broken off at once if the watch is closed)."""
        with self._lock:
            self._response = response
            if self._closed:
                _shut_down(response)

    def done(self, response: httpx.Response) -> None:
        """The stream is no longer read: its connection, which may serve another request next, is let be.
        Called before the response is closed."""
        with self._lock:
            if self._response is response:
                self._response = None

    def close(self) -> None:
        """Break off the stream being read, if any, and any opened later."""
        with self._lock:
            self._closed = True
            if self._response is not None:
                _shut_down(self._response)


_WATCH: ContextVar[StreamWatch | None] = ContextVar("prefect_openai_runs_stream_watch", default=None)


def watch_streams(watch: StreamWatch) -> None:
    """Show ``watch`` the streams opened from now on in the current context (set it in a copied context,
    the one the reading thread runs in)."""
    _WATCH.set(watch)


def current_watch() -> StreamWatch | None:
    """The watch of the current context, if any."""
    return _WATCH.get()


def _shut_down(response: httpx.Response) -> None:
    """Shut the socket under ``response`` down both ways, so that a read blocked on it returns; nothing if
    there is no socket (another transport) or it is closed already."""
    stream = response.extensions.get("network_stream")
    get_extra_info = getattr(stream, "get_extra_info", None)
    if get_extra_info is None:
        return
    try:
        sock = get_extra_info("socket")
        if isinstance(sock, socket.socket):
            # The plain socket's shutdown, also under TLS: ``SSLSocket.shutdown`` would drop its TLS state
            # while the reading thread is still inside it.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # closed already, or never connected
