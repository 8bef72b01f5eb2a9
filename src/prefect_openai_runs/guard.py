"""Cancelling every run a flow run created when that flow run fails, is cancelled or crashes.

The record of runs lives on the Prefect server (the run artifacts, see
:mod:`prefect_openai_runs._recording`), so these hooks work from another process than the one that
created the runs, as Prefect's ``on_cancellation`` and ``on_crashed`` hooks may.

Example:
    ```python
    from prefect import flow
    from prefect_openai_runs.guard import cancel_runs_hooks
    from prefect_openai_runs.tasks import create_thread_and_run, wait_for_run

    @flow(**cancel_runs_hooks("openai"))
    def nightly_pipeline():
        run = create_thread_and_run("openai", "asst_abc", ["Summarise the day"])
        load_warehouse()          # if this fails, the run above is cancelled
        wait_for_run("openai", run.thread_id, run.id)
    ```
"""

import asyncio
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, TypedDict
from uuid import UUID

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_openai_runs._intents import recorded_intents
from prefect_openai_runs._lifecycle._async._driver import Ending, end_job
from prefect_openai_runs._lifecycle._async._runs import AsyncRunsApi
from prefect_openai_runs._lifecycle._follower import DEFAULT_CANCEL_WAIT_SECONDS as CANCEL_WAIT
from prefect_openai_runs._lifecycle._follower import JobFollower, StatusChange
from prefect_openai_runs._lifecycle._hooks import RunHooks
from prefect_openai_runs._lifecycle._kinds import JobRef
from prefect_openai_runs._lifecycle._outcome import CancelOutcome, CancelResult, cancel_reason
from prefect_openai_runs._lifecycle._run_kind import RUN
from prefect_openai_runs._logging import get_logger, logging_to_flow_run
from prefect_openai_runs._recording import RunRef, current_flow_run_id, registered_runs
from prefect_openai_runs._responses_guard import cancel_flow_run_responses
from prefect_openai_runs.blocks import OpenAICredentials, resolve_credentials
from prefect_openai_runs.exceptions import NotFoundError, OpenAIRunsError
from prefect_openai_runs.models import Run

FlowHook = Callable[[Any, FlowRun, Any], None]

_REASONS_BY_STATE = {
    StateType.FAILED: "upstream failure: the flow run failed",
    StateType.CANCELLING: "cancellation request: the flow run was cancelled",
    StateType.CANCELLED: "cancellation request: the flow run was cancelled",
    StateType.CRASHED: "crash: the flow run crashed",
}


def cancel_runs(
    credentials: OpenAICredentials | str,
    refs: Sequence[RunRef],
    reason: str,
    wait_seconds: float = CANCEL_WAIT,
    flow_run_id: UUID | None = None,
) -> list[CancelResult[Run]]:
    """Cancel the given runs concurrently (safe in every state), log and record each cancel.

    Each run is ended the one way every job ends (see ``_lifecycle``): runs that had already ended are
    left as they are (their artifact is not rewritten); a run that no longer exists is logged as a
    warning.

    Args:
        credentials: The credentials block, or the name of a saved one.
        refs: The runs.
        reason: Why, for the logs, the events and the run artifacts.
        wait_seconds: How long to wait for each cancel to finish.
        flow_run_id: The flow run the artifacts belong to (default: the current one).

    Returns:
        One result per run that was cancelled or found already ended.
    """
    if not refs:
        return []
    creds = resolve_credentials(credentials)

    async def end_all() -> list[Ending[Run] | BaseException]:
        async with creds.get_async_client() as client:
            api = AsyncRunsApi(client)
            hooks = _GuardHooks(flow_run_id)
            followers = [
                JobFollower(
                    RUN, JobRef(RUN.name, ref.run_id, ref.thread_id), max(wait_seconds, 1.0), on_change=hooks.changed
                )
                for ref in refs
            ]
            return await asyncio.gather(
                *(end_job(api, f, None, wait_seconds, hooks, reason) for f in followers), return_exceptions=True
            )

    outcomes: list[Ending[Run] | BaseException] = run_coro_as_sync(end_all()) or []
    results: list[CancelResult[Run]] = []
    for ref, outcome in zip(refs, outcomes, strict=True):
        if isinstance(outcome, NotFoundError):
            get_logger().warning("OpenAI run %s no longer exists (%s): %s", ref.run_id, reason, outcome)
        elif isinstance(outcome, BaseException):
            get_logger().error("Could not cancel OpenAI run %s (%s): %s", ref.run_id, reason, outcome)
        elif outcome.cancel is not None:
            results.append(outcome.cancel)
        else:
            results.append(CancelResult(CancelOutcome.ALREADY_ENDED, outcome.job))
    return results


class _GuardHooks(RunHooks):
    """Records what a hook or the sweep ends, in the flow run it belongs to (which may not be the current
    one); a run that had already ended keeps its artifact as it was."""

    def __init__(self, flow_run_id: UUID | None) -> None:
        super().__init__(progress=False, flow_run_id=flow_run_id or current_flow_run_id(), record_intents=False)

    def ended(self, job: Run, timeline: list[StatusChange], reason: str) -> None:
        if len(timeline) > 1 or not job.status.is_terminal:  # one terminal status seen: it had already ended
            super().ended(job, timeline, reason)


