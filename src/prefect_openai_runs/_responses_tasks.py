"""Prefect tasks that create, follow, cancel and read background responses (re-exported by
:mod:`prefect_openai_runs.tasks`).

Every task takes the :class:`~prefect_openai_runs.blocks.OpenAICredentials` block or the name of a saved
one and never caches. A response a task creates is logged and recorded on the Prefect server at once
(its artifact, which the guard hooks read back to cancel it). A create is never sent twice: the API
cannot find a response again, so a create whose answer was lost raises
:class:`~prefect_openai_runs.exceptions.ResponseMayExistError`, which Prefect does not retry either.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun

from prefect_openai_runs._lifecycle._async._responses import AsyncResponsesApi
from prefect_openai_runs._lifecycle._fanout import FanOut, follow_many
from prefect_openai_runs._lifecycle._follower import (
    DEFAULT_CANCEL_WAIT_SECONDS,
    JobFollower,
    PollSchedule,
    StatusChange,
)
from prefect_openai_runs._lifecycle._hooks import flush_fan_out
from prefect_openai_runs._lifecycle._keys import logical_key
from prefect_openai_runs._lifecycle._kinds import JobRef
from prefect_openai_runs._lifecycle._outcome import cancel_reason
from prefect_openai_runs._lifecycle._response_hooks import ResponseHooks
from prefect_openai_runs._lifecycle._response_kind import RESPONSE
from prefect_openai_runs._lifecycle._sync._driver import end_job, start_job, wait_job
from prefect_openai_runs._lifecycle._sync._responses import ResponsesApi, ResponseSpec
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import ArtifactExtras
from prefect_openai_runs._run_sync import run_coroutine
from prefect_openai_runs.blocks import OpenAICredentials, resolve_credentials
from prefect_openai_runs.client import ResponsesClient
from prefect_openai_runs.client._async.responses import response_params
from prefect_openai_runs.exceptions import ResponseMayExistError
from prefect_openai_runs.guard import cancel_jobs
from prefect_openai_runs.models import CreateResponseParams, Response

Credentials = OpenAICredentials | str
_OWNED = ("background", "stream")


def build_response_params(
    model: str, input: str | list[dict[str, Any]], instructions: str | None, params: Mapping[str, Any]
) -> CreateResponseParams:
    """The create-response parameters, checked before anything is sent: a model, a non-empty input, only
    the spec's fields, ``store`` not false, room for the idempotency key in ``metadata``.

    Raises:
        ValueError: What to fix (``background`` and ``stream`` are the library's to set).
    """
    owned = sorted(name for name in _OWNED if name in params)
    if owned:
        raise ValueError(
            f"{', '.join(owned)}: set by the library (every response is created with background=True; "
            "streaming is the flow's stream argument), do not pass it"
        )
    if instructions is not None:
        params = {**params, "instructions": instructions}
    return response_params(None, {"model": model, "input": input, **params})


def create_recorded_response(client: ResponsesClient, params: CreateResponseParams, key: str) -> Response:
    """Create a background response tagged with ``key``, recording the intent first and the response
    at once (through a sync ``ResponsesClient``); never sent twice."""
    response, _ = start_job(
        ResponsesApi(client), ResponseSpec(params, key), key=key, parent_id=None, stream=False, hooks=ResponseHooks()
    )
    return response


def not_after_ambiguous_create(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """A task ``retry_condition_fn``: a create that may have been applied is never retried."""
    try:
        state.result()
    except ResponseMayExistError:
        return False
    except Exception:
        return True
    return True


@task(name="Create OpenAI background response", cache_policy=NO_CACHE, retry_condition_fn=not_after_ambiguous_create)
def create_background_response(
    credentials: Credentials,
    model: str,
    input: str | list[dict[str, Any]],
    instructions: str | None = None,
    **params: Any,
) -> Response:
    """Create a background response (``background: true``) and return it at once (usually ``queued``).

    The parameters are checked before any request. The response is recorded on the Prefect server at
    once, so the guard hooks cancel it if the flow run fails. The create is never sent twice (the API
    cannot find a response again): after a failure the server may have applied, the task fails with
    ``ResponseMayExistError`` (carrying the key in the response's metadata) and is not retried.

    Args:
        credentials: The credentials block, or the name of a saved one.
        model: The model (on Azure, the deployment name).
        input: The input: a string, or a list of input items.
        instructions: System instructions.
        **params: Any other *create response* field (tools, metadata, max_output_tokens, reasoning, ...).

    Returns:
        The new response.

    Example:
        ```python
        from prefect import flow
        from prefect_openai_runs.tasks import create_background_response, wait_for_response

        @flow
        def report():
            response = create_background_response("openai", "gpt-5", "Summarise the quarter.")
            return wait_for_response("openai", response.id, max_wait_seconds=600).output_text
        ```
    """
    checked = build_response_params(model, input, instructions, params)
    with resolve_credentials(credentials).get_responses_client() as client:
        return create_recorded_response(client, checked, logical_key("response"))


@task(name="Get OpenAI response", cache_policy=NO_CACHE)
def get_response(credentials: Credentials, response_id: str) -> Response:
    """Retrieve a response's current state.

    Example:
        ```python
        print(get_response("openai", "resp_abc").status)
        ```
    """
    with resolve_credentials(credentials).get_responses_client() as client:
        return client.get_response(response_id)


@task(name="Wait for OpenAI response", cache_policy=NO_CACHE)
def wait_for_response(
    credentials: Credentials,
    response_id: str,
    max_wait_seconds: float = 600.0,
    stream: bool = True,
    cancel_on_timeout: bool = True,
    poll_schedule: PollSchedule | None = None,
    cancel_wait_seconds: float = DEFAULT_CANCEL_WAIT_SECONDS,
) -> Response:
    """Wait until a background response is terminal, and return it once completed.

    With ``stream``, the response's resumable stream is followed (one request, resumed after drops),
    else (or when resuming is refused: older than about 5 minutes) it is polled. Each status change is
    logged and emitted as ``openai.response.<status>``; the response's artifact is written when it
    ends. At the deadline, or if the wait is interrupted (the flow's timeout, a cancellation), the
    response is cancelled, read again, and its honest outcome raised.

    Args:
        credentials: The credentials block, or the name of a saved one.
        response_id: The response.
        max_wait_seconds: The deadline.
        stream: Follow the response's stream rather than polling.
        cancel_on_timeout: Cancel the response (and wait for it) when the deadline passes.
        poll_schedule: Waits between polls.
        cancel_wait_seconds: How long to wait for a cancel to finish (0: send it, do not wait).

    Returns:
        The completed response.

    Raises:
        JobTimedOut: The deadline passed; carries the last state (cancelled, unless told not to).
        JobOutcomeError: It ended otherwise (``JobFailed``, ``JobIncomplete``, ``JobCancelled``, ``JobGone``).

    Example:
        ```python
        response = wait_for_response("openai", "resp_abc", max_wait_seconds=120)
        print(response.output_text)
        ```
    """
    hooks = ResponseHooks(max_wait_seconds, record_intents=False)
    ref = JobRef(RESPONSE.name, response_id)
    follower: JobFollower[Response] = JobFollower(
        RESPONSE, ref, max_wait_seconds, schedule=poll_schedule or PollSchedule(), on_change=hooks.changed
    )
    with resolve_credentials(credentials).get_responses_client() as client:
        api = ResponsesApi(client)
        return wait_job(
            api,
            follower,
            cancel_on_timeout=cancel_on_timeout,
            cancel_wait_seconds=cancel_wait_seconds,
            hooks=hooks,
            events=api.follow_stream(ref) if stream else None,
        )


@task(name="Cancel OpenAI response", cache_policy=NO_CACHE)
def cancel_response(
    credentials: Credentials,
    response_id: str,
    reason: str = "cancelled on request",
    wait_seconds: float = DEFAULT_CANCEL_WAIT_SECONDS,
) -> Response:
    """Cancel a background response, wait (at most ``wait_seconds``) until it is terminal, read it again.

    Safe in every state: a response that had ended is returned as it is (the API's 400 *Cannot cancel a
    completed response.* is not an error here). Cancel is best effort: a response seen ``cancelled`` is
    read once more, and one that completed anyway is reported as completed (logged as a warning).

    Example:
        ```python
        response = cancel_response("openai", "resp_abc", reason="nightly window closed")
        ```
    """
    follower: JobFollower[Response] = JobFollower(RESPONSE, JobRef(RESPONSE.name, response_id), max(wait_seconds, 1.0))
    with resolve_credentials(credentials).get_responses_client() as client:
        hooks = ResponseHooks(record_intents=False, rewrite_ended=False)  # one found ended keeps its record
        return end_job(ResponsesApi(client), follower, None, wait_seconds, hooks, reason).job


class _FanOutHooks(ResponseHooks):
    """Response hooks for a fan-out: nothing recorded once the task was interrupted (the interruption
    cancels the responses and records why; a late record from the following loop must not overwrite it)."""

    def __init__(self, stopped: threading.Event, deadline_seconds: float) -> None:
        super().__init__(
            record_intents=False,
            progress=False,
            extras=ArtifactExtras(deadline_seconds=deadline_seconds),
            flush_on_end=False,  # the task flushes once all have ended
        )
        self._stopped = stopped

    def changed(self, change: StatusChange, job: Response) -> None:
        if not self._stopped.is_set():
            super().changed(change, job)

    def ended(self, job: Response, timeline: list[StatusChange], reason: str) -> None:
        if not self._stopped.is_set():
            super().ended(job, timeline, reason)


@task(name="Wait for OpenAI responses", cache_policy=NO_CACHE)
def wait_for_responses(
    credentials: Credentials,
    responses: Sequence[Response | str],
    max_wait_seconds: float = 600.0,
    fail_fast: bool = True,
    cancel_wait_seconds: float = DEFAULT_CANCEL_WAIT_SECONDS,
) -> list[Response]:
    """Follow many background responses at once, in one event loop, and return them once all completed.

    With ``fail_fast`` (the default), the first response that does not complete stops the wait and every
    sibling still active is cancelled (and awaited) before the task fails. At the deadline, every
    response still active is cancelled. Each gets its artifact as soon as it ends.

    Args:
        credentials: The credentials block, or the name of a saved one.
        responses: Responses, or their ids.
        max_wait_seconds: The deadline for all of them.
        fail_fast: Cancel the others as soon as one does not complete.
        cancel_wait_seconds: How long to wait for each cancel to finish.

    Returns:
        The final responses, in the order given.

    Raises:
        JobOutcomeError: The first response that did not complete (``JobFailed``, ``JobTimedOut``, ...).

    Example:
        ```python
        started = [create_background_response("openai", "gpt-5", prompt) for prompt in prompts]
        done = wait_for_responses("openai", started, max_wait_seconds=900)
        ```
    """
    if not max_wait_seconds > 0:
        raise ValueError(f"max_wait_seconds must be positive, got {max_wait_seconds}")
    ids = [r.id if isinstance(r, Response) else r for r in responses]
    if not ids:
        return []
    creds = resolve_credentials(credentials)
    interrupted = threading.Event()

    async def follow_all() -> FanOut[Response]:
        async with creds.get_async_responses_client() as client:
            return await follow_many(
                AsyncResponsesApi(client),
                [JobRef(RESPONSE.name, i) for i in ids],
                max_wait_seconds,
                fail_fast=fail_fast,
                cancel_wait_seconds=cancel_wait_seconds,
                hooks_for=lambda ref: _FanOutHooks(interrupted, max_wait_seconds),
            )

    try:
        fan: FanOut[Response] | None = run_coroutine(follow_all())
    except BaseException as exc:
        interrupted.set()
        cancel_jobs(creds, [JobRef(RESPONSE.name, i) for i in ids], cancel_reason(exc), cancel_wait_seconds)
        raise
    flush_fan_out()  # the records written from the event loop, on the server before the task goes on
    if fan is None:
        raise RuntimeError("following the responses returned nothing")
    if fan.failure is not None:
        get_logger().error("Waiting for %d responses failed: %s", len(ids), fan.failure)
        raise fan.failure
    return [f.job for f in fan.followers if f.job is not None]
