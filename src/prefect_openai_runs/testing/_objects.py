"""The other API objects a run touches: assistants, threads, messages and run steps."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any


def new_id(prefix: str) -> str:
    """A fresh API-looking id such as ``run_4f1c...`` (24 hex characters)."""
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass
class Assistant:
    """An assistant: the defaults a run falls back on."""

    id: str
    created_at: int
    model: str = "gpt-4o"
    name: str | None = None
    description: str | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_resources: dict[str, Any] | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    temperature: float | None = 1.0
    top_p: float | None = 1.0
    response_format: Any = "auto"

    def to_api(self) -> dict[str, Any]:
        """The assistant object as the API returns it."""
        return {
            "id": self.id,
            "object": "assistant",
            "created_at": self.created_at,
            "name": self.name,
            "description": self.description,
            "model": self.model,
            "instructions": self.instructions,
            "tools": self.tools,
            "tool_resources": self.tool_resources or {},
            "metadata": self.metadata,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "response_format": self.response_format,
        }


@dataclass
class Message:
    """A thread message."""

    id: str
    thread_id: str
    created_at: int
    role: str
    content: list[dict[str, Any]]
    assistant_id: str | None = None
    run_id: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    status: str = "completed"
    completed_at: int | None = None

    @property
    def text(self) -> str:
        """The message's text parts, joined."""
        return "".join(p["text"]["value"] for p in self.content if p.get("type") == "text")

    def to_api(self, **overrides: Any) -> dict[str, Any]:
        """The message object as the API returns it (MessageObject), with optional field overrides."""
        data = {
            "id": self.id,
            "object": "thread.message",
            "created_at": self.created_at,
            "thread_id": self.thread_id,
            "status": self.status,
            "incomplete_details": None,
            "completed_at": self.completed_at,
            "incomplete_at": None,
            "role": self.role,
            "content": self.content,
            "assistant_id": self.assistant_id,
            "run_id": self.run_id,
            "attachments": self.attachments,
            "metadata": self.metadata,
        }
        data.update(overrides)
        return data


def text_content(text: str) -> list[dict[str, Any]]:
    """A message content list holding one text part."""
    return [{"type": "text", "text": {"value": text, "annotations": []}}]


@dataclass
class Thread:
    """A thread with its messages and the ids of its runs, oldest first."""

    id: str
    created_at: int
    metadata: dict[str, str] = field(default_factory=dict)
    tool_resources: dict[str, Any] | None = None
    messages: list[Message] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    active_run_id: str | None = None

    def last_user_message(self) -> str:
        """The text of the latest user message, or ""."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text
        return ""

    def to_api(self) -> dict[str, Any]:
        """The thread object as the API returns it (ThreadObject)."""
        return {
            "id": self.id,
            "object": "thread",
            "created_at": self.created_at,
            "tool_resources": self.tool_resources or {},
            "metadata": self.metadata,
        }


@dataclass
class RunStep:
    """A run step: a ``message_creation`` or a ``tool_calls`` step."""

    id: str
    run_id: str
    thread_id: str
    assistant_id: str
    created_at: int
    type: str
    step_details: dict[str, Any]
    status: str = "in_progress"
    ended: dict[str, int] = field(default_factory=dict)
    usage: dict[str, int] | None = None

    def end(self, status: str, at: float, usage: dict[str, int] | None = None) -> None:
        """Finish the step as ``completed``, ``cancelled``, ``expired`` or ``failed``."""
        self.status = status
        self.ended[f"{status}_at"] = int(at)
        self.usage = usage

    def to_api(self) -> dict[str, Any]:
        """The run step object as the API returns it (RunStepObject)."""
        return {
            "id": self.id,
            "object": "thread.run.step",
            "created_at": self.created_at,
            "run_id": self.run_id,
            "assistant_id": self.assistant_id,
            "thread_id": self.thread_id,
            "type": self.type,
            "status": self.status,
            "cancelled_at": self.ended.get("cancelled_at"),
            "completed_at": self.ended.get("completed_at"),
            "expired_at": self.ended.get("expired_at"),
            "failed_at": self.ended.get("failed_at"),
            "last_error": None,
            "step_details": self.step_details,
            "metadata": {},
            "usage": self.usage,
        }
