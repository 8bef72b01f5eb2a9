"""A job block: Prefect's ``JobBlock`` / ``JobRun`` interface over an assistant run, with a cancel.

Example:
    ```python
    from prefect import flow
    from prefect_openai_runs.jobs import OpenAIAssistantRun

    @flow
    async def summarise() -> str:
        job = OpenAIAssistantRun(credentials=OpenAICredentials.load("openai"), assistant_id="asst_abc",
                                 messages=["Summarise the incident log"], max_wait_seconds=300)
        job_run = await job.trigger()
        await job_run.wait_for_completion()      # cancels the run if the deadline passes
        return await job_run.fetch_result()
    ```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
from prefect.blocks.abstract import JobBlock, JobRun
from pydantic import Field, HttpUrl

from prefect_openai_runs._lifecycle._async._driver import end_job, follow, start_job
from prefect_openai_runs._lifecycle._async._runs import AsyncRunsApi, RunSpec
from prefect_openai_runs._lifecycle._follower import DEFAULT_CANCEL_WAIT_SECONDS, JobFollower
from prefect_openai_runs._lifecycle._hooks import RunHooks
from prefect_openai_runs._lifecycle._keys import logical_key
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs.blocks import OpenAICredentials
from prefect_openai_runs.client import AsyncRunsClient
from prefect_openai_runs.exceptions import OpenAIRunsError, RunTimedOut
from prefect_openai_runs.models import CreateMessageParams, CreateRunParams, Run, RunStatus

if TYPE_CHECKING:
    _TextJobBlock = JobBlock[str]
else:
    # At runtime the block subclasses the unparametrised base: pydantic makes ``JobBlock[str]`` a Block
    # subclass of its own, which Prefect's registry (and so every server's block catalog) would list as a
    # stray block type "JobBlock[str]". Prefect before 3.2 has no generic JobBlock at all.
    _TextJobBlock = JobBlock


class OpenAIAssistantJobRun(JobRun[str]):
    """One triggered assistant run: wait for it, fetch its reply, or cancel it."""

    def __init__(self, block: OpenAIAssistantRun, client: AsyncRunsClient, run: Run) -> None:
        self._block = block
        self._client = client
        self._api = AsyncRunsApi(client)
        self.run = run
        """The run's last known state."""

    def _hooks(self) -> RunHooks:
        return RunHooks(self._block.max_wait_seconds, progress=False)

    async def wait_for_completion(self) -> None:  # type: ignore[override]  # Prefect annotates Logger; None, as prefect-dbt
        """Follow the run until it ends. Past the block's deadline, or when the wait is interrupted (the
        flow's timeout, a cancellation), the run is cancelled first; then the outcome is raised.

        Raises:
            RunOutcomeError: When the run did not complete (``RunFailed``, ``RunTimedOut``, ...).
        """
        hooks = self._hooks()
        follower: JobFollower[Run] = JobFollower(
            self._api.kind, self._api.kind.ref(self.run), self._block.max_wait_seconds, on_change=hooks.changed
        )
        follower.observe(self.run)
        failure: BaseException | None = None
        try:
            self.run = await follow(self._api, follower)
        except RunTimedOut as exc:
            failure = exc
        except BaseException as exc:
            # Shielded: a flow timeout or a cancellation cancels the scope this runs in, which would
            # cancel the cancel itself at its first await.
            with anyio.CancelScope(shield=True):
                try:
                    ending = await end_job(self._api, follower, exc, DEFAULT_CANCEL_WAIT_SECONDS, hooks)
                    self.run = ending.job
                except OpenAIRunsError as error:
                    get_logger().error("Could not cancel OpenAI run %s: %s", self.run.id, error)
            raise
        ending = await end_job(self._api, follower, failure, DEFAULT_CANCEL_WAIT_SECONDS, hooks)
        self.run = ending.job
        if ending.error is not None:
            raise ending.error

    async def fetch_result(self) -> str:
        """The assistant's reply text (the run must have completed)."""
        if self.run.status is not RunStatus.COMPLETED:
            raise ValueError(f"run {self.run.id} is {self.run.status}; only a completed run has a result")
        texts = [
            message.text
            async for message in self._client.list_messages(self.run.thread_id, run_id=self.run.id, order="asc")
            if message.role == "assistant" and message.text
        ]
        return "\n\n".join(texts)

    async def cancel(self, reason: str = "cancelled on request") -> Run:
        """Cancel the run (safe in every state) and wait until it is terminal; returns its final state."""
        follower: JobFollower[Run] = JobFollower(self._api.kind, self._api.kind.ref(self.run), 1.0)
        ending = await end_job(self._api, follower, None, DEFAULT_CANCEL_WAIT_SECONDS, self._hooks(), reason)
        self.run = ending.job
        return self.run

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


class OpenAIAssistantRun(_TextJobBlock):
    """An assistant run to trigger: the assistant, the messages, the deadline and run parameters."""

    _block_type_name = "OpenAI Assistant Run"
    _block_type_slug = "openai-assistant-run"
    _logo_url = HttpUrl(
        "https://cdn.sanity.io/images/3ugk85nk/production/760539393a7dbf93a143fb01c2a8d5c5f1d5e3a6-250x250.png"
    )
    _description = "Triggers an OpenAI Assistants run and follows it to completion, cancelling it at its deadline."

    credentials: OpenAICredentials = Field(description="Credentials for the runs API.")
    assistant_id: str = Field(description="The assistant to run.")
    messages: list[str] = Field(default_factory=list, description="User messages for the run.")
    thread_id: str | None = Field(default=None, description="An existing thread; a new one is created if unset.")
    max_wait_seconds: float = Field(default=600.0, gt=0, description="Deadline; past it the run is cancelled.")
    run_parameters: dict[str, Any] = Field(default_factory=dict, description="Other create-run parameters.")

    async def trigger(self) -> OpenAIAssistantJobRun:
        """Create the run (and its thread when needed), record it, and return its job run.

        The client is closed if the create fails.
        """
        messages = [CreateMessageParams(content=text) for text in self.messages]
        params = CreateRunParams(
            assistant_id=self.assistant_id, additional_messages=messages or None, **self.run_parameters
        )
        client = self.credentials.get_async_client()
        try:
            thread_id = self.thread_id or (await client.create_thread()).id
            key = logical_key("run")
            run, _ = await start_job(
                AsyncRunsApi(client),
                RunSpec(thread_id, params, key),
                key=key,
                parent_id=thread_id,
                stream=False,
                hooks=RunHooks(self.max_wait_seconds, progress=False),
            )
        except BaseException:
            await client.aclose()
            raise
        return OpenAIAssistantJobRun(self, client, run)


__all__ = [
    "OpenAIAssistantJobRun",
    "OpenAIAssistantRun",
]
