"""The Responses API in background mode: the response object, its status, its stream events, and the
create request, validated before anything is sent."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from prefect_openai_runs.models._base import APIObject, RequestModel
from prefect_openai_runs.models.errors import ErrorDetail
from prefect_openai_runs.models.requests import Metadata, NonEmptyId
from prefect_openai_runs.models.status import UNKNOWN, unknown_member

Timestamp = int | float
"""A Unix time in seconds (the spec types it ``number``)."""


class ResponseStatus(str, Enum):
    """The status of a response.

    Forward compatible like :class:`~prefect_openai_runs.models.RunStatus`: an unknown value parses
    into a pseudo-member (named ``UNKNOWN``) that is active, never terminal.

    Example:
        ```python
        ResponseStatus("cancelled").is_terminal  # True
        ResponseStatus("paused").is_active  # True: unknown, still followed
        ```
    """

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INCOMPLETE = "incomplete"

    @classmethod
    def _missing_(cls, value: object) -> ResponseStatus | None:
        return unknown_member(cls, value)

    @property
    def is_known(self) -> bool:
        """Whether the status is one of the six the spec lists."""
        return self._name_ != UNKNOWN

    @property
    def is_terminal(self) -> bool:
        """Whether the response is completed, failed, cancelled or incomplete.

        A ``cancelled`` response has been seen to turn ``completed`` later (cancel is best effort), so
        read it once more before recording the end.
        """
        return self in RESPONSE_TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """Whether the response may still change (queued, in progress, or an unknown status)."""
        return not self.is_terminal

    def __str__(self) -> str:
        return str(self.value)


RESPONSE_TERMINAL_STATUSES: frozenset[ResponseStatus] = frozenset(
    {ResponseStatus.COMPLETED, ResponseStatus.FAILED, ResponseStatus.CANCELLED, ResponseStatus.INCOMPLETE}
)
"""The statuses the spec calls terminal."""


class ResponseError(APIObject):
    """Why a response failed: ``server_error``, ``rate_limit_exceeded``, ``invalid_prompt``, ... ."""

    code: str
    message: str


class ResponseIncompleteDetails(APIObject):
    """Why a response ended ``incomplete``: ``max_output_tokens`` or ``content_filter``."""

    reason: str | None = None


class InputTokensDetails(APIObject):
    """The breakdown of the input tokens."""

    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(APIObject):
    """The breakdown of the output tokens."""

    reasoning_tokens: int = 0


class ResponseUsage(APIObject):
    """Token usage of a response."""

    input_tokens: int
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int

    @property
    def cached_tokens(self) -> int:
        """Input tokens read from the prompt cache."""
        return self.input_tokens_details.cached_tokens

    @property
    def reasoning_tokens(self) -> int:
        """Output tokens spent reasoning."""
        return self.output_tokens_details.reasoning_tokens


class ContentPart(APIObject):
    """A part of an output message's content that is not text (a refusal, or a newer kind): kept as sent."""

    type: str


class OutputText(ContentPart):
    """Text the model produced."""

    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[dict[str, Any]] = Field(default_factory=list)
    logprobs: list[dict[str, Any]] | None = None


class OutputItem(APIObject):
    """An item of a response's ``output``; kinds without a model here (reasoning, tool calls of built-in
    tools, ...) are kept with every field they carry."""

    type: str
    id: str | None = None
    status: str | None = None


class OutputMessage(OutputItem):
    """An assistant message."""

    type: Literal["message"] = "message"
    role: str = "assistant"
    content: list[Annotated[OutputText | ContentPart, Field(union_mode="left_to_right")]] = Field(default_factory=list)

    @property
    def text(self) -> str:
        """The message's text parts, concatenated."""
        return "".join(part.text for part in self.content if isinstance(part, OutputText))


class FunctionCallItem(OutputItem):
    """A call of one of the caller's functions; answer it with a ``function_call_output`` input item
    naming ``call_id`` in a follow-up response (``previous_response_id``)."""

    type: Literal["function_call"] = "function_call"
    call_id: str
    name: str
    arguments: str


AnyOutputItem = Annotated[OutputMessage | FunctionCallItem | OutputItem, Field(union_mode="left_to_right")]


class Response(APIObject):
    """A model response: every field of the spec's ``Response``, with its nullability.

    ``output_text`` (an SDK convenience in the spec) is a property computed from ``output``; when a
    server sends the field, ``model_dump()`` still returns it as sent.

    Example:
        ```python
        response = Response.model_validate(body)
        if response.status and response.status.is_terminal:
            print(response.status, response.output_text, response.usage)
        ```
    """

    id: str
    object: Literal["response"] = "response"
    created_at: Timestamp
    status: ResponseStatus | None = None
    completed_at: Timestamp | None = None
    error: ResponseError | None = None
    incomplete_details: ResponseIncompleteDetails | None = None
    instructions: str | list[dict[str, Any]] | None = None
    model: str = ""
    tools: list[dict[str, Any]] = Field(default_factory=list)
    output: list[AnyOutputItem] = Field(default_factory=list)
    parallel_tool_calls: bool = True
    metadata: dict[str, str] | None = None
    tool_choice: str | dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_logprobs: int | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    previous_response_id: str | None = None
    background: bool | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    text: dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    service_tier: str | None = None
    truncation: str | None = None
    usage: ResponseUsage | None = None
    conversation: dict[str, Any] | None = None
    moderation: dict[str, Any] | None = None

    @property
    def output_text(self) -> str:
        """The text of every ``output_text`` part of every output message, concatenated."""
        return "".join(item.text for item in self.output if isinstance(item, OutputMessage))

    @property
    def function_calls(self) -> list[FunctionCallItem]:
        """The function calls in ``output``, in order."""
        return [item for item in self.output if isinstance(item, FunctionCallItem)]

    @property
    def is_terminal(self) -> bool:
        """Whether the status is terminal (a missing status counts as active)."""
        return self.status is not None and self.status.is_terminal

    def summary(self) -> dict[str, Any]:
        """A short, secret-free dict for logs: id, status, model and why it ended."""
        return {
            "response_id": self.id,
            "status": str(self.status) if self.status is not None else None,
            "model": self.model,
            "error": self.error.model_dump() if self.error else None,
            "incomplete_details": self.incomplete_details.model_dump() if self.incomplete_details else None,
        }


