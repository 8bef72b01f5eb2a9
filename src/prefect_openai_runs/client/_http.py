"""The wire: what a request is, the headers every request carries, and how a response becomes a
model or one of our exceptions. Shared by the sync and the async client."""

from __future__ import annotations

import email.utils
import io
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import httpx

from prefect_openai_runs._secrets import clean_secret, mask_secrets
from prefect_openai_runs._version import __version__
from prefect_openai_runs.exceptions import (
    ActiveRunExistsError,
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BatchNotCancellableError,
    ConflictError,
    InternalServerError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseNotCancellableError,
    RetryAfterTooLongError,
    RunNotCancellableError,
    StreamResumeRefusedError,
    UnprocessableEntityError,
    UntrustedCertificateError,
)
from prefect_openai_runs.models import ErrorBody

USER_AGENT = f"prefect-openai-runs/{__version__}"
BETA_HEADER = {"OpenAI-Beta": "assistants=v2"}
POLL_HINT_HEADER = "openai-poll-after-ms"


@dataclass(frozen=True)
class Upload:
    """One file of a multipart request, read from ``path`` or held in ``data``.

    Attributes:
        form_field: The form field, ``file`` for ``POST /files``.
        filename: The name the server records.
        content_type: The part's content type.
        path: A file to stream from (read again on every attempt, so a retry sends it whole).
        data: The content, when small and in memory.
    """

    form_field: str
    filename: str
    content_type: str = "application/octet-stream"
    path: str | None = None
    data: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise ValueError("an Upload needs exactly one of path or data")

    def open(self) -> IO[bytes]:
        """A fresh binary stream of the content, positioned at its start (the caller closes it)."""
        return open(self.path, "rb") if self.path is not None else io.BytesIO(self.data or b"")

    def size(self) -> int:
        """The content's size in bytes."""
        return os.path.getsize(self.path) if self.path is not None else len(self.data or b"")


@dataclass(frozen=True)
class Call:
    """One HTTP request to make: method, path below the base URL, query and JSON body.

    Attributes:
        recover: For a request that is not idempotent on the wire (creating a run): an operation that
            finds what an ambiguous failure may have applied, run before the request is sent again.
            It returns the response to use instead, or ``None`` to send again.
        stream: Whether the response is a server-sent event stream.
        creates: Whether the request starts a job (a run, a response, a batch): it takes a slot of the
            client's Prefect rate limit, when one is named.
        paced: Whether the request waits for its turn in the client's rate budget. A cancel does not: it
            is what stops a job from spending, and must never wait behind a long ``retry-after``.
        retry_ambiguous: Whether the request may be sent again after a failure that may have been
            applied (timeout, dropped connection, 5xx). False for a create that nothing can find again
            (a background response: no idempotency key, no search): a second send could start a second
            job, so the ambiguous failure is raised instead.
        form: Form fields of a ``multipart/form-data`` body (with ``files``), e.g. ``{"purpose": "batch"}``.
        files: The files of a ``multipart/form-data`` body. A client sends
            ``data=dict(call.form or {})`` and ``files={u.form_field: (u.filename, u.open(), u.content_type)
            for u in call.files}``, opening the streams anew for every attempt and closing them after.
        raw: Whether the response body is not JSON (file content): the client puts its ``bytes`` in
            :attr:`Reply.body`, or, to stream a large file, sends the call itself and reads the response
            in chunks.
        beta: Whether the request needs ``OpenAI-Beta: assistants=v2`` (runs do; files and batches not,
            though sending it there is harmless).
    """

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    stream: bool = False
    creates: bool = False
    paced: bool = True
    retry_ambiguous: bool = True
    recover: Callable[[], Any] | None = field(default=None, compare=False)
    form: Mapping[str, str] | None = None
    files: tuple[Upload, ...] = ()
    raw: bool = False
    beta: bool = True

    def describe(self) -> str:
        """``METHOD /path`` for messages."""
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Reply:
    """A successful response's decoded JSON body, with the headers callers care about."""

    body: Any
    request_id: str | None = None
    poll_after_ms: int | None = None


