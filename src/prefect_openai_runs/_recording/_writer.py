"""Writes to the Prefect API that never hold up the caller: one process-wide writer, off the critical path.

Following a job, cancelling it at its deadline and deciding its outcome must not wait on the Prefect
server: a server restart or a network blip made each progress update block in the Prefect client's
connection retries, and the deadline passed unnoticed. So every artifact write and progress update
goes through :func:`submit`, which only queues it (a few microseconds) for a few daemon threads:

- writes to the same *slot* (one artifact, one progress bar) are coalesced: only the latest is written;
- a first attempt uses a short timeout, doubled at each failure in a row (one stuck request holds a
  write up for seconds, a server slow under load still gets it done); a write that fails is logged
  locally at once (with the job's kind, ids and status: what it says is then in the process's own
  logs) and retried with a growing backoff until the server answers again;
- what waits is bounded: past ``max_pending``, the oldest progress updates are dropped first, never
  the records of a job (created, final);
- :func:`flush` waits, for a bounded time, until everything submitted is written (tasks call it before
  returning; it is also called at interpreter exit).

Each write runs in a copy of the submitter's context, so it goes to the Prefect API the submitter was
configured for (settings contexts included).
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.context import SettingsContext, get_settings_context
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY, PREFECT_API_URL

from prefect_openai_runs._logging import LIBRARY_LOGGER_NAME

WRITE_TIMEOUT_SECONDS = 5.0
"""The timeout of a first attempt to write; doubled at each failure in a row, up to a minute."""
LONGEST_WRITE_TIMEOUT_SECONDS = 60.0
"""The longest timeout of one attempt (Prefect's own request timeout): a server slow under load still
gets its writes done, one stuck request holds a write up only for the first timeout."""
EXIT_FLUSH_SECONDS = 5.0
"""How long the interpreter's exit waits for pending writes."""

Perform = Callable[[SyncPrefectClient], None]
"""One write, given a Prefect client; raises when it could not be done."""

_logger = logging.getLogger(LIBRARY_LOGGER_NAME)


@dataclass
class _Pending:
    perform: Perform
    describe: str
    essential: bool
    context: contextvars.Context
    attempts: int = 0
    failed_since: float | None = None


@dataclass
class WriterStats:
    """What a writer did so far.

    Attributes:
        written: Writes that reached the server.
        failures: Attempts that failed (each retried later).
        dropped: Progress updates dropped to keep the backlog bounded.
    """

    written: int = 0
    failures: int = 0
    dropped: int = 0


@dataclass
class PrefectWriter:
    """The non-blocking writer: a bounded backlog of slots and a few daemon threads that write them.

    Attributes:
        workers: How many writes may be in flight at once.
        max_pending: The backlog's bound for progress updates (job records are never dropped).
        timeout: The timeout of a first attempt, in seconds, doubled at each failure in a row (up to
            ``LONGEST_WRITE_TIMEOUT_SECONDS``).
        first_backoff: The wait after a first failure, doubled at each failure in a row.
        max_backoff: The longest wait between attempts while the server does not answer.
    """

    workers: int = 4
    max_pending: int = 10_000
    timeout: float = WRITE_TIMEOUT_SECONDS
    first_backoff: float = 0.5
    max_backoff: float = 30.0
    stats: WriterStats = field(default_factory=WriterStats)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._busy: set[str] = set()
        self._backoff = 0.0
        self._resume_at = 0.0
        self._failures_in_row = 0
        self._local = threading.local()
        self._threads = [
            threading.Thread(target=self._work, name=f"prefect-openai-runs-writer-{n}", daemon=True)
            for n in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, slot: str, perform: Perform, describe: str, essential: bool = True) -> None:
        """Queue a write; never blocks (beyond a lock held for microseconds).

        Args:
            slot: What is written (an artifact key, a progress bar): a pending write to the same slot
                is replaced by this one.
            perform: The write.
            describe: The job's kind, ids and status, for the local log if the write fails.
            essential: A job's record, never dropped (progress updates are not essential).
        """
        context = contextvars.copy_context()
        with self._cond:
            earlier = self._pending.pop(slot, None)
            self._pending[slot] = _Pending(
                perform,
                describe,
                essential or (earlier is not None and earlier.essential),
                context,
                attempts=earlier.attempts if earlier else 0,
                failed_since=earlier.failed_since if earlier else None,
            )
            self._bound()
            self._cond.notify_all()  # a worker, not only a caller waiting in flush() or wait()

    def _bound(self) -> None:
        excess = len(self._pending) - self.max_pending
        if excess <= 0:
            return
        for slot in [s for s, p in self._pending.items() if not p.essential and s not in self._busy][:excess]:
            dropped = self._pending.pop(slot)
            self.stats.dropped += 1
            _logger.debug("Dropped a pending Prefect write to keep the backlog bounded: %s", dropped.describe)

    def pending(self) -> int:
        """How many writes wait or are in flight."""
        with self._cond:
            return len(self._pending) + len(self._busy)

    def flush(self, timeout: float, stall: float | None = None) -> bool:
        """Wait at most ``timeout`` seconds for every write submitted so far; return whether all were written.

        With ``stall``, give up sooner once no write has been done for ``stall`` seconds (a fan-out's
        hundreds of records wait as long as the server keeps taking them, not when it stops). When some
        could not be written, they are logged (they stay queued and are retried).
        """
        started = time.monotonic()
        deadline = started + max(0.0, timeout)
        with self._cond:
            written, progress_at = self.stats.written, started
            while self._pending or self._busy:
                now = time.monotonic()
                if self.stats.written != written:
                    written, progress_at = self.stats.written, now
                remaining = deadline - now
                if stall is not None:
                    remaining = min(remaining, progress_at + stall - now)
                if remaining <= 0:
                    waiting = [p.describe for p in self._pending.values()]
                    _logger.warning(
                        "%d write(s) to the Prefect API still pending after %.1fs (retried in the background): %s",
                        len(waiting) + len(self._busy),
                        now - started,
                        "; ".join(waiting[:10]) + (" ..." if len(waiting) > 10 else ""),
                    )
                    return False
                self._cond.wait(remaining)
        return True

    def wait(self, slot: str, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds until ``slot`` is written; return whether it was.

        Returns at once (``False``) when the server is known not to answer (a write failed and the
        writer waits to retry): waiting would only hold the caller up. The write stays queued.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while slot in self._pending or slot in self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._backoff > 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _take(self) -> tuple[str, _Pending]:
        with self._cond:
            while True:
                wait = self._resume_at - time.monotonic()
                free = next((s for s in self._pending if s not in self._busy), None)
                if free is not None and wait <= 0:
                    self._busy.add(free)
                    return free, self._pending.pop(free)
                self._cond.wait(wait if free is not None else None)

    def _work(self) -> None:
        while True:
            slot, write = self._take()
            write.attempts += 1
            try:
                write.context.run(self._perform, write.perform)
            except Exception as exc:
                self._failed(slot, write, exc)
            else:
                self._written(slot, write)

    def _perform(self, perform: Perform) -> None:
        """One attempt, in the submitter's settings but on the writer's own client: bounded by the writer's
        timeout, without the Prefect client's own retries.

        Those retries (up to a minute of exponential waits on a lost connection) would hide from the
        writer that the server does not answer; the writer retries by itself, with its own backoff. The
        submitter's client (a flow or task run's) is not used: its requests wait up to Prefect's request
        timeout (a minute), so one request a loaded server never answered kept a record busy that long.
        Each worker thread keeps one client per API, its connection open, dropped after a failure.
        """
        current = get_settings_context()
        settings = current.settings
        no_retries = settings.model_copy(update={"client": settings.client.model_copy(update={"max_retries": 0})})
        with SettingsContext(profile=current.profile, settings=no_retries):
            clients: dict[tuple[object, ...], SyncPrefectClient] = self._local.__dict__.setdefault("clients", {})
            api = (PREFECT_API_URL.value(), PREFECT_API_KEY.value(), PREFECT_API_AUTH_STRING.value())
            client = clients.get(api)
            if client is None:
                timeout = min(LONGEST_WRITE_TIMEOUT_SECONDS, self.timeout * 2 ** min(self._failures_in_row, 8))
                client = get_client(sync_client=True, httpx_settings={"timeout": timeout})
                client.__enter__()
                clients[api] = client
            try:
                perform(client)
            except Exception:
                del clients[api]
                client.__exit__(None, None, None)
                raise

    def _written(self, slot: str, write: _Pending) -> None:
        if write.failed_since is not None:
            _logger.info(
                "Written to the Prefect API after %d attempt(s) over %.1fs: %s",
                write.attempts,
                time.monotonic() - write.failed_since,
                write.describe,
            )
        with self._cond:
            self.stats.written += 1
            self._busy.discard(slot)
            self._failures_in_row = 0
            self._backoff = 0.0
            self._resume_at = 0.0
            self._cond.notify_all()

    def _failed(self, slot: str, write: _Pending, exc: Exception) -> None:
        first = write.failed_since is None
        if first:
            write.failed_since = time.monotonic()
        (_logger.warning if first else _logger.debug)(
            "Could not write to the Prefect API (attempt %d; retried until the server answers): %s: %s: %s",
            write.attempts,
            write.describe,
            type(exc).__name__,
            exc,
        )
        with self._cond:
            self.stats.failures += 1
            self._failures_in_row += 1
            self._busy.discard(slot)
            newer = self._pending.get(slot)
            if newer is None:
                self._pending[slot] = write
                self._pending.move_to_end(slot, last=False)
            else:
                newer.essential = newer.essential or write.essential
                newer.attempts, newer.failed_since = write.attempts, write.failed_since
            self._backoff = min(self.max_backoff, self._backoff * 2 or self.first_backoff)
            self._resume_at = time.monotonic() + self._backoff
            self._cond.notify_all()


_writer: PrefectWriter | None = None
_writer_pid = 0
_writer_lock = threading.Lock()


def get_writer() -> PrefectWriter:
    """The process's writer (started on first use, again in a forked child); flushed at exit."""
    global _writer, _writer_pid
    with _writer_lock:
        if _writer is None or _writer_pid != os.getpid():
            _writer, _writer_pid = PrefectWriter(), os.getpid()
            atexit.register(_writer.flush, EXIT_FLUSH_SECONDS)
        return _writer


def submit(slot: str, perform: Perform, describe: str, essential: bool = True) -> None:
    """Queue a write to the Prefect API on the process's writer: see :meth:`PrefectWriter.submit`."""
    get_writer().submit(slot, perform, describe, essential)


def flush(timeout: float = WRITE_TIMEOUT_SECONDS, stall: float | None = None) -> bool:
    """Wait (at most ``timeout`` s; with ``stall``, less once no write is done for that long) until the
    process's writes are done: see :meth:`PrefectWriter.flush`."""
    return get_writer().flush(timeout, stall)
