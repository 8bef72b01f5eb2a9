"""Request bodies checked against the vendored OpenAPI spec itself (package data in ``spec/``).

Each operation's request body schema (``CreateRunRequest``, ``CreateResponse``, ``CreateBatchRequest``...)
is validated with ``jsonschema`` (Draft 2020-12, the dialect of OpenAPI 3.1), ``$ref`` resolved inside its
own file through a ``referencing`` registry. Two things are added to the documents as they are loaded:

- OpenAPI's ``nullable: true`` (also as ``allOf: [X, {nullable: true}]``) becomes ``anyOf: [X, null]``.
- :data:`PROSE_FACTS`: limits the spec states in its descriptions only (metadata's 16 keys, a function
  name's pattern), what the live API observably enforces (unknown parameters refused, ``model`` required
  for a response), and the one request schema the subsets lack (``CreateAssistantRequest``).

The first violation becomes the API's own 400 answer (see :mod:`._spec_errors`). ``jsonschema`` and
``pyyaml`` are imported on first use: they come with the ``emulator`` extra.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, Literal, cast

from . import _spec_errors

Document = Literal["runs", "responses", "batches"]

_FILES: dict[Document, str] = {
    "runs": "runs-subset.yaml",
    "responses": "responses-background-subset.yaml",
    "batches": "batches-subset.yaml",
}
_URI = "urn:prefect-openai-runs:spec:"
_MISSING = "The emulator needs jsonschema and pyyaml: pip install 'prefect-openai-runs[emulator]'"

_CLOSED: dict[str, Any] = {"unevaluatedProperties": False}
_METADATA: dict[str, Any] = {
    "maxProperties": 16,
    "propertyNames": {"maxLength": 64},
    "additionalProperties": {"type": "string", "maxLength": 512},
}
_TOOLS: dict[str, Any] = {
    "anyOf": [
        {
            "type": "array",
            "maxItems": 20,
            "items": {
                "oneOf": [
                    {"$ref": "#/components/schemas/AssistantToolsCode"},
                    {"$ref": "#/components/schemas/AssistantToolsFileSearch"},
                    {"$ref": "#/components/schemas/AssistantToolsFunction"},
                ]
            },
        },
        {"type": "null"},
    ]
}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


CREATE_ASSISTANT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["model"],
    "properties": {
        "model": {"type": "string"},
        "name": _nullable({"type": "string", "maxLength": 256}),
        "description": _nullable({"type": "string", "maxLength": 512}),
        "instructions": _nullable({"type": "string", "maxLength": 256_000}),
        "reasoning_effort": {"$ref": "#/components/schemas/ReasoningEffort"},
        "tools": _TOOLS,
        "tool_resources": _nullable({"type": "object"}),
        "metadata": {"$ref": "#/components/schemas/Metadata"},
        "temperature": _nullable({"type": "number", "minimum": 0, "maximum": 2}),
        "top_p": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
        "response_format": _nullable({"$ref": "#/components/schemas/AssistantsApiResponseFormatOption"}),
    },
}
"""``POST /assistants``: the runs subset has no assistants paths; the fields of the API's
``CreateAssistantRequest``, built from the subset's own schemas."""

PROSE_FACTS: dict[Document, list[tuple[str, tuple[str | int, ...], dict[str, Any]]]] = {
    "runs": [
        ("Metadata", ("anyOf", 0), _METADATA),
        ("FunctionObject", ("properties", "name"), {"pattern": "^[a-zA-Z0-9_-]{1,64}$"}),
    ],
    "responses": [
        ("Metadata", ("anyOf", 0), _METADATA),
        ("CreateResponse", (), {"required": ["model"], **_CLOSED}),
    ],
    "batches": [
        ("Metadata", ("anyOf", 0), _METADATA),
        ("CreateBatchRequest", (), _CLOSED),
    ],
}
"""Per document, ``(schema, path inside it, keywords added there)``: what the spec says in prose only, and
what the live API enforces beyond it."""

