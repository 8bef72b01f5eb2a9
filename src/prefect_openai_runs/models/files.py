"""The file object of ``/files``: batch inputs, outputs and error files."""

from __future__ import annotations

from enum import Enum

from prefect_openai_runs.models._base import APIObject
from prefect_openai_runs.models.batches import UnixTime, lenient_member


class FileStatus(str, Enum):
    """The (deprecated but still sent) status of a file.

    ``pending`` is Azure's: a freshly uploaded file a batch cannot use until it is ``processed``.
    An unknown value parses into a pseudo-member named ``UNKNOWN``.
    """

    UPLOADED = "uploaded"
    PENDING = "pending"
    PROCESSED = "processed"
    ERROR = "error"

    @classmethod
    def _missing_(cls, value: object) -> FileStatus | None:
        return lenient_member(cls, value)

    @property
    def is_ready(self) -> bool:
        """Whether a batch can use the file (``uploaded`` or ``processed``)."""
        return self in (FileStatus.UPLOADED, FileStatus.PROCESSED)

    def __str__(self) -> str:
        return str(self.value)


class FileObject(APIObject):
    """An uploaded file. Unknown fields are kept.

    Example:
        ```python
        uploaded = FileObject.model_validate(response_json)
        uploaded.status.is_ready
        ```
    """

    id: str
    object: str = "file"
    bytes: int | None = None
    created_at: UnixTime
    expires_at: UnixTime | None = None
    filename: str
    purpose: str
    status: FileStatus = FileStatus.UPLOADED
    status_details: str | None = None


class DeletedFile(APIObject):
    """The answer of *delete file*."""

    id: str
    object: str = "file"
    deleted: bool
