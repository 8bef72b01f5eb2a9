"""A ``jsonschema`` violation as the API's 400 answer: the offending parameter's path and the API's wording.

Where a value could match several schemas (``anyOf`` / ``oneOf``: a nullable field, a tagged union of tools),
the branch that matched the value furthest is the one reported: a branch whose kind (``type``) did not match
loses to one whose tag (``enum``) did not, which loses to one that failed deeper or on a limit. When every
branch fails the same way at the same place, the answer names them all (``Supported values are: ...``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from . import _errors as errors

Lookup = Callable[[str], Any]
"""Resolves a ``$ref`` of the document to the schema it names."""

_Rank = tuple[float, int]
_TYPE, _TAG, _OTHER = 0, 1, 2
_BRANCHING = ("anyOf", "oneOf")
_KIND_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a decimal",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
    "null": "null",
}
_BOUNDS = {
    "maximum": ("above maximum", "above_max", "<="),
    "exclusiveMaximum": ("above maximum", "above_max", "<"),
    "minimum": ("below minimum", "below_min", ">="),
    "exclusiveMinimum": ("below minimum", "below_min", ">"),
}

_SIZES = {
    "maxLength": ("string", True),
    "minLength": ("string", False),
    "maxItems": ("array", True),
    "minItems": ("array", False),
    "maxProperties": ("object", True),
}


def param_path(path: Iterable[str | int]) -> str:
    """Name a value's place the way API errors do: ``tools[0].function.name``."""
    out = ""
    for step in path:
        out = f"{out}[{step}]" if isinstance(step, int) else (f"{out}.{step}" if out else str(step))
    return out


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _branches(error: Any) -> list[list[Any]]:
    grouped: dict[Any, list[Any]] = {}
    for sub in error.context:
        grouped.setdefault(sub.relative_schema_path[0], []).append(sub)
    return list(grouped.values())


def _rank(error: Any) -> _Rank:
    if error.validator in _BRANCHING and error.context:
        return max(_branch_rank(branch) for branch in _branches(error))
    if error.validator == "type":
        return (len(error.absolute_path), _TYPE)
    if error.validator in ("enum", "const"):
        return (len(error.absolute_path), _TAG)
    return (math.inf, _OTHER)


def _branch_rank(branch: list[Any]) -> _Rank:
    return min(_rank(error) for error in branch)


def _leaves(errors_: Iterable[Any]) -> Iterable[Any]:
    for error in errors_:
        if error.validator in _BRANCHING and error.context:
            yield from _leaves(error.context)
        else:
            yield error


def _all_branches_fail_alike(branches: list[list[Any]], rank: _Rank) -> errors.ApiError | None:
    depth, kind = rank
    leaves = [
        leaf
        for branch in branches
        for leaf in _leaves(branch)
        if len(leaf.absolute_path) == depth and _rank(leaf) == rank
    ]
    if not leaves or len({tuple(leaf.absolute_path) for leaf in leaves}) != 1:
        return None
    path, instance = param_path(leaves[0].absolute_path), leaves[0].instance
    if kind == _TYPE:
        kinds = [k for leaf in leaves for k in _as_list(leaf.validator_value) if k != "null"]
        return errors.invalid_type(path or "body", _KIND_NAMES.get(kinds[0], kinds[0]) if kinds else "null", instance)
    allowed = [
        v for leaf in leaves for v in (leaf.validator_value if leaf.validator == "enum" else [leaf.validator_value])
    ]
    return errors.unsupported_value(path, instance, [str(v) for v in dict.fromkeys(allowed)])


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _known_properties(schema: Any, lookup: Lookup) -> set[str]:
    if not isinstance(schema, dict):
        return set()
    names = set(schema.get("properties", {}))
    for key in ("allOf", *_BRANCHING):
        for part in schema.get(key, []):
            names |= _known_properties(part, lookup)
    if "$ref" in schema:
        names |= _known_properties(lookup(schema["$ref"]), lookup)
    return names


