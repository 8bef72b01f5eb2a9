"""One exception hierarchy for every failure: API errors by status, transport errors, stream errors,
and the outcomes of a job (run, background response, batch) that did not complete.

Each API error carries what the server said (``status_code``, ``type``, ``code``, ``param``, ``message``)
and the ``request_id`` to quote to the provider. None of them ever contains the API key: messages are
masked before the exception is built (see :func:`prefect_openai_runs._secrets.mask_secrets`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, TypeVar

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

    @classmethod
    def from_error(cls: type[_BadRequest], error: BadRequestError) -> _BadRequest:
        """The same error, as this (more precise) class: a cancel operation names what any 400 to it means."""
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


_BadRequest = TypeVar("_BadRequest", bound=BadRequestError)


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


class ResponseNotCancellableError(BadRequestError):
    """400: ``Cannot cancel a completed response.`` (or a failed one, or one *in terminal state*), or a
    response that was not created in background mode: there is nothing left to cancel. Any 400 to
    ``POST /responses/{id}/cancel`` is this error, whatever its wording (the cancel operation converts it, as
    a cancel carries no body that could be invalid); the caller reads the response for its real status."""

    @property
    def response_status(self) -> str | None:
        """The status the API named (``completed``, ``failed``, ...), or ``None`` when it named none."""
        found = re.search(r"Cannot cancel an? ([a-z_]+) response", self.message)
        return found.group(1) if found else None


class StreamResumeRefusedError(BadRequestError):
    """400: a response's stream cannot be resumed (``starting_after``): it was not created with
    ``background=true``, or it is more than about 5 minutes old. Poll it instead."""

    @property
    def too_old(self) -> bool:
        """Whether the refusal is the age limit (rather than a response that was never background)."""
        return "no longer be streamed" in self.message


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


class BatchFileNotReadyError(OpenAIRunsError):
    """A freshly uploaded batch input file a batch cannot use: the server could not process it (status
    ``error``; its ``status_details`` say why), or it was still ``pending`` (Azure) when the time to wait
    for it ran out. No batch was created on it.

    Attributes:
        file_id: The file.
        status: Its last status seen (``error`` or ``pending``).
        details: The server's ``status_details``, if any.
        waited: Seconds waited for it (while ``pending``).
    """

    def __init__(self, file_id: str, status: str, details: str | None = None, waited: float | None = None) -> None:
        self.file_id = file_id
        self.status = status
        self.details = details
        self.waited = waited
        if status == "error":
            message = f"the batch input file {file_id} could not be processed: {details or 'no details given'}"
        else:
            message = f"the batch input file {file_id} is still {status} after {waited or 0:.1f}s; try again later"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.file_id, self.status, self.details, self.waited))


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


class UntrustedCertificateError(APIConnectionError):
    """The server's TLS certificate is not trusted (``certificate verify failed``); never retried, since
    sending again cannot change it. Set ``SSL_CERT_FILE`` (or ``SSL_CERT_DIR``) to the CA bundle that
    signed it, as for httpx."""

    def __init__(self, message: str) -> None:
        super().__init__(message, request_sent=False)


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


_KIND_BY_OBJECT = {"thread.run": "run", "response": "response", "batch": "batch"}


def describe_job(job: Any) -> str:
    """``run run_abc on thread thread_xyz``, ``response resp_abc``, ``batch batch_abc``: a job in words."""
    kind = _KIND_BY_OBJECT.get(str(getattr(job, "object", "")), "job")
    thread = getattr(job, "thread_id", None)
    return f"{kind} {getattr(job, 'id', '?')}" + (f" on thread {thread}" if thread else "")


class JobOutcomeError(OpenAIRunsError):
    """A followed job (a run, a background response, a batch) did not complete. ``job`` is its last known
    state (never lost); ``run`` is the same object, by the name the runs API gives it.

    Attributes:
        job: The final (or last seen) job.
        reason: Why the job ended this way, in words.
    """

    results: Any = None
    """What the job produced before it ended, when it has partial results (a batch's
    :class:`~prefect_openai_runs.BatchRunResult`), else ``None``."""

    def __init__(self, job: Any, reason: str) -> None:
        self.job = job
        self.reason = reason
        super().__init__(f"{describe_job(job)} ended {getattr(job, 'status', '?')}: {reason}")

    @property
    def run(self) -> Run:
        """The job, for runs (``run`` is what the runs API calls it)."""
        return self.job  # type: ignore[no-any-return]

    def __reduce__(self) -> tuple[type[JobOutcomeError], tuple[Any, str]]:
        return (type(self), (self.job, self.reason))


class JobFailed(JobOutcomeError):
    """The job ended ``failed``; its ``last_error`` / ``error`` / ``errors`` say why."""


class JobIncomplete(JobOutcomeError):
    """The job ended ``incomplete``; its ``incomplete_details`` say which limit was reached."""


class JobExpired(JobOutcomeError):
    """The job ended ``expired`` (a run left in ``requires_action`` past ``expires_at``, a batch past its window)."""


class JobCancelled(JobOutcomeError):
    """The job ended ``cancelled``, by us (deadline, failure, request) or by someone else."""


class JobTimedOut(JobOutcomeError):
    """The deadline passed before the job ended; the job was cancelled (see its status and ``reason``)."""


class JobGone(JobOutcomeError):
    """The job no longer exists on the server (404 while it was followed: deleted, or past its retention).
    ``job`` is its last known state; what became of it is unknown."""


class ToolCallError(JobOutcomeError):
    """A tool call could not be answered: no handler for the function, or its handler raised.

    Attributes:
        function_name: The function the job asked for.
    """

    def __init__(self, job: Any, reason: str, function_name: str) -> None:
        self.function_name = function_name
        super().__init__(job, reason)

    def __reduce__(self) -> tuple[type[ToolCallError], tuple[Any, str, str]]:  # type: ignore[override]
        return (type(self), (self.job, self.reason, self.function_name))


RunOutcomeError = JobOutcomeError
"""The runs' name of :class:`JobOutcomeError` (one family for every kind of job)."""
RunFailed = JobFailed
"""The runs' name of :class:`JobFailed`."""
RunIncomplete = JobIncomplete
"""The runs' name of :class:`JobIncomplete`."""
RunExpired = JobExpired
"""The runs' name of :class:`JobExpired`."""
RunCancelled = JobCancelled
"""The runs' name of :class:`JobCancelled`."""
RunTimedOut = JobTimedOut
"""The runs' name of :class:`JobTimedOut`."""


