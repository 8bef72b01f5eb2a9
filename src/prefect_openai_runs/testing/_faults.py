"""Fault rules: which requests get an error status, hang, lose their connection, or have their event
stream cut or stalled."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ._errors import status_error_body

FaultKind = Literal["status", "hang", "drop_before", "drop_after", "cut_stream", "stall_stream", "end_stream"]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "status",
    "hang",
    "drop_before",
    "drop_after",
    "cut_stream",
    "stall_stream",
    "end_stream",
)
STREAM_FAULT_KINDS: frozenset[FaultKind] = frozenset({"cut_stream", "stall_stream", "end_stream"})
"""The kinds that only match requests asking for an event stream."""


@dataclass(frozen=True)
class FaultRule:
    """A fault applied to matching requests.

    Kinds:
        * ``status``: answer ``status`` with ``headers`` and ``body`` (None: the OpenAI-shaped error body
          for that status; a 429 without explicit headers carries ``retry-after: 1``). With ``raw_body``,
          that text is answered verbatim instead (an HTML error page, truncated JSON, a garbled event
          stream), with the ``content-type`` of ``headers`` or ``text/plain``.
        * ``hang``: wait ``hang_seconds`` before handling the request normally. If the client gives up
          first, the request is not applied (recorded with status 499).
        * ``drop_before``: close the connection without applying the request or answering.
        * ``drop_after``: apply the request (e.g. really create the run), then close the connection
          without answering: the ambiguous create. The client sees a connection error.
        * ``cut_stream``: only for requests that ask for an event stream (``"stream": true``); other
          requests do not match. The request is applied and its stream starts, then, after
          ``after_events`` events, ``raw_body`` (if any: garbage lines) is written and the connection is
          closed abruptly, without the stream's end. The run itself goes on.
        * ``stall_stream``: only for requests that ask for an event stream, like ``cut_stream``. The
          stream starts, then, after ``after_events`` events, nothing more is sent and the connection is
          kept open until the client disconnects (recorded with status 499), ``hang_seconds`` pass or the
          emulator closes; then the connection is closed. The run itself goes on.
        * ``end_stream``: only for requests that ask for an event stream, like ``cut_stream``. After
          ``after_events`` events the stream ends cleanly (its body is complete, the connection kept),
          without its terminal event: a server closing a stream early. The job itself goes on.

    Attributes:
        method: HTTP method to match, None for any.
        path: Regex searched in the request path (``/v1/...``).
        kind: One of ``status``, ``hang``, ``drop_before``, ``drop_after``, ``cut_stream``,
            ``stall_stream``, ``end_stream``.
        status: Status code for ``status`` faults.
        headers: Extra response headers for ``status`` faults.
        body: JSON body for ``status`` faults.
        raw_body: Text sent verbatim: the whole body of a ``status`` fault (instead of ``body``), or
            what a ``cut_stream`` fault writes just before the cut.
        hang_seconds: Delay for ``hang`` faults; the longest a ``stall_stream`` fault keeps the connection.
        after_events: Events a ``cut_stream``, ``stall_stream`` or ``end_stream`` fault lets through
            before the cut, the stall or the end.
        times: How many matching requests to affect (None: unlimited).
        probability: Chance that a matching request is affected.
        seed: Seed for ``probability`` draws, for a deterministic subset.
    """

    method: str | None = None
    path: str = r".*"
    kind: FaultKind = "status"
    status: int = 429
    headers: Mapping[str, str] | None = None
    body: Any = None
    hang_seconds: float = 30.0
    times: int | None = 1
    probability: float = 1.0
    seed: int | None = None
    raw_body: str | None = None
    after_events: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}, not {self.kind!r}")
        if self.after_events < 0:
            raise ValueError(f"after_events must be 0 or more, not {self.after_events}")
        re.compile(self.path)

    def response_headers(self) -> dict[str, str]:
        """Headers a ``status`` fault answers with."""
        if self.headers is not None:
            return dict(self.headers)
        return {"retry-after": "1"} if self.status == 429 else {}

    def response_body(self) -> Any:
        """Body a ``status`` fault answers with."""
        return status_error_body(self.status) if self.body is None else self.body

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (the control surface's wire format)."""
        data = asdict(self)
        data["headers"] = dict(self.headers) if self.headers is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultRule:
        """Rebuild from :meth:`to_dict` output."""
        return cls(**data)


@dataclass
class _Armed:
    rule: FaultRule
    pattern: re.Pattern[str]
    remaining: int | None
    rng: random.Random


@dataclass
class FaultBook:
    """The armed fault rules, checked in the order they were added; safe to use from any thread."""

    _armed: list[_Armed] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, rule: FaultRule) -> None:
        """Arm a rule."""
        with self._lock:
            self._armed.append(_Armed(rule, re.compile(rule.path), rule.times, random.Random(rule.seed)))

    def clear(self) -> None:
        """Disarm every rule."""
        with self._lock:
            self._armed.clear()

    def rules(self) -> list[FaultRule]:
        """The rules still armed."""
        with self._lock:
            return [a.rule for a in self._armed]

    def take(self, method: str, path: str, streaming: bool = False) -> FaultRule | None:
        """The rule that affects this request, if any, consuming one of its ``times``.

        ``cut_stream`` and ``stall_stream`` rules only affect requests that ask for an event stream
        (``streaming``).
        """
        if not self._armed:
            return None
        with self._lock:
            for armed in self._armed:
                rule = armed.rule
                if rule.method is not None and rule.method.upper() != method:
                    continue
                if rule.kind in STREAM_FAULT_KINDS and not streaming:
                    continue
                if not armed.pattern.search(path):
                    continue
                if rule.probability < 1.0 and armed.rng.random() >= rule.probability:
                    continue
                if armed.remaining is not None:
                    armed.remaining -= 1
                    if armed.remaining <= 0:
                        self._armed.remove(armed)
                return rule
        return None