def build_headers(
    *,
    api_key: str,
    api_key_header: str = "Authorization",
    organization: str | None,
    project: str | None,
    extra: Mapping[str, str] | None,
) -> dict[str, str]:
    """The headers every request carries: auth, beta, organization/project, user agent, extras.

    A user's ``extra`` headers come last, so an Assistants-compatible server that wants an
    ``api-key`` header (Azure style) gets it. Values lose surrounding whitespace (a trailing newline
    from a Kubernetes secret or a paste).

    Raises:
        ValueError: When the key or a header value has a control character inside (the message never
            holds the value).
    """
    api_key = clean_secret(api_key, "the API key")
    extra = {name: clean_secret(value, f"the value of header {name!r}") for name, value in (extra or {}).items()}
    auth = f"Bearer {api_key}" if api_key_header.lower() == "authorization" else api_key
    headers = {api_key_header: auth, "User-Agent": USER_AGENT, **BETA_HEADER}
    if organization:
        headers["OpenAI-Organization"] = organization
    if project:
        headers["OpenAI-Project"] = project
    headers.update(extra)
    return headers


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked to wait: ``retry-after-ms``, else ``retry-after`` (seconds or HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(raw) if _looks_like_date(raw) else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - (time.time() if now is None else now))


def _looks_like_date(raw: str) -> bool:
    try:
        email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return False
    return True


def _should_retry(headers: httpx.Headers) -> bool | None:
    value: str | None = headers.get("x-should-retry")
    if value is None:
        return None
    return value.strip().lower() == "true"


_NOT_CANCELLABLE_RESPONSE = ("Cannot cancel a ", "Only responses created with background")
_RESUME_REFUSED = ("cannot be streamed because it was not created with background", "can no longer be streamed")

_ERRORS_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def _error_class(status: int, message: str) -> type[APIError]:
    if status == 400 and "already has an active run" in message:
        return ActiveRunExistsError
    if status == 400 and message.startswith("Cannot cancel run with status"):
        return RunNotCancellableError
    if status == 400 and message.startswith(_NOT_CANCELLABLE_RESPONSE) and "response" in message:
        return ResponseNotCancellableError
    if status == 400 and any(part in message for part in _RESUME_REFUSED):
        return StreamResumeRefusedError
    if status == 400 and message.startswith("Cannot cancel") and "batch" in message.lower():
        return BatchNotCancellableError
    if status >= 500:
        return InternalServerError
    return _ERRORS_BY_STATUS.get(status, APIError)


def error_from_response(
    response: httpx.Response, *, secrets: list[str], max_retry_after: float, body_text: str | None = None
) -> APIError:
    """Build the exception for an error response: one line with the API's own message (masked of
    secrets), the request id, and a hint when the URL looks wrong.

    Args:
        response: The error response.
        secrets: Values that must never appear in the message.
        max_retry_after: The policy's cap; a longer ``retry-after`` gives a
            :class:`RetryAfterTooLongError`.
        body_text: The body, when the response was streamed and read separately.
    """
    text = response.text if body_text is None else body_text
    detail: dict[str, Any] = {}
    is_api_error = True
    try:
        detail = ErrorBody.model_validate_json(text).error.model_dump()
    except ValueError:
        is_api_error = False
        detail = {"message": _describe_body(response, text)}
    message = " ".join(str(detail.get("message") or "").split())
    if response.status_code == 404 and (not is_api_error or message.startswith("Invalid URL")):
        url = response.request.url.copy_with(query=None)
        message += f" ({response.request.method} {url}: does base_url end in /v1?)"
    message = mask_secrets(message, secrets)
    retry_after = parse_retry_after(response.headers)
    kwargs: dict[str, Any] = {
        "status_code": response.status_code,
        "type": detail.get("type"),
        "code": detail.get("code"),
        "param": detail.get("param"),
        "request_id": response.headers.get("x-request-id"),
        "retry_after": retry_after,
        "should_retry": _should_retry(response.headers),
    }
    if retry_after is not None and retry_after > max_retry_after:
        return RetryAfterTooLongError(
            f"{message} The server asked to wait {retry_after:.0f}s, longer than the retry policy's "
            f"max_retry_after of {max_retry_after:.0f}s; not retrying. Raise RetryPolicy.max_retry_after "
            "or run the flow later.",
            **{**kwargs, "should_retry": False},
        )
    return _error_class(response.status_code, message)(message, **kwargs)