_EXTRA_SCHEMAS: dict[Document, dict[str, Any]] = {"runs": {"CreateAssistantRequest": CREATE_ASSISTANT}}


def _is_nullable_marker(node: Any) -> bool:
    return isinstance(node, dict) and set(node) - {"description"} == {"nullable"} and node["nullable"] is True


def openapi_to_json_schema(node: Any) -> Any:
    """Rewrite OpenAPI's ``nullable: true`` as ``anyOf: [..., {"type": "null"}]`` and drop ``x-`` keys."""
    if isinstance(node, list):
        return [openapi_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: openapi_to_json_schema(v) for k, v in node.items() if not k.startswith("x-")}
    if "allOf" in node and any(_is_nullable_marker(part) for part in node["allOf"]):
        rest = [part for part in node.pop("allOf") if not _is_nullable_marker(part)]
        node["anyOf"] = [{"allOf": rest}, {"type": "null"}]
    if node.pop("nullable", False) is True:
        return {"anyOf": [node, {"type": "null"}]}
    return node


def _add_facts(schemas: dict[str, Any], document: Document) -> None:
    for name, path, keywords in PROSE_FACTS[document]:
        target = schemas[name]
        for step in path:
            target = target[step]
        target.update(keywords)
    schemas.update(_EXTRA_SCHEMAS.get(document, {}))


def spec_text(document: Document) -> str:
    """The vendored spec subset's YAML text, as shipped in the package."""
    return resources.files(__package__).joinpath("spec").joinpath(_FILES[document]).read_text(encoding="utf-8")


@functools.cache
def _registry(document: Document) -> Any:
    try:
        import yaml
        from referencing import Registry
        from referencing.jsonschema import DRAFT202012
    except ImportError as missing:
        raise RuntimeError(_MISSING) from missing
    raw = yaml.load(spec_text(document), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    schemas = openapi_to_json_schema(raw["components"]["schemas"])
    _add_facts(schemas, document)
    contents = {"components": {"schemas": schemas}}
    return Registry().with_resource(_URI + document, DRAFT202012.create_resource(contents))


def _jsonschema() -> Any:
    try:
        import jsonschema
    except ImportError as missing:
        raise RuntimeError(_MISSING) from missing
    return jsonschema


@functools.cache
def _validator(document: Document, schema: str) -> Any:
    ref = {"$ref": f"{_URI}{document}#/components/schemas/{schema}"}
    return _jsonschema().Draft202012Validator(ref, registry=_registry(document))


def _check(validator: Any, value: Any, lookup: _spec_errors.Lookup) -> None:
    first = next(iter(validator.iter_errors(value)), None)
    if first is not None:
        raise _spec_errors.api_error(first, lookup)


def preload() -> None:
    """Load every document now (once per process), so that the first request is as fast as the next.

    Raises:
        RuntimeError: jsonschema or pyyaml is not installed (``pip install 'prefect-openai-runs[emulator]'``).
    """
    for document in _FILES:
        _registry(document)
    _jsonschema()


def validate(document: Document, schema: str, body: Any) -> dict[str, Any]:
    """Check a request body against ``components.schemas[schema]`` of a spec subset and return it.

    Args:
        document: Which subset: ``runs``, ``responses`` or ``batches``.
        schema: The request body schema's name, e.g. ``CreateRunRequest``.
        body: The parsed JSON body.

    Returns:
        The body, now known to be an object.

    Raises:
        ApiError: 400 naming the first offending parameter, worded as the API words it.
    """
    resolver = _registry(document).resolver(_URI + document)
    _check(_validator(document, schema), body, lambda ref: resolver.lookup(ref).contents)
    return cast(dict[str, Any], body)


def check(schema: dict[str, Any], value: Any) -> None:
    """Check a value against a self-contained JSON Schema (no ``$ref``), with the same 400 answers.

    Raises:
        ApiError: 400 naming the first offending parameter.
    """
    _check(_jsonschema().Draft202012Validator(schema), value, lambda ref: {})
