"""What a flow run shows of its jobs (issue 16), on a real temporary Prefect server.

One card per job (created, then updated in place), its description starting with the status, a key
that does not stutter; the registry reads every kind back from the server; the usage summed over the
flow run; the fan-out summary; the progress artifact finished and telling itself apart; the events
(created, status with the reason's kind, usage and model) from a task run and from a hook.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from markdown_it import MarkdownIt
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.context import get_run_context

from flow_helpers import flow_run_artifacts
from prefect_openai_runs import StatusChange
from prefect_openai_runs._recording import (
    ArtifactExtras,
    JobRef,
    JobView,
    ProgressReporter,
    RunRef,
    ToolCallRecord,
    _registry,
    emit_status_event,
    flush,
    job_artifact_key,
    record_created,
    registered_jobs,
    registered_runs,
    run_view,
    write_fan_out_summary,
    write_job_artifact,
)
from prefect_openai_runs.models import Run, RunStatus

pytestmark = pytest.mark.usefixtures("prefect_server")

FLUSH = 20.0


def _run(status: str, run_id: str | None = None, tokens: int | None = None, message: str | None = None) -> Run:
    data: dict[str, Any] = {
        "id": run_id or f"run_{uuid4().hex[:12]}",
        "created_at": 1_700_000_000,
        "thread_id": "thread_abc",
        "assistant_id": "asst_abc",
        "status": status,
        "model": "gpt-4o-mini",
    }
    if tokens is not None:
        data["usage"] = {"prompt_tokens": tokens - 1, "completion_tokens": 1, "total_tokens": tokens}
    if message is not None:
        data["last_error"] = {"code": "server_error", "message": message}
    return Run.model_validate(data)


def _view(kind: str, status: str, tokens: int | None = None) -> JobView:
    prefix = {"response": "resp_", "batch": "batch_"}[kind]
    usage = (("input", tokens - 1), ("output", 1), ("total", tokens)) if tokens is not None else None
    return JobView(kind=kind, id=f"{prefix}{uuid4().hex[:12]}", status=status, usage=usage, model="gpt-4o-mini")


def _flow_run_id() -> UUID:
    return get_run_context().flow_run.id  # type: ignore[union-attr]


def test_one_card_per_job_status_first_and_a_key_that_does_not_stutter() -> None:
    run = _run("queued")

    @flow
    def pipeline() -> UUID:
        record_created(run)
        done = run.model_copy(update={"status": RunStatus.COMPLETED})
        timeline = [StatusChange(RunStatus.QUEUED, 1.7e9, 0.0), StatusChange(RunStatus.COMPLETED, 1.7e9 + 3, 3.0)]
        extra = ArtifactExtras(
            prompt="Summarise the tickets " * 100,
            deadline_seconds=600,
            tool_calls=[ToolCallRecord("get_weather", '{"city": "Paris"}', '{"celsius": 21}', "call_1")],
        )
        write_job_artifact(run_view(done, "All good."), timeline, "ended completed", extra)
        assert flush(FLUSH)
        return _flow_run_id()

    flow_run_id = pipeline()

    cards = [a for a in flow_run_artifacts(flow_run_id) if a.type == "markdown"]
    assert [a.key for a in cards] == [job_artifact_key("run", run.id)]
    assert cards[0].key == f"openai-run-{run.id.removeprefix('run_')}-{cards[0].key.rsplit('-', 1)[1]}"  # type: ignore[union-attr]
    assert str(cards[0].description).startswith(f"completed · {run.id}")
    markdown = str(cards[0].data)
    assert "**completed**" in markdown and "All good." in markdown
    assert "3.0 s of a 600 s deadline" in markdown
    assert "| `call_1` | `get_weather` |" in markdown and "celsius" in markdown
    assert "Summarise the tickets" in markdown and " [...]" in markdown  # the prompt, shortened


def test_hostile_error_text_reaches_the_server_escaped() -> None:
    hostile = "# Forged\n| a | b |\n|---|---|\n<img src=x onerror=alert(1)>\n```"
    run = _run("failed", message=hostile)

    @flow
    def pipeline() -> UUID:
        write_job_artifact(run_view(run), [], f"upstream failure: {hostile}")
        assert flush(FLUSH)
        return _flow_run_id()

    [card] = [a for a in flow_run_artifacts(pipeline()) if a.type == "markdown"]
    tokens = MarkdownIt("commonmark").enable("table").parse(str(card.data))
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings == [f"OpenAI run `{run.id}`: **failed**", "Status timeline", "Token usage", "Run object"]
    assert not [t for t in tokens if t.type == "html_block"]
    assert [t.type for t in tokens].count("table_open") == 2  # fields and timeline, none forged


def test_registry_reads_every_kind_back_from_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run("queued")
    response, batch = _view("response", "queued"), _view("batch", "validating")

    @flow
    def pipeline() -> UUID:
        for job in (run, response, batch):
            record_created(job)
        with get_client(sync_client=True) as client:  # a card written before job kinds: thread and run ids only
            client.create_artifact(
                artifact=ArtifactCreate(
                    key="openai-run-legacy-abc123",
                    type="markdown",
                    data="-",
                    metadata_={"thread_id": "thread_old", "run_id": "run_old"},
                    flow_run_id=_flow_run_id(),
                )
            )
        assert flush(FLUSH)
        return _flow_run_id()

    flow_run_id = pipeline()
    monkeypatch.setattr(_registry, "_local", {})  # only what the server holds, as another process would see

    assert set(registered_jobs(flow_run_id)) == {
        JobRef("run", run.id, "thread_abc"),
        JobRef("response", response.id),
        JobRef("batch", batch.id),
        JobRef("run", "run_old", "thread_old"),
    }
    assert set(registered_runs(flow_run_id)) == {RunRef("thread_abc", run.id), RunRef("thread_old", "run_old")}
    assert RunRef("thread_abc", run.id).to_job() == JobRef("run", run.id, "thread_abc")


def test_usage_is_summed_over_every_job_of_the_flow_run() -> None:
    @flow
    def pipeline() -> tuple[UUID, str]:
        write_job_artifact(run_view(_run("completed", tokens=10)), [], "ended completed")
        write_job_artifact(run_view(_run("failed", tokens=20)), [], "ended failed")  # e.g. an attempt retried
        write_job_artifact(_view("response", "completed", tokens=30), [], "ended completed")
        assert flush(FLUSH)
        last = run_view(_run("completed", tokens=40))
        write_job_artifact(last, [], "ended completed", ArtifactExtras(sum_flow_usage=True))
        assert flush(FLUSH)
        return _flow_run_id(), job_artifact_key("run", last.id)

    flow_run_id, key = pipeline()

    [card] = [a for a in flow_run_artifacts(flow_run_id) if a.key == key]
    assert "total **40**" in str(card.data)
    assert "Whole flow run" in str(card.data) and "total **100**" in str(card.data)


def test_fan_out_summary_counts_statuses_tokens_and_the_slowest() -> None:
    views = [run_view(_run(s, tokens=t)) for s, t in [("completed", 5), ("completed", 7), ("failed", 11)]]
    views.append(run_view(_run("cancelled")))
    timelines = [
        [StatusChange(RunStatus.QUEUED, 1.7e9, 0.0), StatusChange(RunStatus(v.status), 1.7e9, t)]
        for v, t in zip(views, [1.0, 9.0, 3.0, 5.0], strict=True)
    ]

    @flow
    def pipeline() -> UUID:
        write_fan_out_summary(views, timelines)
        assert flush(FLUSH)
        return _flow_run_id()

    [summary] = [a for a in flow_run_artifacts(pipeline()) if str(a.description).startswith("fan-out")]
    markdown = str(summary.data)
    assert "| completed | 2 |" in markdown and "| failed | 1 |" in markdown and "| cancelled | 1 |" in markdown
    assert "**Tokens:** 23 in total (3 of 4 jobs reported usage)" in markdown
    slowest = markdown.split("## Slowest")[1]
    assert slowest.index(views[1].id) < slowest.index(views[3].id) < slowest.index(views[2].id)
    with pytest.raises(ValueError, match="3 views but 1 timelines"):
        write_fan_out_summary(views[:3], timelines[:1])


def test_progress_artifact_says_what_it_is_and_finishes_at_100() -> None:
    @flow
    def pipeline() -> UUID:
        progress = ProgressReporter("run_abc", max_wait_seconds=600)
        progress.update(30.0, force=True)
        progress.finish("completed", elapsed=31.0)
        progress.update(45.0, force=True)  # ignored once finished
        assert flush(FLUSH)
        return _flow_run_id()

    [progress] = [a for a in flow_run_artifacts(pipeline()) if a.type == "progress"]
    assert progress.data == 100.0
    assert str(progress.description).startswith("Progress · ended completed waiting for OpenAI run run_abc after 31.0s")
    assert "deadline 600s" in str(progress.description)


def _ours(prefix: str) -> list[Any]:
    from prefect.events.clients import AssertingEventsClient

    return [e for client in AssertingEventsClient.all for e in client.events if e.resource.id.startswith(prefix)]


def test_events_created_and_cancelled_with_reason_usage_model_and_task_run(asserting_events_worker: Any) -> None:
    response = _view("response", "queued")
    cancelled = JobView(
        kind="response", id=response.id, status="cancelled", usage=(("total", 12),), model="gpt-4o-mini"
    )

    @task
    def step() -> UUID:
        record_created(response)
        emit_status_event(cancelled, StatusChange(RunStatus.CANCELLED, 1.7e9, 4.2), "deadline: max_wait_seconds passed")
        return get_run_context().task_run.id  # type: ignore[union-attr]

    @flow
    def pipeline() -> tuple[UUID, UUID]:
        return _flow_run_id(), step()

    flow_run_id, task_run_id = pipeline()
    asserting_events_worker.drain()

    events = _ours(f"openai.response.{response.id}")
    assert [e.event for e in events] == ["openai.response.created", "openai.response.cancelled"]
    ended = events[1]
    assert ended.payload["reason_kind"] == "deadline" and ended.resource["openai.reason"] == "deadline"
    assert ended.payload["usage"] == {"total": 12} and ended.payload["model"] == "gpt-4o-mini"
    assert ended.payload["elapsed_seconds"] == 4.2
    related = {(r.role, r.id) for r in ended.related}
    assert ("flow-run", f"prefect.flow-run.{flow_run_id}") in related
    assert ("task-run", f"prefect.task-run.{task_run_id}") in related


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("crash: the flow run crashed", "crash"),
        ("orphaned: flow run x ended without cancelling it", "sweep"),
        ("cancellation request: the flow run was cancelled", "user-cancellation"),
        ("flow timeout: the Prefect flow's timeout_seconds fired", "flow-timeout"),
        ("upstream failure: the flow run failed", "upstream-failure"),
    ],
)
def test_events_from_a_hook_outside_any_run_name_the_flow_run(
    asserting_events_worker: Any, reason: str, kind: str
) -> None:
    run = _run("cancelled")
    flow_run_id = uuid4()

    emit_status_event(run_view(run), StatusChange(RunStatus.CANCELLED, 1.7e9, 1.0), reason, flow_run_id=flow_run_id)
    emit_status_event(run_view(run), StatusChange(RunStatus.CANCELLED, 1.7e9, 1.0), reason)  # no run: not emitted
    asserting_events_worker.drain()

    [event] = _ours(f"openai.run.{run.id}")
    assert event.event == "openai.run.cancelled" and event.payload["reason_kind"] == kind
    assert [(r.role, r.id) for r in event.related] == [("flow-run", f"prefect.flow-run.{flow_run_id}")]
