"""Request bodies, validated client-side with the spec's limits before anything is sent.

A bad parameter raises :class:`pydantic.ValidationError` (a ``ValueError``) whose text names the field
and says what to fix, for example ``metadata: at most 16 keys are allowed, got 17``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from prefect_openai_runs.models._base import RequestModel
from prefect_openai_runs.models.tools import (
    RequestTool,
    ResponseFormat,
    ToolChoice,
    TruncationStrategy,
)

METADATA_MAX_KEYS = 16
METADATA_MAX_KEY_LENGTH = 64
METADATA_MAX_VALUE_LENGTH = 512
MAX_TOOLS = 20


def check_metadata(value: dict[str, str]) -> dict[str, str]:
    """Check the spec's metadata limits: at most 16 keys, keys up to 64 and values up to 512 characters.

    Args:
        value: The metadata mapping.

    Returns:
        The mapping, unchanged.

    Raises:
        ValueError: Saying which limit is exceeded and by which key.
    """
    if len(value) > METADATA_MAX_KEYS:
        raise ValueError(f"at most {METADATA_MAX_KEYS} keys are allowed, got {len(value)}")
    for key, item in value.items():
        if len(key) > METADATA_MAX_KEY_LENGTH:
            raise ValueError(
                f"key {key[:20]!r}... is {len(key)} characters; keys are at most {METADATA_MAX_KEY_LENGTH}"
            )
        if len(item) > METADATA_MAX_VALUE_LENGTH:
            raise ValueError(
                f"value of key {key!r} is {len(item)} characters; values are at most {METADATA_MAX_VALUE_LENGTH}"
            )
    return value


Metadata = Annotated[dict[str, str], AfterValidator(check_metadata)]
"""Up to 16 string pairs, keys at most 64 and values at most 512 characters."""

NonEmptyId = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")]
"""An object id: non-empty, letters, digits, underscores and dashes (no slashes or spaces)."""


class CreateMessageParams(RequestModel):
    """A message to add to a thread."""

    role: Literal["user", "assistant"] = "user"
    content: str | list[dict[str, Any]] = Field(min_length=1)
    attachments: list[dict[str, Any]] | None = None
    metadata: Metadata | None = None


class CreateThreadParams(RequestModel):
    """A new thread, optionally seeded with messages."""

    messages: list[CreateMessageParams] | None = None
    tool_resources: dict[str, Any] | None = None
    metadata: Metadata | None = None


class _RunOptions(RequestModel):
    """Options shared by *create run* and *create thread and run*."""

    assistant_id: NonEmptyId
    model: str | None = None
    instructions: str | None = None
    tools: list[RequestTool] | None = Field(default=None, max_length=MAX_TOOLS)
    metadata: Metadata | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stream: bool | None = None
    max_prompt_tokens: int | None = Field(default=None, ge=256)
    max_completion_tokens: int | None = Field(default=None, ge=256)
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None

    def to_body(self) -> dict[str, Any]:
        """The JSON body to send: only the fields that were set, by their API names."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class CreateRunParams(_RunOptions):
    """The body of *create run* (``POST /threads/{thread_id}/runs``).

    Example:
        ```python
        CreateRunParams(assistant_id="asst_abc", temperature=0.2, metadata={"pipeline": "nightly"})
        ```
    """

    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    additional_instructions: str | None = None
    additional_messages: list[CreateMessageParams] | None = None


class CreateThreadAndRunParams(_RunOptions):
    """The body of *create thread and run* (``POST /threads/runs``)."""

    thread: CreateThreadParams | None = None
    tool_resources: dict[str, Any] | None = None


class ToolOutput(RequestModel):
    """The output of one tool call, answering ``tool_call_id``."""

    tool_call_id: NonEmptyId
    output: str


class SubmitToolOutputsParams(RequestModel):
    """The body of *submit tool outputs*: every pending call answered in one request."""

    tool_outputs: list[ToolOutput] = Field(min_length=1)
    stream: bool | None = None

    def to_body(self) -> dict[str, Any]:
        """The JSON body to send."""
        return self.model_dump(mode="json", exclude_none=True)


class ModifyRunParams(RequestModel):
    """The body of *modify run*: only metadata can change."""

    metadata: Metadata | None = None

    def to_body(self) -> dict[str, Any]:
        """The JSON body to send."""
        return self.model_dump(mode="json", exclude_none=True)
