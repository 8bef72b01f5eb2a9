"""The query and the answer of the cursor-paged list endpoints (``limit``, ``order``, ``after``, ``before``).

The spec types these parameters and states the ``limit`` bounds in prose (1..100 for most lists, 1..10,000
for files); they are checked as JSON Schema with the request bodies' wording.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from ._spec import check
from ._store import paginate

T = TypeVar("T")
JSON = dict[str, Any]


@dataclass(frozen=True)
class ListQuery:
    """The query of a cursor-paged list endpoint."""

    limit: int = 20
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    before: str | None = None
    run_id: str | None = None


def _integer(raw: str) -> int | str:
    try:
        return int(raw)
    except ValueError:
        return raw


def list_query(query: Mapping[str, str], *, max_limit: int = 100, default_limit: int = 20) -> ListQuery:
    """Parse and check ``limit`` (1..``max_limit``), ``order`` (asc|desc), ``after``, ``before``, ``run_id``.

    Raises:
        ApiError: 400 for a bad value.
    """
    raw_limit = query.get("limit")
    limit = default_limit if raw_limit is None else _integer(raw_limit)
    order = query.get("order", "desc")
    schema = {
        "type": "object",
        "properties": {
            "limit": {"type": "integer", "minimum": 1, "maximum": max_limit},
            "order": {"type": "string", "enum": ["asc", "desc"]},
        },
    }
    check(schema, {"limit": limit, "order": order})
    return ListQuery(
        limit=cast(int, limit),
        order=cast(Literal["asc", "desc"], order),
        after=query.get("after") or None,
        before=query.get("before") or None,
        run_id=query.get("run_id") or None,
    )


def page(items: Sequence[T], key: Callable[[T], str], q: ListQuery, render: Callable[[T], JSON]) -> JSON:
    """A list response. The spec types ``first_id``/``last_id`` as non-nullable strings, so an empty
    page carries ``""`` for both (the live API sent null; the spec is the contract here)."""
    found, has_more = paginate(items, key, limit=q.limit, order=q.order, after=q.after, before=q.before)
    data = [render(item) for item in found]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else "",
        "last_id": data[-1]["id"] if data else "",
        "has_more": has_more,
    }
