"""Prefect events about jobs: ``openai.<kind>.created`` and ``openai.<kind>.<status>``.

The resource is ``openai.<kind>.<id>``, with the job's ids as labels; related resources are the flow
run and, inside one, the task run. The payload holds the status, the model, the token usage, the
elapsed time and, for a job that was cancelled, why (in words, and as a kind automations can match:
``deadline``, ``flow-timeout``, ``user-cancellation``, ``upstream-failure``, ``crash``, ``sweep``).

Prefect's ``emit_event`` only queues the event for a background worker, so a Prefect server that does
not answer never holds up the caller; and no failure to emit ever reaches it.
"""

from __future__ import annotations

from typing import Any, overload
from uuid import UUID

from prefect.events import emit_event

from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording._context import current_flow_run_id, current_task_run_id
from prefect_openai_runs._recording._markdown import shorten
from prefect_openai_runs._recording._view import JobView, TimelineEntry, run_view
from prefect_openai_runs.models import Run

REASON_KINDS = (
    ("deadline", "deadline"),
    ("flow timeout", "flow-timeout"),
    ("cancellation request", "user-cancellation"),
    ("cancelled on request", "user-cancellation"),
    ("upstream failure", "upstream-failure"),
    ("tool call failed", "upstream-failure"),
    ("run ended", "upstream-failure"),
    ("crash", "crash"),
    ("orphaned", "sweep"),
)
"""How a reason starts -> the kind of reason (the reasons are written by ``_lifecycle.cancel_reason`` and the guard)."""
REASON_CHARS = 500


def reason_kind(reason: str | None) -> str | None:
    """The kind of a cancel reason (``deadline``, ``flow-timeout``, ``user-cancellation``, ...), or ``None``."""
    if not reason:
        return None
    start = reason.strip().lower()
    return next((kind for prefix, kind in REASON_KINDS if start.startswith(prefix)), "other")


def emit_job_event(
    view: JobView,
    name: str,
    reason: str | None = None,
    elapsed: float | None = None,
    flow_run_id: UUID | None = None,
) -> None:
    """Emit ``openai.<kind>.<name>`` about the job, related to the flow run (the current one unless given).

    With no flow run (given or current), nothing is emitted: there is no run to relate the event to,
    and emitting would start Prefect's ephemeral server in a plain script. Pass ``flow_run_id`` from a
    hook, where there is no run context.
    """
    current = current_flow_run_id()
    flow_run_id = flow_run_id or current
    if flow_run_id is None:
        return
    related = [{"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"}]
    task_run_id = current_task_run_id() if flow_run_id == current else None
    if task_run_id is not None:
        related.append({"prefect.resource.id": f"prefect.task-run.{task_run_id}", "prefect.resource.role": "task-run"})
    why = reason_kind(reason)
    resource = {
        "prefect.resource.id": f"openai.{view.kind}.{view.id}",
        "prefect.resource.name": view.id,
        "openai.kind": view.kind,
        **({"openai.model": view.model} if view.model else {}),
        **({"openai.reason": why} if why else {}),
        **dict(view.labels),
    }
    payload: dict[str, Any] = {
        **view.summary,
        "kind": view.kind,
        "id": view.id,
        "parent_id": view.parent_id,
        "status": view.status,
        "model": view.model,
        "usage": dict(view.usage) if view.usage is not None else None,
        "total_tokens": view.total_tokens,
        "reason": shorten(reason, REASON_CHARS) if reason else None,
        "reason_kind": why,
    }
    if elapsed is not None:
        payload["elapsed_seconds"] = round(elapsed, 3)
    try:
        emit_event(event=f"openai.{view.kind}.{name}", resource=resource, related=related, payload=payload)
    except Exception as exc:  # never let an event stop the job's following or its cancel
        get_logger().warning("Could not emit openai.%s.%s for %s: %s", view.kind, name, view.label, exc)


@overload
def emit_status_event(
    view: JobView, change: TimelineEntry, reason: str | None = None, flow_run_id: UUID | None = None
) -> None: ...


@overload
def emit_status_event(view: TimelineEntry, change: Run) -> None: ...


def emit_status_event(
    view: JobView | TimelineEntry,
    change: TimelineEntry | Run,
    reason: str | None = None,
    flow_run_id: UUID | None = None,
) -> None:
    """Emit ``openai.<kind>.<status>`` for a status change (see :func:`emit_job_event`).

    Also takes the form callers used before job kinds: ``emit_status_event(change, run)``.
    """
    if isinstance(view, JobView) and not isinstance(change, Run):
        emit_job_event(view, str(change.status), reason, change.elapsed, flow_run_id)
    elif isinstance(change, Run) and not isinstance(view, JobView):
        emit_job_event(run_view(change), str(view.status), reason, view.elapsed, flow_run_id)
    else:
        raise TypeError("emit_status_event takes (JobView, change) or (change, Run)")
