"""Prefect tasks that create, follow, cancel and answer OpenAI runs.

Every task takes the :class:`~prefect_openai_runs.blocks.OpenAICredentials` block or the name of a saved
one, logs with the run logger, and never caches (a cached poll would never see a new status). Every run
a task creates is logged and recorded on the Prefect server at once, and its intent (thread and
idempotency key) before the create is sent, so it can always be found and cancelled; a Prefect retry of
the same task finds the run its earlier attempt created instead of creating another. The tasks are
synchronous and work in sync and async flows alike; :func:`wait_for_runs` follows many runs from one
event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client

from prefect_openai_runs._create_many import create_runs
from prefect_openai_runs._intents import Intent, find_intent, find_intents
from prefect_openai_runs._lifecycle._async._runs import AsyncRunsApi
from prefect_openai_runs._lifecycle._fanout import FanOut, follow_many
from prefect_openai_runs._lifecycle._follower import (
    DEFAULT_CANCEL_WAIT_SECONDS,
    JobFollower,
    PollSchedule,
    StatusChange,
)
from prefect_openai_runs._lifecycle._hooks import RunHooks, flush_fan_out
from prefect_openai_runs._lifecycle._keys import derived_key, logical_key
from prefect_openai_runs._lifecycle._kinds import JobRef
from prefect_openai_runs._lifecycle._outcome import cancel_reason
from prefect_openai_runs._lifecycle._run_kind import RUN
from prefect_openai_runs._lifecycle._sync._driver import end_job, start_job, wait_job
from prefect_openai_runs._lifecycle._sync._runs import RunsApi, RunSpec
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import RunRef, run_view, write_fan_out_summary
from prefect_openai_runs._run_sync import run_coroutine
from prefect_openai_runs.blocks import OpenAICredentials, resolve_credentials
from prefect_openai_runs.client import RunsClient
from prefect_openai_runs.client._operations import refused_outright, with_idempotency_key
from prefect_openai_runs.client._params import split_thread_and_run
from prefect_openai_runs.exceptions import OpenAIRunsError
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
DEFAULT_CREATE_CONCURRENCY = 50
"""How many creates :func:`create_threads_and_runs` keeps in flight at once."""
IN_FLIGHT_CREATES_WAIT_SECONDS = 15.0
"""How long an interrupted :func:`create_threads_and_runs` waits for its creates in flight to end, so that
the runs they make are cancelled with the others."""
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


def create_recorded_run(
    client: RunsClient, thread_id: str, params: CreateRunParams, key: str, earlier: Intent | None
) -> Run:
    """Create a run tagged with ``key``, recording the intent first and the run at once; after an
    ambiguous failure the run is looked up by its key before the error is raised. When an ``earlier``
    attempt recorded its intent, the run it created (active or completed) is returned instead."""
    with_idempotency_key(params, key)  # room for the key in metadata: checked before anything is sent
    run, _ = start_job(
        RunsApi(client),
        RunSpec(thread_id, params, key, reattach=earlier is not None),
        key=key,
        parent_id=thread_id,
        stream=False,
        hooks=RunHooks(progress=False),
    )
    return run


@task(name="Create OpenAI run", cache_policy=NO_CACHE)
def create_run(
    credentials: Credentials,
    thread_id: str,
    assistant_id: str,
    messages: Sequence[MessageInput] | None = None,
    **run_parameters: Any,
) -> Run:
    """Create a run of an assistant on an existing thread.

    The parameters are validated before any request is sent. The run is tagged with an idempotency key
    derived from this task run, so a retried create (by the client, or by a Prefect retry of this task)
    never leaves two runs; its intent is recorded before the create is sent and its ids at once.

    Args:
        credentials: The credentials block, or the name of a saved one.
        thread_id: The thread to run on.
        assistant_id: The assistant to run.
        messages: Messages added to the thread with the run (strings are user messages).
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
    key = logical_key("run")
    with resolve_credentials(credentials).get_client() as client:
        return create_recorded_run(client, thread_id, params, key, find_intent(key))


def thread_for(client: RunsClient, earlier: Intent | None, thread: CreateThreadParams) -> str:
    """The thread a run goes on: the one its ``earlier`` attempt recorded, else a new one."""
    if earlier is not None and earlier.parent_id:
        get_logger().info("Retrying on thread %s, where an earlier attempt created its run", earlier.parent_id)
        return earlier.parent_id
    return client.create_thread(thread).id


