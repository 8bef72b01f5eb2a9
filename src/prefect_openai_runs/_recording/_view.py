"""What the recording layer knows of a job, whatever its kind: :class:`JobView`, and the view of a run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prefect_openai_runs._recording._markdown import stamp
from prefect_openai_runs.models import Run


class TimelineEntry(Protocol):
    """One entry of a job's status timeline (e.g. :class:`~prefect_openai_runs.StatusChange`)."""

    @property
    def status(self) -> str:
        """The new status."""

    @property
    def at(self) -> float:
        """Wall-clock time (``time.time()``) it was seen."""

    @property
    def elapsed(self) -> float:
        """Seconds since following started."""


@dataclass(frozen=True)
class JobView:
    """A job (an Assistants run, a background response, a batch) as the artifacts and events show it.

    Attributes:
        kind: ``"run"``, ``"response"``, ``"batch"`` or any other kind: names the events
            (``openai.<kind>.<status>``), the resource (``openai.<kind>.<id>``) and the artifact key.
        id: The job's id, as the API gives it.
        status: Its status.
        parent_id: What it belongs to: the thread of a run, else ``None``.
        title_rows: ``(label, value)`` rows of the artifact's field table (ids, model, created, ...).
        usage: ``(label, tokens)`` rows, or ``None`` when not reported; the row named ``total`` (else
            the last) is the total.
        sections: ``(title, text)`` blocks shown as they are, fenced (``Reply``, ``Output``, ``Errors``).
        raw_json: The whole object as JSON text.
        summary: A short, secret-free dict for event payloads.
        labels: Extra ids to record (artifact metadata, event resource labels), e.g.
            ``{"openai.assistant.id": "asst_..."}``.
        model: The model, when known.
        error: Why it failed, as the server says (shown escaped), or ``None``.
    """

    kind: str
    id: str
    status: str
    parent_id: str | None = None
    title_rows: tuple[tuple[str, str], ...] = ()
    usage: tuple[tuple[str, int], ...] | None = None
    sections: tuple[tuple[str, str], ...] = ()
    raw_json: str = "{}"
    summary: Mapping[str, Any] = field(default_factory=dict, hash=False)
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    model: str | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        if not self.kind or not self.id:
            raise ValueError(f"a job view needs a kind and an id, got kind={self.kind!r}, id={self.id!r}")

    @property
    def label(self) -> str:
        """``OpenAI run run_abc``: how logs and headings name the job."""
        return f"OpenAI {self.kind} {self.id}"

    @property
    def total_tokens(self) -> int | None:
        """The usage row named ``total`` (else the last row), or ``None``."""
        if not self.usage:
            return None
        return next((tokens for label, tokens in self.usage if label == "total"), self.usage[-1][1])


@dataclass(frozen=True)
class ToolCallRecord:
    """A tool call a job made and what was answered.

    Attributes:
        name: The function's name.
        arguments: The arguments the model chose (JSON text).
        output: The output sent back, or the error, or ``None`` when not answered.
        call_id: The call's id.
    """

    name: str
    arguments: str
    output: str | None = None
    call_id: str = ""


@dataclass(frozen=True)
class ArtifactExtras:
    """What a job artifact shows beyond the job itself, when the caller knows it.

    Attributes:
        prompt: The prompt that started the job (shown shortened).
        deadline_seconds: The deadline it was followed against.
        elapsed_seconds: How long it was followed (default: the timeline's last entry).
        tool_calls: The tool calls it made, with their outputs (shown shortened).
        flow_usage: ``(label, tokens)`` rows summed over every job of the flow run, retries included.
        sum_flow_usage: When ``flow_usage`` is not given, sum it from what the Prefect server holds
            (read when the artifact is written, off the caller's path).
    """

    prompt: str | None = None
    deadline_seconds: float | None = None
    elapsed_seconds: float | None = None
    tool_calls: Sequence[ToolCallRecord] = ()
    flow_usage: Sequence[tuple[str, int]] | None = None
    sum_flow_usage: bool = False


def run_view(run: Run, reply: str | None = None) -> JobView:
    """The view of an Assistants run (with its reply text, when known).

    Example:
        ```python
        write_job_artifact(run_view(run, reply), follower.timeline, "ended completed")
        ```
    """
    usage = (
        (
            ("prompt", run.usage.prompt_tokens),
            ("completion", run.usage.completion_tokens),
            ("total", run.usage.total_tokens),
        )
        if run.usage is not None
        else None
    )
    error = f"{run.last_error.code}: {run.last_error.message}" if run.last_error is not None else None
    if error is None and run.incomplete_details is not None and run.incomplete_details.reason:
        error = f"incomplete: {run.incomplete_details.reason}"
    return JobView(
        kind="run",
        id=run.id,
        status=str(run.status.value),
        parent_id=run.thread_id,
        title_rows=(
            ("Thread", run.thread_id),
            ("Run", run.id),
            ("Assistant", run.assistant_id),
            ("Model", run.model or "-"),
            ("Created", stamp(run.created_at)),
        ),
        usage=usage,
        sections=(("Reply", reply),) if reply else (),
        raw_json=run.model_dump_json(indent=2),
        summary=run.summary(),
        labels={"openai.thread.id": run.thread_id, "openai.assistant.id": run.assistant_id},
        model=run.model or None,
        error=error,
    )
