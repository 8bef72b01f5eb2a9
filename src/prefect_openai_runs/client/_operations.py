"""Every request of the runs API, written once, without I/O.

Each operation is a generator: it yields the :class:`~prefect_openai_runs.client._http.Call` to make,
receives the :class:`~prefect_openai_runs.client._http.Reply` (or has the request's exception thrown into
it), and returns the parsed result. :class:`~prefect_openai_runs.client.RunsClient` and
:class:`~prefect_openai_runs.client.AsyncRunsClient` only drive these generators, so the logic of a
request, of its parsing and of the recovery of an ambiguous create exists in one place.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Generator
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from prefect_openai_runs.client._http import Call, Reply
from prefect_openai_runs.exceptions import (
    ActiveRunExistsError,
    AuthenticationError,
    BadRequestError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RunNotCancellableError,
    UnprocessableEntityError,
)
from prefect_openai_runs.models import (
    CreateMessageParams,
    CreateRunParams,
    CreateThreadParams,
    ListPage,
    Message,
    ModifyRunParams,
    Run,
    RunStatus,
    SubmitToolOutputsParams,
    Thread,
)
from prefect_openai_runs.models.requests import METADATA_MAX_KEYS

T = TypeVar("T")
ModelT = TypeVar("ModelT", bound=BaseModel)
Operation = Generator[Call, Reply, T]
"""A sans-IO operation returning ``T``."""

IDEMPOTENCY_METADATA_KEY = "prefect_openai_runs_idempotency_key"
"""The metadata key that tags every run this library creates with a unique idempotency key.

After an ambiguous failure (timeout, dropped connection, 5xx) the client looks for a run carrying the
same key on the thread before it sends the create again, so a retried create never leaves two runs.
It takes one of the 16 metadata keys a run may have.
"""

CLOCK_SLACK = 2
"""Seconds of rounding and clock skew allowed when telling whether a run ended before a cancel was sent."""

RECOVERY_WINDOW = 20
"""How many of the thread's newest runs are searched for the idempotency key."""


def parse(model: type[ModelT], body: Any) -> ModelT:
    """Validate a response body as ``model``, or raise :class:`InvalidResponseError` saying what came instead."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidResponseError(
            f"the server answered a body that is not a {model.__name__}: {exc.error_count()} problem(s), first: "
            f"{exc.errors()[0]['loc']} {exc.errors()[0]['msg']}"
        ) from exc


def new_idempotency_key() -> str:
    """A fresh idempotency key (32 hex characters)."""
    return uuid.uuid4().hex


def with_idempotency_key(params: ModelT, key: str, what: str = "a run") -> ModelT:
    """A copy of ``params`` (a create body with ``metadata``) whose metadata carries ``key``; fails
    clearly if metadata is already full. ``what`` names the object created, for the message."""
    metadata = dict(getattr(params, "metadata", None) or {})
    if IDEMPOTENCY_METADATA_KEY not in metadata and len(metadata) >= METADATA_MAX_KEYS:
        raise ValueError(
            f"metadata: at most {METADATA_MAX_KEYS - 1} keys may be given, got {len(metadata)}; the library "
            f"adds {IDEMPOTENCY_METADATA_KEY!r} to make creating {what} safe to retry"
        )
    metadata[IDEMPOTENCY_METADATA_KEY] = key
    return params.model_copy(update={"metadata": metadata})


_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def check_id(name: str, value: object) -> str:
    """Check an object id before it goes into a URL: a non-empty string of letters, digits, ``_`` and ``-``.

    Raises:
        ValueError: Naming the parameter and what was wrong with it.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty id such as 'thread_abc123', got {value!r}")
    if not _ID_PATTERN.match(value):
        raise ValueError(
            f"{name} {value!r} is not a valid id: use only letters, digits, '_' and '-' (e.g. 'run_abc123')"
        )
    return value


def _runs_path(thread_id: str) -> str:
    return f"/threads/{check_id('thread_id', thread_id)}/runs"


def _run_path(thread_id: str, run_id: str) -> str:
    return f"{_runs_path(thread_id)}/{check_id('run_id', run_id)}"


