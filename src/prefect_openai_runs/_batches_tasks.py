"""Prefect tasks of the Batch API: upload an input file, create a batch, read, wait for, cancel a batch,
and download its results.

Like the runs' tasks, each takes the credentials block (or the name of a saved one), never caches, and
records every batch it creates on the Prefect server at once (its intent before the create is sent), so
a Prefect retry of the same task finds the batch its earlier attempt created instead of creating another.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_openai_runs._batch_run import BatchRunResult, collect_results, input_file_for, start_batch
from prefect_openai_runs._lifecycle._batch_hooks import BatchHooks
from prefect_openai_runs._lifecycle._batch_kind import BATCH, BATCH_SCHEDULE, DEFAULT_BATCH_CANCEL_WAIT_SECONDS
from prefect_openai_runs._lifecycle._follower import JobFollower, PollSchedule
from prefect_openai_runs._lifecycle._keys import logical_key
from prefect_openai_runs._lifecycle._kinds import JobRef
from prefect_openai_runs._lifecycle._sync._batches import BatchesApi
from prefect_openai_runs._lifecycle._sync._driver import end_job, wait_job
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs.batch_files import BatchInputError, check_input, write_input
from prefect_openai_runs.blocks import OpenAICredentials, resolve_credentials
from prefect_openai_runs.client._operations import with_idempotency_key
from prefect_openai_runs.models import Batch, CreateBatchParams, FileObject

Credentials = OpenAICredentials | str
Requests = str | os.PathLike[str] | Iterable[Mapping[str, Any]]


def batch_params(
    input_file_id: str, endpoint: str, completion_window: str, params: Mapping[str, Any]
) -> CreateBatchParams:
    """The create-batch body, checked (with room for the idempotency key in its metadata) before any request.

    Raises:
        ValueError: A parameter the API would refuse, saying which.
    """
    body = CreateBatchParams.model_validate(
        {"input_file_id": input_file_id, "endpoint": endpoint, "completion_window": completion_window, **params}
    )
    with_idempotency_key(body, "0" * 32, "a batch")
    return body


@task(name="Upload OpenAI batch file", cache_policy=NO_CACHE)
def upload_batch_file(credentials: Credentials, requests: Requests, endpoint: str = "/v1/responses") -> FileObject:
    """Check a batch's requests and upload them as one JSONL input file (``purpose=batch``).

    Every line is checked before anything is sent (JSON, unique ``custom_id``, ``url`` matching the
    endpoint, the 50,000 lines and 200 MB limits); the file is written and uploaded streaming. A Prefect
    retry of this task after a lost answer finds the file its earlier attempt uploaded (same name and
    size) instead of uploading it again.

    Args:
        credentials: The credentials block, or the name of a saved one.
        requests: A JSONL file path, or request bodies, or ``{"custom_id", "body"}`` dicts.
        endpoint: The batch's endpoint.

    Returns:
        The uploaded file.

    Raises:
        BatchInputError: A bad line (naming it) or too many requests; nothing was uploaded.

    Example:
        ```python
        from prefect_openai_runs.tasks import upload_batch_file

        uploaded = upload_batch_file("openai", [{"model": "gpt-5-mini", "input": "Hello"}])
        ```
    """
    key = logical_key("batch-file")
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(requests, (str, os.PathLike)):
            path = check_input(requests, endpoint).path
        else:
            path = write_input(requests, endpoint, Path(tmp) / "requests.jsonl").path
        with resolve_credentials(credentials).get_batches_client() as client:
            return client.get_file(input_file_for(client, path, key))


@task(name="Create OpenAI batch", cache_policy=NO_CACHE)
def create_batch(
    credentials: Credentials,
    input_file_id: str,
    endpoint: str = "/v1/responses",
    completion_window: str = "24h",
    **params: Any,
) -> Batch:
    """Create a batch on an uploaded input file.

    The parameters are checked before any request. The batch carries an idempotency key derived from
    this task run in its metadata: a create retried by the client, or by a Prefect retry of this task,
    finds the batch already created (paging ``GET /batches``) instead of creating another. Its intent is
    recorded before the create is sent and the batch at once (artifact, ``kind="batch"``).

    Args:
        credentials: The credentials block, or the name of a saved one.
        input_file_id: The uploaded JSONL file (``purpose=batch``).
        endpoint: The endpoint every request goes to.
        completion_window: ``24h``.
        **params: Any other *create batch* parameter (``metadata``, ``output_expires_after``).

    Returns:
        The new batch (usually ``validating``).

    Example:
        ```python
        batch = create_batch("openai", uploaded.id, endpoint="/v1/responses", metadata={"job": "nightly"})
        ```
    """
    body = batch_params(input_file_id, endpoint, completion_window, params)
    with resolve_credentials(credentials).get_batches_client() as client:
        return start_batch(client, body, logical_key("batch"), BatchHooks(progress=False))


@task(name="Get OpenAI batch", cache_policy=NO_CACHE)
def get_batch(credentials: Credentials, batch_id: str) -> Batch:
    """Retrieve a batch's current state.

    Example:
        ```python
        print(get_batch("openai", "batch_abc").request_counts)
        ```
    """
    with resolve_credentials(credentials).get_batches_client() as client:
        return client.get_batch(batch_id)


@task(name="Wait for OpenAI batch", cache_policy=NO_CACHE)
def wait_for_batch(
    credentials: Credentials,
    batch_id: str,
    max_wait_seconds: float = 86400.0,
    cancel_on_timeout: bool = True,
    poll_schedule: PollSchedule | None = None,
    cancel_wait_seconds: float = DEFAULT_BATCH_CANCEL_WAIT_SECONDS,
) -> Batch:
    """Wait until a batch is terminal and return it once ``completed``.

    Polls at a cadence fit for hours (:data:`~prefect_openai_runs._lifecycle._batch_kind.BATCH_SCHEDULE`;
    the server's ``openai-poll-after-ms`` hint wins), never past the deadline. Each status change is
    logged and emitted as an ``openai.batch.<status>`` event, a progress artifact shows the requests done,
    and the batch artifact is written when it ends. At the deadline, or if the wait is interrupted (the
    flow's timeout, a cancellation), the batch is cancelled and ``cancelling`` waited for up to
    ``cancel_wait_seconds``; a batch still cancelling then is reported as such (the orphan sweep will see it).

    Args:
        credentials: The credentials block, or the name of a saved one.
        batch_id: The batch.
        max_wait_seconds: The deadline.
        cancel_on_timeout: Cancel the batch when the deadline passes.
        poll_schedule: Waits between polls when the server gives no hint.
        cancel_wait_seconds: How long to wait for ``cancelling`` to end (0: send the cancel, do not wait).

    Returns:
        The completed batch.

    Raises:
        JobFailed: The batch failed (validation errors with their lines in the reason).
        JobExpired: The completion window passed.
        JobCancelled: The batch was cancelled by someone else.
        JobTimedOut: The deadline passed; the batch was cancelled (unless told not to).

    Example:
        ```python
        batch = wait_for_batch("openai", batch.id, max_wait_seconds=6 * 3600)
        ```
    """
    hooks = BatchHooks()
    hooks.watch(batch_id)
    with resolve_credentials(credentials).get_batches_client() as client:
        api = BatchesApi(client, on_poll=hooks.polled)
        follower: JobFollower[Batch] = JobFollower(
            BATCH,
            JobRef(BATCH.name, batch_id),
            max_wait_seconds,
            schedule=poll_schedule or BATCH_SCHEDULE,
            on_change=hooks.changed,
        )
        return wait_job(
            api,
            follower,
            cancel_on_timeout=cancel_on_timeout,
            cancel_wait_seconds=cancel_wait_seconds,
            hooks=hooks,
        )


@task(name="Cancel OpenAI batch", cache_policy=NO_CACHE)
def cancel_batch(
    credentials: Credentials,
    batch_id: str,
    reason: str = "cancelled on request",
    wait_seconds: float = DEFAULT_BATCH_CANCEL_WAIT_SECONDS,
) -> Batch:
    """Cancel a batch and wait (at most ``wait_seconds``) until it leaves ``cancelling``.

    Safe in every state: a batch that already ended, or is already cancelling, is not an error. A batch
    still ``cancelling`` after the wait is returned as such and logged (the orphan sweep will see it).

    Example:
        ```python
        batch = cancel_batch("openai", "batch_abc", reason="nightly window closed", wait_seconds=60)
        ```
    """
    follower: JobFollower[Batch] = JobFollower(BATCH, JobRef(BATCH.name, batch_id), max(wait_seconds, 1.0))
    with resolve_credentials(credentials).get_batches_client() as client:
        ending = end_job(BatchesApi(client), follower, None, wait_seconds, BatchHooks(progress=False), reason)
    return ending.job


@task(name="Download OpenAI batch results", cache_policy=NO_CACHE)
def download_batch_results(credentials: Credentials, batch: Batch | str) -> BatchRunResult:
    """Download and parse a batch's output and error files: outputs and errors by ``custom_id``.

    The files are streamed to disk and read line by line. A cancelled or expired batch gives the
    partial results it has. A batch given as an object that is not terminal (an earlier reading) is
    read again first: its result files may have appeared since.

    Example:
        ```python
        results = download_batch_results("openai", batch)
        print(results.outputs["request-1"], results.errors)
        ```
    """
    with resolve_credentials(credentials).get_batches_client() as client:
        current = batch if isinstance(batch, Batch) and batch.status.is_terminal else None
        if current is None:
            current = client.get_batch(batch if isinstance(batch, str) else batch.id)
        if not (current.output_file_id or current.error_file_id):
            get_logger().warning("Batch %s (%s) has no result files yet", current.id, current.status)
        return collect_results(client, [current])


__all__ = [
    "BatchInputError",
    "BatchRunResult",
    "cancel_batch",
    "create_batch",
    "download_batch_results",
    "get_batch",
    "upload_batch_file",
    "wait_for_batch",
]
