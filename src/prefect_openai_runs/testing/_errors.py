"""OpenAI-shaped API errors: the one place every error message the emulator answers is written."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"


class ApiError(Exception):
    """An error the emulator answers as ``{"error": {"message", "type", "param", "code"}}``.

    Attributes:
        status: The HTTP status code.
        message: The human readable message.
        type: The error type, e.g. ``invalid_request_error``.
        param: The request parameter at fault, or None.
        code: The machine readable code, or None.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        """Return the JSON body of this error, all four keys present."""
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(
    message: str, *, type: str = INVALID_REQUEST, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """Build an OpenAI error body.

    Args:
        message: The message.
        type: The error type.
        param: The parameter at fault.
        code: The error code.

    Returns:
        ``{"error": {"message", "type", "param", "code"}}``.
    """
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def mask_key(key: str) -> str:
    """Mask an API key the way the API does in 401 messages (``sk-emu***key``), never echoing it whole."""
    if len(key) <= 8:
        return "***"
    return f"{key[:6]}***{key[-3:]}"


def invalid_api_key(provided: str | None) -> ApiError:
    """401 for a missing or wrong API key."""
    if not provided:
        return ApiError(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
            "username) if you're accessing the API from your browser and are prompted for a username and "
            "password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )
    return ApiError(
        401,
        f"Incorrect API key provided: {mask_key(provided)}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def invalid_beta() -> ApiError:
    """400 for a request without ``OpenAI-Beta: assistants=v2``."""
    return ApiError(
        400,
        "You must provide the 'OpenAI-Beta' header to access the Assistants API. Please try again by "
        "setting the header 'OpenAI-Beta: assistants=v2'.",
        code="invalid_beta",
    )


def invalid_url(method: str, path: str) -> ApiError:
    """404 for a path no endpoint serves."""
    return ApiError(404, f"Invalid URL ({method} {path})")


def invalid_json() -> ApiError:
    """400 for a body that is not a JSON object."""
    return ApiError(
        400,
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
        "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid "
        "JSON. If you have trouble figuring out how to fix this, please contact us through our help "
        "center at help.openai.com.)",
    )


_RATE_LIMIT_NAMES = {"requests": "requests per min (RPM)", "tokens": "tokens per min (TPM)"}
_RATE_LIMIT_HELP = "Visit https://platform.openai.com/account/rate-limits to learn more."


def rate_limited(kind: str, limit: int, used: int, requested: int, retry_in: str) -> ApiError:
    """429 when a request finds its requests or tokens bucket short (``kind``: ``requests`` or ``tokens``)."""
    return ApiError(
        429,
        f"Rate limit reached for {_RATE_LIMIT_NAMES[kind]}: Limit {limit}, Used {used}, Requested {requested}. "
        f"Please try again in {retry_in}. {_RATE_LIMIT_HELP}",
        type=kind,
        code="rate_limit_exceeded",
    )


def request_too_large(kind: str, limit: int, requested: int) -> ApiError:
    """429 for a request that asks for more than a full bucket holds: waiting cannot help."""
    return ApiError(
        429,
        f"Request too large for {_RATE_LIMIT_NAMES[kind]}: Limit {limit}, Requested {requested}. "
        f"The input or output tokens must be reduced in order to run successfully. {_RATE_LIMIT_HELP}",
        type=kind,
        code="rate_limit_exceeded",
    )


def not_found(kind: str, object_id: str) -> ApiError:
    """404 ``No <kind> found with id '<id>'.`` (kind: thread, run, assistant, message, run step)."""
    return ApiError(404, f"No {kind} found with id '{object_id}'.")


def thread_busy(thread_id: str, run_id: str) -> ApiError:
    """400 when a thread already has an active run."""
    return ApiError(400, f"Thread {thread_id} already has an active run {run_id}.")


def cannot_cancel(status: str) -> ApiError:
    """400 when cancelling a run that is cancelling or terminal."""
    return ApiError(400, f"Cannot cancel run with status '{status}'.")


def no_tool_outputs_accepted(status: str) -> ApiError:
    """400 when submitting tool outputs to a run not in ``requires_action``."""
    return ApiError(400, f'Runs in status "{status}" do not accept tool outputs.')


def tool_outputs_mismatch(expected: Iterable[str], got: Iterable[str]) -> ApiError:
    """400 when tool outputs do not answer exactly the pending tool calls."""
    expected_ids, got_ids = sorted(expected), sorted(got)
    missing = [i for i in expected_ids if i not in got_ids]
    return ApiError(
        400,
        f"Expected tool outputs for call_ids {expected_ids}, got {got_ids}. Missing: {missing}.",
        param="tool_outputs",
    )


def unknown_parameter(param: str) -> ApiError:
    """400 for a field the schema does not allow."""
    name = param.rsplit(".", 1)[-1]
    return ApiError(400, f"Unrecognized request argument supplied: {name}", param=param, code="unknown_parameter")


def missing_parameter(param: str) -> ApiError:
    """400 for a required field that is absent."""
    return ApiError(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def invalid_type(param: str, expected: str, got: object) -> ApiError:
    """400 for a value of the wrong JSON type."""
    return ApiError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {json_type_name(got)} instead.",
        param=param,
        code="invalid_type",
    )


def invalid_value(param: str, message: str, code: str = "invalid_value") -> ApiError:
    """400 for a value of the right type that the schema still rejects."""
    return ApiError(400, f"Invalid '{param}': {message}", param=param, code=code)


def unsupported_value(param: str, got: object, allowed: Iterable[str]) -> ApiError:
    """400 for a value outside an enum."""
    options = [f"'{a}'" for a in allowed]
    listed = ", ".join(options[:-1]) + f" and {options[-1]}" if len(options) > 1 else options[0]
    return ApiError(400, f"Invalid value: '{got}'. Supported values are: {listed}.", param=param, code="invalid_value")


def json_type_name(value: object) -> str:
    """Name a JSON value's type the way API messages do (``a string``, ``an object``...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


_STATUS_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Bad request.", INVALID_REQUEST, None),
    401: ("Incorrect API key provided.", INVALID_REQUEST, "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", INVALID_REQUEST, None),
    404: ("Not found.", INVALID_REQUEST, None),
    409: ("Conflict.", INVALID_REQUEST, None),
    429: (
        "Rate limit reached for requests. Please try again in 1s.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: ("The server had an error while processing your request. Sorry about that!", SERVER_ERROR, None),
    502: ("Bad gateway.", SERVER_ERROR, None),
    503: ("The engine is currently overloaded, please try again later.", SERVER_ERROR, None),
    504: ("Gateway timeout.", SERVER_ERROR, None),
}


def status_error_body(status: int) -> dict[str, Any]:
    """The OpenAI-shaped body the API answers for a bare HTTP status (used by status faults)."""
    message, type_, code = _STATUS_ERRORS.get(
        status, (f"The server answered HTTP {status}.", SERVER_ERROR if status >= 500 else INVALID_REQUEST, None)
    )
    return error_body(message, type=type_, code=code)


def thread_busy_for_messages(thread_id: str, run_id: str) -> ApiError:
    """400 when adding a message to a thread whose run is active."""
    return ApiError(400, f"Can't add messages to {thread_id} while a run {run_id} is active.")


def response_not_found(response_id: str) -> ApiError:
    """404 for an unknown (deleted, or no longer kept) response."""
    return ApiError(404, f"Response with id '{response_id}' not found.", param="response_id")


def previous_response_not_found(response_id: str) -> ApiError:
    """404 for a ``previous_response_id`` that names no response."""
    return ApiError(404, f"Previous response with id '{response_id}' not found.", param="previous_response_id")


def missing_function_output(call_id: str) -> ApiError:
    """400 for a follow-up that leaves one of the previous response's function calls unanswered."""
    return ApiError(400, f"No tool output found for function call {call_id}.", param="input")


def background_needs_store() -> ApiError:
    """400 for ``background: true`` with ``store: false``."""
    return ApiError(400, "Background mode requires the response to be stored: store must not be false.", param="store")


def cannot_cancel_response(status: str) -> ApiError:
    """400 when cancelling a terminal response: the live API's wording for ``completed``, Azure's for
    ``failed`` and for any other terminal status."""
    if status in ("completed", "failed"):
        return ApiError(400, f"Cannot cancel a {status} response.")
    return ApiError(400, "Cannot cancel a response in terminal state.")


def cannot_cancel_foreground() -> ApiError:
    """400 when cancelling a response that was not created in background mode."""
    return ApiError(400, "Only responses created with background=true can be cancelled.")


def stream_not_background() -> ApiError:
    """400 when resuming the stream of a response that was not created in background mode."""
    return ApiError(400, "This response cannot be streamed because it was not created with background=true.")


def stream_too_old(window_minutes: float) -> ApiError:
    """400 when resuming the stream of a response older than the resume window."""
    return ApiError(
        400, f"This response can no longer be streamed because it is more than {window_minutes:g} minutes old."
    )
