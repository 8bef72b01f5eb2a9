"""Base classes shared by every API model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class APIObject(BaseModel):
    """An object the API returns.

    Unknown fields are kept (``extra="allow"``) so that a newer server never breaks a pipeline and
    ``model_dump()`` round-trips what the server sent.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class RequestModel(BaseModel):
    """A request body we send.

    Unknown fields are refused (the API's own ``additionalProperties: false``) so a typo is a clear
    ``ValidationError`` naming the field, raised before any request leaves the process.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
