"""The Prefect tasks, in sync and async flows, against the emulator and a temporary Prefect server."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest
from prefect import flow
from prefect.context import get_run_context

from flow_helpers import (
    assert_nothing_active,
    final_markdown,
    flow_run_artifacts,
    run_artifacts,
    statuses,
    wait_until,
)
from prefect_openai_runs import OpenAICredentials, Run, RunFailed, RunStatus, RunTimedOut
from prefect_openai_runs._recording import artifact_key, flush, get_writer
from prefect_openai_runs.tasks import (
    cancel_run,
    create_run,
    create_thread_and_run,
    get_run,
    get_run_output,
    submit_tool_outputs,
    wait_for_run,
    wait_for_runs,
)
from prefect_openai_runs.testing import RunScript, RunsEmulator, ToolCallSpec

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_create_wait_and_read_output_in_a_sync_flow(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_script(RunScript(reply_text="Sync reply."))

    @flow
    def pipeline() -> tuple[str, str, str]:
        run = create_thread_and_run(credentials, runs_emulator.default_assistant_id, ["hello"])
        done = wait_for_run(credentials, run.thread_id, run.id, max_wait_seconds=10)
        again = get_run(credentials, run.thread_id, run.id)
        return str(done.status), str(again.status), get_run_output(credentials, run.thread_id, run.id)

    assert pipeline() == ("completed", "completed", "Sync reply.")


def test_tasks_in_an_async_flow(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_script(RunScript(reply_text="Async reply."))

    @flow
    async def pipeline() -> str:
        await asyncio.sleep(0)
        run = create_thread_and_run(credentials, runs_emulator.default_assistant_id, ["hello"])
        wait_for_run(credentials, run.thread_id, run.id, max_wait_seconds=10)
        return get_run_output(credentials, run.thread_id, run.id)

    assert asyncio.run(pipeline()) == "Async reply."


def test_created_run_is_logged_and_recorded_at_once(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, caplog: pytest.LogCaptureFixture
) -> None:
    runs_emulator.add_script(RunScript(in_progress_seconds=30))

    @flow
    def pipeline() -> tuple[str, str, str]:
        with credentials.get_client() as client:
            thread = client.create_thread()
        run = create_run(credentials, thread.id, runs_emulator.default_assistant_id, messages=["hi"])
        flow_run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
        cancel_run(credentials, run.thread_id, run.id)
        return run.id, run.thread_id, flow_run_id

    run_id, thread_id, flow_run_id = pipeline()

    assert any(run_id in r.getMessage() and thread_id in r.getMessage() for r in caplog.records)
    keys = {a.key for a in flow_run_artifacts(flow_run_id)}  # type: ignore[arg-type]
    assert artifact_key(run_id) in keys
    assert_nothing_active(runs_emulator)


def test_wait_for_run_times_out_and_cancels(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_script(RunScript(in_progress_seconds=60))

    @flow
    def pipeline() -> None:
        run = create_thread_and_run(credentials, runs_emulator.default_assistant_id, ["hi"])
        wait_for_run(credentials, run.thread_id, run.id, max_wait_seconds=0.5)

    with pytest.raises(RunTimedOut) as caught:
        pipeline()

    assert caught.value.run.status is RunStatus.CANCELLED
    assert "deadline" in final_markdown(caught.value.run.id)
    assert_nothing_active(runs_emulator)


def test_wait_for_run_follows_the_poll_hint(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.poll_after_ms = 100
    runs_emulator.add_script(RunScript(in_progress_seconds=1.0))

    @flow
    def pipeline() -> str:
        run = create_thread_and_run(credentials, runs_emulator.default_assistant_id, ["hi"])
        return wait_for_run(credentials, run.thread_id, run.id, max_wait_seconds=10).id

    run_id = pipeline()

    polls = [r.at for r in runs_emulator.requests if r.method == "GET" and r.path.endswith(run_id)]
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert len(polls) >= 5
    assert min(gaps) >= 0.09


def test_cancel_run_is_safe_in_every_state(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_script(RunScript(in_progress_seconds=30))

    @flow
    def pipeline() -> tuple[str, str, str]:
        run = create_thread_and_run(credentials, runs_emulator.default_assistant_id, ["hi"])
        wait_until(lambda: runs_emulator.run(run.id).status == "in_progress")
        first = cancel_run(credentials, run.thread_id, run.id)
        second = cancel_run(credentials, run.thread_id, run.id)
        runs_emulator.add_script(RunScript())
        other = create_thread_and_run(credentials, runs_emulator.default_assistant_id, ["hi"])
        wait_for_run(credentials, other.thread_id, other.id, max_wait_seconds=10)
        third = cancel_run(credentials, other.thread_id, other.id)
        return str(first.status), str(second.status), str(third.status)

    assert pipeline() == ("cancelled", "cancelled", "completed")
    assert runs_emulator.counters["cancels"] >= 1


def test_cancel_not_honoured_is_reported(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, caplog: pytest.LogCaptureFixture
) -> None:
    runs_emulator.add_script(RunScript(in_progress_seconds=30, ignore_cancel=True))

    @flow
    def pipeline() -> str:
        run = create_thread_and_run(credentials, runs_emulator.default_assistant_id, ["hi"])
        return str(cancel_run(credentials, run.thread_id, run.id).status)

    assert pipeline() == "completed"
    assert any("did not honour" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_submit_tool_outputs_task(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_script(
        RunScript(outcome="requires_action", tool_calls=[ToolCallSpec(name="lookup", arguments='{"q": "x"}')])
    )

    @flow
    def pipeline() -> list[str]:
        run = create_thread_and_run(credentials, runs_emulator.default_assistant_id, ["hi"])
        waiting = wait_for_run(credentials, run.thread_id, run.id, max_wait_seconds=10)
        assert waiting.status is RunStatus.REQUIRES_ACTION
        submit_tool_outputs(credentials, run.thread_id, run.id, {waiting.tool_calls[0].id: "42"})
        wait_for_run(credentials, run.thread_id, run.id, max_wait_seconds=10)
        return statuses(runs_emulator, run.id)

    assert pipeline() == ["queued", "in_progress", "requires_action", "queued", "in_progress", "completed"]


def test_a_run_returned_for_its_tool_calls_says_so_on_its_cards(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    """``wait_for_run`` returns a run in ``requires_action`` to its caller: its card and its progress say so
    (they stayed "created; being followed" and "waiting ... 1%")."""
    runs_emulator.add_script(
        RunScript(outcome="requires_action", tool_calls=[ToolCallSpec(name="lookup", arguments='{"q": "x"}')])
    )

    @flow
    def pipeline() -> tuple[Run, str]:
        run = create_thread_and_run(credentials, runs_emulator.default_assistant_id, ["hi"])
        waiting = wait_for_run(credentials, run.thread_id, run.id, max_wait_seconds=30)
        return waiting, str(get_run_context().flow_run.id)  # type: ignore[union-attr]

    waiting, flow_run_id = pipeline()
    assert waiting.status is RunStatus.REQUIRES_ACTION
    [card] = run_artifacts(waiting.id)[-1:]
    assert str(card.description).startswith(f"requires_action · {waiting.id}")
    assert "returned to the caller" in str(card.data)
    [progress] = [a for a in flow_run_artifacts(flow_run_id) if a.type == "progress"]  # type: ignore[arg-type]
    assert "ended requires_action" in str(progress.description)
    cancel_run(credentials, waiting.thread_id, waiting.id)


def test_credentials_by_saved_block_name(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    credentials.save("emulator-tasks", overwrite=True)

    @flow
    def pipeline() -> str:
        run = create_thread_and_run("emulator-tasks", runs_emulator.default_assistant_id, ["hi"])
        return str(wait_for_run("emulator-tasks", run.thread_id, run.id, max_wait_seconds=10).status)

    assert pipeline() == "completed"


def test_wait_for_runs_fan_out_of_20_with_one_failure_cancels_the_rest(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_script(RunScript(queued_seconds=0.01, in_progress_seconds=60))
    runs_emulator.add_script(
        RunScript(in_progress_seconds=0.3, outcome="failed", error_code="server_error"),
        match=lambda ctx: ctx.last_user_message == "prompt 17",
    )

    @flow
    def pipeline() -> None:
        runs = [
            create_thread_and_run(credentials, runs_emulator.default_assistant_id, [f"prompt {i}"]) for i in range(20)
        ]
        wait_for_runs(credentials, runs, max_wait_seconds=60, fail_fast=True)

    with pytest.raises(RunFailed) as caught:
        pipeline()

    final = {r.id: r.status for r in runs_emulator.runs()}
    assert len(final) == 20
    assert sorted(final.values()).count("cancelled") == 19
    assert final[caught.value.run.id] == "failed"
    assert_nothing_active(runs_emulator)
    # Every run's final artifact says how it ended: written as each ended, the siblings after their cancel.
    failed_id = caught.value.run.id
    assert f"`{failed_id}`: **failed**" in final_markdown(failed_id)
    for run_id in [r for r in final if r != failed_id]:
        markdown = final_markdown(run_id)
        assert f"`{run_id}`: **cancelled**" in markdown
        assert f"upstream failure: sibling run {failed_id} ended failed" in markdown


def test_a_slow_prefect_server_costs_a_fan_out_one_wait_not_one_per_run(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a write to the Prefect server hangs, the end of each run must not wait for it in the loop that
    follows its siblings (it did: 1,000 runs ended 49 s late); the task waits once, after all ended."""
    import prefect_openai_runs._lifecycle._hooks as hooks_module

    monkeypatch.setattr(hooks_module, "FLUSH_SECONDS", 1.0)
    runs_emulator.add_script(RunScript(in_progress_seconds=0.2))
    release = threading.Event()

    @flow
    def pipeline() -> tuple[list[Run], float]:
        runs = [create_thread_and_run(credentials, runs_emulator.default_assistant_id, [f"p{i}"]) for i in range(6)]
        get_writer().submit("test-hung-write", lambda _: release.wait(60), "a write the server never answers")
        started = time.monotonic()
        done = wait_for_runs(credentials, runs, max_wait_seconds=30)
        return done, time.monotonic() - started

    try:
        done, took = pipeline()
    finally:
        release.set()
    assert flush(20)
    assert [str(r.status) for r in done] == ["completed"] * 6
    assert took < 4.0, f"{took:.1f}s: one wait of 1 s once nothing more is written, not one per run (6 s or more)"
    for run in done:  # the cards were written all the same, once the server answered
        assert f"`{run.id}`: **completed**" in final_markdown(run.id)


