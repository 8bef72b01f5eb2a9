"""A batch's reports made visible in Prefect, through the generic hooks: logs, ``openai.batch.<status>``
events, one card per batch (ids, timeline, request counts, usage, files, the first errors with their
lines) and a progress artifact of the requests done so far (not of the time: a batch runs for hours)."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Mapping, Sequence

from prefect_openai_runs._lifecycle._batch_kind import describe_errors
from prefect_openai_runs._lifecycle._follower import StatusChange
from prefect_openai_runs._lifecycle._hooks import PrefectJobHooks
from prefect_openai_runs._recording import JobView, ProgressReporter, write_job_artifact
from prefect_openai_runs._recording._markdown import one_line, shorten
from prefect_openai_runs.client import IDEMPOTENCY_METADATA_KEY
from prefect_openai_runs.models import Batch, BatchLineError

IDEMPOTENCY_LABEL = "openai.idempotency_key"
"""The batch card's metadata label holding its idempotency key (what a retry finds its batch by)."""
FIRST_LINE_ERRORS = 10
"""Failed requests quoted in a batch's card."""
LINE_ERROR_CHARS = 200
"""Characters of a failed request's message quoted in the card."""


def batch_percent(batch: Batch) -> float:
    """Requests done (completed or failed) as a percentage of the total (0 while unknown)."""
    counts = batch.request_counts
    if counts is None or counts.total <= 0:
        return 0.0
    return 100.0 * (counts.completed + counts.failed) / counts.total


def describe_line_error(custom_id: str, error: BatchLineError) -> str:
    """One failed request on one line: ``<custom_id>: HTTP <status> · <code>: <message>`` (message shortened)."""
    status = f"HTTP {error.status_code}" if error.status_code is not None else "no answer"
    message = shorten(one_line(error.message or "-"), LINE_ERROR_CHARS)
    return f"{one_line(custom_id)}: {status} · {error.code or '-'}: {message}"


def batch_view(batch: Batch, line_errors: Sequence[tuple[str, BatchLineError]] = ()) -> JobView:
    """What the recording layer shows of a batch."""
    counts, usage = batch.request_counts, batch.usage
    sections: list[tuple[str, str]] = [
        (
            "Requests",
            f"total {counts.total}, completed {counts.completed}, failed {counts.failed}" if counts else "not reported",
        )
    ]
    validation = describe_errors(batch, FIRST_LINE_ERRORS)
    if validation:
        sections.append(("Batch errors", validation))
    if line_errors:
        shown = [describe_line_error(cid, error) for cid, error in line_errors[:FIRST_LINE_ERRORS]]
        sections.append((f"First failed requests ({len(shown)} shown)", "\n".join(shown)))
    return JobView(
        kind="batch",
        id=batch.id,
        status=str(batch.status),
        parent_id=None,
        title_rows=(
            ("Batch", batch.id),
            ("Endpoint", str(batch.endpoint)),
            ("Input file", batch.input_file_id or "-"),
            ("Output file", batch.output_file_id or "-"),
            ("Error file", batch.error_file_id or "-"),
        ),
        usage=(
            (
                ("input", usage.input_tokens),
                ("cached", usage.input_tokens_details.cached_tokens if usage.input_tokens_details else 0),
                ("output", usage.output_tokens),
                ("reasoning", usage.output_tokens_details.reasoning_tokens if usage.output_tokens_details else 0),
                ("total", usage.total_tokens),
            )
            if usage
            else None
        ),
        sections=tuple(sections),
        raw_json=batch.model_dump_json(indent=2),
        summary={
            "batch_id": batch.id,
            "status": str(batch.status),
            "input_file_id": batch.input_file_id,
            "request_counts": json.loads(counts.model_dump_json()) if counts else None,
        },
        labels={
            "openai.file.id": batch.input_file_id or "",
            IDEMPOTENCY_LABEL: (batch.metadata or {}).get(IDEMPOTENCY_METADATA_KEY, ""),
        },
        error=validation or None,
    )


class BatchHooks(PrefectJobHooks[Batch]):
    """Reports a batch to Prefect (the core's ``JobHooks``), its progress by request counts.

    Args:
        progress: Whether to keep a progress artifact (requests done / total) while the batch runs.
        stopped: Once set, nothing more is recorded (the code that set it ends the batch and records why).
        flush_on_end: Whether the end waits for the records to reach the server (off for batches followed
            together: see :class:`~prefect_openai_runs._lifecycle._hooks.PrefectJobHooks`).
    """

    def __init__(
        self, progress: bool = True, stopped: threading.Event | None = None, *, flush_on_end: bool = True
    ) -> None:
        super().__init__(batch_view, progress=False, flush_on_end=flush_on_end)
        self.counts_progress = progress
        self.stopped = stopped or threading.Event()
        self.line_errors: Sequence[tuple[str, BatchLineError]] = ()
        self.end: tuple[Batch, list[StatusChange], str] | None = None
        """The batch's end as last recorded (what :meth:`show_line_errors` writes again)."""

    def created(self, job: Batch) -> None:
        """Log and record the new batch at once; start its progress."""
        super().created(job)
        self.watch(job.id)

    def watch(self, batch_id: str) -> None:
        """Start the progress artifact of the requests done (once, when enabled)."""
        if self.counts_progress and self.progress is None:
            self.progress = ProgressReporter(
                batch_id, None, kind="batch", description=f"Progress · requests done in OpenAI batch {batch_id}"
            )

    def changed(self, change: StatusChange, job: Batch) -> None:
        """Log and emit the change, show the counts."""
        if not self.stopped.is_set():
            super().changed(change, job)
            self.polled(job)

    def tick(self, elapsed: float) -> None:
        """Nothing: progress follows the request counts (:meth:`polled`), not the time."""

    def polled(self, job: Batch) -> None:
        """Show the request counts on the progress artifact (throttled)."""
        if self.progress is not None and not self.stopped.is_set():
            self.progress.set(batch_percent(job))

    def ended(self, job: Batch, timeline: list[StatusChange], reason: str) -> None:
        """Write the batch's final card (with the first failed requests when known)."""
        if self.stopped.is_set():
            return
        if self.progress is not None:
            self.progress.set(batch_percent(job), force=True)
        self.final_view = lambda batch: batch_view(batch, self.line_errors)
        self.end = (job, list(timeline), reason)
        super().ended(job, timeline, reason)

    def show_line_errors(self, errors: Mapping[str, BatchLineError]) -> None:
        """Write the ended batch's card again with its first failed requests (known once its results are
        downloaded, after it ended); nothing when none failed or the end was not recorded here."""
        if not errors or self.end is None or self.stopped.is_set():
            return
        self.line_errors = list(itertools.islice(errors.items(), FIRST_LINE_ERRORS))
        job, timeline, reason = self.end
        write_job_artifact(self.final_view(job), timeline, reason, self.extras, self.flow_run_id)