class ResponseDeleted(APIObject):
    """The answer of ``DELETE /responses/{response_id}``."""

    id: str
    object: str = "response"
    deleted: bool = True


LIFECYCLE_EVENTS: frozenset[str] = frozenset(
    {
        "response.created",
        "response.queued",
        "response.in_progress",
        "response.completed",
        "response.failed",
        "response.incomplete",
    }
)
"""Stream events that carry the whole response. There is no ``response.cancelled`` stream event."""

TERMINAL_EVENTS: frozenset[str] = frozenset({"response.completed", "response.failed", "response.incomplete"})
"""Stream events after which a response's stream has nothing more to say."""

RESPONSE_ERROR_EVENT = "error"


class ResponseStreamEvent(APIObject):
    """One server-sent event of a response's stream (the spec's ``ResponseStreamEvent``).

    Every event has a ``type`` and, per the spec, a ``sequence_number`` (the cursor to resume after, with
    ``starting_after``); an event without one is still read (``None``: it moves no cursor), so a
    ``response.created`` that lacks it still names the response (which can then be cancelled).
    Lifecycle events carry the ``response``; an ``error`` event carries ``code``, ``message`` and
    ``param``. Other events (deltas, output items) keep their fields as extras.

    Example:
        ```python
        event = ResponseStreamEvent.model_validate({"type": "response.queued", "sequence_number": 1, ...})
        if event.is_terminal:
            print(event.response.status)
        ```
    """

    type: str
    sequence_number: int | None = None
    response: Response | None = None
    code: str | None = None
    message: str | None = None
    param: str | None = None

    @property
    def is_lifecycle(self) -> bool:
        """Whether the event announces a status (``response.created``, ``response.completed``, ...)."""
        return self.type in LIFECYCLE_EVENTS

    @property
    def is_terminal(self) -> bool:
        """Whether the event announces a terminal status (completed, failed or incomplete)."""
        return self.type in TERMINAL_EVENTS

    @property
    def is_error(self) -> bool:
        """Whether this is an ``error`` event."""
        return self.type == RESPONSE_ERROR_EVENT

    @property
    def error(self) -> ErrorDetail | None:
        """What an ``error`` event says, or ``None`` for other events."""
        if not self.is_error:
            return None
        nested = (self.model_extra or {}).get("error")
        if isinstance(nested, dict):
            return ErrorDetail.model_validate(nested)
        return ErrorDetail(message=self.message or "", code=self.code, param=self.param)


class CreateResponseParams(RequestModel):
    """The body of *create response* (``POST /responses``), checked before any request.

    Only the fields of the spec's ``CreateResponse`` are accepted; ``model`` and ``input`` are
    required and non-empty; ``background`` needs the response stored (``store`` left unset or true);
    ``previous_response_id`` and ``conversation`` exclude each other; metadata has the spec's limits.

    Example:
        ```python
        CreateResponseParams(model="gpt-5", input="Summarise the report.", background=True)
        ```
    """

    model: str = Field(min_length=1, pattern=r"\S")
    input: str | list[dict[str, Any]] = Field(min_length=1)
    background: bool | None = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    instructions: str | None = None
    metadata: Metadata | None = None
    previous_response_id: NonEmptyId | None = None
    conversation: str | dict[str, Any] | None = None
    context_management: list[dict[str, Any]] | None = Field(default=None, min_length=1)
    include: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=16)
    max_tool_calls: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    prompt_cache_options: dict[str, Any] | None = None
    safety_identifier: str | None = Field(default=None, max_length=64)
    service_tier: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
    moderation: dict[str, Any] | None = None
    user: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_fields_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(key) for key in data if key not in cls.model_fields)
            if unknown:
                raise ValueError(
                    f"unknown parameter(s) {', '.join(repr(k) for k in unknown)}: create response accepts only "
                    f"the fields of the spec's CreateResponse ({', '.join(sorted(cls.model_fields))})"
                )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> CreateResponseParams:
        if self.background and self.store is False:
            raise ValueError("background=True needs the response stored: leave store unset or set it to True")
        if self.previous_response_id is not None and self.conversation is not None:
            raise ValueError("give previous_response_id or conversation, not both")
        return self

    def to_body(self) -> dict[str, Any]:
        """The JSON body to send: only the fields that were set."""
        return self.model_dump(mode="json", exclude_none=True)
