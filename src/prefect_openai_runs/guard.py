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
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
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

from prefect_openai_runs._intents import INTENT_CLOCK_MARGIN_SECONDS, Intent, recorded_intents
from prefect_openai_runs._lifecycle._async._batches import AsyncBatchesApi
from prefect_openai_runs._lifecycle._async._driver import Ending, end_job
from prefect_openai_runs._lifecycle._async._responses import AsyncResponsesApi
from prefect_openai_runs._lifecycle._async._runs import AsyncRunsApi
from prefect_openai_runs._lifecycle._batch_hooks import batch_view
from prefect_openai_runs._lifecycle._batch_kind import BATCH
from prefect_openai_runs._lifecycle._follower import DEFAULT_CANCEL_WAIT_SECONDS as CANCEL_WAIT
from prefect_openai_runs._lifecycle._follower import JobFollower, StatusChange
from prefect_openai_runs._lifecycle._hooks import PrefectJobHooks
from prefect_openai_runs._lifecycle._kinds import JobRef, ref_of
from prefect_openai_runs._lifecycle._outcome import CancelOutcome, CancelResult, cancel_reason
from prefect_openai_runs._lifecycle._response_hooks import response_view
from prefect_openai_runs._lifecycle._response_kind import RESPONSE
from prefect_openai_runs._lifecycle._run_kind import RUN
from prefect_openai_runs._logging import get_logger, logging_to_flow_run
from prefect_openai_runs._recording import JobView, RunRef, current_flow_run_id, registered_jobs, run_view
from prefect_openai_runs._run_sync import run_coroutine
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


@dataclass(frozen=True)
class KindSupport:
    """What the guard needs to end the jobs of one kind, from nothing but the credentials.

    Attributes:
        api: Opens the kind's API adapter (an async context manager).
        view: What the recording layer shows of a job of this kind.
        find: Finds the job a recorded intent created, by its idempotency key (``None``: the API cannot).
    """

    api: Callable[[OpenAICredentials], AbstractAsyncContextManager[Any]]
    view: Callable[[Any], JobView]
    find: Callable[[OpenAICredentials, Intent], JobRef | None] | None = None


@asynccontextmanager
async def _runs_api(credentials: OpenAICredentials) -> AsyncIterator[AsyncRunsApi]:
    async with credentials.get_async_client() as client:
        yield AsyncRunsApi(client)


def _find_run(credentials: OpenAICredentials, intent: Intent) -> JobRef | None:
    if not intent.parent_id:
        return None
    with credentials.get_client() as client:
        run = client.find_run(intent.parent_id, intent.key)
    return None if run is None else RUN.ref(run)


@asynccontextmanager
async def _responses_api(credentials: OpenAICredentials) -> AsyncIterator[AsyncResponsesApi]:
    async with credentials.get_async_responses_client() as client:
        yield AsyncResponsesApi(client)


@asynccontextmanager
async def _batches_api(credentials: OpenAICredentials) -> AsyncIterator[AsyncBatchesApi]:
    async with credentials.get_async_batches_client() as client:
        yield AsyncBatchesApi(client)


def _find_batch(credentials: OpenAICredentials, intent: Intent) -> JobRef | None:
    with credentials.get_batches_client() as client:
        not_before = None if intent.at is None else intent.at - INTENT_CLOCK_MARGIN_SECONDS
        batch = client.find_batch(intent.key, not_before=not_before)
    return None if batch is None else JobRef(BATCH.name, batch.id)


KINDS: dict[str, KindSupport] = {
    RUN.name: KindSupport(_runs_api, run_view, _find_run),
    RESPONSE.name: KindSupport(_responses_api, response_view),  # no find: a response cannot be found by key
    BATCH.name: KindSupport(_batches_api, batch_view, _find_batch),
}
"""Every kind of job the guard hooks and the orphan sweep can end, by name."""


def cancel_jobs(
    credentials: OpenAICredentials | str,
    refs: Sequence[JobRef],
    reason: str,
    wait_seconds: float = CANCEL_WAIT,
    flow_run_id: UUID | None = None,
) -> list[CancelResult[Any]]:
    """Cancel the given jobs (of any kind) concurrently, safe in every state; log and record each cancel.

    Each job is ended the one way every job ends (see ``_lifecycle``): jobs that had already ended are
    left as they are (their artifact is not rewritten); a job that no longer exists is logged as a
    warning.

    Args:
        credentials: The credentials block, or the name of a saved one.
        refs: The jobs.
        reason: Why, for the logs, the events and the artifacts.
        wait_seconds: How long to wait for each cancel to finish.
        flow_run_id: The flow run the records belong to (default: the current one).

    Returns:
        One result per job that was cancelled or found already ended.
    """
    if not refs:
        return []
    creds = resolve_credentials(credentials)
    by_kind: dict[str, list[JobRef]] = {}
    for ref in refs:
        by_kind.setdefault(ref.kind, []).append(ref)

    async def end_kind(support: KindSupport, kind_refs: list[JobRef]) -> list[Ending[Any] | BaseException]:
        async with support.api(creds) as api:
            hooks = _GuardHooks(support.view, flow_run_id)
            followers = [
                JobFollower(api.kind, ref, max(wait_seconds, 1.0), on_change=hooks.changed) for ref in kind_refs
            ]
            return list(
                await asyncio.gather(
                    *(end_job(api, f, None, wait_seconds, hooks, reason) for f in followers), return_exceptions=True
                )
            )

    async def end_all() -> list[tuple[JobRef, Ending[Any] | BaseException]]:
        known = {kind: group for kind, group in by_kind.items() if kind in KINDS}
        for kind in set(by_kind) - set(known):
            get_logger().error("Cannot cancel OpenAI %s jobs: unknown kind (%s)", kind, reason)
        done = await asyncio.gather(*(end_kind(KINDS[kind], group) for kind, group in known.items()))
        pairs: list[tuple[JobRef, Ending[Any] | BaseException]] = []
        for group, outcomes in zip(known.values(), done, strict=True):
            pairs += zip(group, outcomes, strict=True)
        return pairs

    results: list[CancelResult[Any]] = []
    ended: list[tuple[JobRef, Ending[Any] | BaseException]] = run_coroutine(end_all()) or []
    for ref, outcome in ended:
        if isinstance(outcome, NotFoundError):
            get_logger().warning("OpenAI %s no longer exists (%s): %s", ref.describe(), reason, outcome)
        elif isinstance(outcome, BaseException):
            get_logger().error("Could not cancel OpenAI %s (%s): %s", ref.describe(), reason, outcome)
        elif outcome.cancel is not None:
            results.append(outcome.cancel)
        else:
            results.append(CancelResult(CancelOutcome.ALREADY_ENDED, outcome.job))
    return results