@contextmanager
def discarded_if_refused(client: RunsClient, thread_id: str, fresh: bool) -> Iterator[None]:
    """Within the block, a run is created on ``thread_id``; when the server refuses it outright and the
    thread was made for it (``fresh``), the empty thread is deleted (best effort) before the error goes on."""
    try:
        yield
    except OpenAIRunsError as error:
        if fresh and refused_outright(error):
            client.discard_thread(thread_id)
        raise


@task(name="Create OpenAI thread and run", cache_policy=NO_CACHE)
def create_thread_and_run(
    credentials: Credentials,
    assistant_id: str,
    messages: Sequence[MessageInput] | None = None,
    idempotency_key: str | None = None,
    **run_parameters: Any,
) -> Run:
    """Create a thread and a run on it that brings ``messages`` (so a retry never makes two runs).

    A Prefect retry of this task reuses the thread its earlier attempt created and finds the run there;
    so does any later call with the same ``idempotency_key`` (another flow run re-running a lost chunk of
    a fleet fan-out re-attaches to the run instead of creating another).

    Args:
        credentials: The credentials block, or the name of a saved one.
        assistant_id: The assistant to run.
        messages: The thread's messages (strings are user messages).
        idempotency_key: The create's idempotency key (default: derived from this task run).
        **run_parameters: Any other *create run* parameter.

    Example:
        ```python
        run = create_thread_and_run("openai", "asst_abc", messages=["What changed in v2?"])
        ```
    """
    thread_part, run_part = split_thread_and_run(
        CreateThreadAndRunParams(
            assistant_id=assistant_id, thread=CreateThreadParams(messages=_messages(messages)), **run_parameters
        ),
        {},
    )
    key = idempotency_key or logical_key("run")
    with_idempotency_key(run_part, key)  # before the thread exists
    earlier = find_intent(key, always=idempotency_key is not None)
    with resolve_credentials(credentials).get_client() as client:
        thread = thread_for(client, earlier, thread_part)
        with discarded_if_refused(client, thread, fresh=earlier is None or not earlier.parent_id):
            return create_recorded_run(client, thread, run_part, key, earlier)


