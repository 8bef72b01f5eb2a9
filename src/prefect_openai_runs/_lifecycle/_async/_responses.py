"""Background responses as the core's adapter: starting one streamed (or not), following its stream
across drops (resumed after the last sequence number), reading, polling and cancelling it.

A response cannot be found again by a key (the API has no search), so :meth:`AsyncResponsesApi.recover`
finds nothing and a create is never sent twice: a failure the server may have applied raises
:class:`~prefect_openai_runs.exceptions.ResponseMayExistError`, carrying the key put in its metadata.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from prefect_openai_runs import _deadline
from prefect_openai_runs._lifecycle._async._backend import Reader
from prefect_openai_runs._lifecycle._kinds import JobRef
from prefect_openai_runs._lifecycle._response_kind import RESPONSE, ResponseKind
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs.client import AsyncResponsesClient
from prefect_openai_runs.client._async.responses import close_stream
from prefect_openai_runs.exceptions import (
    APIConnectionError,
    InternalServerError,
    InvalidResponseError,
    OpenAIRunsError,
    ResponseMayExistError,
    ResponseNotCancellableError,
    StreamError,
)
from prefect_openai_runs.models import CreateResponseParams, Response, ResponseStreamEvent

CREATE_GRACE_SECONDS = 10.0
"""The least time a create is given to answer (or its stream to name the response), even past the
deadline: a create cut short cannot be found again, so learning the response's id (and then cancelling
it at once) is worth a few seconds more than losing it."""
BROKEN_STREAM_ERRORS = (StreamError, APIConnectionError, InvalidResponseError, InternalServerError)
"""Failures of a response's stream after which it is resumed (when it had made progress)."""
MAX_EARLY_END_RESUMES = 3
"""How many times a stream the server ended cleanly before the response's terminal event (the response
still active) is resumed before following goes on by polling."""


@dataclass(frozen=True)
class ResponseSpec:
    """What starting a background response takes.

    Attributes:
        params: The create-response parameters (``background`` is set by the client).
        key: The idempotency key put in its metadata (the only trace of a create whose answer is lost).
    """

    params: CreateResponseParams
    key: str


@dataclass
class StreamCursor:
    """Where a response's stream is: the response, the last sequence number seen, whether the last state
    seen is still active, and how many early ends were resumed."""

    response_id: str | None = None
    last: int | None = None
    active: bool = True
    early_ends: int = 0


