"""Flows that run an assistant end to end and never leave a run behind.

:func:`run_assistant` creates a run, follows it (streamed, falling back to polling), answers its tool
calls, and returns the completed run. On every other path (its own deadline, the Prefect flow's
``timeout_seconds``, a failing tool, an upstream error, a Prefect cancellation or crash) it cancels the
run in a ``finally`` and waits for the cancel, then writes the run artifact with the reason and fails
with one of :class:`~prefect_openai_runs.exceptions.RunOutcomeError`'s family.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prefect import Task, flow, task
from prefect.cache_policies import NO_CACHE

from prefect_openai_runs._following import CancelResult, RunFollower, cancel_sync, completed_after_all, follow_sync
from prefect_openai_runs._lifecycle import (
    RunTracker,
    cancel_reason,
    describe_cancel,
    json_ready,
    log_cancel,
    outcome_error,
    resolve_credentials,
    start_run,
)
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._operations import new_idempotency_key, with_idempotency_key
from prefect_openai_runs._recording import write_run_artifact
from prefect_openai_runs.blocks import OpenAICredentials
from prefect_openai_runs.client import RunsClient
from prefect_openai_runs.exceptions import OpenAIRunsError, RunOutcomeError, RunTimedOut, ToolCallError
from prefect_openai_runs.guard import cancel_orphaned_runs
from prefect_openai_runs.models import CreateMessageParams, CreateRunParams, Run, RunStatus
from prefect_openai_runs.tasks import create_thread_and_run, read_reply, wait_for_runs

ToolHandler = Callable[..., Any]


def _message_params(messages: Sequence[str | Mapping[str, Any]] | None) -> list[CreateMessageParams]:
    if isinstance(messages, str):
        raise TypeError("messages must be a list of strings or message dicts, not a single string")
    return [
        CreateMessageParams(content=m) if isinstance(m, str) else CreateMessageParams.model_validate(m)
        for m in messages or []
    ]


def _as_task(name: str, handler: ToolHandler) -> Task[..., Any]:
    if isinstance(handler, Task):
        return handler
    return task(name=f"tool {name}", cache_policy=NO_CACHE)(handler)


def answer_tool_calls(run: Run, handlers: Mapping[str, ToolHandler]) -> dict[str, str]:
    """Run the handler of every tool call of ``run`` (each as a Prefect task) and collect the outputs.

    Raises:
        ToolCallError: A function has no handler, its arguments are not JSON, or its handler raised.
    """
    outputs: dict[str, str] = {}
    for call in run.tool_calls:
        name = call.function.name
        handler = handlers.get(name)
        if handler is None:
            known = ", ".join(sorted(handlers)) or "none"
            raise ToolCallError(
                run, f"the run called function {name!r}, which has no tool handler (handlers: {known})", name
            )
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except ValueError as exc:
            raise ToolCallError(run, f"function {name!r} was called with arguments that are not JSON", name) from exc
        try:
            value = _as_task(name, handler)(**arguments)
        except Exception as exc:
            raise ToolCallError(run, f"the tool handler of {name!r} raised {type(exc).__name__}: {exc}", name) from exc
        outputs[call.id] = json_ready(value)
    return outputs


def _follow_through_tools(
    client: RunsClient, follower: RunFollower, events: Any, handlers: Mapping[str, ToolHandler], stream: bool
) -> Run:
    while True:
        run = follow_sync(client, follower, events)
        if not run.status.needs_action:
            return run
        outputs = answer_tool_calls(run, handlers)
        get_logger().info("Submitting %d tool output(s) to run %s", len(outputs), run.id)
        if stream:
            events = client.stream_submit_tool_outputs(run.thread_id, run.id, outputs)
            follower.run = None
        else:
            events = None
            follower.observe(client.submit_tool_outputs(run.thread_id, run.id, outputs))


@flow(name="run-assistant", description="Run an OpenAI assistant to completion; cancel the run on any other path.")
def run_assistant(
    credentials: OpenAICredentials | str,
    assistant_id: str,
    messages: list[str | dict[str, Any]] | None = None,
    thread_id: str | None = None,
    max_wait_seconds: float = 600.0,
    tool_handlers: dict[str, ToolHandler] | None = None,
    stream: bool = True,
    cancel_wait_seconds: float = 30.0,
    **run_parameters: Any,
) -> Run:
    """Run an assistant on a prompt, follow the run to its end, and return it once completed.

    Args:
        credentials: The credentials block, or the name of a saved one.
        assistant_id: The assistant to run.
        messages: Messages for the run (strings are user messages); on a new thread unless
            ``thread_id`` is given.
        thread_id: An existing thread to run on.
        max_wait_seconds: The deadline; past it the run is cancelled and the flow fails with
            ``RunTimedOut``.
        tool_handlers: Function name to Python callable; each call runs as a Prefect task and its
            return value (a string, or anything JSON-serialisable) is the tool output.
        stream: Follow the run through its event stream (one request); falls back to polling.
        cancel_wait_seconds: How long to wait for a cancel to finish.
        **run_parameters: Any other *create run* parameter (model, instructions, tools, metadata, ...).

    Returns:
        The completed run.

    Raises:
        RunFailed: The run failed (``run.last_error`` says why).
        RunIncomplete: The run hit a token limit.
        RunExpired: The run expired.
        RunCancelled: The run was cancelled (by someone else, or because a tool call failed: ``ToolCallError``).
        RunTimedOut: The deadline passed; the run was cancelled.

    Example:
        ```python
        from prefect_openai_runs.flows import run_assistant

        run = run_assistant("openai", "asst_abc", messages=["Summarise the release notes"], max_wait_seconds=300)
        ```
    """
    if thread_id is None and not messages:
        raise ValueError("give messages (a new thread is created with them) or the thread_id of an existing thread")
    if not max_wait_seconds > 0:
        raise ValueError(f"max_wait_seconds must be positive, got {max_wait_seconds}")
    handlers = dict(tool_handlers or {})
    creds = resolve_credentials(credentials)
    new_messages = _message_params(messages)
    params = CreateRunParams(
        assistant_id=assistant_id, additional_messages=new_messages if thread_id else None, **run_parameters
    )
    key = new_idempotency_key()
    with_idempotency_key(params, key)  # room for the key in metadata: checked before anything is created
    with creds.get_client() as client:
        if thread_id is None:
            thread_id = client.create_thread(messages=new_messages).id
        follower: RunFollower | None = None
        tracker: RunTracker | None = None
        failure: BaseException | None = None
        try:
            run, events = start_run(client, thread_id, params, stream, key)
            tracker = RunTracker(run.id, max_wait_seconds)
            follower = RunFollower(
                thread_id, run.id, max_wait_seconds, on_change=tracker.on_change, on_tick=tracker.tick
            )
            follower.observe(run)
            _follow_through_tools(client, follower, events, handlers, stream)
        except (RunTimedOut, ToolCallError) as exc:
            failure = exc
        except BaseException as exc:
            failure = exc
            raise
        finally:
            follower = follower or _recover(client, thread_id, key, max_wait_seconds)
            if follower is not None:
                try:
                    final, reason, cancel = _conclude(client, follower, failure, cancel_wait_seconds)
                except OpenAIRunsError as exc:
                    get_logger().error("Could not cancel or record OpenAI run %s: %s", follower.run_id, exc)
                    if failure is None or isinstance(failure, (RunTimedOut, ToolCallError)):
                        raise
                    # else: let the error that interrupted the flow propagate; the run's ids are logged
            if tracker is not None and follower is not None:
                tracker.tick(follower.elapsed, force=True)
    if isinstance(failure, RunTimedOut) and cancel is not None and completed_after_all(cancel):
        return final  # it completed just before the deadline; the cancel found it so
    if isinstance(failure, ToolCallError):
        raise ToolCallError(final, failure.reason, failure.function_name) from failure
    if isinstance(failure, RunTimedOut):
        raise RunTimedOut(final, f"{failure.reason}; {describe_cancel(cancel) if cancel else 'not cancelled'}")
    error = outcome_error(final, reason)
    if error is not None:
        raise error
    return final


def _recover(client: RunsClient, thread_id: str, key: str, max_wait_seconds: float) -> RunFollower | None:
    """After an interruption before the run was known: find it by its idempotency key, if it was created.

    A failure here is logged, never raised: it must not hide the error that interrupted the flow.
    """
    try:
        run = client.find_run(thread_id, key)
    except OpenAIRunsError as exc:
        get_logger().error("Could not look for a run created before the interruption on thread %s: %s", thread_id, exc)
        return None
    if run is None:
        return None
    get_logger().warning("Found run %s created before the interruption; it will be cancelled", run.id)
    follower = RunFollower(thread_id, run.id, max_wait_seconds)
    follower.observe(run)
    return follower


def _conclude(
    client: RunsClient, follower: RunFollower, failure: BaseException | None, cancel_wait_seconds: float
) -> tuple[Run, str | None, CancelResult | None]:
    """Cancel the run if it is still active, write its artifact; say why it ended and how the cancel went."""
    run = follower.run
    if run is None:
        run = client.get_run(follower.thread_id, follower.run_id)
        follower.observe(run)
    reason: str | None = None
    result: CancelResult | None = None
    if not run.status.is_terminal:
        cause = cancel_reason(failure)
        result = cancel_sync(client, run.thread_id, run.id, cancel_wait_seconds)
        log_cancel(result, cause)
        follower.observe(result.run)
        run = result.run
        reason = f"{cause}; {describe_cancel(result)}"
    elif isinstance(failure, RunOutcomeError):
        reason = failure.reason
    reply = read_reply(client, run.thread_id, run.id) if run.status is RunStatus.COMPLETED else None
    write_run_artifact(run, follower.timeline, reason or f"ended {run.status}", reply)
    return run, reason, result


@flow(name="run-assistant-fan-out", description="Run one assistant on many prompts at once; fail fast.")
def run_assistant_fan_out(
    credentials: OpenAICredentials | str,
    assistant_id: str,
    prompts: list[str],
    max_wait_seconds: float = 600.0,
    fail_fast: bool = True,
    **run_parameters: Any,
) -> list[Run]:
    """Start one run per prompt (each on its own thread) and follow them all from one event loop.

    When one does not complete and ``fail_fast`` is set, every sibling still active is cancelled.

    Example:
        ```python
        runs = run_assistant_fan_out("openai", "asst_abc", prompts=["a", "b", "c"], max_wait_seconds=600)
        ```
    """
    if not prompts:
        raise ValueError("prompts must hold at least one prompt")
    runs = [create_thread_and_run(credentials, assistant_id, [prompt], **run_parameters) for prompt in prompts]
    return wait_for_runs(credentials, runs, max_wait_seconds=max_wait_seconds, fail_fast=fail_fast)


__all__ = ["answer_tool_calls", "cancel_orphaned_runs", "run_assistant", "run_assistant_fan_out"]
