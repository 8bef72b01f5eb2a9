"""What the sync and the async clients share without I/O: settings, headers, building a request under
the current deadline, turning an error response into an exception, and the stream's bookkeeping."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any, Literal, Protocol, TypeVar

import httpx
from pydantic import SecretStr

from prefect_openai_runs import _deadline
from prefect_openai_runs._recording._context import current_flow_run_id
from prefect_openai_runs._secrets import mask_secrets, secret_values
from prefect_openai_runs.client._http import BETA_HEADER, Call, build_headers, check_response, transport_error
from prefect_openai_runs.client._pacing import shared_budget
from prefect_openai_runs.client._sse import SSEDecoder
from prefect_openai_runs.client._throttle import TurnTimeout
from prefect_openai_runs.exceptions import APIConnectionError, APITimeoutError, StreamError
from prefect_openai_runs.models import StreamEvent
from prefect_openai_runs.retry import RetryPolicy

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 60.0
MAX_CONNECTIONS = 1000
"""One connection per open event stream: as many kept alive as may be open at once, so that following a
thousand jobs never churns through new TCP connections."""

DOWNLOAD_CHUNK_BYTES = 1 << 16
"""Bytes read at a time when a file's content is streamed to disk."""

Order = Literal["asc", "desc"]
E = TypeVar("E")


