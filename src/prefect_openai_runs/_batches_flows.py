"""The ``run_batch`` flow: many requests in, results by ``custom_id`` out, no batch ever left behind.

The input is checked and written to JSONL files (split over 50,000 lines or 200 MB) before anything is
sent; each file is uploaded and its batch created once (found again on a retry); the batches are
followed together from one event loop under one deadline; on every other path than completion they
are cancelled and ``cancelling`` waited for; the results (partial ones too) are downloaded and merged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import tempfile
import threading
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from prefect_openai_runs import _deadline
from prefect_openai_runs._batch_run import BatchRunResult, collect_results, input_file_for, start_batch
from prefect_openai_runs._batches_tasks import batch_params
from prefect_openai_runs._flow_parameters import requests_summary_flow
from prefect_openai_runs._lifecycle._async._batches import AsyncBatchesApi
from prefect_openai_runs._lifecycle._batch_hooks import BatchHooks
from prefect_openai_runs._lifecycle._batch_kind import BATCH, BATCH_SCHEDULE, DEFAULT_BATCH_CANCEL_WAIT_SECONDS
from prefect_openai_runs._lifecycle._fanout import FanOut, follow_many
from prefect_openai_runs._lifecycle._follower import JobFollower, PollSchedule
from prefect_openai_runs._lifecycle._hooks import flush_fan_out
from prefect_openai_runs._lifecycle._keys import logical_key
from prefect_openai_runs._lifecycle._outcome import cancel_reason
from prefect_openai_runs._lifecycle._sync._batches import BatchesApi, BatchSpec
from prefect_openai_runs._lifecycle._sync._driver import end_job
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs.batch_files import (
    MAX_BYTES,
    MAX_LINES,
    BatchInputError,
    BatchResults,
    InputChunk,
    split_input,
)
from prefect_openai_runs.blocks import OpenAICredentials, resolve_credentials
from prefect_openai_runs.client._sync._backend import SLICE
from prefect_openai_runs.exceptions import JobOutcomeError, OpenAIRunsError
from prefect_openai_runs.models import Batch, CreateBatchParams

T = TypeVar("T")

SPLIT_MAX_LINES = MAX_LINES
"""Requests per batch before the input is split (the API's 50,000)."""
SPLIT_MAX_BYTES = MAX_BYTES
"""Bytes per batch input file before the input is split (the API's 200 MB)."""


def run_in_loop_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on an event loop of its own thread (in this thread's context) and wait for it in
    short slices, so that what Prefect raises into this thread (a flow timeout, a cancellation) lands at
    once; the coroutine is then cancelled and the exception goes on."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="openai-batches", daemon=True)
    thread.start()
    future = asyncio.run_coroutine_threadsafe(coroutine, loop)
    try:
        while True:
            try:
                return future.result(timeout=SLICE)
            except concurrent.futures.TimeoutError:
                continue
    except BaseException:
        future.cancel()
        concurrent.futures.wait([future], timeout=SLICE * 4)
        raise
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=SLICE * 4)
        if not thread.is_alive():
            loop.close()


def _check(max_wait_seconds: float, cancel_wait_seconds: float) -> None:
    if not max_wait_seconds > 0:
        raise ValueError(f"max_wait_seconds must be positive, got {max_wait_seconds}")
    if cancel_wait_seconds < 0:
        raise ValueError(f"cancel_wait_seconds must be 0 or more, got {cancel_wait_seconds}")


class _Batches:
    """The batches of one ``run_batch`` call: started one per input file, followed together, ended."""

    def __init__(self, credentials: OpenAICredentials, cancel_wait_seconds: float, schedule: PollSchedule) -> None:
        self.credentials = credentials
        self.cancel_wait_seconds = cancel_wait_seconds
        self.schedule = schedule
        self.stopped = threading.Event()
        self.hooks: dict[str, BatchHooks] = {}
        self.started: list[Batch] = []
        self.creating: BatchSpec | None = None
        """The batch being created, until it is known (an interruption meanwhile looks it up by its key)."""

    def start(self, chunks: Sequence[InputChunk], template: CreateBatchParams, deadline: float) -> None:
        """Upload each input file and create its batch (or find the ones an earlier attempt made)."""
        with self.credentials.get_batches_client() as client, _deadline.deadline_scope(deadline):
            for chunk in chunks:
                key = logical_key("batch")
                file_id = input_file_for(client, chunk.path, key)
                hooks = BatchHooks(stopped=self.stopped, flush_on_end=False)  # followed together: flushed after
                params = template.model_copy(update={"input_file_id": file_id})
                self.creating = BatchSpec(params, key)
                batch = start_batch(client, params, key, hooks)
                self.hooks[batch.id] = hooks
                self.started.append(batch)
                self.creating = None

    def follow(self, max_wait_seconds: float) -> FanOut[Batch]:
        """Follow every batch from one event loop until each ends (fail fast; every one ended the one way)."""

        def polled(batch: Batch) -> None:
            self.hooks[batch.id].polled(batch)

        async def follow_all() -> FanOut[Batch]:
            async with self.credentials.get_async_batches_client() as client:
                return await follow_many(
                    AsyncBatchesApi(client, on_poll=polled),
                    [BATCH.ref(b) for b in self.started],
                    max_wait_seconds,
                    cancel_wait_seconds=self.cancel_wait_seconds,
                    hooks_for=lambda ref: self.hooks[ref.id],
                    schedule=self.schedule,
                )

        return run_in_loop_thread(follow_all())

    def end_all(self, failure: BaseException) -> None:
        """After an interruption (a flow timeout, a cancellation, a crash signal, an error while starting):
        end every batch started, nothing from the following loop (maybe still alive on its thread) recorded
        after. A failure here is logged, never hides the interruption."""
        self.stopped.set()
        reason = cancel_reason(failure)
        with self.credentials.get_batches_client() as client:
            api = BatchesApi(client)
            self._find_creating(api)
            for batch in self.started:
                follower: JobFollower[Batch] = JobFollower(BATCH, BATCH.ref(batch), max(self.cancel_wait_seconds, 1.0))
                try:
                    end_job(api, follower, failure, self.cancel_wait_seconds, BatchHooks(progress=False), reason)
                except OpenAIRunsError as exc:
                    get_logger().error("Could not cancel or record OpenAI batch %s: %s", batch.id, exc)

    def show_line_errors(self, batch: Batch, results: BatchResults) -> None:
        """Show a batch's first failed requests on its card (once its results are downloaded)."""
        hooks = self.hooks.get(batch.id)
        if hooks is not None:
            hooks.show_line_errors(results.errors)

    def _find_creating(self, api: BatchesApi) -> None:
        """Add the batch whose create was interrupted, if the server has it."""
        if self.creating is None:
            return
        try:
            found = api.recover(self.creating)
        except OpenAIRunsError as exc:
            get_logger().error("Could not look for the batch created before the interruption: %s", exc)
            return
        if found is not None and found.id not in {b.id for b in self.started}:
            get_logger().warning("Found batch %s, created before the interruption; it will be ended", found.id)
            self.started.append(found)


def _final(fan: FanOut[Batch]) -> list[Batch]:
    final: list[Batch] = []
    for follower in fan.followers:
        ending = fan.endings.get(follower.ref.id)
        job = ending.job if ending is not None else follower.job
        if job is not None:
            final.append(job)
    return final


@requests_summary_flow(
    name="run-batch", description="Run requests through the OpenAI Batch API; cancel on every other path."
)
def run_batch(
    credentials: OpenAICredentials | str,
    requests: list[Any] | str | Path,
    endpoint: str = "/v1/responses",
    completion_window: str = "24h",
    max_wait_seconds: float = 86400.0,
    cancel_wait_seconds: float = DEFAULT_BATCH_CANCEL_WAIT_SECONDS,
    poll_schedule: PollSchedule | None = None,
    **params: Any,
) -> BatchRunResult:
    """Run requests through the Batch API and return every output and error by ``custom_id``.

    The input is checked before anything is uploaded (every line JSON, ``custom_id`` unique, ``url``
    matching the endpoint, sizes), naming the first bad line. More than one batch allows (50,000 lines or
    200 MB) is split into several batches, followed together, their results merged. Each batch carries an
    idempotency key (in its metadata and its input file's name): a Prefect retry of the flow finds the
    files and batches its earlier attempt made and follows them instead of creating new ones.

    The requests are not stored on the Prefect server: the flow run's ``requests`` parameter reads
    ``"<3,000 batch requests>"`` for a list (a path is stored as it is), so users' prompts stay out of
    Prefect's database and a large list does not exceed its 512 KB limit on parameters.

    Nothing waits past ``max_wait_seconds`` (plus the cancel's wait). On every path other than completion
    (the deadline, the flow's ``timeout_seconds``, a cancellation, a batch that fails or expires while its
    siblings run) the batches still active are cancelled and ``cancelling`` is waited for up to
    ``cancel_wait_seconds``; one still cancelling then is reported honestly and left to the orphan sweep.

    Args:
        credentials: The credentials block, or the name of a saved one.
        requests: Request bodies (``custom_id`` becomes ``request-<n>``), ``{"custom_id", "body"}`` dicts,
            or the path of a JSONL input file.
        endpoint: The endpoint every request goes to.
        completion_window: ``24h``.
        max_wait_seconds: The deadline for the whole call, uploads included.
        cancel_wait_seconds: How long to wait for ``cancelling`` to end (the API takes up to 10 minutes).
        poll_schedule: Waits between polls when the server gives no hint (default: 2 s growing to 60 s).
        **params: Any other *create batch* parameter (``metadata``, ``output_expires_after``).

    Returns:
        The outputs and errors by ``custom_id``, the batches and the usage summed.

    Raises:
        BatchInputError: A bad line (named) or no requests; nothing was sent.
        JobFailed: A batch failed (e.g. validation, with its lines); ``.results`` holds what others produced.
        JobExpired: A batch expired; ``.results`` holds the partial results.
        JobCancelled: A batch was cancelled by someone else; ``.results`` holds the partial results.
        JobTimedOut: The deadline passed; the batches were cancelled; ``.results`` holds the partial results.

    Example:
        ```python
        from prefect_openai_runs.flows import run_batch

        questions = ["What is Prefect?", "What is a batch?"]
        result = run_batch("openai", [{"model": "gpt-5-mini", "input": q} for q in questions])
        print(result.text("request-1"))  # the reply's text, past a reasoning model's reasoning item
        ```
    """
    _check(max_wait_seconds, cancel_wait_seconds)
    template = batch_params("file-pending", endpoint, completion_window, params)
    creds = resolve_credentials(credentials)
    deadline = time.monotonic() + max_wait_seconds
    batches = _Batches(creds, cancel_wait_seconds, poll_schedule or BATCH_SCHEDULE)
    with tempfile.TemporaryDirectory(prefix="openai-batch-") as tmp:
        chunks = list(
            split_input(requests, endpoint, directory=tmp, max_lines=SPLIT_MAX_LINES, max_bytes=SPLIT_MAX_BYTES)
        )
        if not chunks:
            raise BatchInputError("there are no requests: give at least one")
        if len(chunks) > 1:
            get_logger().info("Splitting %d requests into %d batches", sum(c.lines for c in chunks), len(chunks))
        try:
            batches.start(chunks, template, deadline)
            fan = batches.follow(max(deadline - time.monotonic(), 0.001))
        except BaseException as exc:
            batches.end_all(exc)
            raise
    with creds.get_batches_client() as client:
        results = collect_results(client, _final(fan), on_results=batches.show_line_errors)
    flush_fan_out()  # the records written from the event loop and the cards' failed requests, on the server
    if fan.failure is not None:
        if isinstance(fan.failure, JobOutcomeError):
            fan.failure.results = results
        raise fan.failure
    return results


__all__ = ["BatchRunResult", "run_batch"]
