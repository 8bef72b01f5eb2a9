"""One exception hierarchy for every failure: API errors by status, transport errors, stream errors,
and the outcomes of a run that did not complete.

Each API error carries what the server said (``status_code``, ``type``, ``code``, ``param``, ``message``)
and the ``request_id`` to quote to the provider. None of them ever contains the API key: messages are
masked before the exception is built (see :func:`prefect_openai_runs._secrets.mask_secrets`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefect_openai_runs.models import Run


class OpenAIRunsError(Exception):
    """Base class of every error this library raises."""


class InvalidResponseError(OpenAIRunsError):
    """The server answered something that is not the API's JSON (an HTML page, truncated JSON, ...)."""

    def __init__(self, message: str, *, status_code: int | None = None, request_id: str | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.request_id = request_id


class APIError(OpenAIRunsError):
    """The API answered with an error status.

    Attributes:
        status_code: The HTTP status.
        message: The API's own message.
        type: The error type, e.g. ``invalid_request_error``.
        code: The error code, e.g. ``invalid_api_key``, or ``None``.
        param: The parameter the error is about, or ``None``.
        request_id: The ``x-request-id`` of the response.
        retry_after: Seconds the server asked to wait (``retry-after-ms`` / ``retry-after``), if any.
        should_retry: The server's ``x-should-retry`` verdict, if it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
    ) -> None:
        self.status_code = status_code
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.request_id = request_id
        self.retry_after = retry_after
        self.should_retry = should_retry
        details = ", ".join(
            f"{name}={value}"
            for name, value in (("type", type), ("code", code), ("param", param), ("request_id", request_id))
            if value
        )
        super().__init__(f"HTTP {status_code}: {message}" + (f" ({details})" if details else ""))


class BadRequestError(APIError):
    """400: the request is invalid; fix the named parameter. Never retried."""


class ActiveRunExistsError(BadRequestError):
    """400: the thread already has an active run (``active_run_id``); wait for it or cancel it first."""

    @property
    def active_run_id(self) -> str | None:
        """The id of the run that is active on the thread, read from the API's message."""
        found = re.search(r"active run (run_[A-Za-z0-9_-]+)", self.message)
        return found.group(1) if found else None


class RunNotCancellableError(BadRequestError):
    """400: ``Cannot cancel run with status '...'``: the run is already cancelling or terminal."""

    @property
    def run_status(self) -> str | None:
        """The status the API named."""
        found = re.search(r"status '([a-z_]+)'", self.message)
        return found.group(1) if found else None


class BatchNotCancellableError(BadRequestError):
    """400 to a batch cancel: the batch is already cancelling or terminal.

    The live API's wording is not documented. Two ways lead here: a 400 whose message starts with
    ``Cannot cancel`` and names a batch (the emulator answers ``Cannot cancel a batch with status
    'completed'.``), and any 400 to ``POST /batches/{id}/cancel`` (the cancel operation converts it, as
    a cancel carries no body that could be invalid).
    """

    @property
    def batch_status(self) -> str | None:
        """The status the API named, if it named one."""
        found = re.search(r"status '([A-Za-z_]+)'", self.message)
        return found.group(1).lower() if found else None

    @classmethod
    def from_error(cls, error: BadRequestError) -> BatchNotCancellableError:
        """The same error, as a :class:`BatchNotCancellableError`."""
        return cls(
            error.message,
            status_code=error.status_code,
            type=error.type,
            code=error.code,
            param=error.param,
            request_id=error.request_id,
            retry_after=error.retry_after,
            should_retry=error.should_retry,
        )


class AuthenticationError(APIError):
    """401: the API key is missing or wrong. Check the credentials block; never retried."""


class PermissionDeniedError(APIError):
    """403: the key may not use this resource (organization, project or region)."""


class NotFoundError(APIError):
    """404: no thread, run or assistant with that id."""


class ConflictError(APIError):
    """409: the resource changed concurrently; retried."""


class UnprocessableEntityError(APIError):
    """422: the request is well-formed but cannot be processed. Never retried."""


class RateLimitError(APIError):
    """429: too many requests or tokens; retried after what ``retry-after`` says."""


class InternalServerError(APIError):
    """5xx: the server failed; retried."""


class RetryAfterTooLongError(APIError):
    """The server asked to wait longer than the retry policy's ``max_retry_after``; not retried.

    Raise ``RetryPolicy.max_retry_after`` or schedule the flow later.
    """


class APIConnectionError(OpenAIRunsError):
    """The request could not be completed: connection refused or dropped, DNS failure, protocol error.

    Attributes:
        request_sent: Whether the request may have reached the server (so it may have been applied).
    """

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class APITimeoutError(APIConnectionError):
    """The request timed out; the server may still have applied it."""


class StreamError(OpenAIRunsError):
    """A server-sent event stream failed: an ``error`` event, or a stream that broke or could not be parsed.

    Attributes:
        run_id: The run the stream was about, when known.
        thread_id: The thread the stream was about, when known.
    """

    def __init__(self, message: str, *, run_id: str | None = None, thread_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.thread_id = thread_id


class RunOutcomeError(OpenAIRunsError):
    """A followed run did not complete. ``run`` is its last known state (never lost).

    Attributes:
        run: The final (or last seen) run.
        reason: Why the run ended this way, in words.
    """

    def __init__(self, run: Run, reason: str) -> None:
        self.run = run
        self.reason = reason
        super().__init__(f"run {run.id} on thread {run.thread_id} ended {run.status}: {reason}")

    def __reduce__(self) -> tuple[type[RunOutcomeError], tuple[Run, str]]:
        return (type(self), (self.run, self.reason))


class RunFailed(RunOutcomeError):
    """The run ended ``failed``; ``run.last_error`` says why."""


class RunIncomplete(RunOutcomeError):
    """The run ended ``incomplete``; ``run.incomplete_details`` says which token limit was reached."""


class RunExpired(RunOutcomeError):
    """The run ended ``expired`` (left in ``requires_action`` or active past ``expires_at``)."""


class RunCancelled(RunOutcomeError):
    """The run ended ``cancelled``, by us (deadline, failure, request) or by someone else."""


class RunTimedOut(RunOutcomeError):
    """The deadline passed before the run ended; the run was cancelled (see ``run.status``)."""


class ToolCallError(RunOutcomeError):
    """A tool call could not be answered: no handler for the function, or its handler raised.

    Attributes:
        function_name: The function the run asked for.
    """

    def __init__(self, run: Run, reason: str, function_name: str) -> None:
        self.function_name = function_name
        super().__init__(run, reason)

    def __reduce__(self) -> tuple[type[ToolCallError], tuple[Run, str, str]]:  # type: ignore[override]
        return (type(self), (self.run, self.reason, self.function_name))
