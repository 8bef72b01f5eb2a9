"""The library's logger: Prefect's run logger inside a flow or task run (or a hook's flow run), a
standard logger elsewhere."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

LIBRARY_LOGGER_NAME = "prefect_openai_runs"

_HOOK_LOGGER: ContextVar[logging.Logger | logging.LoggerAdapter[Any] | None] = ContextVar(
    "prefect_openai_runs_hook_logger", default=None
)


def get_logger() -> logging.Logger | logging.LoggerAdapter[Any]:
    """The run logger of the current Prefect flow or task run, the flow run's logger inside a hook (see
    :func:`logging_to_flow_run`), or ``prefect_openai_runs`` outside any.

    Inside a run the records reach the Prefect UI; outside they go wherever the application's logging
    is configured.
    """
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.logging import get_run_logger

    if TaskRunContext.get() is not None or FlowRunContext.get() is not None:
        return get_run_logger()
    hook_logger = _HOOK_LOGGER.get()
    if hook_logger is not None:
        return hook_logger
    return logging.getLogger(LIBRARY_LOGGER_NAME)


@contextmanager
def logging_to_flow_run(flow_run: Any, flow: Any = None) -> Iterator[None]:
    """Within the block, the library logs to ``flow_run``'s logs in the Prefect UI (for hooks and the
    orphan sweep, which run outside the flow run's context)."""
    from prefect.logging.loggers import flow_run_logger

    token = _HOOK_LOGGER.set(flow_run_logger(flow_run, flow))
    try:
        yield
    finally:
        _HOOK_LOGGER.reset(token)
