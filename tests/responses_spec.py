"""The vendored background-responses spec (OpenAPI 3.1) as JSON Schema, for validating what the emulator
answers on ``/v1/responses``: ``validate_response(body)`` and ``validate_stream_event(event)``."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SPEC_PATH = Path(__file__).parent / "spec" / "responses-background-subset.yaml"


@functools.cache
def _document() -> dict[str, Any]:
    raw = yaml.load(SPEC_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return {"components": {"schemas": raw["components"]["schemas"]}}


@functools.cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", **_document()})


def validate_response(body: Any) -> None:
    """Check a response object against the spec's ``Response``.

    Raises:
        jsonschema.ValidationError: The first violation.
    """
    _validator("Response").validate(body)


def validate_stream_event(event: Any) -> None:
    """Check one stream event against the spec's ``ResponseStreamEvent``.

    Raises:
        jsonschema.ValidationError: The first violation.
    """
    _validator("ResponseStreamEvent").validate(event)