@task(name="Create OpenAI threads and runs", cache_policy=NO_CACHE)
def create_threads_and_runs(
    credentials: Credentials,
    assistant_id: str,
    prompts: Sequence[MessageInput],
    concurrency: int = DEFAULT_CREATE_CONCURRENCY,
    cancel_wait_seconds: float = DEFAULT_CANCEL_WAIT_SECONDS,
    idempotency_key_prefix: str | None = None,
    **run_parameters: Any,
) -> list[Run]:
    """Create one run per prompt, each on its own new thread, ``concurrency`` at once, all or nothing.

    Every prompt's parameters are checked before any request. Each create records its intent first and
    its run at once. If a create fails (a refused key, a ``retry-after`` longer than allowed, ...) or the
    task is interrupted (a flow timeout, a cancellation, a crash signal), no further create starts and
    every run already created is cancelled before the error goes on.

    Args:
        credentials: The credentials block, or the name of a saved one.
        assistant_id: The assistant to run.
        prompts: One user message (a string or a message dict) per run.
        concurrency: How many creates are in flight at once.
        cancel_wait_seconds: How long to wait for each cancel after a failure.
        idempotency_key_prefix: Derive the runs' keys from it and the prompt's rank (default: from this task
            run): another flow run with the same prefix re-attaches to the runs instead of creating others.
        **run_parameters: Any other *create run* parameter, the same for every run.

    Returns:
        The runs, in the order of the prompts.

    Example:
        ```python
        runs = create_threads_and_runs("openai", "asst_abc", ["a", "b", "c"], concurrency=20)
        ```
    """
    if isinstance(prompts, str | Mapping):
        raise TypeError("prompts must be a list of prompts (strings or message dicts), not a single prompt")
    if concurrency < 1:
        raise ValueError(f"concurrency must be 1 or more, got {concurrency}")
    params = [
        CreateRunParams(assistant_id=assistant_id, additional_messages=_messages([prompt]), **run_parameters)
        for prompt in prompts
    ]
    if idempotency_key_prefix:
        keys = [derived_key(idempotency_key_prefix, index) for index in range(len(params))]
    else:
        keys = [logical_key("run") for _ in params]
    for one, key in zip(params, keys, strict=True):
        with_idempotency_key(one, key)  # room for the key in metadata: checked before anything is created
    earlier = find_intents(keys, always=idempotency_key_prefix is not None)
    creds = resolve_credentials(credentials)
    created: list[Run] = []
    stopped = threading.Event()

    finished = threading.Event()

    async def create_all() -> list[Run]:
        try:
            async with creds.get_async_client() as client, get_client() as prefect:
                return await create_runs(client, prefect, params, keys, concurrency, created, stopped, earlier)
        finally:
            finished.set()

    try:
        return run_coroutine(create_all()) or []
    except BaseException as exc:
        stopped.set()
        # Interrupted (a flow timeout, a signal), the creates go on in Prefect's event loop: the ones in
        # flight may still make runs. Wait for them, bounded, so that those runs are cancelled too.
        if not finished.wait(IN_FLIGHT_CREATES_WAIT_SECONDS):
            get_logger().warning(
                "Creates still in flight after %gs: a run they make is found by its recorded intent "
                "(guard hooks, cancel_orphaned_runs)",
                IN_FLIGHT_CREATES_WAIT_SECONDS,
            )
        if created:
            reason = f"{cancel_reason(exc)} (while creating {len(params)} runs)"
            get_logger().warning("Cancelling the %d run(s) created before the failure: %s", len(created), reason)
            cancel_runs(creds, [RunRef(r.thread_id, r.id) for r in list(created)], reason, cancel_wait_seconds)
        raise


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
    cancel_wait_seconds: float = DEFAULT_CANCEL_WAIT_SECONDS,
) -> Run:
    """Wait until a run is terminal or needs action, and return it.

    Each status change is logged once with the elapsed time and emitted as a Prefect event; a progress
    artifact shows elapsed time against the deadline. Polls follow the server's ``openai-poll-after-ms``
    hint when sent, else :class:`~prefect_openai_runs.PollSchedule`; no sleep or request ends past the
    deadline. A run that ends gets its run artifact. If the wait is interrupted (the flow's timeout, a
    cancellation, a crash signal), the run is cancelled before the interruption goes on.

    Args:
        credentials: The credentials block, or the name of a saved one.
        thread_id: The run's thread.
        run_id: The run.
        max_wait_seconds: The deadline.
        cancel_on_timeout: Cancel the run (and wait for it) when the deadline passes.
        poll_schedule: Waits between polls when the server gives no hint.
        cancel_wait_seconds: How long to wait for a cancel to finish (0: send it, do not wait).

    Returns:
        The run, terminal or ``requires_action``.

    Raises:
        RunTimedOut: The deadline passed; carries the last run (cancelled, unless told not to).
        RunOutcomeError: The run ended otherwise than completed (``RunFailed``, ...).

    Example:
        ```python
        run = wait_for_run("openai", run.thread_id, run.id, max_wait_seconds=120)
        ```
    """
    hooks = RunHooks(max_wait_seconds)
    follower: JobFollower[Run] = JobFollower(
        RUN,
        JobRef(RUN.name, run_id, thread_id),
        max_wait_seconds,
        schedule=poll_schedule or PollSchedule(),
        on_change=hooks.changed,
        on_tick=hooks.tick,
    )
    with resolve_credentials(credentials).get_client() as client:
        api = RunsApi(client)
        hooks.reply = lambda run: read_reply(client, run.thread_id, run.id)
        return wait_job(
            api,
            follower,
            cancel_on_timeout=cancel_on_timeout,
            cancel_wait_seconds=cancel_wait_seconds,
            hooks=hooks,
        )


@task(name="Cancel OpenAI run", cache_policy=NO_CACHE)
def cancel_run(
    credentials: Credentials,
    thread_id: str,
    run_id: str,
    reason: str = "cancelled on request",
    wait_seconds: float = DEFAULT_CANCEL_WAIT_SECONDS,
) -> Run:
    """Cancel a run and wait (at most ``wait_seconds``) until it is ``cancelled`` or otherwise terminal.

    Safe in every state and idempotent: a run that already ended is returned unchanged (the API's 400
    *Cannot cancel run with status ...* is not an error here). A cancel the server did not honour (the
    run completed anyway) is logged as a warning and written in the run artifact, not hidden.

    Example:
        ```python
        run = cancel_run("openai", "thread_abc", "run_abc", reason="nightly window closed")
        ```
    """
    follower: JobFollower[Run] = JobFollower(RUN, JobRef(RUN.name, run_id, thread_id), max(wait_seconds, 1.0))
    with resolve_credentials(credentials).get_client() as client:
        hooks = RunHooks(progress=False, reply=lambda run: read_reply(client, run.thread_id, run.id))
        follower.on_change = hooks.changed
        ending = end_job(RunsApi(client), follower, None, wait_seconds, hooks, reason)
    return ending.job


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


def read_reply(client: RunsClient, thread_id: str, run_id: str) -> str:
    """The reply text of a run, through an open sync client."""
    messages = client.list_messages(thread_id, run_id=run_id, order="asc", limit=100)
    return "\n\n".join(m.text for m in messages if m.role == "assistant" and m.text)


