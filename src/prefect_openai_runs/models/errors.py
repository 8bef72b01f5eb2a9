"""The error body every failed request carries."""

from __future__ import annotations

from prefect_openai_runs.models._base import APIObject


class ErrorDetail(APIObject):
    """The API's own description of a failure: message, type, param and code."""

    message: str = ""
    type: str | None = None
    param: str | None = None
    code: str | None = None


class ErrorBody(APIObject):
    """``{"error": {...}}``, the shape of every error response and of the ``error`` stream event."""

    error: ErrorDetail
