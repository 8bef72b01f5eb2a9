"""Run steps: what a run did (created a message, called tools)."""

from __future__ import annotations

from typing import Any, Literal

from prefect_openai_runs.models._base import APIObject
from prefect_openai_runs.models.runs import LastError, Usage


class RunStep(APIObject):
    """One step of a run: ``message_creation`` or ``tool_calls``; details kept as the server sent them."""

    id: str
    object: Literal["thread.run.step"] = "thread.run.step"
    created_at: int
    assistant_id: str
    thread_id: str
    run_id: str
    type: str
    status: str
    step_details: dict[str, Any]
    last_error: LastError | None = None
    expired_at: int | None = None
    cancelled_at: int | None = None
    failed_at: int | None = None
    completed_at: int | None = None
    metadata: dict[str, str] | None = None
    usage: Usage | None = None