class ClientConfig:
    """Configuration, headers, request building and response checking of a client.

    Args:
        api_key: The API key (kept out of every message and repr).
        api_key_header: The header that carries the key: ``Authorization`` (as ``Bearer <key>``) or,
            for Azure-style servers, ``api-key`` (the key as is).
        base_url: The API's base URL, ending in ``/v1``.
        organization: Sent as ``OpenAI-Organization`` when set.
        project: Sent as ``OpenAI-Project`` when set.
        default_headers: Extra headers on every request.
        default_query: Extra query parameters on every request (e.g. ``{"api-version": ...}``).
        timeout: Request timeout in seconds (capped, inside a job's following, by its deadline).
        retry_policy: How failed requests are retried.
        rate_limit: The name of a Prefect global concurrency limit (with slot decay) that every create
            takes a slot of, so that several processes and machines share one account's budget.
        pace: Pace the requests by the server's rate limits (on by default): every client built in the
            same Prefect flow run (or, outside any, in the same process) for the same server and key shares
            one :class:`~prefect_openai_runs.client._pacing.RateBudget`, which reads the ``x-ratelimit-*``
            headers and the ``retry-after`` of a 429, so that many coroutines spread their requests instead
            of meeting a 429 storm, and back off together after one. Unrelated flow runs never wait for
            each other; no wait for a turn outlasts the job's deadline; cancels never wait.
    """

    def __init__(
        self,
        *,
        api_key: SecretStr | str,
        api_key_header: str = "Authorization",
        base_url: str = DEFAULT_BASE_URL,
        organization: str | None = None,
        project: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry_policy: RetryPolicy | None = None,
        rate_limit: str | None = None,
        pace: bool = True,
    ) -> None:
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        if not key:
            raise ValueError(
                "no OpenAI API key: set api_key on the OpenAICredentials block or the OPENAI_API_KEY "
                "environment variable"
            )
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL!r}, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.organization = organization
        self.project = project
        self.retry_policy = retry_policy or RetryPolicy()
        self.rate_limit = rate_limit
        self._budget = shared_budget(self.base_url, key, _pacing_scope()) if pace else None
        self._secrets = secret_values(key, *(default_headers or {}).values())
        self._default_query = dict(default_query or {})
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._headers = build_headers(
            api_key=key,
            api_key_header=api_key_header,
            organization=organization,
            project=project,
            extra=default_headers,
        )
        self._beta_headers = [name for name in BETA_HEADER if name not in (default_headers or {})]
        """The beta headers a request that does not need them goes without (unless the user set them)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, organization={self.organization!r})"

    def _http_options(self) -> dict[str, Any]:
        return {
            "headers": self._headers,
            "timeout": self._timeout,
            "limits": httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS),
        }

    def _timeout_now(self) -> httpx.Timeout:
        """The request timeout, each part capped by what is left of the current deadline."""
        left = _deadline.remaining()
        if left is None:
            return self._timeout
        left = max(left, 0.001)

        def cap(value: float | None) -> float:
            return left if value is None else min(value, left)

        t = self._timeout
        return httpx.Timeout(connect=cap(t.connect), read=cap(t.read), write=cap(t.write), pool=cap(t.pool))

    def _request(self, call: Call) -> dict[str, Any]:
        params = {**self._default_query, **(call.params or {})}
        return {
            "method": call.method,
            "url": f"{self.base_url}{call.path}",
            "params": params or None,
            "json": call.json,
            "timeout": self._timeout_now(),
        }

    @staticmethod
    def _unbound_body_reads(response: httpx.Response) -> None:
        """Once a stream's headers are in, let its body wait as long as the job thinks.

        The headers keep the client's read timeout; the events are bounded by the follower's deadline
        instead (httpcore reads the body's timeout from this same dict when the body is first read).
        """
        timeouts = response.request.extensions.get("timeout")
        if isinstance(timeouts, dict):
            timeouts["read"] = None

    def _check(self, response: httpx.Response, body_text: str | None = None) -> None:
        check_response(
            response, secrets=self._secrets, max_retry_after=self.retry_policy.max_retry_after, body_text=body_text
        )

    def _transport_error(self, exc: httpx.HTTPError, call: Call) -> APIConnectionError:
        return transport_error(exc, call, self._secrets)

    def _turn_timeout(self, call: Call, cause: TurnTimeout) -> APITimeoutError:
        """The error of a request whose turn under the rate limit would come after the job's deadline: a
        timeout at the deadline, like a request that did not answer in time, except that it was not sent."""
        message = f"{call.describe()}: the deadline passed while it waited for its turn under the rate limit ({cause})"
        return APITimeoutError(mask_secrets(f"{message}; not sent", self._secrets), request_sent=False)


def _pacing_scope() -> str | None:
    """What the client's rate budget is shared by: the current Prefect flow run, or (None) the process."""
    flow_run_id = current_flow_run_id()
    return None if flow_run_id is None else f"flow-run:{flow_run_id}"


@contextmanager
def open_uploads(call: Call) -> Iterator[dict[str, Any]]:
    """httpx's ``data=`` and ``files=`` for a multipart call (nothing for others), with each file's
    stream opened for this attempt and closed after it."""
    if not call.files and call.form is None:
        yield {}
        return
    with ExitStack() as stack:
        files = {u.form_field: (u.filename, stack.enter_context(u.open()), u.content_type) for u in call.files}
        yield {"data": dict(call.form or {}), "files": files or None}


class StreamCodec(Protocol[E]):
    """What a client needs to read one API's event stream: parsing and the stream's bookkeeping."""

    def decoder(self) -> SSEDecoder[E]:
        """A fresh decoder of this API's events."""

    def see(self, event: E) -> E:
        """Take an event (remembering what it says about the job); an ``error`` event raises :class:`StreamError`."""

    def is_end(self, event: E) -> bool:
        """Whether the event ends the stream (``done``)."""

    def broken(self, cause: BaseException) -> StreamError:
        """The error for a stream that broke before it ended, naming what is known of the job."""


class RunStreamCodec:
    """The runs API's stream: remembers the thread and run it is about, so a broken stream never loses them."""

    def __init__(self, secrets: list[str]) -> None:
        self._secrets = secrets
        self.thread_id: str | None = None
        self.run_id: str | None = None

    def decoder(self) -> SSEDecoder[StreamEvent]:
        """A decoder of the runs' events."""
        return SSEDecoder()

    def see(self, event: StreamEvent) -> StreamEvent:
        """Take an event; an ``error`` event raises :class:`StreamError` (its text masked of secrets)."""
        run = event.run
        if run is not None:
            self.thread_id, self.run_id = run.thread_id, run.id
        if event.event == "error":
            text = mask_secrets(str(getattr(event.data, "message", event.data)), self._secrets)
            raise StreamError(
                f"the server sent an error event: {text}", run_id=self.run_id, thread_id=self.thread_id
            )
        return event

    def is_end(self, event: StreamEvent) -> bool:
        """``done`` ends the stream."""
        return event.is_done

    def broken(self, cause: BaseException) -> StreamError:
        """The error for a stream that broke before it ended."""
        return StreamError(
            f"the event stream broke before it ended ({type(cause).__name__}); last run seen: {self.run_id or 'none'}",
            run_id=self.run_id,
            thread_id=self.thread_id,
        )
