"""Prefect tasks that create, follow, cancel and answer OpenAI runs.

Every task takes the :class:`~prefect_openai_runs.blocks.OpenAICredentials` block or the name of a saved
one, logs with the run logger, and never caches (a cached poll would never see a new status). Every
run a task creates is logged and recorded on the Prefect server at once (see
:mod:`prefect_openai_runs._recording`), so it can always be found and cancelled. The tasks are
synchronous and work in sync and async flows alike; :func:`wait_for_runs` follows many runs from one
event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_openai_runs._fanout import FanOut, follow_many
from prefect_openai_runs._following import PollSchedule, RunFollower, cancel_sync, completed_after_all, follow_sync
from prefect_openai_runs._lifecycle import (
    RunTracker,
    cancel_reason,
    describe_cancel,
    log_cancel,
    outcome_error,
    resolve_credentials,
)
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import ArtifactWriter, RunRef, record_created, write_run_artifact
from prefect_openai_runs.blocks import OpenAICredentials
from prefect_openai_runs.exceptions import RunTimedOut
from prefect_openai_runs.guard import cancel_runs
from prefect_openai_runs.models import (
    CreateMessageParams,
    CreateRunParams,
    CreateThreadAndRunParams,
    CreateThreadParams,
    Run,
    ToolOutput,
)

Credentials = OpenAICredentials | str
MessageInput = str | Mapping[str, Any]


def _messages(messages: Sequence[MessageInput] | None) -> list[CreateMessageParams] | None:
    if messages is None:
        return None
    if isinstance(messages, str):
        raise TypeError("messages must be a list of strings or message dicts, not a single string")
    return [
        CreateMessageParams(content=m) if isinstance(m, str) else CreateMessageParams.model_validate(m)
        for m in messages
    ]


@task(name="Create OpenAI run", cache_policy=NO_CACHE)
def create_run(
    credentials: Credentials,
    thread_id: str,
    assistant_id: str,
    messages: Sequence[MessageInput] | None = None,
    **run_parameters: Any,
) -> Run:
    """Create a run of an assistant on an existing thread.

    The parameters are validated before any request is sent; the run is tagged with an idempotency
    key so that a retried create never leaves two runs; its ids are logged and recorded at once.

    Args:
        credentials: The credentials block, or the name of a saved one.
        thread_id: The thread to run on.
        assistant_id: The assistant to run.
        messages: Messages to add to the thread first (strings are user messages).
        **run_parameters: Any other *create run* parameter (model, instructions, tools, metadata,
            temperature, max_completion_tokens, ...).

    Returns:
        The new run (usually ``queued``).

    Example:
        ```python
        from prefect import flow
        from prefect_openai_runs.tasks import create_run, wait_for_run

        @flow
        def nightly():
            run = create_run("openai", "thread_abc", "asst_abc", messages=["Summarise today's tickets"])
            return wait_for_run("openai", run.thread_id, run.id, max_wait_seconds=300)
        ```
    """
    params = CreateRunParams(assistant_id=assistant_id, additional_messages=_messages(messages), **run_parameters)
    with resolve_credentials(credentials).get_client() as client:
        run = client.create_run(thread_id, params)
    record_created(run)
    return run


@task(name="Create OpenAI thread and run", cache_policy=NO_CACHE)
def create_thread_and_run(
    credentials: Credentials,
    assistant_id: str,
    messages: Sequence[MessageInput] | None = None,
    **run_parameters: Any,
) -> Run:
    """Create a thread with ``messages`` and a run on it (two requests, so a retry never makes two runs).

    Example:
        ```python
        run = create_thread_and_run("openai", "asst_abc", messages=["What changed in v2?"])
        ```
    """
    params = CreateThreadAndRunParams(
        assistant_id=assistant_id, thread=CreateThreadParams(messages=_messages(messages)), **run_parameters
    )
    with resolve_credentials(credentials).get_client() as client:
        run = client.create_thread_and_run(params)
    record_created(run)
    return run


@task(name="Get OpenAI run", cache_policy=NO_CACHE)
def get_run(credentials: Credentials, thread_id: str, run_id: str) -> Run:
    """Retrieve a run's current state.

    Example:
        ```python
        print(get_run("openai", "thread_abc", "run_abc").status)
        ```
    """
    with resolve_credentials(credentials).get_client() as client:
        return client.get_run(thread_id, run_id)


@task(name="Wait for OpenAI run", cache_policy=NO_CACHE)
def wait_for_run(
    credentials: Credentials,
    thread_id: str,
    run_id: str,
    max_wait_seconds: float = 600.0,
    cancel_on_timeout: bool = True,
    poll_schedule: PollSchedule | None = None,
) -> Run:
    """Wait until a run is terminal or needs action, and return it.

    Each status change is logged once with the elapsed time and emitted as a Prefect event; a
    progress artifact shows elapsed time against the deadline. Polls follow the server's
    ``openai-poll-after-ms`` hint when sent, else :class:`~prefect_openai_runs._following.PollSchedule`;
    no sleep ends past the deadline. A terminal run gets its run artifact.

    Args:
        credentials: The credentials block, or the name of a saved one.
        thread_id: The run's thread.
        run_id: The run.
        max_wait_seconds: The deadline.
        cancel_on_timeout: Cancel the run (and wait for it) when the deadline passes.
        poll_schedule: Waits between polls when the server gives no hint.

    Returns:
        The run, terminal or ``requires_action``.

    Raises:
        RunTimedOut: The deadline passed; carries the last run (cancelled, unless told not to).

    Example:
        ```python
        run = wait_for_run("openai", run.thread_id, run.id, max_wait_seconds=120)
        ```
    """
    tracker = RunTracker(run_id, max_wait_seconds)
    follower = RunFollower(
        thread_id,
        run_id,
        max_wait_seconds,
        schedule=poll_schedule or PollSchedule(),
        on_change=tracker.on_change,
        on_tick=tracker.tick,
    )
    creds = resolve_credentials(credentials)
    with creds.get_client() as client:
        try:
            run = follow_sync(client, follower)
        except RunTimedOut as exc:
            if not cancel_on_timeout:
                raise
            reason = cancel_reason(exc)
            result = cancel_sync(client, thread_id, run_id, wait_seconds=30.0)
            if completed_after_all(result):
                write_run_artifact(result.run, follower.timeline, "completed just before the deadline")
                return result.run
            log_cancel(result, reason)
            write_run_artifact(result.run, follower.timeline, f"{reason}; {describe_cancel(result)}")
            raise RunTimedOut(result.run, exc.reason) from None
        finally:
            tracker.tick(follower.elapsed, force=True)
    if run.status.is_terminal:
        write_run_artifact(run, follower.timeline, f"ended {run.status}")
    return run


@task(name="Cancel OpenAI run", cache_policy=NO_CACHE)
def cancel_run(
    credentials: Credentials,
    thread_id: str,
    run_id: str,
    reason: str = "cancelled on request",
    wait_seconds: float = 30.0,
) -> Run:
    """Cancel a run and wait (at most ``wait_seconds``) until it is ``cancelled`` or otherwise terminal.

    Safe in every state and idempotent: a run that already ended is returned unchanged (the API's
    400 *Cannot cancel run with status ...* is not an error here). A cancel the server did not honour
    (the run completed anyway) is logged as a warning and written in the run artifact, not hidden.

    Example:
        ```python
        run = cancel_run("openai", "thread_abc", "run_abc", reason="nightly window closed")
        ```
    """
    with resolve_credentials(credentials).get_client() as client:
        result = cancel_sync(client, thread_id, run_id, wait_seconds)
    log_cancel(result, reason)
    write_run_artifact(result.run, [], f"{reason}; {describe_cancel(result)}")
    return result.run


@task(name="Submit OpenAI tool outputs", cache_policy=NO_CACHE)
def submit_tool_outputs(
    credentials: Credentials, thread_id: str, run_id: str, outputs: Mapping[str, str] | Sequence[ToolOutput]
) -> Run:
    """Answer every pending tool call of a run in one request; the run goes back to ``queued``.

    Args:
        credentials: The credentials block, or the name of a saved one.
        thread_id: The run's thread.
        run_id: The run, in ``requires_action``.
        outputs: ``{tool_call_id: output}`` or a list of :class:`~prefect_openai_runs.models.ToolOutput`.

    Example:
        ```python
        submit_tool_outputs("openai", run.thread_id, run.id, {run.tool_calls[0].id: '{"temp": 21}'})
        ```
    """
    with resolve_credentials(credentials).get_client() as client:
        return client.submit_tool_outputs(
            thread_id, run_id, dict(outputs) if isinstance(outputs, Mapping) else list(outputs)
        )


@task(name="Get OpenAI run output", cache_policy=NO_CACHE)
def get_run_output(credentials: Credentials, thread_id: str, run_id: str) -> str:
    """The assistant's reply text of a run: the text of the messages it created, oldest first.

    Example:
        ```python
        text = get_run_output("openai", run.thread_id, run.id)
        ```
    """
    with resolve_credentials(credentials).get_client() as client:
        return read_reply(client, thread_id, run_id)


def read_reply(client: Any, thread_id: str, run_id: str) -> str:
    """The reply text of a run, through an open sync client."""
    messages = client.list_messages(thread_id, run_id=run_id, order="asc", limit=100)
    return "\n\n".join(m.text for m in messages if m.role == "assistant" and m.text)


@task(name="Wait for OpenAI runs", cache_policy=NO_CACHE)
def wait_for_runs(
    credentials: Credentials,
    runs: Sequence[Run | tuple[str, str]],
    max_wait_seconds: float = 600.0,
    fail_fast: bool = True,
) -> list[Run]:
    """Follow many runs at once, in one event loop, and return them when all have ended.

    With ``fail_fast`` (the default), the first run that does not complete stops the wait and every
    sibling still active is cancelled (and awaited) before the task fails. At the deadline, every run
    still active is cancelled. Each run that ended gets its run artifact.

    Args:
        credentials: The credentials block, or the name of a saved one.
        runs: Runs, or ``(thread_id, run_id)`` pairs.
        max_wait_seconds: The deadline for all of them.
        fail_fast: Cancel the others as soon as one fails.

    Returns:
        The final runs, in the order given.

    Raises:
        RunOutcomeError: The first run that did not complete (``RunFailed``, ``RunTimedOut``, ...).

    Example:
        ```python
        runs = [create_thread_and_run("openai", "asst_abc", [prompt]) for prompt in prompts]
        finished = wait_for_runs("openai", runs, max_wait_seconds=900)
        ```
    """
    if not max_wait_seconds > 0:
        raise ValueError(f"max_wait_seconds must be positive, got {max_wait_seconds}")
    refs = [RunRef(r.thread_id, r.id) if isinstance(r, Run) else RunRef(*r) for r in runs]
    creds = resolve_credentials(credentials)

    interrupted = threading.Event()

    async def follow() -> FanOut:
        async with creds.get_async_client() as client, get_client() as prefect:
            # Each run's artifact is written as soon as it ends, while the others are followed.
            writer = ArtifactWriter(prefect, stopped=interrupted)
            return await follow_many(client, refs, max_wait_seconds, fail_fast, on_end=writer.write)

    try:
        outcome: FanOut | None = run_coro_as_sync(follow())
    except BaseException as exc:
        # A signal or a flow timeout lands here, not in the loop that follows the runs (which may go on,
        # on its own thread, and see the runs cancelled): cancel them all and record why, with nothing
        # from that loop written after.
        interrupted.set()
        cancel_runs(creds, refs, cancel_reason(exc))
        raise
    if outcome is None:
        raise RuntimeError("following the runs returned nothing")
    if outcome.failure is not None:
        get_logger().error("Waiting for %d runs failed: %s", len(refs), outcome.failure)
        raise outcome.failure
    final = [follower.run for follower in outcome.followers if follower.run is not None]
    for run in final:
        error = outcome_error(run)
        if error is not None:
            raise error
    return final
