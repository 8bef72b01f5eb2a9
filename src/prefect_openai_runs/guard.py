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

from prefect_openai_runs._following import CancelOutcome, CancelResult, cancel_async
from prefect_openai_runs._lifecycle import cancel_reason, describe_cancel, log_cancel, resolve_credentials
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import RunRef, current_flow_run_id, registered_runs, write_run_artifact
from prefect_openai_runs.blocks import OpenAICredentials
from prefect_openai_runs.exceptions import NotFoundError, OpenAIRunsError

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
    wait_seconds: float = 30.0,
    flow_run_id: UUID | None = None,
) -> list[CancelResult]:
    """Cancel the given runs concurrently (safe in every state), log and record each cancel.

    Runs that had already ended are left as they are (their artifact is not rewritten); a run that
    no longer exists is logged as a warning.

    Args:
        credentials: The credentials block, or the name of a saved one.
        refs: The runs.
        reason: Why, for the logs and the run artifacts.
        wait_seconds: How long to wait for each cancel to finish.
        flow_run_id: The flow run the artifacts belong to (default: the current one).

    Returns:
        One result per run that could be reached.
    """
    if not refs:
        return []
    creds = resolve_credentials(credentials)

    async def cancel_all() -> list[CancelResult | BaseException]:
        async with creds.get_async_client() as client:
            return await asyncio.gather(
                *(cancel_async(client, ref.thread_id, ref.run_id, wait_seconds) for ref in refs),
                return_exceptions=True,
            )

    outcomes: list[CancelResult | BaseException] = run_coro_as_sync(cancel_all()) or []
    results: list[CancelResult] = []
    for ref, outcome in zip(refs, outcomes, strict=True):
        if isinstance(outcome, NotFoundError):
            get_logger().warning("OpenAI run %s no longer exists (%s): %s", ref.run_id, reason, outcome)
            continue
        if isinstance(outcome, BaseException):
            get_logger().error("Could not cancel OpenAI run %s (%s): %s", ref.run_id, reason, outcome)
            continue
        results.append(outcome)
        if outcome.outcome is not CancelOutcome.ALREADY_ENDED:
            log_cancel(outcome, reason)
            write_run_artifact(outcome.run, [], f"{reason}; {describe_cancel(outcome)}", flow_run_id=flow_run_id)
    return results


def cancel_flow_run_openai_runs(
    credentials: OpenAICredentials | str, flow_run_id: UUID, reason: str, wait_seconds: float = 30.0
) -> list[CancelResult]:
    """Cancel every run our tasks and flows created in a flow run that is still active.

    The runs are read back from the Prefect server (the run artifacts), so this works from any process.

    Args:
        credentials: The credentials block, or the name of a saved one.
        flow_run_id: The flow run whose runs to cancel.
        reason: Why, for the logs and the run artifacts.
        wait_seconds: How long to wait for each cancel to finish.

    Returns:
        One result per recorded run that could be reached.
    """
    return cancel_runs(credentials, registered_runs(flow_run_id), reason, wait_seconds, flow_run_id)


def cancel_runs_hook(credentials: OpenAICredentials | str, wait_seconds: float = 30.0) -> FlowHook:
    """A flow hook (``on_failure``, ``on_cancellation``, ``on_crashed``) that cancels the flow run's OpenAI runs.

    The reason logged and written in each run artifact follows the flow run's state.
    """

    def hook(flow: Any, flow_run: FlowRun, state: Any) -> None:
        reason = _REASONS_BY_STATE.get(state.type, f"flow run ended {state.type.value}")
        cancel_flow_run_openai_runs(credentials, flow_run.id, reason, wait_seconds)

    return hook


class CancelRunsHooks(TypedDict):
    """The ``@flow`` keyword arguments :func:`cancel_runs_hooks` returns."""

    on_failure: list[FlowHook]
    on_cancellation: list[FlowHook]
    on_crashed: list[FlowHook]


def cancel_runs_hooks(credentials: OpenAICredentials | str, wait_seconds: float = 30.0) -> CancelRunsHooks:
    """The three hooks as ``@flow`` keyword arguments: ``@flow(**cancel_runs_hooks("openai"))``."""
    hook = cancel_runs_hook(credentials, wait_seconds)
    return CancelRunsHooks(on_failure=[hook], on_cancellation=[hook], on_crashed=[hook])


@contextmanager
def cancel_runs_on_error(credentials: OpenAICredentials | str, wait_seconds: float = 30.0) -> Iterator[None]:
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
    credentials: OpenAICredentials | str, lookback_hours: float = 24.0, wait_seconds: float = 30.0
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
        swept += [RunRef(r.run.thread_id, r.run.id) for r in results if r.outcome is not CancelOutcome.ALREADY_ENDED]
    get_logger().info("Cancelled %d orphaned OpenAI run(s) from %d flow run(s)", len(swept), len(flow_runs))
    return swept