def cancel_flow_run_openai_runs(
    credentials: OpenAICredentials | str,
    flow_run_id: UUID,
    reason: str,
    wait_seconds: float = CANCEL_WAIT,
) -> list[CancelResult[Run]]:
    """Cancel every run our tasks and flows created in a flow run that is still active.

    The runs are read back from the Prefect server (the run artifacts), so this works from any process;
    so are the intents of creates whose answer never came (their runs are found by idempotency key).

    Args:
        credentials: The credentials block, or the name of a saved one.
        flow_run_id: The flow run whose runs to cancel.
        reason: Why, for the logs and the run artifacts.
        wait_seconds: How long to wait for each cancel to finish.

    Returns:
        One result per recorded run that could be reached.
    """
    cancel_flow_run_responses(credentials, flow_run_id, reason, wait_seconds)
    refs = registered_runs(flow_run_id)
    known = {ref.run_id for ref in refs}
    refs += [ref for ref in _runs_of_intents(credentials, flow_run_id) if ref.run_id not in known]
    return cancel_runs(credentials, refs, reason, wait_seconds, flow_run_id)


def _runs_of_intents(credentials: OpenAICredentials | str, flow_run_id: UUID) -> list[RunRef]:
    """The runs the flow run's recorded intents created, found on their threads by idempotency key."""
    intents = [i for i in recorded_intents(flow_run_id) if i.kind == RUN.name and i.parent_id]
    if not intents:
        return []
    found: list[RunRef] = []
    with resolve_credentials(credentials).get_client() as client:
        for intent in intents:
            try:
                run = client.find_run(intent.parent_id or "", intent.key)
            except OpenAIRunsError as exc:
                get_logger().error("Could not look for the run of intent %s: %s", intent.key, exc)
                continue
            if run is not None:
                found.append(RunRef(run.thread_id, run.id))
    return found


def cancel_runs_hook(credentials: OpenAICredentials | str, wait_seconds: float = CANCEL_WAIT) -> FlowHook:
    """A flow hook (``on_failure``, ``on_cancellation``, ``on_crashed``) that cancels the flow run's OpenAI runs.

    The reason logged and written in each run artifact follows the flow run's state.
    """

    def cancel_openai_jobs_of_this_flow_run(flow: Any, flow_run: FlowRun, state: Any) -> None:
        reason = _REASONS_BY_STATE.get(state.type, f"flow run ended {state.type.value}")
        with logging_to_flow_run(flow_run, flow):
            get_logger().info("Cancelling the OpenAI jobs of flow run %s (%s)", flow_run.name, reason)
            cancel_flow_run_openai_runs(credentials, flow_run.id, reason, wait_seconds)

    return cancel_openai_jobs_of_this_flow_run


class CancelRunsHooks(TypedDict):
    """The ``@flow`` keyword arguments :func:`cancel_runs_hooks` returns."""

    on_failure: list[FlowHook]
    on_cancellation: list[FlowHook]
    on_crashed: list[FlowHook]


def cancel_runs_hooks(credentials: OpenAICredentials | str, wait_seconds: float = CANCEL_WAIT) -> CancelRunsHooks:
    """The three hooks as ``@flow`` keyword arguments: ``@flow(**cancel_runs_hooks("openai"))``."""
    hook = cancel_runs_hook(credentials, wait_seconds)
    return CancelRunsHooks(on_failure=[hook], on_cancellation=[hook], on_crashed=[hook])


@contextmanager
def cancel_runs_on_error(credentials: OpenAICredentials | str, wait_seconds: float = CANCEL_WAIT) -> Iterator[None]:
    """Inside a flow: if the block raises, cancel every run created in this flow run so far, then re-raise.

    Example:
        ```python
        @flow
        def pipeline():
            with cancel_runs_on_error("openai"):
                run = create_thread_and_run("openai", "asst_abc", ["..."])
                risky_step()
        ```
    """
    try:
        yield
    except BaseException as exc:
        flow_run_id = current_flow_run_id()
        if flow_run_id is not None:
            cancel_flow_run_openai_runs(credentials, flow_run_id, cancel_reason(exc), wait_seconds)
        raise


@flow(name="cancel-orphaned-openai-runs")
def cancel_orphaned_runs(
    credentials: OpenAICredentials | str, lookback_hours: float = 24.0, wait_seconds: float = CANCEL_WAIT
) -> list[RunRef]:
    """Find OpenAI runs created by flow runs that crashed, failed or were cancelled, and cancel those still active.

    For processes killed too hard to run their hooks (SIGKILL, a lost machine): schedule this flow to
    sweep what they left.

    Returns:
        The runs that were cancelled.
    """
    since = datetime.now(timezone.utc) - timedelta(hours=lookback_hours)
    ended = FlowRunFilter(
        start_time=FlowRunFilterStartTime(after_=since),
        state=FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[StateType.CRASHED, StateType.FAILED, StateType.CANCELLED])
        ),
    )
    flow_runs: list[FlowRun] = []
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_flow_runs(flow_run_filter=ended, limit=200, offset=len(flow_runs))
            flow_runs += page
            if len(page) < 200:
                break
    swept: list[RunRef] = []
    for flow_run in flow_runs:
        try:
            results = cancel_flow_run_openai_runs(
                credentials,
                flow_run.id,
                f"orphaned: flow run {flow_run.name} ended without cancelling it",
                wait_seconds,
            )
        except OpenAIRunsError as exc:
            get_logger().error("Could not sweep flow run %s: %s", flow_run.id, exc)
            continue
        swept += [RunRef(r.job.thread_id, r.job.id) for r in results if r.outcome is not CancelOutcome.ALREADY_ENDED]
    get_logger().info("Cancelled %d orphaned OpenAI run(s) from %d flow run(s)", len(swept), len(flow_runs))
    return swept


__all__ = [
    "CancelRunsHooks",
    "cancel_flow_run_openai_runs",
    "cancel_orphaned_runs",
    "cancel_runs",
    "cancel_runs_hook",
    "cancel_runs_hooks",
    "cancel_runs_on_error",
]
