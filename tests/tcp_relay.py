"""A TCP relay on loopback that can be taken down and brought back on the same port: a network blip, or a
server restart, between a client and a real server (the server itself keeps running)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class TcpRelay:
    """Forwards every connection on ``port`` to ``target``; :meth:`down` refuses and cuts, :meth:`up`
    serves again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._holes: list[bytes] = []
        self._delays: dict[bytes, float] = {}
        self.swallowed = 0
        """How many connections :meth:`black_hole` has swallowed so far."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])

    def up(self) -> None:
        """Listen (again) on the relay's port."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name="tcp-relay").start()

    def down(self) -> None:
        """Stop listening (new connections are refused) and cut every open connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            cut, self._open = self._open, set()
        for sock in cut:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def black_hole(self, marker: bytes) -> None:
        """Swallow the next connection whose client sends ``marker`` (a request line, say): from that chunk
        on, nothing it sends is forwarded and nothing comes back, while the connection stays open (a
        server stuck on one request). Later connections, and this one's earlier requests, pass."""
        with self._lock:
            self._holes.append(marker)

    def delay(self, marker: bytes, seconds: float) -> None:
        """From now on, forward every chunk holding ``marker`` only ``seconds`` later (a slow server)."""
        with self._lock:
            self._delays[marker] = seconds

    def _delay_of(self, chunk: bytes) -> float:
        with self._lock:
            return max((s for m, s in self._delays.items() if m in chunk), default=0.0)

    def _swallows(self, chunk: bytes) -> bool:
        with self._lock:
            for marker in self._holes:
                if marker in chunk:
                    self._holes.remove(marker)
                    self.swallowed += 1
                    return True
        return False

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # went down meanwhile
                    client.close()
                    upstream.close()
                    return
                self._open |= {client, upstream}
            for source, sink, inspect in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(source, sink, inspect), daemon=True, name="tcp-relay"
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, inspect: bool) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                if inspect and self._swallows(chunk):
                    while source.recv(65536):  # held open, answered never
                        pass
                    return
                if inspect:
                    time.sleep(self._delay_of(chunk))
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
