"""Which Prefect flow run and task run the code runs in, if any."""

from __future__ import annotations

from uuid import UUID

from prefect.context import FlowRunContext, TaskRunContext


def current_flow_run_id() -> UUID | None:
    """The id of the flow run we are in, if any."""
    task_ctx = TaskRunContext.get()
    if task_ctx is not None and task_ctx.task_run.flow_run_id is not None:
        return task_ctx.task_run.flow_run_id
    flow_ctx = FlowRunContext.get()
    return flow_ctx.flow_run.id if flow_ctx is not None and flow_ctx.flow_run is not None else None


def current_task_run_id() -> UUID | None:
    """The id of the task run we are in, if any."""
    task_ctx = TaskRunContext.get()
    return task_ctx.task_run.id if task_ctx is not None else None


def linked_runs(flow_run_id: UUID | None) -> tuple[UUID | None, UUID | None]:
    """The flow run to link a record to (the current one unless given) and the task run, when in it."""
    current = current_flow_run_id()
    chosen = flow_run_id or current
    return chosen, (current_task_run_id() if chosen is not None and chosen == current else None)