class AsyncResponsesApi:
    """Background responses for the lifecycle core, over an
    :class:`~prefect_openai_runs.client.AsyncResponsesClient`."""

    kind: ResponseKind = RESPONSE

    def __init__(self, client: AsyncResponsesClient) -> None:
        self.client = client
        self._cursors: dict[str, StreamCursor] = {}

    async def start(self, spec: ResponseSpec, stream: bool) -> tuple[Response, Reader[Response] | None]:
        """Create the response (``background: true``), streamed when asked.

        With ``stream``, the response is known from the stream's first event (``response.created``)
        and the rest of the stream is returned as response states, resumed after drops (see
        :meth:`states`). The create is given :data:`CREATE_GRACE_SECONDS` at least, even past the
        deadline (the caller then cancels the response at once).

        Raises:
            ResponseMayExistError: The create may have been applied but no event or answer came (it is
                never sent again).
        """
        with _deadline.deadline_scope(_create_deadline()):
            if not stream:
                return await self.client.create_response(spec.params, idempotency_key=spec.key), None
            cursor = StreamCursor()
            events = Reader(self.states(self.client.stream_response(spec.params, idempotency_key=spec.key), cursor))
            try:
                first = await events.next(_remaining())
            except BaseException:
                events.close_soon()  # failed or interrupted (a flow timeout, a cancellation): the stream is let go
                raise
        if first is None:
            await events.close()
            raise ResponseMayExistError(
                "no event came before the stream ended or the deadline passed", idempotency_key=spec.key
            )
        self._cursors[first.id] = cursor
        return first, events

    def follow_stream(self, ref: JobRef) -> Reader[Response]:
        """The states of an existing background response from its resumed stream (every event kept, then
        the live ones); it ends (and following polls) when resuming is refused or fails."""
        cursor = self._cursors[ref.id] = StreamCursor(response_id=ref.id)
        return Reader(self.states(self.client.resume_stream(ref.id), cursor))

    async def restream(self, ref: JobRef) -> Reader[Response] | None:
        """The response's stream again, after the last event seen (its stalled stream is let go by the
        caller); every event when none was seen here."""
        cursor = self._cursors.setdefault(ref.id, StreamCursor(response_id=ref.id))
        get_logger().info("Resuming the stalled stream of response %s after event %s", ref.id, cursor.last)
        return Reader(self.states(self.client.resume_stream(ref.id, cursor.last), cursor))

    async def states(self, events: AsyncIterator[ResponseStreamEvent], cursor: StreamCursor) -> AsyncIterator[Response]:
        """The response states a stream's lifecycle events carry, in order, across drops.

        When the stream breaks after making progress, it is resumed with
        ``GET /responses/{id}?stream=true&starting_after=<last sequence number>``. It ends, and
        following goes on by polling, after the terminal event, when a resumed stream brings nothing new,
        or when resuming is refused (not background, or older than about 5 minutes) or fails. A stream
        the server closes cleanly while the response is still active (a cancelled response has no stream
        event; a server may end a stream early) is resumed too, at most :data:`MAX_EARLY_END_RESUMES`
        times.
        """
        stream = events
        while True:
            progressed = broken = False
            try:
                async for event in stream:
                    progressed = True
                    if event.sequence_number is not None:
                        cursor.last = event.sequence_number
                    if event.response is not None:
                        cursor.response_id = event.response.id
                        cursor.active = not event.response.is_terminal
                        yield event.response
                    if event.is_terminal:
                        return
            except BROKEN_STREAM_ERRORS as exc:
                if cursor.response_id is None:
                    raise
                get_logger().info("The stream of response %s broke (%s)", cursor.response_id, exc)
                broken = True
            except OpenAIRunsError as exc:
                if cursor.response_id is None:
                    raise
                get_logger().info("Resuming the stream of response %s failed (%s); polling", cursor.response_id, exc)
                return
            finally:
                await close_stream(stream)
            if not progressed or cursor.response_id is None:
                return
            if not broken:  # ended cleanly before its terminal event
                if not cursor.active or cursor.early_ends >= MAX_EARLY_END_RESUMES:
                    return
                cursor.early_ends += 1
            get_logger().info("Resuming the stream of response %s after event %s", cursor.response_id, cursor.last)
            stream = self.client.resume_stream(cursor.response_id, cursor.last)

    async def recover(self, spec: ResponseSpec) -> Response | None:
        """Always ``None``: the API has no idempotency key and no list or search of responses, so a
        response whose create answer was lost cannot be found (the key in its metadata is only a trace)."""
        return None

    async def get(self, ref: JobRef) -> Response:
        """Retrieve the response."""
        return await self.client.get_response(ref.id)

    async def poll(self, ref: JobRef) -> tuple[Response, int | None]:
        """Retrieve the response with the server's polling hint, if it sent one."""
        return await self.client.poll_response(ref.id)

    async def cancel(self, ref: JobRef) -> Response | None:
        """Cancel the response; ``None`` on the API's 400 *Cannot cancel a completed response.* (or failed,
        or terminal): it had ended."""
        try:
            return await self.client.cancel_response(ref.id)
        except ResponseNotCancellableError:
            return None


def _create_deadline() -> float | None:
    """The current deadline, pushed to at least :data:`CREATE_GRACE_SECONDS` from now (``None``: none)."""
    left = _deadline.remaining()
    return None if left is None else time.monotonic() + max(left, CREATE_GRACE_SECONDS)


def _remaining() -> float:
    left = _deadline.remaining()
    return 3600.0 if left is None else left
