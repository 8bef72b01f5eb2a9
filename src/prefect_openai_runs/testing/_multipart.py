"""A minimal ``multipart/form-data`` reader (the emulator has no form-parsing dependency)."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP

from . import _errors as errors


@dataclass(frozen=True)
class Part:
    """One part of a form: its field name, file name (for files) and content."""

    name: str
    filename: str | None
    content: bytes


def parse_form(content_type: str, body: bytes) -> dict[str, Part]:
    """The parts of a ``multipart/form-data`` body, by field name.

    Raises:
        ApiError: 400 if the body is not a multipart form.
    """
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise errors.ApiError(400, "The request must be multipart/form-data with a file and a purpose.")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    parts: dict[str, Part] = {}
    for part in message.iter_parts() if message.is_multipart() else []:
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        filename = part.get_filename()
        payload = part.get_payload(decode=True)
        parts[name] = Part(name, filename, payload if isinstance(payload, bytes) else b"")
    return parts
