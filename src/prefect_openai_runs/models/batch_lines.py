"""The lines of batch JSONL files: a request of the input file, a result of the output or error file."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from prefect_openai_runs.models._base import APIObject, RequestModel


class BatchRequestLine(RequestModel):
    """One line of a batch input file (``BatchRequestInput``).

    Example:
        ```python
        BatchRequestLine(custom_id="q-1", url="/v1/responses", body={"model": "gpt-5", "input": "Hi"})
        ```
    """

    custom_id: str = Field(min_length=1)
    method: Literal["POST"] = "POST"
    url: str
    body: dict[str, Any]


class BatchResponse(APIObject):
    """The HTTP answer a batch request got."""

    status_code: int
    request_id: str | None = None
    body: Any = None


class BatchLineError(APIObject):
    """Why a batch request failed without an HTTP answer (or, for a non-2xx answer, its status)."""

    code: str | None = None
    message: str | None = None
    status_code: int | None = None


class BatchResultLine(APIObject):
    """One line of a batch output or error file (``BatchRequestOutput``)."""

    id: str | None = None
    custom_id: str
    response: BatchResponse | None = None
    error: BatchLineError | None = None

    @property
    def succeeded(self) -> bool:
        """Whether the request got a 2xx answer and no error."""
        return self.error is None and self.response is not None and 200 <= self.response.status_code < 300

    def failure(self) -> BatchLineError:
        """The line's failure: its ``error``, else one built from the non-2xx response."""
        if self.error is not None:
            return self.error
        status = self.response.status_code if self.response is not None else None
        body = self.response.body if self.response is not None else None
        detail = body.get("error") if isinstance(body, dict) else None
        message = detail.get("message") if isinstance(detail, dict) else None
        code = detail.get("code") if isinstance(detail, dict) else None
        return BatchLineError(code=code or f"http_{status}", message=message or f"HTTP {status}", status_code=status)
