"""The vendored OpenAPI spec's schemas as JSON Schema, for validating response bodies in tests.

``validate("RunObject", obj)`` raises ``jsonschema.ValidationError`` if ``obj`` does not conform.
OpenAPI's ``nullable: true`` is rewritten as the emulator's validator does (``openapi_to_json_schema``);
``$ref``s resolve inside the spec document.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from prefect_openai_runs.testing._spec import openapi_to_json_schema

SPEC_PATH = Path(__file__).parent / "spec" / "runs-subset.yaml"


@functools.cache
def _document() -> dict[str, Any]:
    raw = yaml.safe_load(SPEC_PATH.read_text())
    return {"components": {"schemas": openapi_to_json_schema(raw["components"]["schemas"])}}


@functools.cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    schemas = _document()["components"]["schemas"]
    if name not in schemas:
        raise KeyError(f"no schema {name!r} in {SPEC_PATH.name}")
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", **_document()})


def validate(schema_name: str, obj: Any) -> None:
    """Check ``obj`` against the spec's ``components.schemas[schema_name]``.

    Raises:
        jsonschema.ValidationError: The first violation.
    """
    _validator(schema_name).validate(obj)


SCHEMA_BY_OBJECT = {
    "thread.run": "RunObject",
    "thread.run.step": "RunStepObject",
    "thread.message": "MessageObject",
    "thread.message.delta": "MessageDeltaObject",
    "thread": "ThreadObject",
}


def validate_response_body(path: str, body: Any) -> None:
    """Validate a JSON response body by its shape: error, list (by endpoint), or its ``object`` field.

    Bodies the spec subset has no schema for (assistants) pass unchecked.
    """
    if not isinstance(body, dict):
        return
    if "error" in body:
        validate("ErrorResponse", body)
        return
    kind = body.get("object")
    if kind == "list":
        if path.endswith("/runs"):
            validate("ListRunsResponse", body)
        elif path.endswith("/steps"):
            validate("ListRunStepsResponse", body)
        for item in body.get("data", []):
            validate_response_body(path, item)
        return
    if kind in SCHEMA_BY_OBJECT:
        validate(SCHEMA_BY_OBJECT[kind], body)


def validate_event(event: str, data: Any) -> None:
    """Validate one server-sent event against AssistantStreamEvent."""
    validate("AssistantStreamEvent", {"event": event, "data": data})
