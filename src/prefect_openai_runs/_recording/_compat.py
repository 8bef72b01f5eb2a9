"""The run-only functions callers used before job kinds, as thin wrappers over the generic API.

They keep their names and signatures; unlike the generic functions, :func:`write_run_artifact` waits
(bounded by :data:`~._writer.WRITE_TIMEOUT_SECONDS`) until the writer has written it, as its callers
expect the artifact on the server when the call returns. :class:`ArtifactWriter` (many creates from an
event loop) only queues.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from prefect.client.schemas.actions import ArtifactCreate

from prefect_openai_runs._recording._artifacts import job_artifact, remember_job, write_job_artifact
from prefect_openai_runs._recording._events import emit_job_event
from prefect_openai_runs._recording._markdown import render_job
from prefect_openai_runs._recording._view import ArtifactExtras, TimelineEntry, run_view
from prefect_openai_runs._recording._writer import WRITE_TIMEOUT_SECONDS, flush
from prefect_openai_runs.models import Run


def render_markdown(run: Run, timeline: Sequence[TimelineEntry], reason: str, reply: str | None) -> str:
    """The run artifact's markdown (see :func:`~._markdown.render_job`)."""
    return render_job(run_view(run, reply), timeline, reason, ArtifactExtras())


def run_artifact(
    run: Run,
    timeline: Sequence[TimelineEntry],
    reason: str,
    reply: str | None = None,
    flow_run_id: UUID | None = None,
) -> ArtifactCreate:
    """The run's artifact (see :func:`~._artifacts.job_artifact`)."""
    return job_artifact(run_view(run, reply), timeline, reason, flow_run_id=flow_run_id)


def write_run_artifact(
    run: Run,
    timeline: Sequence[TimelineEntry],
    reason: str,
    reply: str | None = None,
    flow_run_id: UUID | None = None,
) -> None:
    """Write the run's artifact and wait (bounded) until it is written."""
    write_job_artifact(run_view(run, reply), timeline, reason, flow_run_id=flow_run_id)
    flush(WRITE_TIMEOUT_SECONDS)


class ArtifactWriter:
    """Holds the artifacts of runs created from an event loop until :meth:`release`, unless ``stopped``.

    Each run is noted in the flow run's registry at once; its artifact (and, for a run just created, its
    ``openai.run.created`` event) is held until :meth:`release` (so that many creates do not compete with
    their own records for the Prefect server), then queued to the process's writer. Nothing waits for
    the writes: whoever needs the artifacts on the server (a task before returning, a test) calls
    :func:`~._writer.flush`. Once ``stopped`` is set, nothing more is
    queued: the code that set it (a task interrupted by a signal or a flow timeout) writes the artifacts
    with the reason, which a late "created" must not overwrite.
    """

    def __init__(self, stopped: threading.Event | None = None) -> None:
        self._stopped = stopped or threading.Event()
        self._held: list[tuple[Run, Sequence[TimelineEntry], str, bool]] = []

    def write(self, run: Run, timeline: Sequence[TimelineEntry], reason: str, fresh: bool = False) -> None:
        """Note the run and hold its artifact; ``fresh``: just created (no card of it is looked for)."""
        if self._stopped.is_set():
            return
        remember_job(run_view(run))
        self._held.append((run, timeline, reason, fresh))

    def release(self) -> None:
        """Queue the held artifacts (none once ``stopped`` is set)."""
        held, self._held = self._held, []
        for run, timeline, reason, fresh in held:
            if self._stopped.is_set():
                return
            view = run_view(run)
            write_job_artifact(view, timeline, reason, fresh=fresh)
            if fresh:  # a run re-attached to was announced by the attempt that created it
                emit_job_event(view, "created")


def run_json(run: Run) -> dict[str, Any]:
    """The run as plain JSON data (for results and event payloads)."""
    data: dict[str, Any] = json.loads(run.model_dump_json())
    return data
