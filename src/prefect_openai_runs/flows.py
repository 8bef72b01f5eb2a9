"""Flows that run an assistant end to end and never leave a run behind.

:func:`run_assistant` creates a run, follows it (streamed, falling back to polling), answers its tool
calls, and returns the completed run. On every other path (its own deadline, the Prefect flow's
``timeout_seconds``, a failing tool, an upstream error, a Prefect cancellation or crash) it cancels the
run in a ``finally`` and waits for the cancel, then writes the run artifact with the reason and fails
with one of :class:`~prefect_openai_runs.exceptions.RunOutcomeError`'s family.
"""

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from prefect import flow

from prefect_openai_runs._deadline import deadline_scope
from prefect_openai_runs._intents import find_intent
from prefect_openai_runs._lifecycle._follower import DEFAULT_CANCEL_WAIT_SECONDS, JobFollower
from prefect_openai_runs._lifecycle._hooks import RunHooks
from prefect_openai_runs._lifecycle._keys import logical_key
from prefect_openai_runs._lifecycle._steps import STEPS
from prefect_openai_runs._lifecycle._sync._backend import Reader
from prefect_openai_runs._lifecycle._sync._driver import run_job
from prefect_openai_runs._lifecycle._sync._runs import RunsApi, RunSpec
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import ArtifactExtras
from prefect_openai_runs._tool_tasks import ToolHandler, call_tool
from prefect_openai_runs.blocks import OpenAICredentials, resolve_credentials
from prefect_openai_runs.client._operations import check_id, refused_outright, with_idempotency_key
from prefect_openai_runs.exceptions import OpenAIRunsError
from prefect_openai_runs.guard import cancel_orphaned_runs
from prefect_openai_runs.models import CreateMessageParams, CreateRunParams, CreateThreadParams, Run
from prefect_openai_runs.tasks import (
    DEFAULT_CREATE_CONCURRENCY,
    create_threads_and_runs,
    read_reply,
    thread_for,
    wait_for_runs,
)


def _message_params(messages: Sequence[str | Mapping[str, Any]] | None) -> list[CreateMessageParams]:
    if isinstance(messages, str):
        raise TypeError("messages must be a list of strings or message dicts, not a single string")
    return [
        CreateMessageParams(content=m) if isinstance(m, str) else CreateMessageParams.model_validate(m)
        for m in messages or []
    ]


def _prompt_of(messages: Sequence[str | Mapping[str, Any]] | None) -> str | None:
    """The messages' text, for the run's card (a message with parts shows them as JSON)."""
    texts = [
        m if isinstance(m, str) else m["content"] if isinstance(m.get("content"), str) else json.dumps(m.get("content"))
        for m in messages or []
    ]
    return "\n\n".join(texts) or None


def answer_tool_calls(
    run: Run, handlers: Mapping[str, ToolHandler], timeout_seconds: float | None = None
) -> dict[str, str]:
    """Run the handler of every tool call of ``run`` (each as a Prefect task) and collect the outputs.

    Args:
        run: The run, in ``requires_action``.
        handlers: Function name to callable (or Prefect task); it gets the model's arguments unchanged.
        timeout_seconds: How long each handler may run (the task's ``timeout_seconds``).

    Raises:
        ToolCallError: A function has no handler, its arguments are not JSON, or its handler raised.
    """
    return {
        call.id: call_tool(run, call.function.name, call.function.arguments, handlers, timeout_seconds)
        for call in run.tool_calls
    }


class _ToolAnswers:
    """Answers a run in ``requires_action``: each tool call by its handler (a Prefect task), then the outputs
    (noted for the run's card)."""

    def __init__(self, api: RunsApi, handlers: Mapping[str, ToolHandler], stream: bool, hooks: RunHooks) -> None:
        self.api = api
        self.handlers = handlers
        self.stream = stream
        self.hooks = hooks

    def __call__(self, job: Run, follower: JobFollower[Run]) -> tuple[Run | None, Reader[Run] | None]:
        outputs = answer_tool_calls(job, self.handlers, max(follower.remaining, 0.001))
        self.hooks.answered(job, outputs)
        get_logger().info("Submitting %d tool output(s) to run %s", len(outputs), job.id)
        return STEPS.run("Submit OpenAI tool outputs", lambda: self.api.submit_tool_outputs(job, outputs, self.stream))