def test_wait_for_runs_returns_all_completed(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    @flow
    async def pipeline() -> tuple[list[Run], str]:
        runs = [create_thread_and_run(credentials, runs_emulator.default_assistant_id, [f"p{i}"]) for i in range(5)]
        return wait_for_runs(credentials, runs, max_wait_seconds=10), str(get_run_context().flow_run.id)  # type: ignore[union-attr]

    runs, pipeline_run_id = asyncio.run(pipeline())

    assert [str(r.status) for r in runs] == ["completed"] * 5
    for run in runs:
        assert f"`{run.id}`: **completed**" in final_markdown(run.id)
        assert "**Why it ended this way:** ended completed" in final_markdown(run.id)
    # one card per run, linked to the flow run: the created record, updated in place when the run ended
    linked = [
        a.key
        for a in flow_run_artifacts(pipeline_run_id)  # type: ignore[arg-type]
        if a.type == "markdown" and (a.key or "").startswith("openai-run-")
    ]
    assert sorted(linked) == sorted(artifact_key(r.id) for r in runs)


def test_wait_for_run_keeps_a_progress_artifact(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_script(RunScript(in_progress_seconds=1.5))

    @flow
    def pipeline() -> str:
        run = create_thread_and_run(credentials, runs_emulator.default_assistant_id, ["hi"])
        wait_for_run(credentials, run.thread_id, run.id, max_wait_seconds=3)
        return str(get_run_context().flow_run.id)  # type: ignore[union-attr]

    flow_run_id = pipeline()

    [progress] = [a for a in flow_run_artifacts(flow_run_id) if a.type == "progress"]  # type: ignore[arg-type]
    assert isinstance(progress.data, (int, float))
    assert 40.0 <= progress.data <= 100.0
    assert "deadline 3s" in str(progress.description)


def test_azure_style_key_header_and_api_version(runs_emulator: RunsEmulator) -> None:
    azure = OpenAICredentials(
        api_key=runs_emulator.api_key,
        api_key_header="api-key",
        base_url=runs_emulator.base_url,
        default_query={"api-version": "2024-05-01-preview"},
    )

    @flow
    def pipeline() -> str:
        run = create_thread_and_run(azure, runs_emulator.default_assistant_id, ["hi"])
        return str(wait_for_run(azure, run.thread_id, run.id, max_wait_seconds=10).status)

    assert pipeline() == "completed"
    for request in runs_emulator.requests:
        headers = {name.lower() for name in request.headers}
        assert "api-key" in headers and "authorization" not in headers
        assert "api-version=2024-05-01-preview" in request.query
