"""The ASGI layer in front of the routes: request ids and headers, faults, auth, and the request log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

from . import _errors as errors
from ._core import EmulatorCore
from ._faults import STREAM_FAULT_KINDS, FaultRule
from ._ratelimit import Header, estimate_tokens
from ._records import RequestRecord

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTROL_PREFIX = "/_emulator"
API_PREFIX = "/v1"
#: Paths outside the Assistants beta: no ``OpenAI-Beta`` header needed.
UNBETA_PREFIXES = ("/v1/responses", "/v1/files", "/v1/batches")
REDACTED = "REDACTED"
_SECRET_HEADERS = frozenset({"authorization", "api-key"})
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_VERSION_HEADER = (b"openai-version", b"2020-10-01")


HangEnd = Literal["disconnected", "closing", "elapsed"]
_HANG_ENDS: tuple[HangEnd, ...] = ("disconnected", "closing", "elapsed")
"""What can end a hang, the first the likeliest cause when several happened together."""


class _Dropped(Exception):
    """Raised into the app when a ``drop_after`` fault swallows its response."""


class _Exchange:
    """One request/response pair as the gate sees it, ending in a :class:`RequestRecord`."""

    def __init__(self, scope: Scope, body: bytes) -> None:
        self.started = time.perf_counter()
        self.at = time.time()
        self.request_id = f"req_{secrets.token_hex(16)}"
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query = scope.get("query_string", b"").decode("latin-1")
        self.headers: dict[str, str] = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self.body = body
        self.status = 0
        self.fault: str | None = None
        self.recorded = False
        self.rate_headers: list[Header] = []

    def wants_stream(self) -> bool:
        """Whether the request asks for an event stream: a JSON body with ``"stream": true``, or a
        ``stream=true`` query (resuming a response's stream)."""
        if "stream=true" in self.query.lower():
            return True
        if b'"stream"' not in self.body:
            return False
        try:
            parsed = json.loads(self.body)
        except ValueError:
            return False
        return isinstance(parsed, dict) and parsed.get("stream") is True

    def api_key(self) -> str | None:
        auth = self.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return self.headers.get("api-key") or None

    def response_headers(self) -> list[Header]:
        """``x-request-id``, ``openai-processing-ms``, the ``x-ratelimit-*`` headers and the API version."""
        elapsed = int((time.perf_counter() - self.started) * 1000)
        return [
            (b"x-request-id", self.request_id.encode()),
            (b"openai-processing-ms", str(elapsed).encode()),
            *self.rate_headers,
            _VERSION_HEADER,
        ]

    def record(self) -> RequestRecord:
        try:
            parsed = json.loads(self.body) if self.body else None
        except ValueError:
            parsed = None
        return RequestRecord(
            method=self.method,
            path=self.path,
            query=self.query,
            status=self.status,
            at=self.at,
            duration=time.perf_counter() - self.started,
            headers={k: (REDACTED if k in _SECRET_HEADERS else v) for k, v in self.headers.items()},
            body=parsed,
            fault=self.fault,
            request_id=self.request_id,
        )


class ApiGate:
    """ASGI middleware: everything a request meets before the API routes.

    Order: control-surface bypass (loopback only) → fault rule → API key → beta header → rate limits
    (:mod:`._ratelimit`) → routes. Every ``/v1`` response gets ``x-request-id``, ``openai-processing-ms``
    and the ``x-ratelimit-*`` headers, and every ``/v1`` request is recorded once its response ends.
    """

    def __init__(self, app: ASGIApp, core: EmulatorCore) -> None:
        self.app = app
        self.core = core

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(CONTROL_PREFIX):
            client = scope.get("client")
            if client and client[0] not in _LOOPBACK:
                await _send_json(send, 403, errors.error_body("The control surface is loopback only."), [])
                return
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(scope, await _read_body(receive))
        exchange.rate_headers = self.core.limiter.peek(exchange.api_key())
        try:
            await self._handle(exchange, scope, receive, send)
        finally:
            self._finish(exchange)

    def _recording(self, ex: _Exchange, send: Send) -> Send:
        """``send``, recording the exchange just before the response's last byte goes out, so a client
        that has its answer always finds the request in the log."""

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self._finish(ex)
            await send(message)

        return send_and_record

    async def _handle(self, ex: _Exchange, scope: Scope, receive: Receive, raw_send: Send) -> None:
        send = self._recording(ex, raw_send)
        rule = self.core.faults.take(ex.method, ex.path, streaming=ex.wants_stream())
        if rule is not None:
            ex.fault = rule.kind
            self.core.log.count("faults")
            if rule.kind == "status":
                await self._answer_fault(ex, rule, send)
                return
            if rule.kind == "drop_before":
                self._finish(ex)
                await _drop(raw_send)
                return
            if rule.kind == "hang" and await self._hang(rule.hang_seconds, receive) != "elapsed":
                ex.status = 499
                return
        denial = self._deny(ex) or self._limit(ex)
        if denial is not None:
            await self._answer(ex, send, denial.status, denial.body())
            return

        events_sent = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal events_sent
            if message["type"] == "http.response.start":
                if rule is not None and rule.kind == "drop_after":
                    self._finish(ex)
                    await _drop(raw_send)
                    raise _Dropped
                ex.status = message["status"]
                message["headers"] = [*message.get("headers", []), *ex.response_headers()]
            elif rule is not None and rule.kind in STREAM_FAULT_KINDS and message.get("body"):
                if events_sent >= rule.after_events and rule.kind == "cut_stream":
                    await self._cut(ex, rule, raw_send)
                elif events_sent >= rule.after_events and rule.kind == "end_stream":
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    raise _Dropped  # the app's stream goes no further on this request
                elif events_sent >= rule.after_events:
                    await self._stall(ex, rule, receive, raw_send)
                events_sent += 1
            await send(message)

        with contextlib.suppress(_Dropped):
            await self.app(scope, _replay(ex.body, receive), send_with_headers)

    def _deny(self, ex: _Exchange) -> errors.ApiError | None:
        if not ex.path.startswith(API_PREFIX):
            return None
        key = ex.api_key()
        if key != self.core.config.api_key:
            return errors.invalid_api_key(key)
        if (
            self.core.config.require_beta_header
            and not ex.path.startswith(UNBETA_PREFIXES)
            and "assistants=v2" not in ex.headers.get("openai-beta", "")
        ):
            return errors.invalid_beta()
        return None

    def _limit(self, ex: _Exchange) -> errors.ApiError | None:
        """Take the request from its key's rate buckets; the 429 to answer if they are short."""
        if not ex.path.startswith(API_PREFIX):
            return None
        verdict = self.core.limiter.admit(ex.api_key() or "", estimate_tokens(ex.method, ex.body))
        ex.rate_headers = verdict.headers
        if verdict.error is not None:
            self.core.log.count("rate_limited")
            self.core.log.count(f"rate_limited_{verdict.kind}")
        return verdict.error

    async def _answer_fault(self, ex: _Exchange, rule: FaultRule, send: Send) -> None:
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in rule.response_headers().items()]
        if rule.status == 429:
            ex.rate_headers = [
                (name, b"0") if name == b"x-ratelimit-remaining-requests" else (name, value)
                for name, value in ex.rate_headers
            ]
        ex.status = rule.status
        if rule.raw_body is not None:
            headers = ex.response_headers() + extra
            self._finish(ex)  # an empty body can complete the response before its last message is sent
            await _send_raw(send, rule.status, rule.raw_body.encode(), headers)
            return
        await _send_json(send, rule.status, rule.response_body(), ex.response_headers() + extra)

    async def _cut(self, ex: _Exchange, rule: FaultRule, raw_send: Send) -> None:
        """End a stream abruptly: write the rule's garbage, if any, then close the connection."""
        self._finish(ex)
        if rule.raw_body:
            await raw_send({"type": "http.response.body", "body": rule.raw_body.encode(), "more_body": True})
        await _drop(raw_send)
        raise _Dropped

    async def _stall(self, ex: _Exchange, rule: FaultRule, receive: Receive, raw_send: Send) -> None:
        """Send nothing more until the client leaves (recorded as 499), the rule's ``hang_seconds`` pass or
        the emulator closes; then close the connection."""
        status, ex.status = ex.status, 499  # what is recorded if the stream's own watch sees the client leave
        if await self._hang(rule.hang_seconds, receive) != "disconnected":
            ex.status = status
        self._finish(ex)
        await _drop(raw_send)
        raise _Dropped

    async def _answer(self, ex: _Exchange, send: Send, status: int, body: Any) -> None:
        ex.status = status
        await _send_json(send, status, body, ex.response_headers())

    async def _hang(self, seconds: float, receive: Receive) -> HangEnd:
        """Wait ``seconds``, or less if the client disconnects or the emulator closes first: what ended it."""
        waits: dict[asyncio.Future[Any], HangEnd] = {
            asyncio.ensure_future(asyncio.sleep(seconds)): "elapsed",
            asyncio.ensure_future(_disconnected(receive)): "disconnected",
            asyncio.ensure_future(self.core.closing.wait()): "closing",
        }
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        return min((waits[task] for task in done), key=_HANG_ENDS.index)

    def _finish(self, ex: _Exchange) -> None:
        if ex.recorded:
            return
        ex.recorded = True
        record = ex.record()
        self.core.log.add(record)
        if self.core.config.log_requests:
            fault = f" fault={record.fault}" if record.fault else ""
            print(
                f"{record.method} {record.path} {record.status} {record.duration * 1000:.1f}ms "
                f"{record.request_id}{fault}",
                file=sys.stderr,
                flush=True,
            )


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that yields the buffered body once, then defers to the server (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _drop(send: Send) -> None:
    """Close the client's TCP connection without a response.

    uvicorn's ``send`` is a bound method of its request/response cycle, which holds the transport.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError("drop faults need uvicorn's h11 or httptools protocol")
    transport.close()
    await asyncio.sleep(0)  # let connection_lost run so the server does not try to answer


async def _send_raw(send: Send, status: int, payload: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """Answer ``payload`` verbatim; the content type is the one in ``headers``, else ``text/plain``."""
    if not any(name == b"content-type" for name, _ in headers):
        headers = [(b"content-type", b"text/plain; charset=utf-8"), *headers]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(payload)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _send_json(send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
