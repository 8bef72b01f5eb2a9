"""Turning what a caller passes (a params object or keyword options) into the runs API's request models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect_openai_runs.models import (
    CreateRunParams,
    CreateThreadAndRunParams,
    CreateThreadParams,
    SubmitToolOutputsParams,
    ToolOutput,
)


def _one_of(params: object, options: Mapping[str, Any]) -> None:
    if params is not None and options:
        raise TypeError(f"pass either params or keyword options, not both (got {sorted(options)})")


def run_params(params: CreateRunParams | None, options: Mapping[str, Any]) -> CreateRunParams:
    """The create-run parameters from a params object or keyword options (not both)."""
    _one_of(params, options)
    return params if params is not None else CreateRunParams(**options)


def thread_params(params: CreateThreadParams | None, options: Mapping[str, Any]) -> CreateThreadParams:
    """The create-thread parameters from a params object or keyword options."""
    _one_of(params, options)
    return params if params is not None else CreateThreadParams(**options)


def split_thread_and_run(
    params: CreateThreadAndRunParams | None, options: Mapping[str, Any]
) -> tuple[CreateThreadParams, CreateRunParams]:
    """Split *create thread and run* into an empty thread and a run that brings the messages.

    Creating a thread is not idempotent and a thread cannot be found again, so a create whose answer
    was lost would leave a second thread holding the user's messages. An empty thread costs nothing,
    and the messages travel with the run as ``additional_messages``: the run's create is the one safe to
    retry (see :data:`~prefect_openai_runs.client.IDEMPOTENCY_METADATA_KEY`).
    """
    _one_of(params, options)
    full = params if params is not None else CreateThreadAndRunParams(**options)
    thread = full.thread or CreateThreadParams()
    messages = list(thread.messages or [])
    thread = thread.model_copy(update={"messages": None})
    if full.tool_resources is not None:
        thread = thread.model_copy(update={"tool_resources": full.tool_resources})
    run_fields = full.model_dump(exclude={"thread", "tool_resources", "stream"}, exclude_none=True)
    if messages:
        run_fields["additional_messages"] = [m.model_dump(exclude_none=True) for m in messages]
    return thread, CreateRunParams.model_validate(run_fields)


def tool_outputs_params(
    outputs: SubmitToolOutputsParams | list[ToolOutput] | Mapping[str, str],
) -> SubmitToolOutputsParams:
    """Tool outputs from a params object, a list of :class:`ToolOutput`, or ``{tool_call_id: output}``."""
    if isinstance(outputs, SubmitToolOutputsParams):
        return outputs
    if isinstance(outputs, Mapping):
        return SubmitToolOutputsParams(tool_outputs=[ToolOutput(tool_call_id=k, output=v) for k, v in outputs.items()])
    return SubmitToolOutputsParams(tool_outputs=list(outputs))