def _describe_body(response: httpx.Response, text: str) -> str:
    """What an error body that is not the API's JSON says, on one line (an HTML page's text, not its tags)."""
    reason = response.reason_phrase or "error"
    is_html = "html" in response.headers.get("content-type", "").lower() or text.lstrip().startswith("<")
    snippet = " ".join((re.sub(r"<[^>]*>", " ", text) if is_html else text).split())[:200]
    said = f"{reason}: {snippet}" if snippet else f"{reason} (no body)"
    return f"{said} (an HTML page, not the API's JSON)" if is_html else said


def check_response(
    response: httpx.Response, *, secrets: list[str], max_retry_after: float, body_text: str | None = None
) -> None:
    """Raise the error an error response means, alone: no HTTP-library exception chained to it.

    Args:
        response: Any response.
        secrets: Values that must never appear in the message.
        max_retry_after: The policy's cap on ``retry-after``.
        body_text: The body, when the response was streamed and read separately.

    Raises:
        APIError: When the response has an error status (see :func:`error_from_response`).
    """
    if response.is_error:
        raise error_from_response(
            response, secrets=secrets, max_retry_after=max_retry_after, body_text=body_text
        ) from None


def reply_from_response(response: httpx.Response) -> Reply:
    """Decode a successful JSON response, or raise :class:`InvalidResponseError` saying what came instead."""
    request_id = response.headers.get("x-request-id")
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser's limit
        kind = response.headers.get("content-type", "unknown content type")
        raise InvalidResponseError(
            f"expected JSON from {response.request.method} {response.request.url.path}, got {kind} "
            f"({len(response.content)} bytes) that does not parse: {exc}. Is base_url the API's /v1 URL?",
            status_code=response.status_code,
            request_id=request_id,
        ) from exc
    hint = response.headers.get(POLL_HINT_HEADER)
    poll_after_ms = int(hint) if hint and hint.isascii() and hint.isdigit() else None  # isdigit() alone accepts '²'
    return Reply(body=body, request_id=request_id, poll_after_ms=poll_after_ms)


_CONNECT_REASONS = (
    ("refused", "connection refused"),
    ("name or service not known", "host name not found"),
    ("nodename nor servname", "host name not found"),
    ("name resolution", "host name not found"),
    ("getaddrinfo", "host name not found"),
    ("no address associated", "host name not found"),
    ("unreachable", "network unreachable"),
    ("certificate verify failed", "TLS certificate not trusted; set SSL_CERT_FILE to your CA bundle"),
)


def transport_error(exc: httpx.HTTPError, call: Call, secrets: list[str]) -> APIConnectionError:
    """Map an httpx transport error to ours, in one line naming the host, noting whether the request
    may have reached the server.

    The httpx exception (which callers may chain) is scrubbed in place: every text in its chain is
    masked of secrets, and the chain below it (httpcore's and the socket's exceptions) is cut.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    scrub_exception(exc, secrets)
    host = _host_of(exc)
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        lowered = text.lower()
        reason = "timed out" if isinstance(exc, httpx.ConnectTimeout) else next(
            (said for key, said in _CONNECT_REASONS if key in lowered), text
        )
        message = f"{call.describe()}: could not connect to {host} ({reason}): is base_url right?"
    elif isinstance(exc, httpx.TimeoutException):
        message = (
            f"{call.describe()}: {host} did not answer in time ({type(exc).__name__}); "
            "the server may still have applied the request"
        )
    else:
        message = f"{call.describe()} to {host}: {type(exc).__name__}: {text}"
    message = mask_secrets(message, secrets)
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(message, request_sent=not isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)))
    if "certificate verify failed" in text.lower():
        return UntrustedCertificateError(message)
    return APIConnectionError(message, request_sent=not isinstance(exc, httpx.ConnectError))


def _host_of(exc: httpx.HTTPError) -> str:
    try:
        url = exc.request.url
    except RuntimeError:  # an exception raised before its request was attached
        return "the server"
    return f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"


def scrub_exception(exc: BaseException, secrets: list[str]) -> None:
    """Mask secrets in the text of ``exc`` and of every exception chained below it, then cut that chain.

    For an exception that is about to be chained under one of ours (``raise ours from exc``): what a
    traceback or a log prints of it can then hold no piece of a secret.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        masked = [mask_secrets(arg, secrets) if isinstance(arg, str) else arg for arg in current.args]
        current.args = tuple(masked)
        current = current.__cause__ or current.__context__
    exc.__cause__ = None
    exc.__context__ = None
    exc.__suppress_context__ = True
