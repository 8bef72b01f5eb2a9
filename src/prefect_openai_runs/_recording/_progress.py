"""The progress artifact: time spent waiting for a job, against its deadline."""

from __future__ import annotations

import threading
import time
from uuid import UUID, uuid4

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import ArtifactCreate, ArtifactUpdate

from prefect_openai_runs._recording._context import linked_runs
from prefect_openai_runs._recording._markdown import inline
from prefect_openai_runs._recording._writer import submit


class ProgressReporter:
    """A Prefect progress artifact of elapsed time against the deadline, updated at most every ``every`` s.

    Its description says what it is (``Progress · waiting for OpenAI run run_abc (deadline 600s)``),
    so it never reads like the job's own card; :meth:`finish` sets it to 100% and says how the wait
    ended (call it on every path). With ``max_wait_seconds=None`` the progress is of work done, not of
    time (a batch's requests, set with :meth:`set`): :meth:`finish` keeps the fraction reached (a batch
    cancelled at 30% stays at 30%) and says so, without a deadline. Updates go through the non-blocking
    writer and are coalesced: only the latest value is written. Nothing is written outside a flow run.

    Example:
        ```python
        progress = ProgressReporter("run_abc", max_wait_seconds=600)
        try:
            progress.update(12.5)
        finally:
            progress.finish("completed", elapsed=14.2)
        ```
    """

    def __init__(
        self,
        run_id: str,
        max_wait_seconds: float | None,
        every: float = 1.0,
        kind: str = "run",
        flow_run_id: UUID | None = None,
        description: str | None = None,
    ) -> None:
        self._max_wait = max_wait_seconds
        self._every = every
        self._last = 0.0
        self._lock = threading.Lock()
        self._id: UUID | None = None
        self._value = 0.0
        self._job = f"OpenAI {kind} {run_id}"
        deadline = "" if max_wait_seconds is None else f" (deadline {max_wait_seconds:g}s)"
        self.description = description or f"Progress · waiting for {inline(self._job)}{deadline}"
        self._flow_run_id, self._task_run_id = linked_runs(flow_run_id)
        self._slot = f"progress@{uuid4()}"
        self.finished = False
        self._send(essential=False)

    def _send(self, essential: bool) -> None:
        if self._flow_run_id is not None:
            submit(self._slot, self._perform, f"progress of {self._job}: {self._value:.0f}%", essential)

    def _perform(self, client: SyncPrefectClient) -> None:
        with self._lock:
            value, description, known = self._value, self.description, self._id
        if known is None:
            artifact = ArtifactCreate(
                type="progress",
                data=value,
                description=description,
                flow_run_id=self._flow_run_id,
                task_run_id=self._task_run_id,
            )
            created = client.create_artifact(artifact=artifact).id
            with self._lock:
                self._id = created
        else:
            client.update_artifact(artifact_id=known, artifact=ArtifactUpdate(data=value, description=description))

    def set(self, percent: float, force: bool = False) -> None:
        """Report a percentage done directly (e.g. a batch's requests done); returns at once."""
        now = time.monotonic()
        if self.finished or (not force and now - self._last < self._every):
            return
        self._last = now
        with self._lock:
            self._value = max(0.0, min(100.0, percent))
        self._send(essential=False)

    def update(self, elapsed: float, force: bool = False) -> None:
        """Report ``elapsed`` seconds (as a percentage of the deadline); returns at once."""
        now = time.monotonic()
        if self._max_wait is None or self.finished or (not force and now - self._last < self._every):
            return
        self._last = now
        with self._lock:
            self._value = min(100.0, 100.0 * elapsed / self._max_wait) if self._max_wait > 0 else 100.0
        self._send(essential=False)

    def finish(self, status: str | None = None, elapsed: float | None = None) -> None:
        """Say how the wait ended and set the progress to 100% (of work done: keep the fraction reached);
        later updates are ignored."""
        if self.finished:
            return
        self.finished = True
        ended = f"ended {status}" if status else "done"
        took = f" after {elapsed:.1f}s" if elapsed is not None else ""
        with self._lock:
            if self._max_wait is None:
                self.description = f"Progress · {inline(ended)} with {self._value:.0f}% done: {inline(self._job)}{took}"
            else:
                self._value = 100.0
                self.description = (
                    f"Progress · {inline(ended)} waiting for {inline(self._job)}{took} (deadline {self._max_wait:g}s)"
                )
        self._send(essential=True)
