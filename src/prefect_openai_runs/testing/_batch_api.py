"""The files and batches operations, HTTP aside: each takes parsed input, returns the response object,
raises ApiError."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _errors as errors
from ._batch_machine import BatchMachine
from ._batch_scripts import BatchScriptBook
from ._batch_state import BatchState, FileState
from ._multipart import Part
from ._objects import new_id
from ._query import list_query, page
from ._records import RequestLog
from ._spec import validate

JSON = dict[str, Any]
FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


@dataclass
class BatchStore:
    """Every file and batch the emulator holds, in creation order."""

    files: dict[str, FileState] = field(default_factory=dict)
    batches: dict[str, BatchState] = field(default_factory=dict)

    def reset(self) -> None:
        """Forget everything."""
        self.files.clear()
        self.batches.clear()

    def file(self, file_id: str) -> FileState:
        """A file, or the API's 404."""
        found = self.files.get(file_id)
        if found is None:
            raise errors.ApiError(404, f"No such File object: {file_id}", param="id")
        return found

    def batch(self, batch_id: str) -> BatchState:
        """A batch, or the API's 404."""
        found = self.batches.get(batch_id)
        if found is None:
            raise errors.not_found("batch", batch_id)
        return found


class BatchesApi:
    """``/files`` and ``/batches``, with the Batch API's semantics. Every method runs under ``lock``.

    Args:
        store: Files and batches.
        scripts: Batch script rules.
        log: Counters.
        lock: The emulator's lock.
        file_processing_seconds: Seconds an uploaded file stays ``pending`` (Azure) before
            ``processed``; a batch on a pending file is refused. 0: ``processed`` at once.
        file_processing_error: When set, files uploaded meanwhile fail processing: ``error`` after
            ``file_processing_seconds``, with this as their ``status_details``.
    """

    def __init__(self, store: BatchStore, scripts: BatchScriptBook, log: RequestLog, lock: threading.RLock) -> None:
        self.store = store
        self.scripts = scripts
        self.machine = BatchMachine(store.files, store.batches, log, lock)
        self.file_processing_seconds = 0.0
        self.file_processing_error: str | None = None
        self.lock = lock

    # -- files -----------------------------------------------------------------------------------

    def upload_file(self, parts: Mapping[str, Part]) -> JSON:
        """POST /files (multipart: ``file`` and ``purpose``)."""
        upload, purpose = parts.get("file"), parts.get("purpose")
        if upload is None or upload.filename is None:
            raise errors.missing_parameter("file")
        if purpose is None:
            raise errors.missing_parameter("purpose")
        wanted = purpose.content.decode("utf-8", "replace")
        if wanted not in FILE_PURPOSES:
            raise errors.unsupported_value("purpose", wanted, FILE_PURPOSES)
        now = time.time()
        file = FileState(
            new_id("file").replace("_", "-", 1),
            upload.filename,
            wanted,
            upload.content,
            now,
            now + self.file_processing_seconds,
            self.file_processing_error,
        )
        with self.lock:
            self.store.files[file.id] = file
            return file.to_api()

    def get_file(self, file_id: str) -> JSON:
        """GET /files/{file_id}."""
        with self.lock:
            return self.store.file(file_id).to_api()

    def file_content(self, file_id: str) -> bytes:
        """GET /files/{file_id}/content."""
        with self.lock:
            return self.store.file(file_id).content

    def delete_file(self, file_id: str) -> JSON:
        """DELETE /files/{file_id}."""
        with self.lock:
            self.store.file(file_id)
            del self.store.files[file_id]
            return {"id": file_id, "object": "file", "deleted": True}

    def list_files(self, query: Mapping[str, str]) -> JSON:
        """GET /files: ``purpose``, ``limit`` (1..10000), ``order``, ``after``."""
        q = list_query({k: v for k, v in query.items() if k != "before"}, max_limit=10_000, default_limit=10_000)
        purpose = query.get("purpose")
        with self.lock:
            files = [f for f in self.store.files.values() if purpose is None or f.purpose == purpose]
            return page(files, lambda f: f.id, q, FileState.to_api)

    # -- batches -----------------------------------------------------------------------------------

    def create_batch(self, body: Any) -> JSON:
        """POST /batches."""
        data = validate("batches", "CreateBatchRequest", body)
        with self.lock:
            file = self.store.files.get(data["input_file_id"])
            if file is None:
                raise errors.invalid_value("input_file_id", f"no file with id '{data['input_file_id']}'.")
            if file.purpose != "batch":
                raise errors.invalid_value("input_file_id", f"the file's purpose is '{file.purpose}', not 'batch'.")
            if file.status() == "error":
                raise errors.invalid_value("input_file_id", f"the file {file.id} could not be processed: {file.error}")
            if file.status() != "processed":
                raise errors.invalid_value(
                    "input_file_id", f"the file {file.id} is still {file.status()}; wait until it is processed."
                )
            script = self.scripts.choose(data.get("metadata"))
            batch = BatchState(
                id=new_id("batch"),
                endpoint=data["endpoint"],
                input_file_id=file.id,
                created_precise=time.time(),
                completion_window=script.completion_window_seconds,
                metadata=data.get("metadata"),
            )
            self.store.batches[batch.id] = batch
            self.machine.launch(batch, script)
            return batch.to_api()

    def get_batch(self, batch_id: str) -> JSON:
        """GET /batches/{batch_id}."""
        with self.lock:
            return self.store.batch(batch_id).to_api()

    def list_batches(self, query: Mapping[str, str]) -> JSON:
        """GET /batches: newest first, ``after`` and ``limit`` (1..100) only."""
        q = list_query({k: v for k, v in query.items() if k in ("limit", "after")})
        with self.lock:
            return page(list(self.store.batches.values()), lambda b: b.id, q, BatchState.to_api)

    def cancel_batch(self, batch_id: str) -> JSON:
        """POST /batches/{batch_id}/cancel."""
        with self.lock:
            batch = self.store.batch(batch_id)
            self.machine.cancel(batch)
            return batch.to_api()

    def reset(self) -> None:
        """Forget files, batches, timers and script rules."""
        with self.lock:
            self.machine.reset()
            self.store.reset()
        self.scripts.clear()