class _FanOutHooks(RunHooks):
    """Run hooks for a fan-out: no progress artifact per run, and nothing recorded once the task was
    interrupted (the interruption cancels the runs and records why; a late "ended cancelled" from the
    following loop, still alive on its own thread, must not overwrite that)."""

    def __init__(self, stopped: threading.Event) -> None:
        super().__init__(progress=False, flush_on_end=False)  # the task flushes once all have ended
        self._stopped = stopped

    def changed(self, change: StatusChange, job: Run) -> None:
        if not self._stopped.is_set():
            super().changed(change, job)

    def ended(self, job: Run, timeline: list[StatusChange], reason: str) -> None:
        if not self._stopped.is_set():
            super().ended(job, timeline, reason)


@task(name="Wait for OpenAI runs", cache_policy=NO_CACHE)
def wait_for_runs(
    credentials: Credentials,
    runs: Sequence[Run | tuple[str, str]],
    max_wait_seconds: float = 600.0,
    fail_fast: bool = True,
    cancel_wait_seconds: float = DEFAULT_CANCEL_WAIT_SECONDS,
) -> list[Run]:
    """Follow many runs at once, in one event loop, and return them when all have ended.

    With ``fail_fast`` (the default), the first run that does not complete stops the wait and every
    sibling still active is cancelled (and awaited) before the task fails. At the deadline, every run
    still active is cancelled. A run that waits for tool outputs is reported as such (this task cannot
    answer it) and cancelled; its siblings go on unless ``fail_fast``. Each run gets its run artifact as
    soon as it ends.

    Args:
        credentials: The credentials block, or the name of a saved one.
        runs: Runs, or ``(thread_id, run_id)`` pairs.
        max_wait_seconds: The deadline for all of them.
        fail_fast: Cancel the others as soon as one fails.
        cancel_wait_seconds: How long to wait for each cancel to finish.

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
    refs = [
        JobRef(RUN.name, r.id, r.thread_id) if isinstance(r, Run) else JobRef(RUN.name, r[1], r[0]) for r in runs
    ]
    creds = resolve_credentials(credentials)
    interrupted = threading.Event()

    async def follow_all() -> FanOut[Run]:
        async with creds.get_async_client() as client:
            return await follow_many(
                AsyncRunsApi(client),
                refs,
                max_wait_seconds,
                fail_fast=fail_fast,
                cancel_wait_seconds=cancel_wait_seconds,
                hooks_for=lambda ref: _FanOutHooks(interrupted),
            )

    try:
        fan: FanOut[Run] | None = run_coroutine(follow_all())
    except BaseException as exc:
        # A signal or a flow timeout lands here, not in the loop that follows the runs (which may go on,
        # on its own thread): cancel them all and record why, with nothing from that loop written after.
        interrupted.set()
        cancel_runs(creds, [RunRef(r.parent_id or "", r.id) for r in refs], cancel_reason(exc), cancel_wait_seconds)
        raise
    if fan is None:
        raise RuntimeError("following the runs returned nothing")
    ended = [f for f in fan.followers if f.job is not None]
    write_fan_out_summary([run_view(f.job) for f in ended if f.job is not None], [f.timeline for f in ended])
    flush_fan_out()  # the records written from the event loop, on the server before the task goes on
    if fan.failure is not None:
        get_logger().error("Waiting for %d runs failed: %s", len(refs), fan.failure)
        raise fan.failure
    return [f.job for f in fan.followers if f.job is not None]


# Background responses (see _responses_tasks) and batches (see _batches_tasks), here so that every task is
# in one module.
from prefect_openai_runs._batches_tasks import (  # noqa: E402
    cancel_batch,
    create_batch,
    download_batch_results,
    get_batch,
    upload_batch_file,
    wait_for_batch,
)
from prefect_openai_runs._responses_tasks import (  # noqa: E402
    cancel_response,
    create_background_response,
    get_response,
    wait_for_response,
    wait_for_responses,
)

__all__ = [
    "cancel_batch",
    "cancel_response",
    "cancel_run",
    "create_background_response",
    "create_batch",
    "create_run",
    "create_thread_and_run",
    "create_threads_and_runs",
    "download_batch_results",
    "get_batch",
    "get_response",
    "get_run",
    "get_run_output",
    "read_reply",
    "submit_tool_outputs",
    "upload_batch_file",
    "wait_for_batch",
    "wait_for_response",
    "wait_for_responses",
    "wait_for_run",
    "wait_for_runs",
]
