"""Retry policies, composed from tenacity's stop / wait / retry objects. Nothing else in the library retries.

What is retried: connection errors, timeouts, 408, 409, 429 and 5xx, unless the server's
``x-should-retry`` header says otherwise. What is never retried: 400, 401, 403, 404, 422 and any
other status below 500. The wait is what ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP
date) says; without either, exponential backoff with jitter. Attempts are bounded and the whole
sequence has a deadline that no sleep crosses. Every retry is logged at warning level with the reason
and the wait.

Creating a run is not idempotent on the wire: the client recovers the run an ambiguous failure may
have created before it sends again (see :mod:`prefect_openai_runs.client`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from prefect_openai_runs import _deadline
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs.exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    InternalServerError,
    UntrustedCertificateError,
)

RETRYABLE_STATUSES = frozenset({408, 409, 429})
"""Statuses below 500 that are retried."""


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed request may be sent again.

    Args:
        exc: The exception the attempt raised.

    Returns:
        ``True`` for connection errors (but an untrusted TLS certificate), timeouts, 408, 409, 429 and
        5xx, unless the server's ``x-should-retry`` header said otherwise; ``False`` for everything else.
    """
    if isinstance(exc, APIConnectionError):
        return not isinstance(exc, UntrustedCertificateError)
    if not isinstance(exc, APIError):
        return False
    if exc.should_retry is not None:
        return exc.should_retry
    return exc.status_code in RETRYABLE_STATUSES or exc.status_code >= 500


def is_ambiguous(exc: BaseException) -> bool:
    """Whether the failed request may have been applied by the server although we got no answer.

    A timeout, a connection dropped after the request was sent, or a 5xx are ambiguous; a 429 or a
    connection refused before sending are not.
    """
    if isinstance(exc, APIConnectionError):
        return exc.request_sent
    return isinstance(exc, InternalServerError)


def is_retryable_unapplied(exc: BaseException) -> bool:
    """Whether a failed request may be sent again *and* cannot have been applied.

    Used for requests that must not be repeated blindly and have no recovery step (opening an event
    stream that creates a run): a 429 or a refused connection is retried, a timeout is not.
    """
    return is_retryable(exc) and not is_ambiguous(exc)


class wait_server_hint(wait_base):
    """Wait what the server asked (``retry-after-ms`` / ``retry-after``), else fall back to another wait."""

    def __init__(self, fallback: wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, APIError) and exc.retry_after is not None:
            return max(0.0, exc.retry_after)
        return float(self.fallback(retry_state))


class stop_at_deadline(stop_base):
    """Stop before a sleep that would end past the current job's deadline (see :mod:`._deadline`).

    Outside a deadline scope it never stops anything. With a deadline, a ``retry-after`` of 8 s on a
    poll two seconds before the deadline ends the retries at once instead of sleeping past it.
    """

    def __call__(self, retry_state: RetryCallState) -> bool:
        left = _deadline.remaining()
        return left is not None and (retry_state.upcoming_sleep or 0.0) >= left


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, APIError):
        return f"HTTP {exc.status_code} ({exc.code or exc.type or type(exc).__name__})"
    if isinstance(exc, APITimeoutError):
        return "timeout"
    if isinstance(exc, APIConnectionError):
        return f"connection error ({exc})"
    return type(exc).__name__


def log_retry(retry_state: RetryCallState) -> None:
    """Log one retry at warning level: the attempt, the reason and the wait (``before_sleep`` hook)."""
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    hint = " as the server asked" if isinstance(exc, APIError) and exc.retry_after is not None else ""
    get_logger().warning(
        "OpenAI request failed (attempt %d: %s); retrying in %.2fs%s",
        retry_state.attempt_number,
        _describe(exc),
        retry_state.upcoming_sleep,
        hint,
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How failed requests are retried.

    Attributes:
        max_attempts: Attempts in all, the first included (1 disables retries).
        deadline_seconds: No retry starts, and no sleep ends, later than this after the first attempt.
        initial_wait: First backoff wait, in seconds, when the server gives no hint.
        max_wait: Largest backoff wait, in seconds.
        jitter: Up to this many random seconds added to each backoff wait.
        max_retry_after: The longest ``retry-after`` the policy obeys; a longer one fails at once
            with :class:`~prefect_openai_runs.exceptions.RetryAfterTooLongError`.

    Example:
        ```python
        policy = RetryPolicy(max_attempts=8, deadline_seconds=300)
        client = credentials.get_client(retry_policy=policy)
        ```
    """

    max_attempts: int = 6
    deadline_seconds: float = 120.0
    initial_wait: float = 0.5
    max_wait: float = 8.0
    jitter: float = 0.5
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.deadline_seconds <= 0:
            raise ValueError(f"deadline_seconds must be positive, got {self.deadline_seconds}")

    @property
    def stop(self) -> stop_base:
        """Bounded attempts, and no sleep that would end past the policy's deadline or the job's."""
        return stop_after_attempt(self.max_attempts) | stop_before_delay(self.deadline_seconds) | stop_at_deadline()

    @property
    def wait(self) -> wait_base:
        """The server's hint when it gives one, else exponential backoff with jitter."""
        return wait_server_hint(
            wait_exponential_jitter(initial=self.initial_wait, max=self.max_wait, jitter=self.jitter)
        )

    def _arguments(self, retry_ambiguous: bool) -> dict[str, Any]:
        return {
            "stop": self.stop,
            "wait": self.wait,
            "retry": retry_if_exception(is_retryable if retry_ambiguous else is_retryable_unapplied),
            "before_sleep": log_retry,
            "reraise": True,
        }

    def retrying(self, *, retry_ambiguous: bool = True) -> Retrying:
        """A fresh tenacity ``Retrying`` for one synchronous request.

        Args:
            retry_ambiguous: Whether failures that may have been applied (timeouts, 5xx) are retried.
        """
        return Retrying(**self._arguments(retry_ambiguous))

    def async_retrying(self, *, retry_ambiguous: bool = True) -> AsyncRetrying:
        """A fresh tenacity ``AsyncRetrying`` for one asynchronous request (see :meth:`retrying`)."""
        return AsyncRetrying(**self._arguments(retry_ambiguous))


NO_RETRY = RetryPolicy(max_attempts=1)
"""A policy that sends each request once."""

__all__ = [
    "NO_RETRY",
    "RETRYABLE_STATUSES",
    "RetryPolicy",
    "is_ambiguous",
    "is_retryable",
    "is_retryable_unapplied",
    "log_retry",
    "stop_at_deadline",
    "wait_server_hint",
]
