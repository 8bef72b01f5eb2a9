"""StreamWatch: another thread breaks off a read blocked in a stream's socket, and only while it is read.

End to end (a stalled stream over HTTP) this is proven by ``test_holes_stalled_stream.py``; here, the
guards: no socket, a closed socket, a stream no longer read, a stream opened after the close.
"""

from __future__ import annotations

import contextvars
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulator_helpers import wait_for
from prefect_openai_runs.client._stream_watch import StreamWatch, current_watch, watch_streams


class _Stream:
    """The part of httpcore's network stream the watch uses."""

    def __init__(self, sock: socket.socket | None) -> None:
        self.sock = sock

    def get_extra_info(self, info: str) -> Any:
        return self.sock if info == "socket" else None


def _response(sock: socket.socket | None) -> httpx.Response:
    return httpx.Response(200, extensions={"network_stream": _Stream(sock)})


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_close_releases_a_read_blocked_in_the_socket(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _ = pair
    watch = StreamWatch()
    watch.opened(_response(ours))
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(ours.recv(1)))
    reader.start()

    watch.close()

    reader.join(2)
    assert not reader.is_alive() and got == [b""] and watch.closed


def test_a_stream_opened_after_the_close_is_shut_down_at_once(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _ = pair
    watch = StreamWatch()
    watch.close()

    watch.opened(_response(ours))

    assert ours.recv(1) == b""


def test_a_stream_no_longer_read_is_let_be(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    response = _response(ours)
    watch = StreamWatch()
    watch.opened(response)
    watch.done(response)

    watch.close()

    theirs.sendall(b"x")
    assert ours.recv(1) == b"x"  # its connection may serve the next request


@pytest.mark.parametrize("response", [httpx.Response(200), _response(None)], ids=["no-stream", "no-socket"])
def test_a_response_without_a_socket_is_skipped(response: httpx.Response) -> None:
    watch = StreamWatch()
    watch.opened(response)
    watch.close()
    assert watch.closed


def test_an_already_closed_socket_is_skipped() -> None:
    ours, theirs = socket.socketpair()
    ours.close()
    theirs.close()
    watch = StreamWatch()
    watch.opened(_response(ours))

    watch.close()

    assert watch.closed


def test_the_watch_is_seen_only_in_the_context_that_set_it() -> None:
    watch = StreamWatch()
    context = contextvars.copy_context()
    seen: list[StreamWatch | None] = []

    def helper() -> None:
        watch_streams(watch)
        seen.append(current_watch())

    thread = threading.Thread(target=context.run, args=(helper,))
    thread.start()
    wait_for(lambda: not thread.is_alive())

    assert seen == [watch] and current_watch() is None
