"""Both clients honour the environment's proxy settings alike: with ``HTTP_PROXY`` set, the sync and the async
client send through a real forward proxy on loopback; with ``NO_PROXY`` naming the host, both go direct."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from prefect.settings import PREFECT_API_URL

from prefect_openai_runs import AsyncRunsClient, RunsClient
from prefect_openai_runs.testing import RunsEmulator

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read up to the end of an HTTP head; returns the head and what came after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b"", b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _with_header(head: bytes, name: bytes, value: bytes) -> bytes:
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(name.lower() + b":")]
    return b"\r\n".join([*lines, name + b": " + value]) + b"\r\n\r\n"


class ForwardProxy(socketserver.ThreadingTCPServer):
    """A plain-HTTP forward proxy: one request per client connection, each request line recorded."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(socketserver.BaseRequestHandler):
    server: ForwardProxy

    def handle(self) -> None:
        client: socket.socket = self.request
        head, body = _read_head(client)
        if not head:
            return
        method, target, _version = head.split(b"\r\n", 1)[0].decode().split(" ")
        self.server.seen.append(f"{method} {target}")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        while len(body) < length:
            body += client.recv(65536)
        url = urlsplit(target)
        origin_head = head.replace(f"{method} {target}".encode(), f"{method} {url.path or '/'}".encode(), 1)
        if url.query:
            origin_head = origin_head.replace(f" {url.path} ".encode(), f" {url.path}?{url.query} ".encode(), 1)
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=10) as upstream:
            upstream.sendall(_with_header(origin_head, b"Connection", b"close") + body)
            answer_head, rest = _read_head(upstream)
            client.sendall(_with_header(answer_head, b"Connection", b"close") + rest)
            while chunk := upstream.recv(65536):
                client.sendall(chunk)


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardProxy]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    prefect_api = PREFECT_API_URL.value()
    if prefect_api:
        # Prefect's own background connections in this process (its events websocket, its log worker)
        # never go through this test's proxy: it is gone after the test, and they must still drain.
        api = httpx.URL(prefect_api)
        monkeypatch.setenv("NO_PROXY", f"{api.host}:{api.port}")
    server = ForwardProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def create_threads(emu: RunsEmulator) -> None:
    """One thread created with each client, each built after the environment was set."""
    import asyncio

    with RunsClient(api_key=emu.api_key, base_url=emu.base_url, timeout=5.0) as client:
        assert client.create_thread(metadata={"client": "sync"}).id.startswith("thread_")

    async def create_async() -> None:
        async with AsyncRunsClient(api_key=emu.api_key, base_url=emu.base_url, timeout=5.0) as client:
            assert (await client.create_thread(metadata={"client": "async"})).id.startswith("thread_")

    asyncio.run(create_async())


def test_both_clients_use_http_proxy(
    runs_emulator: RunsEmulator, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    create_threads(runs_emulator)
    assert proxy.seen == [f"POST {runs_emulator.base_url}/threads"] * 2
    assert runs_emulator.request_count("POST") == 2


def test_no_proxy_sends_both_clients_direct(
    runs_emulator: RunsEmulator, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    create_threads(runs_emulator)
    assert proxy.seen == []
    assert runs_emulator.request_count("POST") == 2


def test_all_proxy_applies_to_the_async_client(
    runs_emulator: RunsEmulator, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALL_PROXY", proxy.url)
    create_threads(runs_emulator)
    assert proxy.seen == [f"POST {runs_emulator.base_url}/threads"] * 2
