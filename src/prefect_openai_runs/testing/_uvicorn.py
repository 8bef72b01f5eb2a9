"""Serving an ASGI app with uvicorn: in a background thread with its own loop, or in the foreground."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import uvicorn

T = TypeVar("T")


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, waking on demand rather than every 100 ms, and calling ``on_exit`` first thing
    on shutdown (so open streams and hangs end and connections can close)."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None], started: threading.Event) -> None:
        super().__init__(config)
        self._on_exit = on_exit
        self._started = started
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        self._started.set()

    async def main_loop(self) -> None:
        assert self._wake is not None
        while not self.should_exit:
            await self._wake.wait()
            self._wake.clear()

    def request_exit(self) -> None:
        """Ask the server to stop (call on its loop)."""
        self.should_exit = True
        if self._wake is not None:
            self._wake.set()

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._wake is not None:
            # Called from a signal handler: wake the loop's selector through its self-pipe.
            self._loop.call_soon_threadsafe(self._wake.set)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._on_exit()
        await super().shutdown(sockets)


KEEP_ALIVE_SECONDS = 75
"""How long the emulator keeps an idle connection open (nginx's default keepalive_timeout)."""


def _config(app: Any, host: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        http="h11",
        ws="none",
        lifespan="off",
        access_log=False,
        log_level="warning",
        date_header=False,
        server_header=False,
        timeout_graceful_shutdown=2,
        # uvicorn's default (5 s) equals httpx's client-side keep-alive expiry: a client polling every 5 s
        # then races the server closing the idle connection and sees "Server disconnected without sending
        # a response". Production front ends keep idle connections far longer.
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


def bind(host: str, port: int | None) -> socket.socket:
    """A listening-ready TCP socket on ``host``:``port`` (a free port if None or 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # proto set: asyncio then sets TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port or 0))
    sock.set_inheritable(True)
    return sock


class BackgroundServer:
    """uvicorn serving ``app`` from a daemon thread with its own event loop.

    Args:
        app: The ASGI app.
        host: Interface to bind.
        port: Port, or None for a free one.
        on_exit: Called on the server loop when stopping begins.
    """

    def __init__(self, app: Any, host: str, port: int | None, on_exit: Callable[[], None]) -> None:
        self._socket = bind(host, port)
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        self._started = threading.Event()
        self._server = _Uvicorn(_config(app, host), on_exit, self._started)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; returns once the server accepts connections.

        Raises:
            RuntimeError: If the server did not start.
        """
        self._thread = threading.Thread(target=self._run, name=f"runs-emulator-{self.port}", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError(f"the emulator did not start within {timeout}s") from self._error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # reported by start()
            self._error = exc
        finally:
            self._started.set()
            loop.close()

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run ``fn`` on the server's loop and return its result (directly if not serving)."""
        loop = self._loop
        if loop is None or not self.running or loop.is_closed():
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and wait for the thread to end."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            self._socket.close()
            return
        if thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._server.request_exit)
            thread.join(timeout)
            if thread.is_alive():
                self._server.force_exit = True
                thread.join(timeout)
        self._thread = None
        self._socket.close()


def serve_foreground(
    app: Any, host: str, port: int, on_exit: Callable[[], None], on_ready: Callable[[int], None]
) -> None:
    """Serve ``app`` in this thread until interrupted (Ctrl+C / SIGTERM).

    Args:
        app: The ASGI app.
        host: Interface to bind.
        port: Port (0 for a free one).
        on_exit: Called on the loop when stopping begins.
        on_ready: Called with the bound port once the server accepts connections.
    """
    sock = bind(host, port)
    started = threading.Event()
    server = _Uvicorn(_config(app, host), on_exit, started)
    real_startup = server.startup

    async def startup(sockets: list[socket.socket] | None = None) -> None:
        await real_startup(sockets)
        on_ready(sock.getsockname()[1])

    server.startup = startup  # type: ignore[method-assign]
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        sock.close()
