"""The steps of a batch job shared by the batch tasks and the ``run_batch`` flow: upload an input file
once, create its batch once (found again on a retry), and collect the results of one or several batches.

Idempotency across Prefect retries: each batch's key comes from :func:`~._lifecycle._keys.logical_key`
(the same in every attempt of the same logical call). The key names the uploaded file and goes into the
batch's metadata; the intent recorded before the create carries the input file's id. A retry that finds
that intent reuses the file and looks for the batch (paging ``GET /batches``) before creating one.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from prefect_openai_runs import _deadline
from prefect_openai_runs._intents import INTENT_CLOCK_MARGIN_SECONDS, Intent, find_intent
from prefect_openai_runs._lifecycle._batch_hooks import IDEMPOTENCY_LABEL, BatchHooks
from prefect_openai_runs._lifecycle._batch_kind import BATCH
from prefect_openai_runs._lifecycle._follower import PollSchedule
from prefect_openai_runs._lifecycle._kinds import worth_reattaching
from prefect_openai_runs._lifecycle._sync._backend import sleep
from prefect_openai_runs._lifecycle._sync._batches import BatchesApi, BatchSpec
from prefect_openai_runs._lifecycle._sync._driver import start_job
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import current_flow_run_id, labelled_jobs
from prefect_openai_runs.batch_files import BatchResults, Outputs, read_results
from prefect_openai_runs.client import IDEMPOTENCY_METADATA_KEY, BatchesClient
from prefect_openai_runs.exceptions import APITimeoutError, BatchFileNotReadyError, NotFoundError
from prefect_openai_runs.models import (
    Batch,
    BatchLineError,
    BatchUsage,
    CreateBatchParams,
    FileObject,
    FileStatus,
    Response,
)

FILE_READY_SCHEDULE = PollSchedule(initial=0.5, factor=1.5, cap=10.0, steady_polls=2)
"""How often a freshly uploaded file that is still ``pending`` (Azure) is read again: twice a second at
first, slowing to every 10 s."""
FILE_READY_TIMEOUT_SECONDS = 300.0
"""How long a ``pending`` file is waited for at most before giving up (less when the deadline is nearer)."""


@dataclass
class BatchRunResult:
    """The merged results of one or several batches, by ``custom_id``.

    Attributes:
        outputs: The response body of every request that succeeded (a mapping that holds each body as
            JSON text and parses it when read, so that a large batch's results stay small in memory).
        errors: Why every other request failed (its error, or the non-2xx answer's status and message).
        batches: The batch objects, in input order (several when the input was split).
        usage: Tokens used, summed over the batches (cached input and reasoning output tokens too).
    """

    outputs: Outputs = field(default_factory=Outputs)
    errors: dict[str, BatchLineError] = field(default_factory=dict)
    batches: list[Batch] = field(default_factory=list)
    usage: BatchUsage = field(default_factory=BatchUsage)

    def text(self, custom_id: str) -> str:
        """The reply text of a request that succeeded: a response's output messages (its ``reasoning``
        and tool items skipped, as a reasoning model's output starts with one), or a chat completion's
        first choice.

        Raises:
            KeyError: ``custom_id`` has no output (it failed: see :attr:`errors`).

        Example:
            ```python
            print(result.text("request-1"))  # rather than result.outputs[...]["output"][0]["content"][0]
            ```
        """
        body = self.outputs[custom_id]
        if isinstance(body, dict) and isinstance(body.get("choices"), list):
            first = body["choices"][0] if body["choices"] else {}
            return str((first.get("message") or {}).get("content") or "")
        return Response.model_validate(body).output_text

    def add(self, batch: Batch, results: BatchResults) -> None:
        """Merge one batch and its results."""
        self.batches.append(batch)
        self.outputs.merge(results.outputs)
        self.errors.update(results.errors)
        if batch.usage is not None:
            self.usage = self.usage + batch.usage


def file_name(key: str) -> str:
    """The uploaded input file's name, carrying the idempotency key (``batch-<key>.jsonl``)."""
    return f"batch-{key}.jsonl"


def wait_until_ready(
    client: BatchesClient,
    uploaded: FileObject,
    timeout: float = FILE_READY_TIMEOUT_SECONDS,
    schedule: PollSchedule = FILE_READY_SCHEDULE,
) -> FileObject:
    """Wait while a freshly uploaded file is ``pending`` (Azure refuses a batch on it until ``processed``),
    polling at ``schedule``'s cadence, at most ``timeout`` seconds and never past the current deadline.

    Returns:
        The file, ready.

    Raises:
        BatchFileNotReadyError: At once when the server could not process the file (status ``error``,
            with its ``status_details``), or when it is still not ready at the end of the wait.
    """
    started = time.monotonic()
    left = _deadline.remaining()
    give_up = started + (timeout if left is None else min(timeout, left))
    current, polls = uploaded, 0
    while not current.status.is_ready:
        if current.status is FileStatus.ERROR:
            raise BatchFileNotReadyError(current.id, str(current.status), current.status_details)
        wait = give_up - time.monotonic()
        if wait <= 0:
            raise BatchFileNotReadyError(current.id, str(current.status), waited=time.monotonic() - started)
        sleep(min(schedule.delay(polls), wait))
        polls += 1
        try:
            current = client.get_file(uploaded.id)
        except APITimeoutError:  # its timeout is capped by the deadline: past it, the file is still not ready
            if time.monotonic() < give_up:
                raise
            raise BatchFileNotReadyError(current.id, str(current.status), waited=time.monotonic() - started) from None
    return current


def input_file_for(client: BatchesClient, path: str | os.PathLike[str], key: str) -> str:
    """The id of the input file of the batch keyed ``key``: the one an earlier attempt recorded in its
    intent (or uploaded under the key's name) if it still exists, else ``path`` uploaded now."""
    earlier = find_intent(key)
    if earlier is not None and earlier.parent_id:
        try:
            client.get_file(earlier.parent_id)
        except NotFoundError:
            get_logger().warning("The input file %s of an earlier attempt is gone; uploading again", earlier.parent_id)
        else:
            get_logger().info("Reusing input file %s, uploaded by an earlier attempt", earlier.parent_id)
            return earlier.parent_id
    name = file_name(key)
    uploaded = client.find_file(name, os.path.getsize(path))
    if uploaded is not None:
        get_logger().info("Reusing input file %s, uploaded by an earlier attempt", uploaded.id)
        return uploaded.id
    uploaded = client.upload_file(path, name)
    get_logger().info("Uploaded batch input file %s (%s bytes)", uploaded.id, uploaded.bytes)
    wait_until_ready(client, uploaded)
    return uploaded.id


def recorded_batch(client: BatchesClient, key: str) -> Batch | None:
    """The batch keyed ``key`` whose creation an earlier attempt recorded in this flow run, read by its id."""
    flow_run_id = current_flow_run_id()
    if flow_run_id is None:
        return None
    for ref in labelled_jobs(flow_run_id, BATCH.name, IDEMPOTENCY_LABEL, key):
        try:
            batch = client.get_batch(ref.id)
        except NotFoundError:
            continue
        if (batch.metadata or {}).get(IDEMPOTENCY_METADATA_KEY) == key:
            return batch
    return None


def earlier_batch(api: BatchesApi, spec: BatchSpec, intent: Intent) -> Batch | None:
    """The batch an earlier attempt created with the spec's key (its ``intent``), however long ago: read by its id when
    that attempt recorded it, else searched for (paging ``GET /batches``) back to the intent's time, less
    :data:`INTENT_CLOCK_MARGIN_SECONDS`."""
    found = recorded_batch(api.client, spec.key)
    if found is not None:
        return found
    not_before = None if intent.at is None else intent.at - INTENT_CLOCK_MARGIN_SECONDS
    return api.recover(replace(spec, not_before=not_before))


def start_batch(client: BatchesClient, params: CreateBatchParams, key: str, hooks: BatchHooks) -> Batch:
    """Create the batch keyed ``key``, or find the one an earlier attempt created (its intent was
    recorded), recording the intent first and the batch at once.

    An earlier attempt's batch is followed only while it can still complete (or has): one that was
    cancelled (by that attempt's cleanup, typically), failed or expired is left as it is and a new one
    is created with the same key (the look-up returns the newest), or no retry could ever succeed.
    """
    api = BatchesApi(client)
    spec = BatchSpec(params, key)
    earlier = find_intent(key)
    if earlier is not None:
        found = earlier_batch(api, spec, earlier)
        if found is not None:
            if worth_reattaching(BATCH, found):
                get_logger().info("Found batch %s, created by an earlier attempt: following it", found.id)
                hooks.created(found)
                return found
            get_logger().info("Batch %s of an earlier attempt is %s: creating a new one", found.id, found.status)
    batch, _ = start_job(api, spec, key=key, parent_id=params.input_file_id, stream=False, hooks=hooks)
    return batch


def download_results(
    client: BatchesClient, batch: Batch, directory: str | os.PathLike[str] | None = None
) -> BatchResults:
    """Download a batch's output and error files (streamed to disk, then parsed line by line).

    A cancelled or expired batch has partial results: what ran before it ended.
    """
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        paths = [
            client.download_file_content(file_id, Path(tmp) / f"{file_id}.jsonl")
            for file_id in (batch.output_file_id, batch.error_file_id)
            if file_id
        ]
        return read_results(*paths)


def collect_results(
    client: BatchesClient,
    batches: Iterable[Batch],
    on_results: Callable[[Batch, BatchResults], None] | None = None,
) -> BatchRunResult:
    """Every batch's results merged (a batch without result files adds nothing but itself); ``on_results``
    sees each batch's own (e.g. to show its failed requests on its card)."""
    merged = BatchRunResult()
    for batch in batches:
        results = download_results(client, batch)
        if on_results is not None:
            on_results(batch, results)
        merged.add(batch, results)
    return merged
