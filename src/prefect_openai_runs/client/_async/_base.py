"""Driving sans-IO operations over HTTP: sending with retries, recovering ambiguous creates, streaming,
paging. Every API client of the library is built on :class:`AsyncClientBase` (and on its generated
synchronous twin)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

from prefect_openai_runs.client import _operations as ops
from prefect_openai_runs.client._async._backend import new_http_client, pace
from prefect_openai_runs.client._config import DOWNLOAD_CHUNK_BYTES, ClientConfig, StreamCodec, open_uploads
from prefect_openai_runs.client._http import Call, Reply, parse_retry_after, reply_from_response
from prefect_openai_runs.client._stream_watch import current_watch
from prefect_openai_runs.client._throttle import TurnTimeout, is_unpaced
from prefect_openai_runs.exceptions import OpenAIRunsError
from prefect_openai_runs.retry import is_ambiguous

T = TypeVar("T")
E = TypeVar("E")


class AsyncClientBase(ClientConfig):
    """An asynchronous client over one pooled ``httpx.AsyncClient``.

    Args:
        http_client: An ``httpx.AsyncClient`` to use instead of the client's own.
        **options: See :class:`~prefect_openai_runs.client._config.ClientConfig`.
    """

    def __init__(self, *, http_client: httpx.AsyncClient | None = None, **options: Any) -> None:
        super().__init__(**options)
        self._http = http_client or new_http_client(self._http_options())

    async def __aenter__(self: T) -> T:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def _build(self, call: Call, uploads: dict[str, Any] | None = None) -> httpx.Request:
        """The request of ``call`` (with its multipart ``uploads``), without the beta header when not needed."""
        request = self._http.build_request(**self._request(call), **(uploads or {}))
        if not call.beta:
            for name in self._beta_headers:
                request.headers.pop(name, None)
        return request

    async def _send_once(self, call: Call) -> Reply:
        response = await self._exchange(call)
        self._check(response)
        if call.raw:
            return Reply(body=response.content, request_id=response.headers.get("x-request-id"))
        return reply_from_response(response)

    async def _exchange(self, call: Call, stream: bool = False) -> httpx.Response:
        """One attempt: wait for the request's turn (rate pacing, never past the job's deadline), send it (a
        multipart body's files opened anew for it), and let the budget learn from the answer's headers."""
        budget = self._budget if call.paced and not is_unpaced() else None
        try:
            await pace(budget, self.rate_limit if call.creates else None)
        except TurnTimeout as exc:
            raise self._turn_timeout(call, exc) from None
        with open_uploads(call) as uploads:
            sent_at = self._budget.clock() if self._budget is not None else None
            try:
                response = await self._http.send(self._build(call, uploads), stream=stream)
            except httpx.HTTPError as exc:
                if budget is not None:
                    budget.release()  # the turn it booked gets no answer
                raise self._transport_error(exc, call) from None
        if self._budget is not None:
            wait = parse_retry_after(response.headers) if response.status_code == 429 else None
            if wait is not None and wait > self.retry_policy.max_retry_after:
                # Not retried (RetryAfterTooLongError): the process' other requests, the cancels first, go on.
                if budget is not None:
                    budget.release()
            else:
                self._budget.observe(response.status_code, response.headers, sent_at=sent_at)
        return response

    async def _send(self, call: Call) -> Reply:
        """Send with the retry policy. After an ambiguous failure (the request may have been applied) a
        request with a ``recover`` step runs it before sending again, and one marked not to be retried
        when ambiguous is not sent again; once ambiguous, a request stays so whatever fails next."""
        ambiguous = False
        async for attempt in self.retry_policy.async_retrying(retry_ambiguous=call.retry_ambiguous):
            with attempt:
                if ambiguous and call.recover is not None:
                    found: Reply | None = await self._drive(call.recover())
                    if found is not None:
                        return found
                try:
                    return await self._send_once(call)
                except OpenAIRunsError as exc:
                    ambiguous = ambiguous or is_ambiguous(exc)
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _drive(self, operation: ops.Operation[T]) -> T:
        try:
            call = next(operation)
            while True:
                try:
                    reply = await self._send(call)
                except OpenAIRunsError as exc:
                    call = operation.throw(exc)
                else:
                    call = operation.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _stream(self, call: Call, codec: StreamCodec[E]) -> AsyncIterator[E]:
        """Send a streaming request and yield its events until the stream ends.

        The request is retried only while it cannot have reached the server (429, refused connection):
        a stream that creates a job is never sent twice. The response is shown to the current context's
        :class:`~prefect_openai_runs.client._stream_watch.StreamWatch`, if any, so that another thread can
        break off a read that blocks; once that watch is closed, the stream ends quietly and no new one is
        opened.
        """
        watch = current_watch()
        if watch is not None and watch.closed:
            return
        decoder = codec.decoder()
        async for attempt in self.retry_policy.async_retrying(retry_ambiguous=False):
            with attempt:
                response = await self._exchange(call, stream=True)
                if response.is_error:
                    body = (await response.aread()).decode("utf-8", "replace")
                    await response.aclose()
                    self._check(response, body)
        self._unbound_body_reads(response)
        if watch is not None:
            watch.opened(response)
        try:
            async for line in response.aiter_lines():
                event = decoder.feed(line)
                if event is not None:
                    yield codec.see(event)
                    if codec.is_end(event):
                        return
            event = decoder.flush()
            if event is not None:
                yield codec.see(event)
        except httpx.HTTPError as exc:
            if watch is not None and watch.closed:
                return  # broken off on purpose: the stream just ends
            raise codec.broken(exc) from None
        finally:
            if watch is not None:
                watch.done(response)
            await response.aclose()

    async def _pages(self, path: str, params: dict[str, Any], model: type[Any]) -> AsyncIterator[Any]:
        query: dict[str, Any] | None = params
        while query is not None:
            page = await self._drive(ops.list_page(path, query, model))
            for item in page.data:
                yield item
            query = ops.next_page_params(query, page)

    async def _download(self, call: Call, target: Path) -> int:
        """Stream a raw response's body into ``target`` in chunks (memory stays flat), retried whole on
        failure; the file appears only once complete. Returns its size in bytes."""
        partial = target.with_name(f".{target.name}.part")
        async for attempt in self.retry_policy.async_retrying():
            with attempt:
                response = await self._exchange(call, stream=True)
                try:
                    if response.is_error:
                        self._check(response, (await response.aread()).decode("utf-8", "replace"))
                    size = 0
                    with partial.open("wb") as handle:
                        async for chunk in response.aiter_bytes(DOWNLOAD_CHUNK_BYTES):
                            handle.write(chunk)
                            size += len(chunk)
                except httpx.HTTPError as exc:
                    raise self._transport_error(exc, call) from None
                finally:
                    await response.aclose()
        os.replace(partial, target)
        return size
