"""Typed clients of the runs API: :class:`RunsClient` (sync) and :class:`AsyncRunsClient` (async).

Both drive the same sans-IO operations (:mod:`prefect_openai_runs._operations`) over one pooled httpx
client each, with the same retry policy (:mod:`prefect_openai_runs.retry`). Only the driving differs.

Example:
    ```python
    from prefect_openai_runs import OpenAICredentials

    with OpenAICredentials.load("openai").get_client() as client:
        thread = client.create_thread(messages=[{"role": "user", "content": "Hello"}])
        run = client.create_run(thread.id, assistant_id="asst_abc123")
        print(client.get_run(thread.id, run.id).status)
    ```
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Literal, TypeVar

import httpx
from pydantic import SecretStr

from prefect_openai_runs import _operations as ops
from prefect_openai_runs._http import (
    Call,
    Reply,
    build_headers,
    error_from_response,
    reply_from_response,
    transport_error,
)
from prefect_openai_runs._pool import ShardedAsyncTransport
from prefect_openai_runs._secrets import secret_values
from prefect_openai_runs._sse import SSEDecoder
from prefect_openai_runs.exceptions import APIConnectionError, OpenAIRunsError, StreamError
from prefect_openai_runs.models import (
    CreateMessageParams,
    CreateRunParams,
    CreateThreadAndRunParams,
    CreateThreadParams,
    Message,
    ModifyRunParams,
    Run,
    RunStep,
    StreamEvent,
    SubmitToolOutputsParams,
    Thread,
    ToolOutput,
)
from prefect_openai_runs.retry import RetryPolicy, is_ambiguous

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 60.0

T = TypeVar("T")
Order = Literal["asc", "desc"]


def run_params(params: CreateRunParams | None, options: Mapping[str, Any]) -> CreateRunParams:
    """The create-run parameters from a params object or keyword options (not both)."""
    if params is not None and options:
        raise TypeError(f"pass either params or keyword options, not both (got {sorted(options)})")
    return params if params is not None else CreateRunParams(**options)


def split_thread_and_run(
    params: CreateThreadAndRunParams | None, options: Mapping[str, Any]
) -> tuple[CreateThreadParams, CreateRunParams]:
    """Split *create thread and run* into *create thread* then *create run*, which can be retried safely."""
    if params is not None and options:
        raise TypeError(f"pass either params or keyword options, not both (got {sorted(options)})")
    full = params if params is not None else CreateThreadAndRunParams(**options)
    thread = full.thread or CreateThreadParams()
    if full.tool_resources is not None:
        thread = thread.model_copy(update={"tool_resources": full.tool_resources})
    run_fields = full.model_dump(exclude={"thread", "tool_resources", "stream"}, exclude_none=True)
    return thread, CreateRunParams.model_validate(run_fields)


def tool_outputs_params(
    outputs: SubmitToolOutputsParams | list[ToolOutput] | Mapping[str, str],
) -> SubmitToolOutputsParams:
    """Tool outputs from a params object, a list of :class:`ToolOutput`, or ``{tool_call_id: output}``."""
    if isinstance(outputs, SubmitToolOutputsParams):
        return outputs
    if isinstance(outputs, Mapping):
        return SubmitToolOutputsParams(tool_outputs=[ToolOutput(tool_call_id=k, output=v) for k, v in outputs.items()])
    return SubmitToolOutputsParams(tool_outputs=list(outputs))


def thread_params(params: CreateThreadParams | None, options: Mapping[str, Any]) -> CreateThreadParams:
    """The create-thread parameters from a params object or keyword options."""
    if params is not None and options:
        raise TypeError(f"pass either params or keyword options, not both (got {sorted(options)})")
    return params if params is not None else CreateThreadParams(**options)


class _ClientBase:
    """What both clients share: configuration, headers, request building and response checking."""

    def __init__(
        self,
        *,
        api_key: SecretStr | str,
        api_key_header: str = "Authorization",
        base_url: str = DEFAULT_BASE_URL,
        organization: str | None = None,
        project: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        if not key:
            raise ValueError(
                "no OpenAI API key: set api_key on the OpenAICredentials block or the OPENAI_API_KEY "
                "environment variable"
            )
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL!r}, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.organization = organization
        self.project = project
        self.retry_policy = retry_policy or RetryPolicy()
        self._secrets = secret_values(key, *(default_headers or {}).values())
        self._default_query = dict(default_query or {})
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._headers = build_headers(
            api_key=key,
            api_key_header=api_key_header,
            organization=organization,
            project=project,
            extra=default_headers,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, organization={self.organization!r})"

    def _http_options(self) -> dict[str, Any]:
        return {
            "headers": self._headers,
            "timeout": self._timeout,
            # One connection per open event stream: keep as many alive as may be open at once, so that
            # following a thousand runs never churns through new TCP connections.
            "limits": httpx.Limits(max_connections=1000, max_keepalive_connections=1000),
        }

    def _request(self, call: Call) -> dict[str, Any]:
        params = {**self._default_query, **(call.params or {})}
        request: dict[str, Any] = {
            "method": call.method,
            "url": f"{self.base_url}{call.path}",
            "params": params or None,
            "json": call.json,
        }
        return request

    @staticmethod
    def _unbound_body_reads(response: httpx.Response) -> None:
        """Once a stream's headers are in, let its body wait as long as the run thinks.

        The headers keep the client's read timeout; the events are bounded by the follower's deadline
        instead (httpcore reads the body's timeout from this same dict when the body is first read).
        """
        timeouts = response.request.extensions.get("timeout")
        if isinstance(timeouts, dict):
            timeouts["read"] = None

    def _check(self, response: httpx.Response, body_text: str | None = None) -> None:
        try:
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            raise error_from_response(
                response,
                secrets=self._secrets,
                max_retry_after=self.retry_policy.max_retry_after,
                body_text=body_text,
            ) from exc

    def _transport_error(self, exc: httpx.HTTPError, call: Call) -> APIConnectionError:
        return transport_error(exc, call, self._secrets)


class _StreamTracker:
    """Remembers the thread and run a stream is about, so a broken stream never loses them."""

    def __init__(self) -> None:
        self.thread_id: str | None = None
        self.run_id: str | None = None

    def see(self, event: StreamEvent) -> StreamEvent:
        run = event.run
        if run is not None:
            self.thread_id, self.run_id = run.thread_id, run.id
        if event.event == "error":
            raise StreamError(
                f"the server sent an error event: {getattr(event.data, 'message', event.data)}",
                run_id=self.run_id,
                thread_id=self.thread_id,
            )
        return event

    def broken(self, cause: BaseException) -> StreamError:
        return StreamError(
            f"the event stream broke before it ended ({cause}); last run seen: {self.run_id or 'none'}",
            run_id=self.run_id,
            thread_id=self.thread_id,
        )


class RunsClient(_ClientBase):
    """Synchronous client of the runs API over one pooled ``httpx.Client``.

    Args:
        api_key: The API key (kept out of every message and repr).
        api_key_header: The header that carries the key: ``Authorization`` (as ``Bearer <key>``) or,
            for Azure-style servers, ``api-key`` (the key as is).
        base_url: The API's base URL, ending in ``/v1``.
        organization: Sent as ``OpenAI-Organization`` when set.
        project: Sent as ``OpenAI-Project`` when set.
        default_headers: Extra headers on every request (e.g. ``{"api-key": ...}`` for Azure-style servers).
        default_query: Extra query parameters on every request (e.g. ``{"api-version": ...}``).
        timeout: Request timeout in seconds.
        retry_policy: How failed requests are retried.
    """

    def __init__(self, *, http_client: httpx.Client | None = None, **options: Any) -> None:
        super().__init__(**options)
        self._http = http_client or httpx.Client(**self._http_options())

    def __enter__(self) -> RunsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- driving -------------------------------------------------------------------------------------

    def _send_once(self, call: Call) -> Reply:
        try:
            response = self._http.request(**self._request(call))
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, call) from exc
        self._check(response)
        return reply_from_response(response)

    def _send(self, call: Call) -> Reply:
        ambiguous = False
        for attempt in self.retry_policy.retrying():
            with attempt:
                if ambiguous and call.recover is not None:
                    found: Reply | None = self._drive(call.recover())
                    if found is not None:
                        return found
                try:
                    return self._send_once(call)
                except OpenAIRunsError as exc:
                    ambiguous = is_ambiguous(exc)
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _drive(self, operation: ops.Operation[T]) -> T:
        try:
            call = next(operation)
            while True:
                try:
                    reply = self._send(call)
                except OpenAIRunsError as exc:
                    call = operation.throw(exc)
                else:
                    call = operation.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _stream(self, call: Call) -> Iterator[StreamEvent]:
        tracker, decoder = _StreamTracker(), SSEDecoder()
        for attempt in self.retry_policy.retrying(retry_ambiguous=False):
            with attempt:
                try:
                    response = self._http.send(self._http.build_request(**self._request(call)), stream=True)
                except httpx.HTTPError as exc:
                    raise self._transport_error(exc, call) from exc
                if response.is_error:
                    body = response.read().decode("utf-8", "replace")
                    response.close()
                    self._check(response, body)
        self._unbound_body_reads(response)
        try:
            for line in response.iter_lines():
                event = decoder.feed(line)
                if event is not None:
                    yield tracker.see(event)
                    if event.is_done:
                        return
            event = decoder.flush()
            if event is not None:
                yield tracker.see(event)
        except httpx.HTTPError as exc:
            raise tracker.broken(exc) from exc
        finally:
            response.close()

    def _pages(self, path: str, params: dict[str, Any], model: type[Any]) -> Iterator[Any]:
        query: dict[str, Any] | None = params
        while query is not None:
            page = self._drive(ops.list_page(path, query, model))
            yield from page.data
            query = ops.next_page_params(query, page)

    # -- threads and messages ------------------------------------------------------------------------

    def create_thread(self, params: CreateThreadParams | None = None, **options: Any) -> Thread:
        """Create a thread, optionally with ``messages`` and ``metadata``."""
        return self._drive(ops.create_thread(thread_params(params, options)))

    def add_message(self, thread_id: str, content: str, *, role: Literal["user", "assistant"] = "user") -> Message:
        """Add a message to a thread."""
        return self._drive(ops.add_message(thread_id, CreateMessageParams(role=role, content=content)))

    def list_messages(
        self, thread_id: str, *, run_id: str | None = None, order: Order = "desc", limit: int = 20
    ) -> Iterator[Message]:
        """Iterate over a thread's messages (all pages), optionally only those a run created."""
        params = ops.list_params(limit, order, run_id=run_id)
        return self._pages(ops.messages_path(thread_id), params, Message)

    # -- runs ----------------------------------------------------------------------------------------

    def create_run(
        self,
        thread_id: str,
        params: CreateRunParams | None = None,
        *,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> Run:
        """Create a run on a thread; safe to retry (see :data:`IDEMPOTENCY_METADATA_KEY`)."""
        key = idempotency_key or ops.new_idempotency_key()
        return self._drive(ops.create_run(thread_id, run_params(params, options), key))

    def create_thread_and_run(self, params: CreateThreadAndRunParams | None = None, **options: Any) -> Run:
        """Create a thread and a run on it, as two requests so that a retry never leaves two runs."""
        thread_part, run_part = split_thread_and_run(params, options)
        key = ops.new_idempotency_key()
        ops.with_idempotency_key(run_part, key)  # metadata without room for the key fails before the thread exists
        thread = self.create_thread(thread_part)
        return self.create_run(thread.id, run_part, idempotency_key=key)

    def get_run(self, thread_id: str, run_id: str) -> Run:
        """Retrieve a run."""
        return self._drive(ops.get_run(thread_id, run_id))

    def poll_run(self, thread_id: str, run_id: str) -> tuple[Run, int | None]:
        """Retrieve a run with the server's polling hint in milliseconds (``None`` when not sent)."""
        return self._drive(ops.poll_run(thread_id, run_id))

    def list_runs(self, thread_id: str, *, order: Order = "desc", limit: int = 20) -> Iterator[Run]:
        """Iterate over a thread's runs, following pagination."""
        return self._pages(ops.runs_path(thread_id), ops.list_params(limit, order), Run)

    def modify_run(self, thread_id: str, run_id: str, *, metadata: dict[str, str]) -> Run:
        """Replace a run's metadata."""
        return self._drive(ops.modify_run(thread_id, run_id, ModifyRunParams(metadata=metadata)))

    def cancel_run(self, thread_id: str, run_id: str) -> Run:
        """Ask the server to cancel a run; returns it as ``cancelling`` (or raises ``RunNotCancellableError``)."""
        return self._drive(ops.cancel_run(thread_id, run_id))

    def submit_tool_outputs(
        self, thread_id: str, run_id: str, outputs: SubmitToolOutputsParams | list[ToolOutput] | Mapping[str, str]
    ) -> Run:
        """Answer every pending tool call of a run in one request."""
        return self._drive(ops.submit_tool_outputs(thread_id, run_id, tool_outputs_params(outputs)))

    def list_run_steps(
        self, thread_id: str, run_id: str, *, order: Order = "asc", limit: int = 20
    ) -> Iterator[RunStep]:
        """Iterate over a run's steps."""
        return self._pages(ops.steps_path(thread_id, run_id), ops.list_params(limit, order), RunStep)

    def find_run(self, thread_id: str, idempotency_key: str) -> Run | None:
        """The run created with ``idempotency_key`` on the thread, if any (recovery after a lost answer)."""
        reply = self._drive(ops.find_run_by_key(thread_id, idempotency_key))
        return None if reply is None else Run.model_validate(reply.body)

    # -- streaming -----------------------------------------------------------------------------------

    def stream_run(
        self,
        thread_id: str,
        params: CreateRunParams | None = None,
        *,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> Iterator[StreamEvent]:
        """Create a run with ``stream: true`` and iterate over its events until ``done``.

        The request is not retried once it may have reached the server: on such a failure, find the
        run with :meth:`find_run` and the same ``idempotency_key``.
        """
        key = idempotency_key or ops.new_idempotency_key()
        return self._stream(ops.stream_run_call(thread_id, run_params(params, options), key))

    def stream_thread_and_run(
        self, params: CreateThreadAndRunParams | None = None, **options: Any
    ) -> Iterator[StreamEvent]:
        """Create a thread, then stream a run on it."""
        thread_part, run_part = split_thread_and_run(params, options)
        key = ops.new_idempotency_key()
        ops.with_idempotency_key(run_part, key)  # metadata without room for the key fails before the thread exists
        thread = self.create_thread(thread_part)
        return self.stream_run(thread.id, run_part, idempotency_key=key)

    def stream_submit_tool_outputs(
        self, thread_id: str, run_id: str, outputs: SubmitToolOutputsParams | list[ToolOutput] | Mapping[str, str]
    ) -> Iterator[StreamEvent]:
        """Submit tool outputs with ``stream: true`` and iterate over the run's events."""
        return self._stream(ops.stream_tool_outputs_call(thread_id, run_id, tool_outputs_params(outputs)))


class AsyncRunsClient(_ClientBase):
    """Asynchronous client of the runs API over one pooled ``httpx.AsyncClient``; same methods as
    :class:`RunsClient`, awaited. One instance can follow thousands of runs concurrently."""

    def __init__(self, *, http_client: httpx.AsyncClient | None = None, **options: Any) -> None:
        super().__init__(**options)
        if http_client is None:
            options = self._http_options()
            transport = ShardedAsyncTransport(options.pop("limits"))
            http_client = httpx.AsyncClient(**options, transport=transport)
        self._http = http_client

    async def __aenter__(self) -> AsyncRunsClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # -- driving -------------------------------------------------------------------------------------

    async def _send_once(self, call: Call) -> Reply:
        try:
            response = await self._http.request(**self._request(call))
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, call) from exc
        self._check(response)
        return reply_from_response(response)

    async def _send(self, call: Call) -> Reply:
        ambiguous = False
        async for attempt in self.retry_policy.async_retrying():
            with attempt:
                if ambiguous and call.recover is not None:
                    found: Reply | None = await self._drive(call.recover())
                    if found is not None:
                        return found
                try:
                    return await self._send_once(call)
                except OpenAIRunsError as exc:
                    ambiguous = is_ambiguous(exc)
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

    async def _stream(self, call: Call) -> AsyncIterator[StreamEvent]:
        tracker, decoder = _StreamTracker(), SSEDecoder()
        async for attempt in self.retry_policy.async_retrying(retry_ambiguous=False):
            with attempt:
                try:
                    response = await self._http.send(self._http.build_request(**self._request(call)), stream=True)
                except httpx.HTTPError as exc:
                    raise self._transport_error(exc, call) from exc
                if response.is_error:
                    body = (await response.aread()).decode("utf-8", "replace")
                    await response.aclose()
                    self._check(response, body)
        self._unbound_body_reads(response)
        try:
            async for line in response.aiter_lines():
                event = decoder.feed(line)
                if event is not None:
                    yield tracker.see(event)
                    if event.is_done:
                        return
            event = decoder.flush()
            if event is not None:
                yield tracker.see(event)
        except httpx.HTTPError as exc:
            raise tracker.broken(exc) from exc
        finally:
            await response.aclose()

    async def _pages(self, path: str, params: dict[str, Any], model: type[Any]) -> AsyncIterator[Any]:
        query: dict[str, Any] | None = params
        while query is not None:
            page = await self._drive(ops.list_page(path, query, model))
            for item in page.data:
                yield item
            query = ops.next_page_params(query, page)

    # -- threads and messages ------------------------------------------------------------------------

    async def create_thread(self, params: CreateThreadParams | None = None, **options: Any) -> Thread:
        """Create a thread, optionally with ``messages`` and ``metadata``."""
        return await self._drive(ops.create_thread(thread_params(params, options)))

    async def add_message(
        self, thread_id: str, content: str, *, role: Literal["user", "assistant"] = "user"
    ) -> Message:
        """Add a message to a thread."""
        return await self._drive(ops.add_message(thread_id, CreateMessageParams(role=role, content=content)))

    def list_messages(
        self, thread_id: str, *, run_id: str | None = None, order: Order = "desc", limit: int = 20
    ) -> AsyncIterator[Message]:
        """Iterate over a thread's messages (all pages), optionally only those a run created."""
        params = ops.list_params(limit, order, run_id=run_id)
        return self._pages(ops.messages_path(thread_id), params, Message)

    # -- runs ----------------------------------------------------------------------------------------

    async def create_run(
        self,
        thread_id: str,
        params: CreateRunParams | None = None,
        *,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> Run:
        """Create a run on a thread; safe to retry (see :data:`IDEMPOTENCY_METADATA_KEY`)."""
        key = idempotency_key or ops.new_idempotency_key()
        return await self._drive(ops.create_run(thread_id, run_params(params, options), key))

    async def create_thread_and_run(self, params: CreateThreadAndRunParams | None = None, **options: Any) -> Run:
        """Create a thread and a run on it, as two requests so that a retry never leaves two runs."""
        thread_part, run_part = split_thread_and_run(params, options)
        key = ops.new_idempotency_key()
        ops.with_idempotency_key(run_part, key)  # metadata without room for the key fails before the thread exists
        thread = await self.create_thread(thread_part)
        return await self.create_run(thread.id, run_part, idempotency_key=key)

    async def get_run(self, thread_id: str, run_id: str) -> Run:
        """Retrieve a run."""
        return await self._drive(ops.get_run(thread_id, run_id))

    async def poll_run(self, thread_id: str, run_id: str) -> tuple[Run, int | None]:
        """Retrieve a run with the server's polling hint in milliseconds (``None`` when not sent)."""
        return await self._drive(ops.poll_run(thread_id, run_id))

    def list_runs(self, thread_id: str, *, order: Order = "desc", limit: int = 20) -> AsyncIterator[Run]:
        """Iterate over a thread's runs, following pagination."""
        return self._pages(ops.runs_path(thread_id), ops.list_params(limit, order), Run)

    async def modify_run(self, thread_id: str, run_id: str, *, metadata: dict[str, str]) -> Run:
        """Replace a run's metadata."""
        return await self._drive(ops.modify_run(thread_id, run_id, ModifyRunParams(metadata=metadata)))

    async def cancel_run(self, thread_id: str, run_id: str) -> Run:
        """Ask the server to cancel a run; returns it as ``cancelling`` (or raises ``RunNotCancellableError``)."""
        return await self._drive(ops.cancel_run(thread_id, run_id))

    async def submit_tool_outputs(
        self, thread_id: str, run_id: str, outputs: SubmitToolOutputsParams | list[ToolOutput] | Mapping[str, str]
    ) -> Run:
        """Answer every pending tool call of a run in one request."""
        return await self._drive(ops.submit_tool_outputs(thread_id, run_id, tool_outputs_params(outputs)))

    def list_run_steps(
        self, thread_id: str, run_id: str, *, order: Order = "asc", limit: int = 20
    ) -> AsyncIterator[RunStep]:
        """Iterate over a run's steps."""
        return self._pages(ops.steps_path(thread_id, run_id), ops.list_params(limit, order), RunStep)

    async def find_run(self, thread_id: str, idempotency_key: str) -> Run | None:
        """The run created with ``idempotency_key`` on the thread, if any (recovery after a lost answer)."""
        reply = await self._drive(ops.find_run_by_key(thread_id, idempotency_key))
        return None if reply is None else Run.model_validate(reply.body)

    # -- streaming -----------------------------------------------------------------------------------

    def stream_run(
        self,
        thread_id: str,
        params: CreateRunParams | None = None,
        *,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> AsyncIterator[StreamEvent]:
        """Create a run with ``stream: true`` and iterate over its events until ``done``.

        The request is not retried once it may have reached the server: on such a failure, find the
        run with :meth:`find_run` and the same ``idempotency_key``.
        """
        key = idempotency_key or ops.new_idempotency_key()
        return self._stream(ops.stream_run_call(thread_id, run_params(params, options), key))

    async def stream_thread_and_run(
        self, params: CreateThreadAndRunParams | None = None, **options: Any
    ) -> AsyncIterator[StreamEvent]:
        """Create a thread, then stream a run on it."""
        thread_part, run_part = split_thread_and_run(params, options)
        key = ops.new_idempotency_key()
        ops.with_idempotency_key(run_part, key)  # metadata without room for the key fails before the thread exists
        thread = await self.create_thread(thread_part)
        return self.stream_run(thread.id, run_part, idempotency_key=key)

    def stream_submit_tool_outputs(
        self, thread_id: str, run_id: str, outputs: SubmitToolOutputsParams | list[ToolOutput] | Mapping[str, str]
    ) -> AsyncIterator[StreamEvent]:
        """Submit tool outputs with ``stream: true`` and iterate over the run's events."""
        return self._stream(ops.stream_tool_outputs_call(thread_id, run_id, tool_outputs_params(outputs)))


IDEMPOTENCY_METADATA_KEY = ops.IDEMPOTENCY_METADATA_KEY
"""Re-exported: the metadata key tagging every created run with its idempotency key."""