def _unknown_parameter(error: Any, path: str, lookup: Lookup) -> errors.ApiError:
    known = _known_properties(error.schema, lookup)
    patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
    unknown = next(
        (k for k in error.instance if k not in known and not any(p.search(k) for p in patterns)),
        next(iter(error.instance), ""),
    )
    return errors.unknown_parameter(_join(path, unknown))


def _sized(what: str, limit: int, size: int, above: bool) -> tuple[str, str]:
    """``(message, code)`` for a string, array or object outside its size limits."""
    noun = {"string": "length", "array": "length", "object": "properties"}[what]
    if what == "object":
        message = (
            f"too many properties. Expected an object with at most {limit} properties, "
            f"but got an object with {size} properties instead."
        )
        return message, "object_above_max_properties"
    bound, side = ("maximum", "too long") if above else ("minimum", "too short")
    message = f"{what} {side}. Expected {'an' if what == 'array' else 'a'} {what} with {bound} {noun} {limit}, "
    message += f"but got {'an' if what == 'array' else 'a'} {what} with {noun} {size} instead."
    if what == "array" and not above:
        return message, "empty_array" if limit == 1 else "array_below_min_length"
    return message, f"{what}_{'above_max' if above else 'below_min'}_length"


def _leaf_error(error: Any, lookup: Lookup) -> errors.ApiError:
    keyword, value, instance = error.validator, error.validator_value, error.instance
    path = param_path(error.absolute_path)
    if keyword == "required":
        return errors.missing_parameter(_join(path, next(n for n in value if n not in instance)))
    if keyword in ("additionalProperties", "unevaluatedProperties"):
        return _unknown_parameter(error, path, lookup)
    if keyword == "type":
        kinds = [k for k in _as_list(value) if k != "null"] or ["null"]
        return errors.invalid_type(path or "body", _KIND_NAMES.get(kinds[0], kinds[0]), instance)
    if keyword in ("enum", "const"):
        return errors.unsupported_value(path, instance, [str(v) for v in _as_list(value)])
    if keyword in ("maxLength", "minLength") and "propertyNames" in error.absolute_schema_path:
        return errors.invalid_value(
            path,
            f"key too long. Expected keys with maximum length {value}, but got a key with length {len(instance)} "
            "instead.",
            "string_above_max_length",
        )
    if keyword in _SIZES:
        what, above = _SIZES[keyword]
        return errors.invalid_value(path, *_sized(what, value, len(instance), above))
    if keyword == "pattern":
        return errors.invalid_value(
            path, f"string does not match pattern. Expected a string that matches the pattern '{value}'."
        )
    if keyword in _BOUNDS:
        kind = "integer" if error.schema.get("type") == "integer" else "decimal"
        side, code, op = _BOUNDS[keyword]
        message = f"{kind} {side} value. Expected a value {op} {value:g}, but got {instance} instead."
        return errors.invalid_value(path, message, f"{kind}_{code}_value")
    return errors.invalid_value(path or "body", error.message)


def api_error(error: Any, lookup: Lookup) -> errors.ApiError:
    """The API's 400 for a ``jsonschema.ValidationError``.

    Args:
        error: The first violation ``iter_errors`` found.
        lookup: Resolves the document's ``$ref`` s (to name an unknown parameter beside ``allOf`` parts).

    Returns:
        The error naming the offending parameter, with the API's message and code.
    """
    while error.validator in _BRANCHING and error.context:
        branches = _branches(error)
        ranks = [_branch_rank(branch) for branch in branches]
        best = max(ranks)
        chosen = [branch for branch, rank in zip(branches, ranks, strict=True) if rank == best]
        if len(chosen) > 1 and best[1] != _OTHER:
            alike = _all_branches_fail_alike(chosen, best)
            if alike is not None:
                return alike
        error = chosen[0][0]
    return _leaf_error(error, lookup)
