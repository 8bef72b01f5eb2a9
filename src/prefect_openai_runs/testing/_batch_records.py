"""Inspection records of batches and files: plain, copyable snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._batch_api import BatchesApi


@dataclass(frozen=True)
class BatchRecord:
    """A snapshot of one batch.

    Attributes:
        id: The batch id.
        status: Its status when the snapshot was taken.
        history: Every ``(status, time.time())`` it went through, creation first.
        metadata: Its metadata.
        created_at_precise: ``time.time()`` at creation.
        terminal_at: ``time.time()`` it reached a terminal status, or None.
        cancel_requested_at: ``time.time()`` of the accepted cancel, or None.
        object: The batch object exactly as the API would return it now.
    """

    id: str
    status: str
    history: list[tuple[str, float]]
    metadata: dict[str, str]
    created_at_precise: float
    terminal_at: float | None
    cancel_requested_at: float | None
    object: dict[str, Any]

    @classmethod
    def all(cls, api: BatchesApi) -> list[BatchRecord]:
        """Every batch of ``api``, oldest first."""
        with api.lock:
            return [cls._of(api, batch_id) for batch_id in api.store.batches]

    @classmethod
    def one(cls, api: BatchesApi, batch_id: str) -> BatchRecord:
        """One batch of ``api``.

        Raises:
            KeyError: If there is no such batch.
        """
        with api.lock:
            return cls._of(api, batch_id)

    @classmethod
    def _of(cls, api: BatchesApi, batch_id: str) -> BatchRecord:
        batch = api.store.batches[batch_id]
        return cls(
            id=batch.id,
            status=batch.status.value,
            history=list(batch.history),
            metadata=dict(batch.metadata or {}),
            created_at_precise=batch.created_precise,
            terminal_at=batch.terminal_at,
            cancel_requested_at=batch.cancel_requested_at,
            object=batch.to_api(),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (the control surface's wire format)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchRecord:
        """Rebuild from :meth:`to_dict` output."""
        values = dict(data)
        values["history"] = [(str(s), float(t)) for s, t in values["history"]]
        return cls(**values)


@dataclass(frozen=True)
class FileRecord:
    """A snapshot of one file (its object; the content through :meth:`RunsEmulator.file_content`).

    Attributes:
        id: The file id.
        filename: Its name.
        purpose: ``batch``, ``batch_output``, ...
        bytes: Its size.
        object: The file object exactly as the API would return it now.
    """

    id: str
    filename: str
    purpose: str
    bytes: int
    object: dict[str, Any]

    @classmethod
    def all(cls, api: BatchesApi) -> list[FileRecord]:
        """Every file of ``api``, oldest first."""
        with api.lock:
            return [
                cls(id=f.id, filename=f.filename, purpose=f.purpose, bytes=len(f.content), object=f.to_api())
                for f in api.store.files.values()
            ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileRecord:
        """Rebuild from :meth:`to_dict` output."""
        return cls(**data)
