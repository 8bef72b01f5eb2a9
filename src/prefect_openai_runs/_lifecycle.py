"""What tasks and flows share: resolving credentials, tracking a followed run in Prefect, starting a
run (streamed or not) without ever losing it, and naming why a run was cancelled."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from prefect.context import FlowRunContext
from prefect.exceptions import TerminationSignal

from prefect_openai_runs._following import CancelOutcome, CancelResult, StatusChange
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import ProgressReporter, emit_status_event, record_created
from prefect_openai_runs.blocks import OpenAICredentials
from prefect_openai_runs.client import RunsClient
from prefect_openai_runs.exceptions import (
    APIConnectionError,
    InternalServerError,
    InvalidResponseError,
    RunCancelled,
    RunExpired,
    RunFailed,
    RunIncomplete,
    RunOutcomeError,
    RunTimedOut,
    StreamError,
    ToolCallError,
)
from prefect_openai_runs.models import CreateRunParams, Run, RunStatus, StreamEvent


def resolve_credentials(credentials: OpenAICredentials | str) -> OpenAICredentials:
    """The block itself, or the saved block of that name."""
    if isinstance(credentials, OpenAICredentials):
        return credentials
    if isinstance(credentials, str) and credentials:
        loaded = OpenAICredentials.load(credentials, _sync=True)  # type: ignore[call-arg]
        if not isinstance(loaded, OpenAICredentials):
            raise TypeError(f"block {credentials!r} is a {type(loaded).__name__}, not OpenAICredentials")
        return loaded
    raise TypeError(
        f"credentials must be an OpenAICredentials block or the name of a saved one, got {type(credentials).__name__}"
    )


class RunTracker:
    """Reports a followed run to Prefect: one log line and one event per status change, and progress."""

    def __init__(self, run_id: str, max_wait_seconds: float, progress: bool = True) -> None:
        self.run_id = run_id
        self.progress = ProgressReporter(run_id, max_wait_seconds) if progress else None

    def on_change(self, change: StatusChange, run: Run) -> None:
        """Log and emit the change (the follower's callback)."""
        get_logger().info("OpenAI run %s is %s after %.2fs", run.id, change.status, change.elapsed)
        emit_status_event(change, run)
        self.tick(change.elapsed, force=True)

    def tick(self, elapsed: float, force: bool = False) -> None:
        """Update the progress artifact."""
        if self.progress is not None:
            self.progress.update(elapsed, force=force)


def start_run(
    client: RunsClient, thread_id: str, params: CreateRunParams, stream: bool, key: str
) -> tuple[Run, Iterator[StreamEvent] | None]:
    """Create a run, streamed when asked, and record it at once.

    With ``stream``, the events are read up to the first run event, and the rest of the stream is
    returned to follow. If the stream fails before that, the run is looked up by its idempotency key
    (the request may have created it) and, only if it does not exist, created without streaming.
    If anything interrupts this (a signal, a timeout), :meth:`RunsClient.find_run` with the same
    ``key`` finds the run.
    """
    events: Iterator[StreamEvent] | None = None
    run: Run | None = None
    if stream:
        events = client.stream_run(thread_id, params, idempotency_key=key)
        try:
            for event in events:
                if event.run is not None:
                    run = event.run
                    break
        except (StreamError, APIConnectionError, InvalidResponseError, InternalServerError) as exc:
            get_logger().warning("Streaming the new run failed (%s); looking it up and polling instead", exc)
        if run is None:  # the stream failed, or ended without a run event: the run may exist all the same
            events = None
            run = client.find_run(thread_id, key)
    if run is None:
        events = None
        run = client.create_run(thread_id, params, idempotency_key=key)
    record_created(run)
    return run, events


def cancel_reason(exc: BaseException | None) -> str:
    """Why a followed run is being cancelled, in words, from what ended the following."""
    if exc is None:
        return "cancelled on request"
    if isinstance(exc, RunTimedOut):
        return "deadline: max_wait_seconds passed"
    if isinstance(exc, TimeoutError) or (type(exc).__name__ == "CancelledError" and _flow_timeout_passed()):
        return "flow timeout: the Prefect flow's timeout_seconds fired"
    if isinstance(exc, ToolCallError):
        return f"tool call failed: {exc.reason}"
    if isinstance(exc, TerminationSignal):
        return "cancellation request: the flow run's process was told to stop"
    if type(exc).__name__ in {"CancelledError", "Abort"}:
        return "cancellation request: Prefect cancelled the flow run"
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return "crash: the process was interrupted"
    if isinstance(exc, RunOutcomeError):
        return f"run ended {exc.run.status}"
    return f"upstream failure: {type(exc).__name__}: {exc}"


def _flow_timeout_passed() -> bool:
    """Whether the current flow run has a ``timeout_seconds`` and has run that long.

    Prefect enforces a sync flow's timeout by raising its internal ``CancelledError`` into the flow,
    which becomes a ``TimeoutError`` only after the flow body has exited.
    """
    context = FlowRunContext.get()
    if context is None or context.flow is None or context.flow.timeout_seconds is None:
        return False
    started = context.flow_run.start_time if context.flow_run is not None else None
    if started is None:
        return False
    elapsed = (datetime.now(timezone.utc) - started).total_seconds()
    return elapsed >= context.flow.timeout_seconds - 0.05


def describe_cancel(result: CancelResult) -> str:
    """A sentence on how a cancel ended, which never hides a cancel the server did not honour."""
    run = result.run
    if result.outcome is CancelOutcome.CANCELLED:
        return f"run {run.id} is cancelled"
    if result.outcome is CancelOutcome.ALREADY_ENDED:
        return f"run {run.id} had already ended {run.status}; nothing to cancel"
    if result.outcome is CancelOutcome.NOT_HONOURED:
        return f"the server did not honour the cancel: run {run.id} ended {run.status} anyway"
    return f"run {run.id} is still {run.status} after waiting for the cancel to finish"


def log_cancel(result: CancelResult, reason: str) -> None:
    """Log a cancel's outcome: info when it worked or was not needed, warning otherwise."""
    logger = get_logger()
    ok = result.outcome in {CancelOutcome.CANCELLED, CancelOutcome.ALREADY_ENDED}
    (logger.info if ok else logger.warning)("Cancel (%s): %s", reason, describe_cancel(result))


def outcome_error(run: Run, reason: str | None = None) -> RunOutcomeError | None:
    """The exception for a run that ended without completing, or ``None`` for a completed run."""
    status = run.status
    if status is RunStatus.COMPLETED:
        return None
    if status is RunStatus.FAILED:
        detail = f"{run.last_error.code}: {run.last_error.message}" if run.last_error else "no error given"
        return RunFailed(run, reason or detail)
    if status is RunStatus.INCOMPLETE:
        why = run.incomplete_details.reason if run.incomplete_details else None
        return RunIncomplete(run, reason or f"incomplete ({why or 'no reason given'})")
    if status is RunStatus.EXPIRED:
        return RunExpired(run, reason or "expired before it finished (expires_at passed)")
    if status is RunStatus.CANCELLED:
        return RunCancelled(run, reason or "cancelled")
    return RunTimedOut(run, reason or f"stopped following while {status}")


def json_ready(value: Any) -> str:
    """A tool handler's return value as the string output the API wants."""
    return value if isinstance(value, str) else json.dumps(value, default=str)
