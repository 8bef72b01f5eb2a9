"""Every request of background responses, written once, without I/O, like :mod:`._operations`.

Each operation is a generator yielding the :class:`~prefect_openai_runs.client._http.Call` to make and
receiving its :class:`~prefect_openai_runs.client._http.Reply`. Unlike a run, a response cannot be found
again by its idempotency key (the API has no search of responses), so the create carries no
``recover`` step and is marked ``retry_ambiguous=False``: after an ambiguous failure it is never sent
again, and the failure reaches the caller, who knows a job may exist (tagged with the key). None of these
calls needs the Assistants beta header (``beta=False``).
"""

from __future__ import annotations

from typing import Any

from prefect_openai_runs.client._http import Call, Reply
from prefect_openai_runs.client._operations import Operation, check_id, parse, with_idempotency_key
from prefect_openai_runs.exceptions import BadRequestError, ResponseNotCancellableError
from prefect_openai_runs.models import CreateResponseParams, Response, ResponseDeleted

RESPONSES_PATH = "/responses"


def response_path(response_id: str) -> str:
    """``/responses/{response_id}``, the id checked first."""
    return f"{RESPONSES_PATH}/{check_id('response_id', response_id)}"


def _background_body(params: CreateResponseParams, key: str, *, stream: bool) -> dict[str, Any]:
    body = with_idempotency_key(params, key).to_body()
    body["background"] = True
    body.pop("stream", None)
    if stream:
        body["stream"] = True
    return body


def create_response(params: CreateResponseParams, key: str) -> Operation[Response]:
    """``POST /responses`` with ``background: true``, tagged with ``key`` in its metadata.

    Never sent twice after an ambiguous failure (see the module's docstring).
    """
    body = _background_body(params, key, stream=False)
    call = Call("POST", RESPONSES_PATH, json=body, retry_ambiguous=False, creates=True, beta=False)
    reply = yield call
    return parse(Response, reply.body)


def stream_response_call(params: CreateResponseParams, key: str) -> Call:
    """The streaming ``POST /responses`` request (``background`` and ``stream`` true), tagged with ``key``."""
    body = _background_body(params, key, stream=True)
    return Call("POST", RESPONSES_PATH, json=body, stream=True, retry_ambiguous=False, creates=True, beta=False)


def get_response(response_id: str) -> Operation[Response]:
    """``GET /responses/{response_id}``."""
    reply = yield Call("GET", response_path(response_id), beta=False)
    return parse(Response, reply.body)


def resume_stream_call(response_id: str, starting_after: int | None = None) -> Call:
    """``GET /responses/{response_id}?stream=true&starting_after=N``: the stream's events after event
    ``N`` (every event when ``None``), then the live ones.

    Raises:
        ValueError: If ``starting_after`` is negative or not an integer.
    """
    params: dict[str, Any] = {"stream": "true"}
    if starting_after is not None:
        if isinstance(starting_after, bool) or not isinstance(starting_after, int) or starting_after < 0:
            raise ValueError(f"starting_after must be a sequence number (an integer >= 0), got {starting_after!r}")
        params["starting_after"] = starting_after
    return Call("GET", response_path(response_id), params=params, stream=True, beta=False)


def _cancel_applied(response_id: str) -> Operation[Reply | None]:
    """After an ambiguous cancel: the response, if it is terminal (the cancel was applied, or is no
    longer needed), else ``None`` to send the cancel again."""
    reply = yield Call("GET", response_path(response_id), beta=False)
    response = parse(Response, reply.body)
    return reply if response.is_terminal else None


def cancel_response(response_id: str) -> Operation[Response]:
    """``POST /responses/{response_id}/cancel``; idempotent on a cancelled response.

    Cancel is best effort: a response answered ``cancelled`` has been seen to complete later, so read
    it again before recording the end.

    Raises:
        ResponseNotCancellableError: On any 400 (completed, failed, incomplete, not background: whatever
            the wording); the caller reads the response to learn its real status.
    """
    path = f"{response_path(response_id)}/cancel"
    try:
        reply = yield Call("POST", path, beta=False, paced=False, recover=lambda: _cancel_applied(response_id))
    except ResponseNotCancellableError:
        raise
    except BadRequestError as exc:
        raise ResponseNotCancellableError.from_error(exc) from exc
    return parse(Response, reply.body)


def delete_response(response_id: str) -> Operation[ResponseDeleted]:
    """``DELETE /responses/{response_id}``."""
    reply = yield Call("DELETE", response_path(response_id), beta=False)
    return parse(ResponseDeleted, reply.body)


def poll_response(response_id: str) -> Operation[tuple[Response, int | None]]:
    """``GET /responses/{response_id}`` with the server's polling hint (``openai-poll-after-ms``), if sent."""
    reply = yield Call("GET", response_path(response_id), beta=False)
    return parse(Response, reply.body), reply.poll_after_ms
