"""How a job's end is told, without I/O: why it was cancelled, how the cancel went, and the honest outcome.

- :func:`cancel_reason` names what made the pipeline stop caring (its deadline, the flow's timeout, a
  failing tool, a cancellation request, a crash, an upstream failure).
- :class:`CancelResult` says what a cancel did (cancelled, already ended, not honoured, still cancelling).
- :func:`honest_outcome` decides what the caller gets: the job when it completed (even a moment before the
  deadline), else the exception of the family that says what really happened (a job that *failed* just
  before the deadline raises ``JobFailed``, not ``JobTimedOut``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Generic, TypeVar

from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import TerminationSignal

from prefect_openai_runs._lifecycle._kinds import JobKind
from prefect_openai_runs.exceptions import JobOutcomeError, JobTimedOut, ToolCallError

J = TypeVar("J")


class CancelOutcome(str, Enum):
    """How a cancel ended."""

    CANCELLED = "cancelled"
    """The job was active and is now ``cancelled``."""
    ALREADY_ENDED = "already_ended"
    """The job was already terminal; nothing was changed."""
    NOT_HONOURED = "not_honoured"
    """The server accepted the cancel but the job ended otherwise (e.g. ``completed``)."""
    STILL_CANCELLING = "still_cancelling"
    """The job was still active (``cancelling``) when the wait for it ended: the orphan sweep will see it."""
    SENT = "sent"
    """The cancel was sent and not waited for (``cancel_wait_seconds=0``)."""


@dataclass(frozen=True)
class CancelResult(Generic[J]):
    """What cancelling a job did: the outcome and the job's last state.

    Attributes:
        outcome: How the cancel ended.
        job: The job's last state.
    """

    outcome: CancelOutcome
    job: J

    @property
    def run(self) -> J:
        """The job, for runs."""
        return self.job


def cancel_result(kind: JobKind[J], requested: bool, job: J, waited: bool = True) -> CancelResult[J]:
    """Classify a cancel from whether it was accepted (``requested``) and the job's state after it."""
    if not kind.is_terminal(job):
        return CancelResult(CancelOutcome.STILL_CANCELLING if waited else CancelOutcome.SENT, job)
    if not requested:
        return CancelResult(CancelOutcome.ALREADY_ENDED, job)
    if kind.is_cancelled(job):
        return CancelResult(CancelOutcome.CANCELLED, job)
    return CancelResult(CancelOutcome.NOT_HONOURED, job)


def describe_cancel(kind: JobKind[J], result: CancelResult[J]) -> str:
    """A sentence on how a cancel ended, which never hides a cancel the server did not honour."""
    job, ref = result.job, kind.ref(result.job)
    name, status = f"{ref.kind} {ref.id}", kind.status(job)
    if result.outcome is CancelOutcome.CANCELLED:
        return f"{name} is cancelled"
    if result.outcome is CancelOutcome.ALREADY_ENDED:
        return f"{name} had already ended {status}; nothing to cancel"
    if result.outcome is CancelOutcome.NOT_HONOURED:
        return f"the server did not honour the cancel: {name} ended {status} anyway"
    if result.outcome is CancelOutcome.SENT:
        return f"the cancel of {name} was sent (not waited for); it was {status}"
    return f"{name} is still {status} after waiting for the cancel to finish; the orphan sweep will retry"


def cancel_reason(exc: BaseException | None, deadline_passed: bool = False) -> str:
    """Why a followed job is being cancelled, in words, from what ended the following."""
    if exc is None:
        return "cancelled on request"
    if isinstance(exc, JobTimedOut) or (deadline_passed and not isinstance(exc, ToolCallError)):
        return "deadline: max_wait_seconds passed"
    name = type(exc).__name__
    if isinstance(exc, TimeoutError) or name == "CancelledError":
        which = _timeout_that_passed()
        if which is not None:
            return f"{which} timeout: the Prefect {which}'s timeout_seconds fired"
    if isinstance(exc, ToolCallError):
        return f"tool call failed: {exc.reason}"
    if isinstance(exc, TerminationSignal):
        return "cancellation request: the flow run's process was told to stop"
    if name in {"CancelledError", "Abort"}:
        return "cancellation request: Prefect cancelled the flow run"
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return "crash: the process was interrupted"
    if isinstance(exc, JobOutcomeError):
        return f"ended {getattr(exc.job, 'status', '?')}"
    return f"upstream failure: {name}: {exc}"


def _timeout_that_passed() -> str | None:
    """``"task"`` or ``"flow"`` when the current task or flow run has a ``timeout_seconds`` and has run
    that long, else ``None`` (a socket's ``TimeoutError`` is not a Prefect timeout).

    Prefect enforces a sync flow's timeout by raising its internal ``CancelledError`` into the flow,
    which becomes a ``TimeoutError`` only after the flow body has exited.
    """
    now = datetime.now(timezone.utc)
    task_ctx = TaskRunContext.get()
    if task_ctx is not None and task_ctx.task.timeout_seconds is not None:
        started = task_ctx.task_run.start_time
        if started is not None and (now - started).total_seconds() >= task_ctx.task.timeout_seconds - 0.05:
            return "task"
    flow_ctx = FlowRunContext.get()
    if flow_ctx is None or flow_ctx.flow is None or flow_ctx.flow.timeout_seconds is None:
        return None
    started = flow_ctx.flow_run.start_time if flow_ctx.flow_run is not None else None
    if started is None:
        return None
    return "flow" if (now - started).total_seconds() >= flow_ctx.flow.timeout_seconds - 0.05 else None


def honest_outcome(
    kind: JobKind[J], job: J, failure: BaseException | None, reason: str, cancel: CancelResult[J] | None
) -> JobOutcomeError | None:
    """The exception that says how the job really ended, or ``None`` when the caller gets the job.

    A job that completed by itself (even in the last moment before the deadline: the cancel found it
    ended) is returned; one that completed although the server accepted the cancel is not (the pipeline
    had stopped caring: the deadline still says why). One that failed, expired or was cut short raises
    what it really did. One cancelled because
    the deadline passed (or still cancelling then) raises ``JobTimedOut``; because a tool failed,
    ``ToolCallError``. Any other interruption (a flow timeout, a cancellation, an upstream error) is
    re-raised by the caller as it was, so ``None`` here means "no outcome error of its own".
    """
    if kind.is_completed(job) and (cancel is None or cancel.outcome is not CancelOutcome.NOT_HONOURED):
        return None  # it completed by itself (a cancel found it so): the work is done
    deadline = isinstance(failure, JobTimedOut) or (cancel is not None and reason.startswith("deadline"))
    if kind.is_completed(job):  # although the server accepted the cancel
        return JobTimedOut(job, reason) if deadline else None
    terminal_by_itself = kind.is_terminal(job) and not kind.is_cancelled(job)
    if terminal_by_itself:
        return kind.outcome_error(job, reason if cancel is not None or failure is not None else None)
    if isinstance(failure, ToolCallError):
        return ToolCallError(job, failure.reason, failure.function_name)
    if deadline:
        return JobTimedOut(job, reason)
    if failure is None or isinstance(failure, JobOutcomeError):
        return kind.outcome_error(job, reason) or JobTimedOut(job, reason)
    return None
