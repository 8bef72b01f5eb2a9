"""The batch object, its status, and the body of *create batch* (``POST /batches``)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BeforeValidator, Field

from prefect_openai_runs.models._base import APIObject, RequestModel
from prefect_openai_runs.models.requests import Metadata, NonEmptyId

BATCH_ENDPOINTS: Final = (
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
)
"""The endpoints a batch may target (``CreateBatchRequest.endpoint``)."""

BatchEndpoint = Literal[
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
]


def _unix_time(value: Any) -> Any:
    """Accept Azure's ISO 8601 timestamps as well as the API's Unix seconds."""
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return value
    return value


UnixTime = Annotated[int, BeforeValidator(_unix_time)]
"""Seconds since the epoch; an ISO 8601 string (Azure) is converted."""


StrEnumT = TypeVar("StrEnumT", bound=Enum)


def lenient_member(cls: type[StrEnumT], value: object) -> StrEnumT | None:
    """``_missing_`` of a forward-compatible string enum: the member whatever its case, else a
    pseudo-member named ``UNKNOWN`` carrying the value."""
    if not isinstance(value, str):
        return None
    normalised = value.strip().lower()
    for member in cls:
        if member.value == normalised:
            return member
    pseudo = str.__new__(cls, value)  # type: ignore[type-var]
    pseudo._name_ = "UNKNOWN"
    pseudo._value_ = value
    return pseudo


class BatchStatus(str, Enum):
    """The status of a batch.

    Forward compatible like :class:`~prefect_openai_runs.models.RunStatus`: the case is normalised
    (Azure documents ``"Validating"``), and a value never seen parses into a pseudo-member named
    ``UNKNOWN`` that counts as active, so a pipeline keeps following the batch.

    Example:
        ```python
        BatchStatus("Validating") is BatchStatus.VALIDATING  # True
        BatchStatus("cancelling").is_terminal  # False: partial results are still being written
        ```
    """

    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @classmethod
    def _missing_(cls, value: object) -> BatchStatus | None:
        return lenient_member(cls, value)

    @property
    def is_known(self) -> bool:
        """Whether the status is one of the eight the spec lists."""
        return self._name_ != "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        """Whether the batch can no longer change: failed, completed, expired or cancelled."""
        return self in BATCH_TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """Whether the batch may still change (every non-terminal status, ``cancelling`` and unknown ones too)."""
        return not self.is_terminal

    def __str__(self) -> str:
        return str(self.value)


BATCH_TERMINAL_STATUSES: frozenset[BatchStatus] = frozenset(
    {BatchStatus.FAILED, BatchStatus.COMPLETED, BatchStatus.EXPIRED, BatchStatus.CANCELLED}
)
"""Statuses a batch never leaves."""


class BatchError(APIObject):
    """One error of a batch, typically a validation error of its input file (with the line number)."""

    code: str | None = None
    message: str | None = None
    param: str | None = None
    line: int | None = None


class BatchErrors(APIObject):
    """``errors``: the list of a batch's errors."""

    object: str = "list"
    data: list[BatchError] = Field(default_factory=list)


class BatchRequestCounts(APIObject):
    """How many requests the batch has, and how many completed or failed so far."""

    total: int = 0
    completed: int = 0
    failed: int = 0


class InputTokensDetails(APIObject):
    """A breakdown of the input tokens."""

    cached_tokens: int = 0


class OutputTokensDetails(APIObject):
    """A breakdown of the output tokens."""

    reasoning_tokens: int = 0


class BatchUsage(APIObject):
    """Tokens the batch used (batches created after 2025-09-07)."""

    input_tokens: int = 0
    input_tokens_details: InputTokensDetails | None = None
    output_tokens: int = 0
    output_tokens_details: OutputTokensDetails | None = None
    total_tokens: int = 0

    def __add__(self, other: BatchUsage) -> BatchUsage:
        """Both usages summed, the cached and reasoning tokens too (a detail neither has stays ``None``).

        Example:
            ```python
            total = BatchUsage() + batch.usage
            ```
        """
        inputs = [d for d in (self.input_tokens_details, other.input_tokens_details) if d is not None]
        outputs = [d for d in (self.output_tokens_details, other.output_tokens_details) if d is not None]
        return BatchUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            input_tokens_details=InputTokensDetails(cached_tokens=sum(d.cached_tokens for d in inputs))
            if inputs
            else None,
            output_tokens=self.output_tokens + other.output_tokens,
            output_tokens_details=OutputTokensDetails(reasoning_tokens=sum(d.reasoning_tokens for d in outputs))
            if outputs
            else None,
            total_tokens=self.total_tokens + other.total_tokens,
        )


class Batch(APIObject):
    """A batch, as ``/batches`` endpoints return it. Unknown fields are kept.

    Example:
        ```python
        batch = Batch.model_validate(response_json)
        if batch.status.is_terminal:
            print(batch.request_counts.completed, batch.output_file_id)
        ```
    """

    id: str
    object: str = "batch"
    endpoint: str
    model: str | None = None
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: str
    status: BatchStatus
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: UnixTime
    in_progress_at: UnixTime | None = None
    expires_at: UnixTime | None = None
    finalizing_at: UnixTime | None = None
    completed_at: UnixTime | None = None
    failed_at: UnixTime | None = None
    expired_at: UnixTime | None = None
    cancelling_at: UnixTime | None = None
    cancelled_at: UnixTime | None = None
    request_counts: BatchRequestCounts | None = None
    usage: BatchUsage | None = None
    metadata: dict[str, str] | None = None

    @property
    def is_terminal(self) -> bool:
        """Whether the batch's status is terminal."""
        return self.status.is_terminal


class OutputExpiresAfter(RequestModel):
    """When the batch's output and error files expire: ``seconds`` (1 hour to 30 days) after creation."""

    anchor: Literal["created_at"] = "created_at"
    seconds: int = Field(ge=3600, le=2_592_000)


class CreateBatchParams(RequestModel):
    """The body of *create batch* (``POST /batches``), checked before it is sent.

    Example:
        ```python
        CreateBatchParams(input_file_id="file-abc", endpoint="/v1/responses", metadata={"job": "nightly"})
        ```
    """

    input_file_id: NonEmptyId
    endpoint: BatchEndpoint
    completion_window: Literal["24h"] = "24h"
    metadata: Metadata | None = None
    output_expires_after: OutputExpiresAfter | None = None

    def to_body(self) -> dict[str, Any]:
        """The JSON body to send: only the fields that were set."""
        return self.model_dump(mode="json", exclude_none=True)
