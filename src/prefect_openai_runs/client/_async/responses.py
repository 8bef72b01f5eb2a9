"""The Responses API's asynchronous client for background responses, :class:`AsyncResponsesClient` (its
synchronous twin, ``ResponsesClient``, is generated from this file by ``scripts/unasync.py``).

Example:
    ```python
    from prefect_openai_runs import OpenAICredentials

    async with OpenAICredentials.load("openai").get_async_responses_client() as client:
        response = await client.create_response(model="gpt-5", input="Summarise the report.")
        print((await client.get_response(response.id)).status)
    ```
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from prefect_openai_runs.client import _operations as ops
from prefect_openai_runs.client import _responses_operations as rops
from prefect_openai_runs.client._async._base import AsyncClientBase
from prefect_openai_runs.client._http import Call
from prefect_openai_runs.client._responses_stream import ResponseStreamCodec
from prefect_openai_runs.exceptions import (
    InvalidResponseError,
    OpenAIRunsError,
    ResponseMayExistError,
    StreamError,
)
from prefect_openai_runs.models import CreateResponseParams, Response, ResponseDeleted, ResponseStreamEvent
from prefect_openai_runs.retry import is_ambiguous


def response_params(params: CreateResponseParams | None, options: Mapping[str, Any]) -> CreateResponseParams:
    """The create-response parameters from a params object or keyword options (not both), checked
    before anything is sent, with room for the idempotency key in ``metadata``."""
    if params is not None and options:
        raise TypeError(f"pass either params or keyword options, not both (got {sorted(options)})")
    checked = params if params is not None else CreateResponseParams(**options)
    if checked.store is False:
        raise ValueError("background=True needs the response stored: leave store unset or set it to True")
    ops.with_idempotency_key(checked, "-", what="a background response")  # fails now if metadata is full
    return checked


def may_have_created(exc: BaseException) -> bool:
    """Whether a failed create may have been applied: a timeout, a connection dropped after sending, a
    5xx, an answer that is not JSON, a stream that broke (or sent garbage) before its first event."""
    return is_ambiguous(exc) or isinstance(exc, (InvalidResponseError, StreamError))


class AsyncResponsesClient(AsyncClientBase):
    """Asynchronous client of background responses over one pooled ``httpx.AsyncClient``.

    Every create is made with ``background: true`` and tagged with an idempotency key in ``metadata``.
    The API cannot find a response by that key, so a create is **never sent again** after a failure the
    server may have applied: :class:`~prefect_openai_runs.exceptions.ResponseMayExistError` is raised
    instead, carrying the key. Reads, cancels and deletes are retried by the client's
    :class:`~prefect_openai_runs.retry.RetryPolicy`.

    Args:
        api_key: The API key (kept out of every message and repr).
        api_key_header: ``Authorization`` (as ``Bearer <key>``) or, for Azure-style servers, ``api-key``.
        base_url: The API's base URL, ending in ``/v1`` (Azure: ``https://<resource>.openai.azure.com/openai/v1``).
        organization: Sent as ``OpenAI-Organization`` when set.
        project: Sent as ``OpenAI-Project`` when set.
        default_headers: Extra headers on every request.
        default_query: Extra query parameters on every request.
        timeout: Request timeout in seconds.
        retry_policy: How failed requests are retried.
        http_client: An ``httpx`` client to use instead of the client's own.
    """

    async def create_response(
        self, params: CreateResponseParams | None = None, *, idempotency_key: str | None = None, **options: Any
    ) -> Response:
        """Create a background response (usually ``queued``); never sent twice (see the class docstring).

        Raises:
            ResponseMayExistError: The create may have been applied but its answer was lost.
        """
        checked = response_params(params, options)
        key = idempotency_key or ops.new_idempotency_key()
        try:
            return await self._drive(rops.create_response(checked, key))
        except OpenAIRunsError as exc:
            if not may_have_created(exc):
                raise
            raise ResponseMayExistError(str(exc), idempotency_key=key) from None

    def stream_response(
        self, params: CreateResponseParams | None = None, *, idempotency_key: str | None = None, **options: Any
    ) -> AsyncIterator[ResponseStreamEvent]:
        """Create a background response with ``stream: true`` and iterate over its events.

        The first event (``response.created``) names the response. The stream ends after the terminal
        event, or when the server closes it; once the response is known, a broken stream raises
        :class:`~prefect_openai_runs.exceptions.StreamError` and can be resumed with
        :meth:`resume_stream`. Before the first event, a failure the server may have applied raises
        :class:`~prefect_openai_runs.exceptions.ResponseMayExistError` (the create is never sent again).
        """
        checked = response_params(params, options)
        key = idempotency_key or ops.new_idempotency_key()
        return self._create_stream(rops.stream_response_call(checked, key), key)

    async def _create_stream(self, call: Call, key: str) -> AsyncIterator[ResponseStreamEvent]:
        stream = self._stream(call, ResponseStreamCodec(self._secrets))
        seen = False
        try:
            async for event in stream:
                seen = True
                yield event
        except OpenAIRunsError as exc:
            if seen or not may_have_created(exc):
                raise
            raise ResponseMayExistError(str(exc), idempotency_key=key) from None
        finally:
            await close_stream(stream)

    def resume_stream(self, response_id: str, starting_after: int | None = None) -> AsyncIterator[ResponseStreamEvent]:
        """The events of a background response after event ``starting_after`` (all when ``None``), then
        the live ones: ``GET /responses/{id}?stream=true&starting_after=N``.

        Raises (when iterated):
            StreamResumeRefusedError: The response was not created in background mode, or is more than
                about 5 minutes old: poll it instead.
        """
        return self._stream(rops.resume_stream_call(response_id, starting_after), ResponseStreamCodec(self._secrets))

    async def get_response(self, response_id: str) -> Response:
        """Retrieve a response."""
        return await self._drive(rops.get_response(response_id))

    async def poll_response(self, response_id: str) -> tuple[Response, int | None]:
        """Retrieve a response with the server's polling hint in milliseconds (``None`` when not sent)."""
        return await self._drive(rops.poll_response(response_id))

    async def cancel_response(self, response_id: str) -> Response:
        """Ask the server to cancel a background response; idempotent on a cancelled one.

        Cancel is best effort: a response answered ``cancelled`` has been seen to complete later.

        Raises:
            ResponseNotCancellableError: It is completed, failed or incomplete (or not a background response).
        """
        return await self._drive(rops.cancel_response(response_id))

    async def delete_response(self, response_id: str) -> ResponseDeleted:
        """Delete a stored response."""
        return await self._drive(rops.delete_response(response_id))


async def close_stream(stream: AsyncIterator[Any]) -> None:
    """Close an event stream (and its connection) that may not have been read to its end."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
