"""Every request of the files and batches APIs, written once, without I/O.

The same style as :mod:`prefect_openai_runs.client._operations`: each operation is a generator that yields
the :class:`~prefect_openai_runs.client._http.Call` to make, receives the
:class:`~prefect_openai_runs.client._http.Reply` (or has the request's exception thrown into it) and returns
the parsed result. Uploads are ``multipart/form-data`` calls (:attr:`Call.files`), file content is a
``raw`` call, and none of these calls needs the Assistants beta header (``beta=False``).

Creating a batch is made safe to retry like creating a run: the batch carries an idempotency key in
its metadata, and after an ambiguous failure :func:`find_batch_by_key` pages ``GET /batches`` (newest
first; the API has no metadata filter) before the create is sent again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect_openai_runs.client._http import Call, Reply, Upload
from prefect_openai_runs.client._operations import (
    IDEMPOTENCY_METADATA_KEY,
    Operation,
    check_id,
    parse,
    with_idempotency_key,
)
from prefect_openai_runs.exceptions import BadRequestError, BatchNotCancellableError
from prefect_openai_runs.models import Batch, BatchStatus, CreateBatchParams, DeletedFile, FileObject, ListPage

JSONL = "application/jsonl"
RECOVERY_PAGE_SIZE = 100
"""Batches per page while looking for a key (the API's maximum)."""
RECOVERY_MAX_PAGES = 5
"""Pages of ``GET /batches`` searched for a key before giving up (and creating again)."""
RECOVERY_WINDOW_SECONDS = 3600
"""Batches created longer than this before the create began cannot be ours: the search stops there."""
RECOVERY_MAX_PAGES_BACK = 100
"""Pages searched when looking back to a known time (an earlier attempt's intent): up to 10,000 batches."""
FILE_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})


def _file_path(file_id: str) -> str:
    return f"/files/{check_id('file_id', file_id)}"


def _batch_path(batch_id: str) -> str:
    return f"/batches/{check_id('batch_id', batch_id)}"


def upload_call(source: str | Path | bytes, filename: str, purpose: str = "batch") -> Call:
    """The ``POST /files`` multipart call uploading ``source`` (a path, streamed, or bytes).

    Raises:
        ValueError: If ``purpose`` is not one the API accepts, or ``filename`` is empty.
    """
    if purpose not in FILE_PURPOSES:
        raise ValueError(f"purpose must be one of {sorted(FILE_PURPOSES)}, got {purpose!r}")
    if not filename or "/" in filename or "\\" in filename:
        raise ValueError(f"filename must be a bare file name such as 'requests.jsonl', got {filename!r}")
    if isinstance(source, bytes):
        upload = Upload("file", filename, JSONL, data=source)
    else:
        upload = Upload("file", filename, JSONL, path=str(source))
    return Call("POST", "/files", form={"purpose": purpose}, files=(upload,), beta=False)


def find_file(filename: str, size: int, purpose: str) -> Operation[Reply | None]:
    """The newest file named ``filename`` with ``size`` bytes and ``purpose``, if one was uploaded."""
    reply = yield Call("GET", "/files", params={"purpose": purpose, "order": "desc", "limit": 100}, beta=False)
    for item in parse(ListPage[FileObject], reply.body).data:
        if item.filename == filename and item.bytes == size:
            return Reply(body=item.model_dump(mode="json"), request_id=reply.request_id)
    return None


def upload_file(source: str | Path | bytes, filename: str, purpose: str = "batch") -> Operation[FileObject]:
    """``POST /files``. After an ambiguous failure, a file with the same name and size uploaded meanwhile
    is used instead of uploading again (give each upload a unique ``filename`` for this to be exact)."""
    call = upload_call(source, filename, purpose)
    size = call.files[0].size()
    reply = yield Call(
        call.method,
        call.path,
        form=call.form,
        files=call.files,
        beta=False,
        recover=lambda: find_file(filename, size, purpose),
    )
    return parse(FileObject, reply.body)


def get_file(file_id: str) -> Operation[FileObject]:
    """``GET /files/{file_id}``."""
    reply = yield Call("GET", _file_path(file_id), beta=False)
    return parse(FileObject, reply.body)


def list_files(
    purpose: str | None = None, *, limit: int = 100, order: str = "desc", after: str | None = None
) -> Operation[ListPage[FileObject]]:
    """One page of ``GET /files``.

    Raises:
        ValueError: If ``limit`` is not 1..10000 or ``order`` not asc/desc.
    """
    if not 1 <= limit <= 10_000:
        raise ValueError(f"limit must be between 1 and 10000, got {limit}")
    if order not in {"asc", "desc"}:
        raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")
    params: dict[str, Any] = {"limit": limit, "order": order}
    if purpose is not None:
        params["purpose"] = purpose
    if after is not None:
        params["after"] = check_id("after", after)
    reply = yield Call("GET", "/files", params=params, beta=False)
    return parse(ListPage[FileObject], reply.body)


