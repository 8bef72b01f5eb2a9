"""A background response's event stream, read by the client: parsing its events, masking an ``error``
event, and remembering the response and the last ``sequence_number`` (the cursor a resumed stream
starts after).

Unlike the runs' stream, a response's stream has no ``[DONE]``: it ends after its terminal event
(``response.completed``, ``response.failed``, ``response.incomplete``), or when the server closes it
(a cancelled response has no stream event of its own). A ``[DONE]`` a server sends anyway ends it too.
"""

from __future__ import annotations

from typing import Any

from prefect_openai_runs._secrets import mask_secrets
from prefect_openai_runs.client._sse import SSEDecoder
from prefect_openai_runs.exceptions import StreamError
from prefect_openai_runs.models import ResponseStreamEvent

STREAM_DONE = "done"
"""The ``type`` of the marker event a ``data: [DONE]`` becomes (not an event of the spec)."""


def parse_response_event(event: str, payload: Any) -> ResponseStreamEvent:
    """One event of a response's stream; the SSE ``event:`` name stands in for a missing ``type``."""
    if not isinstance(payload, dict):
        raise TypeError(f"event {event!r} carries {type(payload).__name__}, not an object")
    return ResponseStreamEvent.model_validate(payload if "type" in payload else {**payload, "type": event})


class ResponseStreamCodec:
    """The Responses API's stream bookkeeping for the client (see
    :class:`~prefect_openai_runs.client._config.StreamCodec`).

    Attributes:
        response_id: The response the stream is about, once an event named it.
        last_sequence: The ``sequence_number`` of the last event that had one (``None`` before the first).
    """

    def __init__(self, secrets: list[str]) -> None:
        self._secrets = secrets
        self.response_id: str | None = None
        self.last_sequence: int | None = None

    def decoder(self) -> SSEDecoder[ResponseStreamEvent]:
        """A decoder of the responses' events."""
        return SSEDecoder(parse=parse_response_event, done=self._done)

    def _done(self) -> ResponseStreamEvent:
        return ResponseStreamEvent(type=STREAM_DONE, sequence_number=self.last_sequence or 0)

    def see(self, event: ResponseStreamEvent) -> ResponseStreamEvent:
        """Take an event; an ``error`` event raises :class:`StreamError` (its text masked of secrets)."""
        if event.response is not None:
            self.response_id = event.response.id
        if event.is_error:
            detail = event.error
            text = mask_secrets(f"{detail.code or 'error'}: {detail.message}" if detail else "no detail", self._secrets)
            raise StreamError(f"the server sent an error event about response {self.response_id or '?'}: {text}")
        if event.type != STREAM_DONE and event.sequence_number is not None:
            self.last_sequence = event.sequence_number
        return event

    def is_end(self, event: ResponseStreamEvent) -> bool:
        """A terminal event (or a ``[DONE]``) ends the stream."""
        return event.is_terminal or event.type == STREAM_DONE

    def broken(self, cause: BaseException) -> StreamError:
        """The error for a stream that broke before it ended, naming the response and the cursor."""
        return StreamError(
            f"the event stream of response {self.response_id or '?'} broke after event "
            f"{self.last_sequence if self.last_sequence is not None else 'none'} ({type(cause).__name__})"
        )
