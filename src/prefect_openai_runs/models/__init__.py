"""Pydantic v2 models of every object the runs endpoints return, and of the requests we send."""

from prefect_openai_runs.models.errors import ErrorBody, ErrorDetail
from prefect_openai_runs.models.events import StreamEvent
from prefect_openai_runs.models.pages import ListPage
from prefect_openai_runs.models.requests import (
    CreateMessageParams,
    CreateRunParams,
    CreateThreadAndRunParams,
    CreateThreadParams,
    ModifyRunParams,
    SubmitToolOutputsParams,
    ToolOutput,
    check_metadata,
)
from prefect_openai_runs.models.runs import (
    FunctionCall,
    IncompleteDetails,
    LastError,
    RequiredAction,
    Run,
    ToolCall,
    Usage,
)
from prefect_openai_runs.models.status import TERMINAL_STATUSES, RunStatus
from prefect_openai_runs.models.steps import RunStep
from prefect_openai_runs.models.threads import Message, MessageContent, Thread
from prefect_openai_runs.models.tools import (
    CodeInterpreterTool,
    FileSearchRankingOptions,
    FileSearchSettings,
    FileSearchTool,
    FunctionDefinition,
    FunctionTool,
    NamedToolChoice,
    ResponseFormatJsonObject,
    ResponseFormatJsonSchema,
    ResponseFormatText,
    TruncationStrategy,
    UnknownTool,
)

__all__ = [
    "TERMINAL_STATUSES",
    "CodeInterpreterTool",
    "CreateMessageParams",
    "CreateRunParams",
    "CreateThreadAndRunParams",
    "CreateThreadParams",
    "ErrorBody",
    "ErrorDetail",
    "FileSearchRankingOptions",
    "FileSearchSettings",
    "FileSearchTool",
    "FunctionCall",
    "FunctionDefinition",
    "FunctionTool",
    "IncompleteDetails",
    "LastError",
    "ListPage",
    "Message",
    "MessageContent",
    "ModifyRunParams",
    "NamedToolChoice",
    "RequiredAction",
    "ResponseFormatJsonObject",
    "ResponseFormatJsonSchema",
    "ResponseFormatText",
    "Run",
    "RunStatus",
    "RunStep",
    "StreamEvent",
    "SubmitToolOutputsParams",
    "Thread",
    "ToolCall",
    "ToolOutput",
    "TruncationStrategy",
    "UnknownTool",
    "Usage",
    "check_metadata",
]
