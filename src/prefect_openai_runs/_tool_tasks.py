"""Tool handlers as Prefect tasks, the same way for every kind of job (a run's tool calls, a response's
function calls): the model's arguments checked to be a JSON object, passed as ONE dict (so an argument named
like a Prefect call option, ``return_state`` or ``wait_for``, reaches the handler as is), the handler bounded
by what is left of the deadline, and every failure a :class:`~prefect_openai_runs.exceptions.ToolCallError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

from prefect_openai_runs.exceptions import ToolCallError

ToolHandler = Callable[..., Any]
"""A tool handler: a callable (or a Prefect task) taking the model's arguments as keyword arguments."""


def as_task(name: str, handler: ToolHandler, timeout_seconds: float | None) -> Task[..., Any]:
    """The handler as a Prefect task named after the tool, taking the model's arguments as ONE dict: an
    argument named like a Prefect call option (``return_state``, ``wait_for``) reaches the handler as is.
    It may run at most ``timeout_seconds`` (what is left of the deadline). A user's task keeps its name,
    retries and a shorter timeout of its own."""
    call = handler.fn if isinstance(handler, Task) else handler

    def run_tool(arguments: dict[str, Any]) -> Any:
        return call(**arguments)

    options: dict[str, Any] = {"name": f"tool {name}", "cache_policy": NO_CACHE, "timeout_seconds": timeout_seconds}
    if isinstance(handler, Task):  # keep what the user's task says (its name, retries, a shorter timeout)
        own = handler.timeout_seconds
        options.update(name=handler.name, retries=handler.retries, retry_delay_seconds=handler.retry_delay_seconds)
        if own is not None and (timeout_seconds is None or own < timeout_seconds):
            options["timeout_seconds"] = own
    return task(**options)(run_tool)


def call_tool(
    job: Any,
    name: str,
    raw_arguments: str | None,
    handlers: Mapping[str, ToolHandler],
    timeout_seconds: float | None,
) -> str:
    """Answer one tool call of ``job``: its handler run as a Prefect task on the parsed arguments.

    Args:
        job: The job that asked (carried by the error).
        name: The function it called.
        raw_arguments: The arguments, as the model wrote them (JSON text; empty means none).
        handlers: Function name to callable (or Prefect task).
        timeout_seconds: How long the handler may run (the task's ``timeout_seconds``).

    Returns:
        The output: the handler's string, or its value as JSON.

    Raises:
        ToolCallError: The function has no handler, its arguments are not a JSON object, or its handler
            raised (or ran out of time).
    """
    handler = handlers.get(name)
    if handler is None:
        known = ", ".join(sorted(handlers)) or "none"
        reason = f"the model called function {name!r}, which has no tool handler (handlers: {known})"
        raise ToolCallError(job, reason, name)
    try:
        arguments = json.loads(raw_arguments or "{}")
    except ValueError as exc:
        raise ToolCallError(job, f"function {name!r} was called with arguments that are not JSON", name) from exc
    if not isinstance(arguments, dict):
        raise ToolCallError(job, f"function {name!r} was called with arguments that are not a JSON object", name)
    try:
        value = as_task(name, handler, timeout_seconds)(arguments)
    except Exception as exc:
        raise ToolCallError(job, f"the tool handler of {name!r} raised {type(exc).__name__}: {exc}", name) from exc
    return value if isinstance(value, str) else json.dumps(value, default=str)
