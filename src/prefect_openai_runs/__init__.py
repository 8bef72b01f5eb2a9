"""prefect-openai-runs: drive OpenAI's long-running jobs from Prefect 3, safely.

Create a job (an Assistants run or a background response; batches through the same core), follow it
to its end, and cancel it when the pipeline's deadline passes or something fails, so that no job is left
burning tokens and every outcome is visible in the Prefect UI.
"""

from prefect_openai_runs._lifecycle._follower import PollSchedule, StatusChange
from prefect_openai_runs._lifecycle._kinds import JobRef
from prefect_openai_runs._lifecycle._outcome import CancelOutcome, CancelResult
from prefect_openai_runs._recording import RunRef
from prefect_openai_runs._version import __version__
from prefect_openai_runs.blocks import OpenAICredentials
from prefect_openai_runs.client import (
    IDEMPOTENCY_METADATA_KEY,
    AsyncResponsesClient,
    AsyncRunsClient,
    ResponsesClient,
    RunsClient,
)
from prefect_openai_runs.exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    JobCancelled,
    JobExpired,
    JobFailed,
    JobGone,
    JobIncomplete,
    JobOutcomeError,
    JobTimedOut,
    OpenAIRunsError,
    ResponseMayExistError,
    RunCancelled,
    RunExpired,
    RunFailed,
    RunIncomplete,
    RunOutcomeError,
    RunTimedOut,
    ToolCallError,
    UntrustedCertificateError,
)
from prefect_openai_runs.jobs import OpenAIAssistantJobRun, OpenAIAssistantRun
from prefect_openai_runs.models import Response, ResponseStatus, Run, RunStatus
from prefect_openai_runs.retry import RetryPolicy

__all__ = [
    "IDEMPOTENCY_METADATA_KEY",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncResponsesClient",
    "AsyncRunsClient",
    "CancelOutcome",
    "CancelResult",
    "JobCancelled",
    "JobExpired",
    "JobFailed",
    "JobGone",
    "JobIncomplete",
    "JobOutcomeError",
    "JobRef",
    "JobTimedOut",
    "OpenAIAssistantJobRun",
    "OpenAIAssistantRun",
    "OpenAICredentials",
    "OpenAIRunsError",
    "PollSchedule",
    "Response",
    "ResponseMayExistError",
    "ResponseStatus",
    "ResponsesClient",
    "RetryPolicy",
    "Run",
    "RunCancelled",
    "RunExpired",
    "RunFailed",
    "RunIncomplete",
    "RunOutcomeError",
    "RunRef",
    "RunStatus",
    "RunTimedOut",
    "RunsClient",
    "StatusChange",
    "ToolCallError",
    "UntrustedCertificateError",
    "__version__",
]