@flow(name="run-assistant", description="Run an OpenAI assistant to completion; cancel the run on any other path.")
def run_assistant(
    credentials: OpenAICredentials | str,
    assistant_id: str,
    messages: list[str | dict[str, Any]] | None = None,
    thread_id: str | None = None,
    max_wait_seconds: float = 600.0,
    tool_handlers: dict[str, ToolHandler] | None = None,
    stream: bool = True,
    cancel_wait_seconds: float = DEFAULT_CANCEL_WAIT_SECONDS,
    **run_parameters: Any,
) -> Run:
    """Run an assistant on a prompt, follow the run to its end, and return it once completed.

    Nothing waits past ``max_wait_seconds`` (plus the cancel's wait): not the create, the stream before
    its first event, a retry sleep nor a hung request. On every path other than completion (its own
    deadline, the Prefect flow's ``timeout_seconds``, a failing tool, an upstream error, a Prefect
    cancellation or a crash signal) the run is cancelled and awaited, its artifact written with the
    reason, and the flow fails with what really happened. A Prefect retry of the flow finds the run its
    earlier attempt created (same thread, same idempotency key) instead of creating another.

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
        cancel_wait_seconds: How long to wait for a cancel to finish (0: send it, do not wait).
        **run_parameters: Any other *create run* parameter (model, instructions, tools, metadata, ...).

    Returns:
        The completed run.

    Raises:
        RunFailed: The run failed (``run.last_error`` says why).
        RunIncomplete: The run hit a token limit.
        RunExpired: The run expired.
        RunCancelled: The run was cancelled by someone else.
        ToolCallError: A tool call could not be answered; the run was cancelled.
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
    if cancel_wait_seconds < 0:
        raise ValueError(f"cancel_wait_seconds must be 0 or more, got {cancel_wait_seconds}")
    if thread_id is not None:
        check_id("thread_id", thread_id)
    handlers = dict(tool_handlers or {})
    creds = resolve_credentials(credentials)
    params = CreateRunParams(
        assistant_id=assistant_id, additional_messages=_message_params(messages) or None, **run_parameters
    )
    key = logical_key("run")
    with_idempotency_key(params, key)  # room for the key in metadata: checked before anything is created
    deadline = time.monotonic() + max_wait_seconds
    earlier = find_intent(key)
    with creds.get_client() as client:
        api = RunsApi(client)
        with deadline_scope(deadline):  # the thread's create and its retries count against the deadline
            thread = thread_id if thread_id is not None else thread_for(client, earlier, CreateThreadParams())
        fresh = thread_id is None and (earlier is None or not earlier.parent_id)
        extras = ArtifactExtras(prompt=_prompt_of(messages), deadline_seconds=max_wait_seconds, sum_flow_usage=True)
        hooks = RunHooks(max_wait_seconds, reply=lambda run: read_reply(client, run.thread_id, run.id), extras=extras)
        try:
            return run_job(
                api,
                RunSpec(thread, params, key, reattach=earlier is not None),
                key=key,
                parent_id=thread,
                max_wait_seconds=max(deadline - time.monotonic(), 0.001),
                cancel_wait_seconds=cancel_wait_seconds,
                stream=stream,
                hooks=hooks,
                on_action=_ToolAnswers(api, handlers, stream, hooks),
                steps=STEPS,
            )
        except OpenAIRunsError as error:
            if fresh and not hooks.jobs_created and refused_outright(error):  # only the empty thread exists
                client.discard_thread(thread)
            raise


@flow(name="run-assistant-fan-out", description="Run one assistant on many prompts at once; fail fast.")
def run_assistant_fan_out(
    credentials: OpenAICredentials | str,
    assistant_id: str,
    prompts: list[str],
    max_wait_seconds: float = 600.0,
    fail_fast: bool = True,
    idempotency_key_prefix: str | None = None,
    concurrency: int = DEFAULT_CREATE_CONCURRENCY,
    **run_parameters: Any,
) -> list[Run]:
    """Start one run per prompt (each on its own thread) and follow them all from one event loop.

    The runs are created ``concurrency`` at once; if one create fails (or the flow is interrupted
    meanwhile), the runs already created are cancelled and the error goes on. When one run does not
    complete and ``fail_fast`` is set, every sibling still active is cancelled. With
    ``idempotency_key_prefix``, the runs' keys derive from it and the prompt's rank, not from this flow
    run: another flow run with the same prefix re-attaches to them instead of creating others.

    Example:
        ```python
        runs = run_assistant_fan_out("openai", "asst_abc", prompts=["a", "b", "c"], max_wait_seconds=600)
        ```
    """
    if not prompts:
        raise ValueError("prompts must hold at least one prompt")
    runs = create_threads_and_runs(
        credentials,
        assistant_id,
        prompts,
        concurrency,
        idempotency_key_prefix=idempotency_key_prefix,
        **run_parameters,
    )
    return wait_for_runs(credentials, runs, max_wait_seconds=max_wait_seconds, fail_fast=fail_fast)


# Background responses (see _responses_flows), batches (see _batches_flows) and the fleet fan-out (see
# _fleet), here so that every flow is in one module.
from prefect_openai_runs._batches_flows import BatchRunResult, run_batch  # noqa: E402
from prefect_openai_runs._fleet import run_assistant_fleet  # noqa: E402
from prefect_openai_runs._responses_flows import run_response  # noqa: E402

__all__ = [
    "BatchRunResult",
    "answer_tool_calls",
    "cancel_orphaned_runs",
    "run_assistant",
    "run_assistant_fan_out",
    "run_assistant_fleet",
    "run_batch",
    "run_response",
]
