"""The run object and the parts it is made of."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from prefect_openai_runs.models._base import APIObject
from prefect_openai_runs.models.status import RunStatus
from prefect_openai_runs.models.tools import ResponseFormat, ToolChoice, TruncationStrategy
from prefect_openai_runs.models.tools import Tool as RunTool


class FunctionCall(APIObject):
    """The function the model asks the caller to run, with its JSON-encoded arguments."""

    name: str
    arguments: str


class ToolCall(APIObject):
    """One tool call a run waits for; its ``id`` is the ``tool_call_id`` the output must name."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SubmitToolOutputsAction(APIObject):
    """The tool calls to answer."""

    tool_calls: list[ToolCall]


class RequiredAction(APIObject):
    """What a run in ``requires_action`` needs: always ``submit_tool_outputs`` today."""

    type: Literal["submit_tool_outputs"] = "submit_tool_outputs"
    submit_tool_outputs: SubmitToolOutputsAction


class LastError(APIObject):
    """Why a run failed: ``server_error``, ``rate_limit_exceeded`` or ``invalid_prompt`` (or a newer code)."""

    code: str
    message: str


class IncompleteDetails(APIObject):
    """Why a run ended ``incomplete``: the token limit that was reached."""

    reason: str | None = None


class Usage(APIObject):
    """Token usage of a terminal run."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Run(APIObject):
    """A run on a thread: every field of the spec's ``RunObject``, with its nullability.

    Example:
        ```python
        run = Run.model_validate(response_json)
        if run.status.is_terminal:
            print(run.status, run.usage)
        ```
    """

    id: str
    object: Literal["thread.run"] = "thread.run"
    created_at: int
    thread_id: str
    assistant_id: str
    status: RunStatus
    required_action: RequiredAction | None = None
    last_error: LastError | None = None
    expires_at: int | None = None
    started_at: int | None = None
    cancelled_at: int | None = None
    failed_at: int | None = None
    completed_at: int | None = None
    incomplete_details: IncompleteDetails | None = None
    model: str = ""
    instructions: str | None = None
    tools: list[RunTool] = Field(default_factory=list)
    metadata: dict[str, str] | None = None
    usage: Usage | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls the run waits for (empty unless ``requires_action``)."""
        if self.required_action is None:
            return []
        return list(self.required_action.submit_tool_outputs.tool_calls)

    def summary(self) -> dict[str, Any]:
        """A short, secret-free dict for logs: ids, status, model and why it ended."""
        return {
            "run_id": self.id,
            "thread_id": self.thread_id,
            "assistant_id": self.assistant_id,
            "status": str(self.status),
            "model": self.model,
            "last_error": self.last_error.model_dump() if self.last_error else None,
            "incomplete_details": self.incomplete_details.model_dump() if self.incomplete_details else None,
        }
