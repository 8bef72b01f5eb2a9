"""The vendored Batch API spec subset's schemas, for validating the emulator's batch and file bodies.

The spec types optional fields such as ``output_file_id`` as plain strings while its own example
responses (and the live API) send ``null`` for them, so an optional property also accepts ``null``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SPEC_PATH = Path(__file__).parent / "spec" / "batches-subset.yaml"


def _optional_nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_optional_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: _optional_nullable(v) for k, v in node.items() if not k.startswith("x-")}
    properties = node.get("properties")
    if isinstance(properties, dict):
        required = set(node.get("required", []))
        node["properties"] = {
            name: prop if name in required else {"anyOf": [prop, {"type": "null"}]} for name, prop in properties.items()
        }
    return node


@functools.cache
def _document() -> dict[str, Any]:
    raw = yaml.safe_load(SPEC_PATH.read_text())
    return {"components": {"schemas": _optional_nullable(raw["components"]["schemas"])}}


@functools.cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", **_document()})


def validate_batch_body(name: str, obj: Any) -> None:
    """Check ``obj`` against ``components.schemas[name]`` (``Batch``, ``OpenAIFile``, ``BatchRequestOutput``...).

    Raises:
        jsonschema.ValidationError: The first violation.
    """
    _validator(name).validate(obj)
