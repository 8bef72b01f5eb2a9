"""Inspection records: plain, copyable snapshots of runs and requests, plus counters."""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ._responses_state import ResponseState
from ._state import RunState


@dataclass(frozen=True)
class RunRecord:
    """A snapshot of one run.

    Attributes:
        id: The run id.
        thread_id: Its thread.
        assistant_id: Its assistant.
        status: Its status when the snapshot was taken.
        history: Every ``(status, time.time())`` it went through, creation first.
        metadata: Its metadata.
        created_at_precise: ``time.time()`` at creation.
        terminal_at: ``time.time()`` it reached a terminal status, or None.
        cancel_requested_at: ``time.time()`` of the first accepted cancel, or None.
        object: The run object exactly as the API would return it now.
    """

    id: str
    thread_id: str
    assistant_id: str
    status: str
    history: list[tuple[str, float]]
    metadata: dict[str, str]
    created_at_precise: float
    terminal_at: float | None
    cancel_requested_at: float | None
    object: dict[str, Any]

    @classmethod
    def of(cls, run: RunState) -> RunRecord:
        """Snapshot a live run."""
        obj = run.to_api()
        return cls(
            id=run.id,
            thread_id=run.thread_id,
            assistant_id=run.assistant_id,
            status=run.status.value,
            history=list(run.history),
            metadata=dict(obj.get("metadata") or {}),
            created_at_precise=run.created_precise,
            terminal_at=run.terminal_at,
            cancel_requested_at=run.cancel_requested_at,
            object=obj,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (the control surface's wire format)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """Rebuild from :meth:`to_dict` output."""
        values = dict(data)
        values["history"] = [(str(s), float(t)) for s, t in values["history"]]
        return cls(**values)


@dataclass(frozen=True)
class ResponseRecord:
    """A snapshot of one response.

    Attributes:
        id: The response id.
        status: Its status when the snapshot was taken.
        background: Whether it was created with ``background: true``.
        history: Every ``(status, time.time())`` it went through, creation first.
        metadata: Its metadata.
        created_at_precise: ``time.time()`` at creation.
        terminal_at: ``time.time()`` it last reached a terminal status, or None.
        cancel_requested_at: ``time.time()`` of the first accepted cancel, or None.
        events: Every stream event it wrote (``type`` and ``sequence_number`` included), in order.
        object: The response object exactly as the API would return it now.
    """

    id: str
    status: str
    background: bool
    history: list[tuple[str, float]]
    metadata: dict[str, str]
    created_at_precise: float
    terminal_at: float | None
    cancel_requested_at: float | None
    events: list[dict[str, Any]]
    object: dict[str, Any]

    @classmethod
    def of(cls, response: ResponseState) -> ResponseRecord:
        """Snapshot a live response."""
        obj = response.to_api()
        return cls(
            id=response.id,
            status=response.status.value,
            background=response.background,
            history=list(response.history),
            metadata=dict(obj.get("metadata") or {}),
            created_at_precise=response.created_precise,
            terminal_at=response.terminal_at,
            cancel_requested_at=response.cancel_requested_at,
            events=[dict(event) for event in response.events],
            object=obj,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (the control surface's wire format)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResponseRecord:
        """Rebuild from :meth:`to_dict` output."""
        values = dict(data)
        values["history"] = [(str(s), float(t)) for s, t in values["history"]]
        return cls(**values)


@dataclass(frozen=True)
class RequestRecord:
    """One request the emulator received.

    Attributes:
        method: HTTP method.
        path: URL path.
        query: Raw query string.
        status: Response status (0 if the connection was dropped, 499 if the client left a hang or a stalled stream).
        at: ``time.time()`` the request arrived.
        duration: Seconds until the response ended.
        headers: Request headers, lower-cased, with ``authorization`` and ``api-key`` redacted.
        body: The parsed JSON body, or None.
        fault: The fault kind applied to it, or None.
        request_id: The ``x-request-id`` answered.
    """

    method: str
    path: str
    query: str
    status: int
    at: float
    duration: float
    headers: dict[str, str]
    body: Any
    fault: str | None
    request_id: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RequestRecord:
        """Rebuild from :meth:`to_dict` output."""
        return cls(**data)


class RequestLog:
    """The most recent requests (bounded) and counters, safe to read from any thread."""

    def __init__(self, limit: int | None = 100_000) -> None:
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=limit)
        self._counters: Counter[str] = Counter()

    def add(self, record: RequestRecord) -> None:
        """Keep a request."""
        with self._lock:
            self._records.append(record)
            self._counters["requests"] += 1

    def count(self, name: str, n: int = 1) -> None:
        """Bump a counter."""
        with self._lock:
            self._counters[name] += n

    def records(self) -> list[RequestRecord]:
        """Every kept request, oldest first."""
        with self._lock:
            return list(self._records)

    def counters(self) -> dict[str, int]:
        """A copy of the counters."""
        with self._lock:
            return dict(self._counters)

    def clear(self) -> None:
        """Forget requests and counters."""
        with self._lock:
            self._records.clear()
            self._counters.clear()