def cancel_runs(
    credentials: OpenAICredentials | str,
    refs: Sequence[RunRef],
    reason: str,
    wait_seconds: float = CANCEL_WAIT,
    flow_run_id: UUID | None = None,
) -> list[CancelResult[Run]]:
    """Cancel the given runs concurrently: :func:`cancel_jobs` for runs addressed by thread and run id."""
    return cancel_jobs(credentials, [ref.to_job() for ref in refs], reason, wait_seconds, flow_run_id)


class _GuardHooks(PrefectJobHooks[Any]):
    """Records what a hook or the sweep ends, in the flow run it belongs to (which may not be the current
    one); a job that had already ended keeps its artifact as it was."""

    def __init__(self, view: Callable[[Any], JobView], flow_run_id: UUID | None) -> None:
        super().__init__(view, progress=False, flow_run_id=flow_run_id or current_flow_run_id(), record_intents=False)

    def ended(self, job: Any, timeline: list[StatusChange], reason: str) -> None:
        if len(timeline) > 1 or self.view(job).status not in _TERMINAL_STATUSES:  # else: it had already ended
            super().ended(job, timeline, reason)


_TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})


def cancel_flow_run_openai_runs(
    credentials: OpenAICredentials | str,
    flow_run_id: UUID,
    reason: str,
    wait_seconds: float = CANCEL_WAIT,
) -> list[CancelResult[Any]]:
    """Cancel every job (run, response, batch) our tasks and flows created in a flow run that is still active.

    The jobs are read back from the Prefect server (the job artifacts), so this works from any process;
    so are the intents of creates whose answer never came (their jobs are found by idempotency key, where
    the API allows).

    Args:
        credentials: The credentials block, or the name of a saved one.
        flow_run_id: The flow run whose jobs to cancel.
        reason: Why, for the logs and the artifacts.
        wait_seconds: How long to wait for each cancel to finish.

    Returns:
        One result per recorded job that could be reached.
    """
    refs = registered_jobs(flow_run_id)
    known = {ref.id for ref in refs}
    refs += [ref for ref in _jobs_of_intents(credentials, flow_run_id) if ref.id not in known]
    return cancel_jobs(credentials, refs, reason, wait_seconds, flow_run_id)


def _jobs_of_intents(credentials: OpenAICredentials | str, flow_run_id: UUID) -> list[JobRef]:
    """The jobs the flow run's recorded intents created, found by idempotency key (where the API allows)."""
    intents = recorded_intents(flow_run_id)
    if not intents:
        return []
    creds = resolve_credentials(credentials)
    found: list[JobRef] = []
    for intent in intents:
        support = KINDS.get(intent.kind)
        if support is None or support.find is None:
            continue
        try:
            ref = support.find(creds, intent)
        except OpenAIRunsError as exc:
            get_logger().error("Could not look for the %s of intent %s: %s", intent.kind, intent.key, exc)
            continue
        if ref is not None:
            found.append(ref)
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
) -> list[JobRef]:
    """Find OpenAI jobs (runs, responses, batches) created by flow runs that crashed, failed or were
    cancelled, and cancel those still active.

    For processes killed too hard to run their hooks (SIGKILL, a lost machine): schedule this flow to
    sweep what they left.

    Returns:
        The jobs that were cancelled.
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
    swept: list[JobRef] = []
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
        swept += [ref_of(r.job) for r in results if r.outcome is not CancelOutcome.ALREADY_ENDED]
    get_logger().info("Cancelled %d orphaned OpenAI run(s) from %d flow run(s)", len(swept), len(flow_runs))
    return swept


__all__ = [
    "KINDS",
    "CancelRunsHooks",
    "KindSupport",
    "cancel_flow_run_openai_runs",
    "cancel_jobs",
    "cancel_orphaned_runs",
    "cancel_runs",
    "cancel_runs_hook",
    "cancel_runs_hooks",
    "cancel_runs_on_error",
]
