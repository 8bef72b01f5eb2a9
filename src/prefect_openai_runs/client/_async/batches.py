"""The files and batches APIs' asynchronous client, :class:`AsyncBatchesClient` (its synchronous twin,
``BatchesClient``, is generated from this file by ``scripts/unasync.py``).

Example:
    ```python
    from prefect_openai_runs import OpenAICredentials

    async with OpenAICredentials.load("openai").get_async_batches_client() as client:
        uploaded = await client.upload_file("requests.jsonl")
        batch = await client.create_batch(input_file_id=uploaded.id, endpoint="/v1/responses")
        print((await client.get_batch(batch.id)).status)
    ```
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from prefect_openai_runs.client import _batches_operations as ops
from prefect_openai_runs.client._async._base import AsyncClientBase
from prefect_openai_runs.client._operations import new_idempotency_key
from prefect_openai_runs.models import Batch, CreateBatchParams, DeletedFile, FileObject


class AsyncBatchesClient(AsyncClientBase):
    """Asynchronous client of the files and batches APIs over one pooled ``httpx.AsyncClient``.

    Uploads stream the file from disk (opened anew for every attempt); file content can be streamed
    to disk in chunks (:meth:`download_file_content`), so memory stays flat whatever the file's size.
    Creating a batch is safe to retry: it carries an idempotency key in its metadata and is found again
    by paging ``GET /batches`` after an ambiguous failure.

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

    # -- files ---------------------------------------------------------------------------------------

    async def upload_file(
        self, source: str | os.PathLike[str] | bytes, filename: str | None = None, purpose: str = "batch"
    ) -> FileObject:
        """Upload a file (a path, streamed from disk, or bytes) with ``purpose``.

        After an ambiguous failure, a file of the same name and size uploaded meanwhile is used instead
        of uploading again: give each upload a unique ``filename`` for this to be exact.

        Raises:
            ValueError: If ``purpose`` is not one the API accepts, or ``bytes`` come without a ``filename``.
        """
        if filename is None:
            if isinstance(source, bytes):
                raise ValueError("give a filename when uploading bytes, e.g. filename='requests.jsonl'")
            filename = Path(source).name
        data = source if isinstance(source, bytes) else Path(source)
        return await self._drive(ops.upload_file(data, filename, purpose))

    async def find_file(self, filename: str, size: int, purpose: str = "batch") -> FileObject | None:
        """The newest file named ``filename`` with ``size`` bytes and ``purpose`` among the last 100, if any."""
        reply = await self._drive(ops.find_file(filename, size, purpose))
        return None if reply is None else FileObject.model_validate(reply.body)

    async def get_file(self, file_id: str) -> FileObject:
        """Retrieve a file object."""
        return await self._drive(ops.get_file(file_id))

    async def delete_file(self, file_id: str) -> DeletedFile:
        """Delete a file."""
        return await self._drive(ops.delete_file(file_id))

    async def file_content(self, file_id: str) -> bytes:
        """A file's content, in memory (use :meth:`download_file_content` for large files)."""
        return await self._drive(ops.file_content(file_id))

    async def download_file_content(self, file_id: str, path: str | os.PathLike[str]) -> Path:
        """Stream a file's content to ``path`` in chunks; the file appears there only once complete."""
        target = Path(path)
        await self._download(ops.file_content_call(file_id), target)
        return target

    # -- batches -------------------------------------------------------------------------------------

    async def create_batch(
        self, params: CreateBatchParams | None = None, *, idempotency_key: str | None = None, **options: Any
    ) -> Batch:
        """Create a batch (``input_file_id``, ``endpoint``, ``completion_window``, ``metadata``, ...),
        tagged with ``idempotency_key`` (a fresh one when not given) so a retry never leaves two."""
        body = params if params is not None else CreateBatchParams.model_validate(options)
        return await self._drive(ops.create_batch(body, idempotency_key or new_idempotency_key()))

    async def find_batch(
        self,
        idempotency_key: str,
        *,
        window_seconds: float = ops.RECOVERY_WINDOW_SECONDS,
        not_before: float | None = None,
    ) -> Batch | None:
        """The batch created with ``idempotency_key``, if any (paging ``GET /batches``, newest first).

        Args:
            idempotency_key: The key in the batch's metadata.
            window_seconds: Without ``not_before``: look among the batches of the last ``window_seconds``
                only (and at most :data:`~._batches_operations.RECOVERY_MAX_PAGES` pages).
            not_before: Look back to the batches created at this time (Unix seconds; e.g. when the
                create's intent was recorded, less a margin), however many pages that takes (up to
                :data:`~._batches_operations.RECOVERY_MAX_PAGES_BACK`).
        """
        if not_before is None:
            search = ops.find_batch_by_key(idempotency_key, not_before=time.time() - window_seconds)
        else:
            search = ops.find_batch_by_key(
                idempotency_key, not_before=not_before, max_pages=ops.RECOVERY_MAX_PAGES_BACK
            )
        reply = await self._drive(search)
        return None if reply is None else Batch.model_validate(reply.body)

    async def get_batch(self, batch_id: str) -> Batch:
        """Retrieve a batch."""
        return await self._drive(ops.get_batch(batch_id))

    async def poll_batch(self, batch_id: str) -> tuple[Batch, int | None]:
        """Retrieve a batch with the server's polling hint in milliseconds (``None`` when not sent)."""
        return await self._drive(ops.poll_batch(batch_id))

    async def list_batches(self, *, limit: int = 20) -> AsyncIterator[Batch]:
        """Iterate over the batches, newest first, following pagination (``limit`` per page, 1..100)."""
        after: str | None = None
        while True:
            page = await self._drive(ops.list_batches(limit=limit, after=after))
            for batch in page.data:
                yield batch
            if not page.has_more or not page.last_id:
                return
            after = page.last_id

    async def cancel_batch(self, batch_id: str) -> Batch:
        """Ask the server to cancel a batch; returns it ``cancelling`` (or raises ``BatchNotCancellableError``)."""
        return await self._drive(ops.cancel_batch(batch_id))
