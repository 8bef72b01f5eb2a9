"""The library's logger: Prefect's run logger inside a flow or task run, a standard logger elsewhere."""

from __future__ import annotations

import logging
from typing import Any

LIBRARY_LOGGER_NAME = "prefect_openai_runs"


def get_logger() -> logging.Logger | logging.LoggerAdapter[Any]:
    """The run logger of the current Prefect flow or task run, or ``prefect_openai_runs`` outside one.

    Inside a run the records reach the Prefect UI; outside they go wherever the application's logging
    is configured.
    """
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.logging import get_run_logger

    if TaskRunContext.get() is not None or FlowRunContext.get() is not None:
        return get_run_logger()
    return logging.getLogger(LIBRARY_LOGGER_NAME)