def create_thread(params: CreateThreadParams) -> Operation[Thread]:
    """``POST /threads``."""
    reply = yield Call("POST", "/threads", json=params.model_dump(mode="json", exclude_none=True))
    return parse(Thread, reply.body)


_REFUSALS = (BadRequestError, AuthenticationError, PermissionDeniedError, NotFoundError, UnprocessableEntityError)


def refused_outright(error: BaseException) -> bool:
    """Whether a run's create was refused outright, so that the server created nothing (a thread busy with
    another run is not: that thread is not empty)."""
    return isinstance(error, _REFUSALS) and not isinstance(error, ActiveRunExistsError)


def delete_thread(thread_id: str) -> Operation[bool]:
    """``DELETE /threads/{thread_id}``: whether the server says it deleted it."""
    reply = yield Call("DELETE", f"/threads/{check_id('thread_id', thread_id)}")
    return isinstance(reply.body, dict) and reply.body.get("deleted") is True


def add_message(thread_id: str, params: CreateMessageParams) -> Operation[Message]:
    """``POST /threads/{thread_id}/messages``."""
    body = params.model_dump(mode="json", exclude_none=True)
    reply = yield Call("POST", messages_path(thread_id), json=body)
    return parse(Message, reply.body)


def get_run(thread_id: str, run_id: str) -> Operation[Run]:
    """``GET /threads/{thread_id}/runs/{run_id}``."""
    reply = yield Call("GET", _run_path(thread_id, run_id))
    return parse(Run, reply.body)


def poll_run(thread_id: str, run_id: str) -> Operation[tuple[Run, int | None]]:
    """Get the run with the server's polling hint (``openai-poll-after-ms``), if it sent one."""
    reply = yield Call("GET", _run_path(thread_id, run_id))
    return parse(Run, reply.body), reply.poll_after_ms


def list_page(path: str, params: dict[str, Any], model: type[ModelT]) -> Operation[ListPage[ModelT]]:
    """One page of a list endpoint."""
    reply = yield Call("GET", path, params=params)
    return parse(ListPage[model], reply.body)  # type: ignore[valid-type]


def next_page_params(params: dict[str, Any], page: ListPage[Any]) -> dict[str, Any] | None:
    """The query of the page after ``page``, or ``None`` when it was the last."""
    if not page.has_more or not page.last_id:
        return None
    return {**params, "after": page.last_id}


def list_params(limit: int, order: str, **filters: str | None) -> dict[str, Any]:
    """The query of a list endpoint, checked: ``limit`` 1..100, ``order`` asc or desc."""
    if not 1 <= limit <= 100:
        raise ValueError(f"limit must be between 1 and 100, got {limit}")
    if order not in {"asc", "desc"}:
        raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")
    return {"limit": limit, "order": order, **{k: v for k, v in filters.items() if v is not None}}


def find_run_by_key(thread_id: str, key: str) -> Operation[Reply | None]:
    """Find the run created with idempotency ``key`` among the thread's newest runs."""
    reply = yield Call("GET", _runs_path(thread_id), params={"limit": RECOVERY_WINDOW, "order": "desc"})
    page = parse(ListPage[Run], reply.body)
    for run in page.data:
        if (run.metadata or {}).get(IDEMPOTENCY_METADATA_KEY) == key:
            return Reply(body=run.model_dump(mode="json"), request_id=reply.request_id)
    return None


def create_run(thread_id: str, params: CreateRunParams, key: str) -> Operation[Run]:
    """``POST /threads/{thread_id}/runs``, safe to retry.

    The run is tagged with ``key``. Before a retry that follows an ambiguous failure, the driver runs
    :func:`find_run_by_key` and uses the run it finds instead of creating another. A 400 *already has
    an active run* that names our own run (the first attempt did create it) returns that run, and so
    does an answer that is not a run (a proxy's page, a cut body) when the run exists all the same.
    """
    body = with_idempotency_key(params, key).to_body()
    body.pop("stream", None)
    call = Call(
        "POST", _runs_path(thread_id), json=body, creates=True, recover=lambda: find_run_by_key(thread_id, key)
    )
    try:
        reply = yield call
        return parse(Run, reply.body)
    except ActiveRunExistsError as exc:
        if exc.active_run_id is None:
            raise
        active = yield from get_run(thread_id, exc.active_run_id)
        if (active.metadata or {}).get(IDEMPOTENCY_METADATA_KEY) != key:
            raise
        return active
    except InvalidResponseError:
        # Answered, but not with a run: the server did something with the create. Look before failing.
        found = yield from find_run_by_key(thread_id, key)
        if found is None:
            raise
        return parse(Run, found.body)