class ResponseMayExistError(OpenAIRunsError):
    """Creating a background response failed in a way the server may have applied (a timeout, a dropped
    connection, a 5xx, a stream that broke before its first event), and it was **not** sent again.

    The Responses API has no idempotency key and no way to list or find a response, so a second create
    could start a second response that nothing would ever cancel. The response, if it exists, carries
    :attr:`idempotency_key` in its ``metadata`` (under ``prefect_openai_runs_idempotency_key``): look for
    it in the provider's dashboard or logs. Nothing cancels it: it runs until it ends by itself (or is
    cancelled by hand from there). Its data is then kept for a while (about 10 minutes for polling unless
    stored; Azure keeps 30 days), which says nothing of how long it runs.

    Attributes:
        idempotency_key: The key put in the response's metadata.
        cause: What the create ran into, in words (masked of secrets).
    """

    def __init__(self, cause: str, *, idempotency_key: str) -> None:
        self.idempotency_key = idempotency_key
        self.cause = cause
        super().__init__(
            f"creating the background response failed after it may have reached the server ({cause}); a "
            f"response may exist, tagged with metadata prefect_openai_runs_idempotency_key={idempotency_key}. "
            "It was not sent again: the Responses API offers no way to find a response by key, so a second "
            "create could leave two responses"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_may_exist, (self.cause, self.idempotency_key))


def _rebuild_may_exist(cause: str, key: str) -> ResponseMayExistError:
    return ResponseMayExistError(cause, idempotency_key=key)


__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "ActiveRunExistsError",
    "AuthenticationError",
    "BadRequestError",
    "BatchFileNotReadyError",
    "BatchNotCancellableError",
    "ConflictError",
    "InternalServerError",
    "InvalidResponseError",
    "JobCancelled",
    "JobExpired",
    "JobFailed",
    "JobGone",
    "JobIncomplete",
    "JobOutcomeError",
    "JobTimedOut",
    "NotFoundError",
    "OpenAIRunsError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseMayExistError",
    "ResponseNotCancellableError",
    "RetryAfterTooLongError",
    "RunCancelled",
    "RunExpired",
    "RunFailed",
    "RunIncomplete",
    "RunNotCancellableError",
    "RunOutcomeError",
    "RunTimedOut",
    "StreamError",
    "StreamResumeRefusedError",
    "ToolCallError",
    "UnprocessableEntityError",
    "UntrustedCertificateError",
    "describe_job",
]
