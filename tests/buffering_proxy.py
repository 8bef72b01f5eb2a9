"""A reverse proxy that buffers event streams, like nginx with ``proxy_buffering on``: a separate process.

It forwards every HTTP/1.1 request to the upstream and answers with the whole upstream response at
once; a ``text/event-stream`` response is thus held back until the upstream ends it. With
``--headers-first`` the response's headers go out at once and only its body is held back (a stream that
stalls after its headers). Run it as ``python buffering_proxy.py UPSTREAM_ORIGIN [--headers-first]``: it
prints the port it listens on (loopback), then serves until killed.
"""

from __future__ import annotations

import asyncio
import sys

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, list[tuple[str, str]], bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers: list[tuple[str, str]] = []
    while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = raw.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    length = next((int(v) for n, v in headers if n.lower() == "content-length"), 0)
    body = await reader.readexactly(length) if length else b""
    return method, target, headers, body


def _head(response: httpx.Response, framing: str) -> bytes:
    head = [f"HTTP/1.1 {response.status_code} {response.reason_phrase}"]
    head += [f"{n}: {v}" for n, v in response.headers.multi_items() if n.lower() not in HOP_BY_HOP]
    head += [framing, "connection: keep-alive"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")


async def _serve(
    upstream: httpx.AsyncClient, headers_first: bool, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while (request := await _read_request(reader)) is not None:
            method, target, headers, body = request
            forwarded = [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP]
            async with upstream.stream(method, target, headers=forwarded, content=body) as response:
                if headers_first:
                    writer.write(_head(response, "transfer-encoding: chunked"))
                    await writer.drain()
                content = await response.aread()  # the whole body: an event stream only once it ended
            if headers_first:
                chunk = f"{len(content):x}\r\n".encode() + content + b"\r\n" if content else b""
                writer.write(chunk + b"0\r\n\r\n")
            else:
                writer.write(_head(response, f"content-length: {len(content)}") + content)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, httpx.HTTPError):
        pass
    finally:
        writer.close()


async def main(base: str, headers_first: bool) -> None:
    """Serve on a free loopback port, forwarding to ``base``."""
    async with httpx.AsyncClient(base_url=base, timeout=None) as upstream:
        server = await asyncio.start_server(lambda r, w: _serve(upstream, headers_first, r, w), "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        async with server:
            await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], "--headers-first" in sys.argv[2:]))
