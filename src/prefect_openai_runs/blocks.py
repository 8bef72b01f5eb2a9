"""The credentials block: API key, organization, project, base URL, headers, timeouts and retries."""

from __future__ import annotations

import os
from typing import Any

from prefect.blocks.abstract import CredentialsBlock
from prefect.blocks.fields import SecretDict
from pydantic import Field, HttpUrl, SecretStr

from prefect_openai_runs.client import (
    DEFAULT_BASE_URL,
    DEFAULT_TIMEOUT,
    AsyncBatchesClient,
    AsyncResponsesClient,
    AsyncRunsClient,
    BatchesClient,
    ResponsesClient,
    RunsClient,
)
from prefect_openai_runs.retry import RetryPolicy

API_KEY_ENV = "OPENAI_API_KEY"


class OpenAICredentials(CredentialsBlock):
    """Credentials and connection settings for an OpenAI runs API (OpenAI, or an Assistants-compatible server).

    The API key is a secret: Prefect stores it encrypted and shows it masked; it is readable only
    through ``api_key.get_secret_value()``. When it is not set, ``OPENAI_API_KEY`` is used.

    Attributes:
        api_key: The API key.
        api_key_header: The header that carries it (``Authorization`` or Azure-style ``api-key``).
        organization: Organization id, sent as ``OpenAI-Organization``.
        project: Project id, sent as ``OpenAI-Project``.
        base_url: The API's base URL, ending in ``/v1``.
        default_headers: Extra headers on every request (Azure-style servers want ``api-key``).
        default_query: Extra query parameters on every request (Azure-style servers want ``api-version``).
        timeout: Seconds before one request times out.
        max_retries: Retries of a failed request (429, 5xx, timeouts, dropped connections).
        retry_deadline: Seconds after which no retry of one request starts.
        pace_requests: Pace each flow run's requests by the server's rate-limit headers (on by default).
        rate_limit: A Prefect global concurrency limit (with slot decay) every create takes a slot of.

    Example:
        Load stored credentials and use their client:
        ```python
        from prefect_openai_runs import OpenAICredentials

        credentials = OpenAICredentials.load("BLOCK_NAME")
        with credentials.get_client() as client:
            thread = client.create_thread()
        ```
    """

    _block_type_name = "OpenAI Runs Credentials"
    _block_type_slug = "openai-runs-credentials"
    _logo_url = HttpUrl(
        "https://cdn.sanity.io/images/3ugk85nk/production/760539393a7dbf93a143fb01c2a8d5c5f1d5e3a6-250x250.png"
    )
    _description = "Credentials and connection settings for the OpenAI Assistants runs API."
    _documentation_url = HttpUrl("https://github.com/prefect-openai-runs/prefect-openai-runs/blob/main/docs/index.md")

    api_key: SecretStr | None = Field(
        default=None,
        title="API key",
        description="The OpenAI API key. When not set, the OPENAI_API_KEY environment variable is used.",
    )
    api_key_header: str = Field(
        default="Authorization",
        title="API key header",
        description=(
            "The header that carries the key: Authorization (sent as 'Bearer <key>', OpenAI) or api-key "
            "(sent as is, Azure-style servers)."
        ),
    )
    organization: str | None = Field(
        default=None, description="Organization id, sent as the OpenAI-Organization header."
    )
    project: str | None = Field(default=None, description="Project id, sent as the OpenAI-Project header.")
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        title="Base URL",
        description="The API's base URL, ending in /v1 (an Assistants-compatible server, or the emulator).",
    )
    default_headers: SecretDict = Field(
        default_factory=lambda: SecretDict({}),
        description=(
            "Extra headers sent with every request, e.g. {'api-key': ...} for Azure-style servers. "
            "Stored as a secret, since such headers often carry a key."
        ),
    )
    default_query: dict[str, str] = Field(
        default_factory=dict,
        description="Extra query parameters sent with every request, e.g. {'api-version': '2024-05-01-preview'}.",
    )
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, description="Seconds before one request times out.")
    max_retries: int = Field(
        default=5, ge=0, description="Retries of a failed request (429, 5xx, timeouts, dropped connections)."
    )
    retry_deadline: float = Field(
        default=120.0, gt=0, description="Seconds after the first attempt after which no retry starts."
    )
    pace_requests: bool = Field(
        default=True,
        description=(
            "Pace requests by the server's x-ratelimit-* headers and retry-after (on by default), so that a fan-out "
            "spreads its requests instead of meeting 429s, and back off together after a 429. The requests "
            "of one flow run share one budget (outside any flow run, the process does); unrelated flow runs "
            "never wait for each other, no wait outlasts the job's deadline, and cancels never wait."
        ),
    )
    rate_limit: str | None = Field(
        default=None,
        description=(
            "The name of a Prefect global concurrency limit with slot decay (e.g. created with `prefect gcl "
            "create openai-creates --limit 50 --slot-decay-per-second 8`) that every create takes a slot of, "
            "so that every worker shares one account's budget. Requests are also paced per flow run by the "
            "server's x-ratelimit-* headers (pace_requests), with or without it."
        ),
    )

    def resolved_api_key(self) -> SecretStr:
        """The API key, from the block or ``OPENAI_API_KEY``.

        Raises:
            ValueError: When neither is set, saying how to fix it.
        """
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key
        from_env = os.environ.get(API_KEY_ENV)
        if from_env:
            return SecretStr(from_env)
        raise ValueError(
            f"no OpenAI API key: set api_key on the {type(self).__name__} block or the {API_KEY_ENV} "
            "environment variable"
        )

    def retry_policy(self) -> RetryPolicy:
        """The retry policy these settings describe."""
        return RetryPolicy(max_attempts=self.max_retries + 1, deadline_seconds=self.retry_deadline)

    def _client_options(self, overrides: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {
            "api_key": self.resolved_api_key(),
            "api_key_header": self.api_key_header,
            "base_url": self.base_url,
            "organization": self.organization,
            "project": self.project,
            "default_headers": dict(self.default_headers.get_secret_value()),
            "default_query": self.default_query,
            "timeout": self.timeout,
            "retry_policy": self.retry_policy(),
            "rate_limit": self.rate_limit,
            "pace": self.pace_requests,
        }
        options.update(overrides)
        return options

    def get_client(self, **overrides: Any) -> RunsClient:
        """A synchronous client with these settings (keyword arguments override them)."""
        return RunsClient(**self._client_options(overrides))

    def get_async_client(self, **overrides: Any) -> AsyncRunsClient:
        """An asynchronous client with these settings (keyword arguments override them)."""
        return AsyncRunsClient(**self._client_options(overrides))

    def get_responses_client(self, **overrides: Any) -> ResponsesClient:
        """A synchronous client of background responses with these settings (keyword arguments override them)."""
        return ResponsesClient(**self._client_options(overrides))

    def get_async_responses_client(self, **overrides: Any) -> AsyncResponsesClient:
        """An asynchronous client of background responses with these settings (keyword arguments override them)."""
        return AsyncResponsesClient(**self._client_options(overrides))

    def get_batches_client(self, **overrides: Any) -> BatchesClient:
        """A synchronous client of the files and batches APIs with these settings (keywords override them)."""
        return BatchesClient(**self._client_options(overrides))

    def get_async_batches_client(self, **overrides: Any) -> AsyncBatchesClient:
        """An asynchronous client of the files and batches APIs with these settings (keywords override them)."""
        return AsyncBatchesClient(**self._client_options(overrides))


def resolve_credentials(credentials: OpenAICredentials | str) -> OpenAICredentials:
    """The block itself, or the saved block of that name.

    Raises:
        TypeError: Neither a block nor the name of a saved ``OpenAICredentials`` block.
    """
    if isinstance(credentials, OpenAICredentials):
        return credentials
    if isinstance(credentials, str) and credentials:
        loaded = OpenAICredentials.load(credentials, _sync=True)  # type: ignore[call-arg]
        if not isinstance(loaded, OpenAICredentials):
            raise TypeError(f"block {credentials!r} is a {type(loaded).__name__}, not OpenAICredentials")
        return loaded
    raise TypeError(
        f"credentials must be an OpenAICredentials block or the name of a saved one, got {type(credentials).__name__}"
    )


__all__ = [
    "API_KEY_ENV",
    "OpenAICredentials",
    "resolve_credentials",
]
