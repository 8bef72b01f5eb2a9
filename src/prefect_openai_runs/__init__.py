"""prefect-openai-runs: drive OpenAI Assistants runs from Prefect 3, safely.

Create a run, follow it to its end, and cancel it when the pipeline's deadline passes or something
fails, so that no run is left burning tokens and every outcome is visible in the Prefect UI.
"""

__version__ = "0.1.0"

from prefect_openai_runs.blocks import OpenAICredentials
from prefect_openai_runs.client import IDEMPOTENCY_METADATA_KEY, AsyncRunsClient, RunsClient
from prefect_openai_runs.exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    OpenAIRunsError,
    RunCancelled,
    RunExpired,
    RunFailed,
    RunIncomplete,
    RunOutcomeError,
    RunTimedOut,
    ToolCallError,
)
from prefect_openai_runs.jobs import OpenAIAssistantJobRun, OpenAIAssistantRun
from prefect_openai_runs.models import Run, RunStatus
from prefect_openai_runs.retry import RetryPolicy

__all__ = [
    "IDEMPOTENCY_METADATA_KEY",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncRunsClient",
    "OpenAIAssistantJobRun",
    "OpenAIAssistantRun",
    "OpenAICredentials",
    "OpenAIRunsError",
    "RetryPolicy",
    "Run",
    "RunCancelled",
    "RunExpired",
    "RunFailed",
    "RunIncomplete",
    "RunOutcomeError",
    "RunStatus",
    "RunTimedOut",
    "RunsClient",
    "ToolCallError",
    "__version__",
]
