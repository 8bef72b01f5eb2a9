"""List pages: one page of a cursor-paginated list."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

ItemT = TypeVar("ItemT", bound=BaseModel)


class ListPage(BaseModel, Generic[ItemT]):
    """One page of a list endpoint: ``data`` plus the cursors to fetch the next one."""

    model_config = ConfigDict(extra="allow")

    object: str = "list"
    data: list[ItemT] = Field(default_factory=list)
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False
