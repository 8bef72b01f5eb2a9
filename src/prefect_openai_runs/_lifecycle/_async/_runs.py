"""The runs API as the core's adapter: starting a run (streamed or not) without ever losing it, finding
it again by its idempotency key, reading, polling and cancelling it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from prefect_openai_runs import _deadline
from prefect_openai_runs._lifecycle._async._backend import Reader
from prefect_openai_runs._lifecycle._kinds import JobRef, worth_reattaching
from prefect_openai_runs._lifecycle._run_kind import RUN, RunKind
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs.client import AsyncRunsClient
from prefect_openai_runs.exceptions import (
    APIConnectionError,
    InternalServerError,
    InvalidResponseError,
    RunNotCancellableError,
    StreamError,
)
from prefect_openai_runs.models import CreateRunParams, Run, StreamEvent

STREAM_START_ERRORS = (StreamError, APIConnectionError, InvalidResponseError, InternalServerError)
"""Failures of a streamed create after which the run is looked up (it may exist) and created without a stream."""


@dataclass(frozen=True)
class RunSpec:
    """What starting a run takes.

    Attributes:
        thread_id: The thread to run on.
        params: The create-run parameters.
        key: The idempotency key (derived from the logical call, so a Prefect retry finds its run).
        reattach: An earlier attempt of the same call recorded its intent: a run it created with this
            key, completed or still able to complete, is followed instead of creating another.
    """

    thread_id: str
    params: CreateRunParams
    key: str
    reattach: bool = False


async def run_states(events: AsyncIterator[StreamEvent]) -> AsyncIterator[Run]:
    """The runs a stream's events carry (``thread.run.*`` events), in order."""
    async for event in events:
        if event.run is not None:
            yield event.run


class AsyncRunsApi:
    """The runs API for the lifecycle core, over an :class:`~prefect_openai_runs.client.AsyncRunsClient`."""

    kind: RunKind = RUN

    def __init__(self, client: AsyncRunsClient) -> None:
        self.client = client

    async def start(self, spec: RunSpec, stream: bool) -> tuple[Run, Reader[Run] | None]:
        """Create the run, streamed when asked, tagged with the spec's idempotency key.

        With ``stream``, the events are read up to the first run event (never past the current
        deadline), and the rest of the stream is returned. If the stream fails or ends before that, the
        run is looked up by its key (the request may have created it) and, only if it does not exist,
        created without streaming. With ``spec.reattach``, a run an earlier attempt created (still able to
        complete, or completed: see :func:`worth_reattaching`) is looked up first and returned instead.
        """
        if spec.reattach:
            earlier = await self.client.find_run(spec.thread_id, spec.key)
            if earlier is not None and worth_reattaching(RUN, earlier):
                get_logger().info("Re-attaching to %s, created by an earlier attempt", RUN.ref(earlier).describe())
                return earlier, None
        if stream:
            events = Reader(run_states(self.client.stream_run(spec.thread_id, spec.params, idempotency_key=spec.key)))
            try:
                first = await events.next(_remaining())
            except STREAM_START_ERRORS as exc:
                get_logger().warning("Streaming the new run failed (%s); looking it up and polling instead", exc)
                first = None
            except BaseException:
                events.close_soon()  # interrupted (a flow timeout, a cancellation): the stream is let go
                raise
            if first is not None:
                return first, events
            await events.close()
            found = await self.client.find_run(spec.thread_id, spec.key)
            if found is not None:
                return found, None
        return await self.client.create_run(spec.thread_id, spec.params, idempotency_key=spec.key), None

    async def recover(self, spec: RunSpec) -> Run | None:
        """The run created with the spec's key on its thread, if any."""
        return await self.client.find_run(spec.thread_id, spec.key)

    async def get(self, ref: JobRef) -> Run:
        """Retrieve the run."""
        return await self.client.get_run(_thread(ref), ref.id)

    async def poll(self, ref: JobRef) -> tuple[Run, int | None]:
        """Retrieve the run with the server's polling hint."""
        return await self.client.poll_run(_thread(ref), ref.id)

    async def cancel(self, ref: JobRef) -> Run | None:
        """Cancel the run; ``None`` on the API's 400 *Cannot cancel run with status ...*."""
        try:
            return await self.client.cancel_run(_thread(ref), ref.id)
        except RunNotCancellableError:
            return None

    async def restream(self, ref: JobRef) -> Reader[Run] | None:
        """``None``: a run's stream cannot be resumed (a silent one is read on)."""
        return None

    async def submit_tool_outputs(
        self, run: Run, outputs: dict[str, str], stream: bool
    ) -> tuple[Run | None, Reader[Run] | None]:
        """Answer the run's tool calls; streamed, the run's next states come from the returned stream."""
        if stream:
            events = self.client.stream_submit_tool_outputs(run.thread_id, run.id, outputs)
            return None, Reader(run_states(events))
        return await self.client.submit_tool_outputs(run.thread_id, run.id, outputs), None


def _thread(ref: JobRef) -> str:
    if ref.parent_id is None:
        raise ValueError(f"run {ref.id} has no thread id: a run is addressed by its thread and its id")
    return ref.parent_id


def _remaining() -> float:
    left = _deadline.remaining()
    return 3600.0 if left is None else left
