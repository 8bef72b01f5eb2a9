"""Threads and messages: enough to start a conversation and read the assistant's reply."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from prefect_openai_runs.models._base import APIObject


class Thread(APIObject):
    """A conversation thread."""

    id: str
    object: Literal["thread"] = "thread"
    created_at: int
    tool_resources: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None


class TextValue(APIObject):
    """The text of a text content block, with its annotations."""

    value: str
    annotations: list[dict[str, Any]] = Field(default_factory=list)


class MessageContent(APIObject):
    """One content block of a message; ``text`` is set for ``type == "text"`` blocks."""

    type: str
    text: TextValue | None = None


class Message(APIObject):
    """A message on a thread.

    Example:
        ```python
        reply = next(m for m in messages if m.role == "assistant")
        print(reply.text)
        ```
    """

    id: str
    object: Literal["thread.message"] = "thread.message"
    created_at: int
    thread_id: str
    status: str | None = None
    role: Literal["user", "assistant"]
    content: list[MessageContent] = Field(default_factory=list)
    assistant_id: str | None = None
    run_id: str | None = None
    metadata: dict[str, str] | None = None

    @property
    def text(self) -> str:
        """The message's text blocks joined by blank lines (other block types are skipped)."""
        return "\n\n".join(block.text.value for block in self.content if block.text is not None)