def delete_file(file_id: str) -> Operation[DeletedFile]:
    """``DELETE /files/{file_id}``."""
    reply = yield Call("DELETE", _file_path(file_id), beta=False)
    return parse(DeletedFile, reply.body)


def file_content_call(file_id: str) -> Call:
    """The ``GET /files/{file_id}/content`` call, for a client that streams the (JSONL) bytes itself."""
    return Call("GET", f"{_file_path(file_id)}/content", raw=True, beta=False)


def file_content(file_id: str) -> Operation[bytes]:
    """``GET /files/{file_id}/content``: the file's bytes (the driver puts them in ``Reply.body``)."""
    reply = yield file_content_call(file_id)
    if not isinstance(reply.body, bytes):
        raise TypeError("a raw call's reply body must be the response's bytes")
    return reply.body


def find_batch_by_key(
    key: str,
    *,
    not_before: float,
    max_pages: int = RECOVERY_MAX_PAGES,
    page_size: int = RECOVERY_PAGE_SIZE,
) -> Operation[Reply | None]:
    """Find the batch created with idempotency ``key`` by paging ``GET /batches`` (newest first).

    The search stops at the first batch created before ``not_before`` (Unix seconds), at the last page,
    or after ``max_pages`` pages, whichever comes first.
    """
    params: dict[str, Any] = {"limit": page_size}
    for _ in range(max_pages):
        reply = yield Call("GET", "/batches", params=params, beta=False)
        page = parse(ListPage[Batch], reply.body)
        for batch in page.data:
            if (batch.metadata or {}).get(IDEMPOTENCY_METADATA_KEY) == key:
                return Reply(body=batch.model_dump(mode="json"), request_id=reply.request_id)
            if batch.created_at < not_before:
                return None
        if not page.has_more or not page.last_id:
            return None
        params = {**params, "after": page.last_id}
    return None


def create_batch(
    params: CreateBatchParams, key: str, *, window_seconds: float = RECOVERY_WINDOW_SECONDS
) -> Operation[Batch]:
    """``POST /batches``, safe to retry: tagged with ``key``, found again by :func:`find_batch_by_key`
    (among batches created from ``window_seconds`` before now) before a retry sends it again."""
    body = with_idempotency_key(params, key, "a batch").to_body()
    not_before = int(time.time() - window_seconds)
    reply = yield Call(
        "POST",
        "/batches",
        json=body,
        beta=False,
        creates=True,
        recover=lambda: find_batch_by_key(key, not_before=not_before),
    )
    return parse(Batch, reply.body)


def get_batch(batch_id: str) -> Operation[Batch]:
    """``GET /batches/{batch_id}``."""
    reply = yield Call("GET", _batch_path(batch_id), beta=False)
    return parse(Batch, reply.body)


def poll_batch(batch_id: str) -> Operation[tuple[Batch, int | None]]:
    """``GET /batches/{batch_id}`` with the server's polling hint in milliseconds (``None`` when not sent)."""
    reply = yield Call("GET", _batch_path(batch_id), beta=False)
    return parse(Batch, reply.body), reply.poll_after_ms


def list_batches(*, limit: int = 20, after: str | None = None) -> Operation[ListPage[Batch]]:
    """One page of ``GET /batches`` (newest first).

    Raises:
        ValueError: If ``limit`` is not 1..100.
    """
    if not 1 <= limit <= 100:
        raise ValueError(f"limit must be between 1 and 100, got {limit}")
    params: dict[str, Any] = {"limit": limit}
    if after is not None:
        params["after"] = check_id("after", after)
    reply = yield Call("GET", "/batches", params=params, beta=False)
    return parse(ListPage[Batch], reply.body)


def _cancel_applied(batch_id: str) -> Operation[Reply | None]:
    """After an ambiguous cancel: the batch, if it is cancelling or terminal, else ``None`` to send again."""
    reply = yield Call("GET", _batch_path(batch_id), beta=False)
    batch = parse(Batch, reply.body)
    return reply if batch.status.is_terminal or batch.status is BatchStatus.CANCELLING else None


def cancel_batch(batch_id: str) -> Operation[Batch]:
    """``POST /batches/{batch_id}/cancel``: the batch, ``cancelling`` (or already ``cancelled``).

    Raises:
        BatchNotCancellableError: On any 400 (the batch is already cancelling or terminal).
    """
    path = f"{_batch_path(batch_id)}/cancel"
    try:
        reply = yield Call("POST", path, beta=False, paced=False, recover=lambda: _cancel_applied(batch_id))
    except BatchNotCancellableError:
        raise
    except BadRequestError as exc:
        raise BatchNotCancellableError.from_error(exc) from exc
    return parse(Batch, reply.body)