def stream_run_call(thread_id: str, params: CreateRunParams, key: str) -> Call:
    """The streaming ``POST /threads/{thread_id}/runs`` request (``stream: true``), tagged with ``key``."""
    body = with_idempotency_key(params, key).to_body()
    body["stream"] = True
    return Call("POST", _runs_path(thread_id), json=body, stream=True, creates=True)


def modify_run(thread_id: str, run_id: str, params: ModifyRunParams) -> Operation[Run]:
    """``POST /threads/{thread_id}/runs/{run_id}``: change the run's metadata."""
    reply = yield Call("POST", _run_path(thread_id, run_id), json=params.to_body())
    return parse(Run, reply.body)


def _cancel_applied(thread_id: str, run_id: str, sent_at: float) -> Operation[Reply | None]:
    """After an ambiguous cancel (sent at ``sent_at``, epoch seconds): the run, if the cancel may have
    been applied (it is ``cancelling`` or terminal since), else ``None`` to send it again. A run that had
    ended otherwise before the cancel was sent did not need it: that is told as the API would have told
    it (:class:`RunNotCancellableError`), not as a cancel the server did not honour."""
    reply = yield Call("GET", _run_path(thread_id, run_id))
    run = parse(Run, reply.body)
    if run.status is RunStatus.CANCELLING or not run.status.is_terminal:
        return reply if run.status is RunStatus.CANCELLING else None
    ended_at = run.completed_at or run.failed_at or run.expires_at
    if run.status is not RunStatus.CANCELLED and ended_at is not None and ended_at < int(sent_at) - CLOCK_SLACK:
        raise RunNotCancellableError(
            f"Cannot cancel run with status '{run.status.value}'.",
            status_code=400,
            type="invalid_request_error",
            request_id=reply.request_id,
        )
    return reply


def cancel_run(thread_id: str, run_id: str) -> Operation[Run]:
    """``POST /threads/{thread_id}/runs/{run_id}/cancel``; after an ambiguous failure, the run is read
    before the cancel is sent again, so a cancel that was applied is not mistaken for one never needed,
    nor one never needed for one the server did not honour."""
    sent_at = time.time()
    reply = yield Call(
        "POST",
        f"{_run_path(thread_id, run_id)}/cancel",
        paced=False,
        recover=lambda: _cancel_applied(thread_id, run_id, sent_at),
    )
    return parse(Run, reply.body)


def submit_tool_outputs(thread_id: str, run_id: str, params: SubmitToolOutputsParams) -> Operation[Run]:
    """``POST /threads/{thread_id}/runs/{run_id}/submit_tool_outputs``."""
    body = params.to_body()
    body.pop("stream", None)
    reply = yield Call("POST", f"{_run_path(thread_id, run_id)}/submit_tool_outputs", json=body)
    return parse(Run, reply.body)


def stream_tool_outputs_call(thread_id: str, run_id: str, params: SubmitToolOutputsParams) -> Call:
    """The streaming submit tool outputs request."""
    body = {**params.to_body(), "stream": True}
    return Call("POST", f"{_run_path(thread_id, run_id)}/submit_tool_outputs", json=body, stream=True)


def runs_path(thread_id: str) -> str:
    """The path listing a thread's runs."""
    return _runs_path(thread_id)


def steps_path(thread_id: str, run_id: str) -> str:
    """The path listing a run's steps."""
    return f"{_run_path(thread_id, run_id)}/steps"


def messages_path(thread_id: str) -> str:
    """The path listing a thread's messages."""
    return f"/threads/{check_id('thread_id', thread_id)}/messages"
