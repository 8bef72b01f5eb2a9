"""The runs API's asynchronous client, :class:`AsyncRunsClient` (its synchronous twin, ``RunsClient``, is
generated from this file by ``scripts/unasync.py``).

Example:
    ```python
    from prefect_openai_runs import OpenAICredentials

    async with OpenAICredentials.load("openai").get_async_client() as client:
        thread = await client.create_thread()
        run = await client.create_run(thread.id, assistant_id="asst_abc123")
        print((await client.get_run(thread.id, run.id)).status)
    ```
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

from prefect_openai_runs._logging import get_logger
from prefect_openai_runs.client import _operations as ops
from prefect_openai_runs.client._async._base import AsyncClientBase
from prefect_openai_runs.client._config import Order, RunStreamCodec
from prefect_openai_runs.client._params import run_params, split_thread_and_run, thread_params, tool_outputs_params
from prefect_openai_runs.exceptions import OpenAIRunsError
from prefect_openai_runs.models import (
    CreateMessageParams,
    CreateRunParams,
    CreateThreadAndRunParams,
    CreateThreadParams,
    Message,
    ModifyRunParams,
    Run,
    RunStep,
    StreamEvent,
    SubmitToolOutputsParams,
    Thread,
    ToolOutput,
)


class AsyncRunsClient(AsyncClientBase):
    """Asynchronous client of the runs API over one pooled ``httpx.AsyncClient``.

    One instance can follow thousands of runs concurrently. Every request is retried by the client's
    :class:`~prefect_openai_runs.retry.RetryPolicy`; creating a run is safe to retry (see
    :data:`~prefect_openai_runs.client.IDEMPOTENCY_METADATA_KEY`).

    Args:
        api_key: The API key (kept out of every message and repr).
        api_key_header: ``Authorization`` (as ``Bearer <key>``) or, for Azure-style servers, ``api-key``.
        base_url: The API's base URL, ending in ``/v1``.
        organization: Sent as ``OpenAI-Organization`` when set.
        project: Sent as ``OpenAI-Project`` when set.
        default_headers: Extra headers on every request.
        default_query: Extra query parameters on every request (e.g. ``{"api-version": ...}``).
        timeout: Request timeout in seconds.
        retry_policy: How failed requests are retried.
        http_client: An ``httpx`` client to use instead of the client's own.
    """

    # -- threads and messages ------------------------------------------------------------------------

    async def create_thread(self, params: CreateThreadParams | None = None, **options: Any) -> Thread:
        """Create a thread, optionally with ``messages`` and ``metadata``."""
        return await self._drive(ops.create_thread(thread_params(params, options)))

    async def delete_thread(self, thread_id: str) -> bool:
        """Delete a thread (with its messages); whether the server deleted it."""
        return await self._drive(ops.delete_thread(thread_id))

    async def discard_thread(self, thread_id: str) -> None:
        """Delete the empty thread made for a run the server refused outright (see
        :func:`~prefect_openai_runs.client._operations.refused_outright`), best effort: a failure is logged,
        never raised. A retry that goes back to that thread then fails with the server's "No thread found"
        error; nothing is created twice."""
        try:
            await self.delete_thread(thread_id)
        except OpenAIRunsError as error:
            get_logger().warning("Could not delete the empty thread %s (made for a refused run): %s", thread_id, error)
        else:
            get_logger().info("Deleted thread %s: it was made for a run the server refused", thread_id)

    async def add_message(
        self, thread_id: str, content: str, *, role: Literal["user", "assistant"] = "user"
    ) -> Message:
        """Add a message to a thread."""
        return await self._drive(ops.add_message(thread_id, CreateMessageParams(role=role, content=content)))

    def list_messages(
        self, thread_id: str, *, run_id: str | None = None, order: Order = "desc", limit: int = 20
    ) -> AsyncIterator[Message]:
        """Iterate over a thread's messages (all pages), optionally only those a run created."""
        params = ops.list_params(limit, order, run_id=run_id)
        return self._pages(ops.messages_path(thread_id), params, Message)

    # -- runs ----------------------------------------------------------------------------------------

    async def create_run(
        self,
        thread_id: str,
        params: CreateRunParams | None = None,
        *,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> Run:
        """Create a run on a thread; safe to retry (see :data:`IDEMPOTENCY_METADATA_KEY`)."""
        key = idempotency_key or ops.new_idempotency_key()
        return await self._drive(ops.create_run(thread_id, run_params(params, options), key))

    async def create_thread_and_run(self, params: CreateThreadAndRunParams | None = None, **options: Any) -> Run:
        """Create a thread and a run on it, as two requests so that a retry never leaves two runs."""
        thread_part, run_part = split_thread_and_run(params, options)
        key = ops.new_idempotency_key()
        ops.with_idempotency_key(run_part, key)  # metadata without room for the key fails before the thread exists
        thread = await self.create_thread(thread_part)
        try:
            return await self.create_run(thread.id, run_part, idempotency_key=key)
        except OpenAIRunsError as error:
            if ops.refused_outright(error):
                await self.discard_thread(thread.id)
            raise

    async def get_run(self, thread_id: str, run_id: str) -> Run:
        """Retrieve a run."""
        return await self._drive(ops.get_run(thread_id, run_id))

    async def poll_run(self, thread_id: str, run_id: str) -> tuple[Run, int | None]:
        """Retrieve a run with the server's polling hint in milliseconds (``None`` when not sent)."""
        return await self._drive(ops.poll_run(thread_id, run_id))

    def list_runs(self, thread_id: str, *, order: Order = "desc", limit: int = 20) -> AsyncIterator[Run]:
        """Iterate over a thread's runs, following pagination."""
        return self._pages(ops.runs_path(thread_id), ops.list_params(limit, order), Run)

    async def modify_run(self, thread_id: str, run_id: str, *, metadata: dict[str, str]) -> Run:
        """Replace a run's metadata."""
        return await self._drive(ops.modify_run(thread_id, run_id, ModifyRunParams(metadata=metadata)))

    async def cancel_run(self, thread_id: str, run_id: str) -> Run:
        """Ask the server to cancel a run; returns it as ``cancelling`` (or raises ``RunNotCancellableError``)."""
        return await self._drive(ops.cancel_run(thread_id, run_id))

    async def submit_tool_outputs(
        self, thread_id: str, run_id: str, outputs: SubmitToolOutputsParams | list[ToolOutput] | Mapping[str, str]
    ) -> Run:
        """Answer every pending tool call of a run in one request."""
        return await self._drive(ops.submit_tool_outputs(thread_id, run_id, tool_outputs_params(outputs)))

    def list_run_steps(
        self, thread_id: str, run_id: str, *, order: Order = "asc", limit: int = 20
    ) -> AsyncIterator[RunStep]:
        """Iterate over a run's steps."""
        return self._pages(ops.steps_path(thread_id, run_id), ops.list_params(limit, order), RunStep)

    async def find_run(self, thread_id: str, idempotency_key: str) -> Run | None:
        """The run created with ``idempotency_key`` on the thread, if any (recovery after a lost answer)."""
        reply = await self._drive(ops.find_run_by_key(thread_id, idempotency_key))
        return None if reply is None else Run.model_validate(reply.body)

    # -- streaming -----------------------------------------------------------------------------------

    def stream_run(
        self,
        thread_id: str,
        params: CreateRunParams | None = None,
        *,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> AsyncIterator[StreamEvent]:
        """Create a run with ``stream: true`` and iterate over its events until ``done``.

        The request is not retried once it may have reached the server: on such a failure, find the
        run with :meth:`find_run` and the same ``idempotency_key``.
        """
        key = idempotency_key or ops.new_idempotency_key()
        call = ops.stream_run_call(thread_id, run_params(params, options), key)
        return self._stream(call, RunStreamCodec(self._secrets))

    async def stream_thread_and_run(
        self, params: CreateThreadAndRunParams | None = None, **options: Any
    ) -> AsyncIterator[StreamEvent]:
        """Create a thread, then stream a run on it."""
        thread_part, run_part = split_thread_and_run(params, options)
        key = ops.new_idempotency_key()
        ops.with_idempotency_key(run_part, key)  # metadata without room for the key fails before the thread exists
        thread = await self.create_thread(thread_part)
        return self.stream_run(thread.id, run_part, idempotency_key=key)

    def stream_submit_tool_outputs(
        self, thread_id: str, run_id: str, outputs: SubmitToolOutputsParams | list[ToolOutput] | Mapping[str, str]
    ) -> AsyncIterator[StreamEvent]:
        """Submit tool outputs with ``stream: true`` and iterate over the run's events."""
        return self._stream(
            ops.stream_tool_outputs_call(thread_id, run_id, tool_outputs_params(outputs)), RunStreamCodec(self._secrets)
        )
