"""Batch scripts: how long each phase of a batch lasts and how each of its requests ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ._objects import new_id

LinePredicate = Callable[[str, Mapping[str, Any]], bool]
"""``(custom_id, body) -> True`` when that request must fail."""

ONE_DAY = 24 * 3600.0


@dataclass(frozen=True)
class BatchScript:
    """What a batch does once created.

    Attributes:
        validating_seconds: How long the batch stays ``validating`` (then ``in_progress``, or ``failed``
            if its input file is invalid).
        in_progress_seconds: How long processing every request takes; ``request_counts`` advance in
            steps meanwhile. ``None``: requests never finish (the batch stays ``in_progress`` until it
            is cancelled or expires).
        finalizing_seconds: How long the batch stays ``finalizing`` before ``completed``.
        cancelling_seconds: How long it stays ``cancelling`` before ``cancelled``.
        completion_window_seconds: Seconds after creation the batch expires (the API's ``24h``).
        failing_ids: ``custom_id`` values whose requests fail.
        fail_when: A predicate deciding which other requests fail (not available over HTTP).
        error_status: The HTTP status a failed request's line reports.
        error_code: The error code in a failed request's response body.
        error_message: The error message in a failed request's response body.
        reply_text: The text of each successful response (``{custom_id}`` is replaced).
        usage: ``(input_tokens, output_tokens)`` of each successful request.
        cached_tokens: Of each successful request's input tokens, how many were cached (in the batch's usage).
        reasoning_tokens: Of each successful request's output tokens, how many were reasoning.
        validation_error: If set, ``(code, message)`` of a batch-wide validation failure (e.g.
            ``("token_limit_exceeded", "Enqueued token limit reached ...")``): the batch ends ``failed``.
    """

    validating_seconds: float = 0.02
    in_progress_seconds: float | None = 0.1
    finalizing_seconds: float = 0.02
    cancelling_seconds: float = 0.05
    completion_window_seconds: float = ONE_DAY
    failing_ids: frozenset[str] | tuple[str, ...] | list[str] = frozenset()
    fail_when: LinePredicate | None = field(default=None, compare=False)
    error_status: int = 500
    error_code: str = "server_error"
    error_message: str = "The emulator was scripted to fail this request."
    reply_text: str = "Reply to {custom_id}."
    usage: tuple[int, int] | list[int] = (10, 5)
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    validation_error: tuple[str, str] | list[str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "failing_ids", frozenset(self.failing_ids))
        object.__setattr__(self, "usage", tuple(self.usage))
        if self.validation_error is not None:
            object.__setattr__(self, "validation_error", tuple(self.validation_error))
        for name in ("validating_seconds", "finalizing_seconds", "cancelling_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, not {getattr(self, name)}")
        if self.completion_window_seconds <= 0:
            raise ValueError(f"completion_window_seconds must be positive, not {self.completion_window_seconds}")

    def fails(self, custom_id: str, body: Mapping[str, Any]) -> bool:
        """Whether the request ``custom_id`` fails."""
        return custom_id in self.failing_ids or (self.fail_when is not None and self.fail_when(custom_id, body))

    def outcome(self, endpoint: str, custom_id: str, body: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Whether the request succeeds, and its ``response`` as a result line carries it."""
        request_id = f"req_{new_id('line').split('_', 1)[1]}"
        if self.fails(custom_id, body):
            error = {"message": self.error_message, "type": "server_error", "param": None, "code": self.error_code}
            return False, {"status_code": self.error_status, "request_id": request_id, "body": {"error": error}}
        text = self.reply_text.replace("{custom_id}", custom_id)
        model = str(body.get("model") or "gpt-4o-mini")
        answer = response_body(endpoint, model, text, self.token_usage, (self.cached_tokens, self.reasoning_tokens))
        return True, {"status_code": 200, "request_id": request_id, "body": answer}

    @property
    def token_usage(self) -> tuple[int, int]:
        """``(input_tokens, output_tokens)`` of one successful request."""
        tokens_in, tokens_out = self.usage
        return int(tokens_in), int(tokens_out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (the control surface's wire format); ``fail_when`` is not carried."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "fail_when"}
        data["failing_ids"] = sorted(self.failing_ids)
        data["usage"] = list(self.usage)
        data["validation_error"] = list(self.validation_error) if self.validation_error else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchScript:
        """Build a script from :meth:`to_dict` output (unknown keys raise ``TypeError``)."""
        return cls(**dict(data))


def response_body(
    endpoint: str, model: str, text: str, usage: tuple[int, int], details: tuple[int, int] = (0, 0)
) -> dict[str, Any]:
    """A plausible answer of ``endpoint`` (a response, a chat completion, embeddings...) with usage.

    ``details`` are the cached input and reasoning output tokens; a response that reasoned starts its
    output with a ``reasoning`` item, as a reasoning model's does.
    """
    tokens_in, tokens_out = usage
    cached, reasoning = details
    now = int(time.time())
    if endpoint == "/v1/responses":
        thought = [{"type": "reasoning", "id": new_id("rs"), "summary": []}] if reasoning else []
        return {
            "id": new_id("resp"),
            "object": "response",
            "created_at": now,
            "status": "completed",
            "model": model,
            "output": [
                *thought,
                {
                    "type": "message",
                    "id": new_id("msg"),
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                },
            ],
            "usage": {
                "input_tokens": tokens_in,
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": tokens_out,
                "output_tokens_details": {"reasoning_tokens": reasoning},
                "total_tokens": tokens_in + tokens_out,
            },
        }
    legacy_usage = {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}
    if endpoint == "/v1/embeddings":
        return {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.0, 0.1, 0.2]}],
            "model": model,
            "usage": {"prompt_tokens": tokens_in, "total_tokens": tokens_in},
        }
    if endpoint == "/v1/chat/completions":
        return {
            "id": new_id("chatcmpl"),
            "object": "chat.completion",
            "created": now,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": legacy_usage,
        }
    return {"id": new_id("cmpl"), "object": "text_completion", "created": now, "model": model, "usage": legacy_usage}


@dataclass(frozen=True)
class BatchScriptRule:
    """A batch script with the metadata pairs a batch must carry to follow it (none: every batch)."""

    script: BatchScript
    metadata: Mapping[str, str] | None = None

    def applies_to(self, metadata: Mapping[str, str] | None) -> bool:
        """Whether a batch created with ``metadata`` follows this rule."""
        have = metadata or {}
        return all(have.get(k) == v for k, v in (self.metadata or {}).items())


@dataclass
class BatchScriptBook:
    """The batch script rules, checked newest first; the first that applies wins, else the default."""

    default: BatchScript = field(default_factory=BatchScript)
    _rules: list[BatchScriptRule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, rule: BatchScriptRule) -> None:
        """Add a rule that takes precedence over every earlier one."""
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        """Forget every rule (the default script stays)."""
        with self._lock:
            self._rules.clear()

    def choose(self, metadata: Mapping[str, str] | None) -> BatchScript:
        """The script a batch created with ``metadata`` follows."""
        with self._lock:
            rules = list(reversed(self._rules))
        return next((rule.script for rule in rules if rule.applies_to(metadata)), self.default)
