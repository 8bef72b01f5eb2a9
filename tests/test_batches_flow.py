"""run_batch end to end against the emulator's /v1/files and /v1/batches and a real (temporary) Prefect server.

Every exit path is proven by the emulator's own record (the batch's status history) and by what the
flow returns or raises (results by ``custom_id``, partial results attached to the outcome error).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from prefect_openai_runs import OpenAICredentials
from prefect_openai_runs import _batches_flows as batches_flows
from prefect_openai_runs._lifecycle._follower import PollSchedule
from prefect_openai_runs._recording import job_artifact_key, registered_jobs
from prefect_openai_runs.batch_files import BatchInputError
from prefect_openai_runs.client import IDEMPOTENCY_METADATA_KEY
from prefect_openai_runs.exceptions import BatchFileNotReadyError, JobExpired, JobFailed, JobTimedOut
from prefect_openai_runs.flows import BatchRunResult, run_batch
from prefect_openai_runs.testing import BatchScript, FaultRule, RunsEmulator

pytestmark = pytest.mark.usefixtures("prefect_server")

FAST = PollSchedule(initial=0.02, factor=1.0, cap=0.02, steady_polls=0)
QUICK = BatchScript(validating_seconds=0.01, in_progress_seconds=0.05, finalizing_seconds=0.01)


def bodies(count: int) -> list[dict[str, Any]]:
    return [{"model": "gpt-5-mini", "input": f"question {i}"} for i in range(count)]


def statuses(emu: RunsEmulator, batch_id: str) -> list[str]:
    return [status for status, _ in emu.batch(batch_id).history]


def batch_markdown(batch_id: str) -> str:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[job_artifact_key("batch", batch_id)]))
        )
    assert found, f"no artifact for batch {batch_id}"
    data = sorted(found, key=lambda a: a.created or 0)[-1].data
    assert isinstance(data, str)
    return data


def test_completes_with_outputs_and_errors_by_custom_id(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.default_batch_script = BatchScript(
        validating_seconds=0.01, in_progress_seconds=0.05, finalizing_seconds=0.01, failing_ids=["b"], usage=(7, 3)
    )
    requests = [{"custom_id": cid, "body": {"model": "gpt-5-mini", "input": cid}} for cid in ("a", "b", "c")]

    state = run_batch(credentials, requests, poll_schedule=FAST, metadata={"job": "nightly"}, return_state=True)

    result = state.result()
    assert isinstance(result, BatchRunResult)
    assert sorted(result.outputs) == ["a", "c"]
    assert result.outputs["a"]["output"][0]["content"][0]["text"] == "Reply to a."
    assert list(result.errors) == ["b"] and result.errors["b"].status_code == 500
    [batch] = result.batches
    assert batch.status == "completed" and result.usage.total_tokens == 20
    assert statuses(runs_emulator, batch.id) == ["validating", "in_progress", "finalizing", "completed"]
    key = runs_emulator.batch(batch.id).metadata[IDEMPOTENCY_METADATA_KEY]
    assert runs_emulator.batch(batch.id).metadata["job"] == "nightly"
    assert any(f.filename == f"batch-{key}.jsonl" for f in runs_emulator.files())
    markdown = batch_markdown(batch.id)
    assert "**completed**" in markdown and "total 3, completed 2, failed 1" in markdown
    assert batch.output_file_id and batch.output_file_id in markdown
    assert [r.id for r in registered_jobs(state.state_details.flow_run_id)] == [batch.id]


def test_input_over_the_limit_is_split_and_merged(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs_emulator.default_batch_script = dataclasses.replace(QUICK, cached_tokens=4, reasoning_tokens=2)
    monkeypatch.setattr(batches_flows, "SPLIT_MAX_LINES", 3)

    result = run_batch(credentials, bodies(7), poll_schedule=FAST)

    assert len(result.batches) == 3 and len(runs_emulator.batches()) == 3
    assert sorted(result.outputs) == sorted(f"request-{n}" for n in range(1, 8))
    assert result.usage.total_tokens == 7 * 15
    assert result.usage.input_tokens_details is not None and result.usage.input_tokens_details.cached_tokens == 7 * 4
    assert result.usage.output_tokens_details is not None
    assert result.usage.output_tokens_details.reasoning_tokens == 7 * 2
    assert result.outputs["request-1"]["output"][0]["type"] == "reasoning", "a reasoning model's output"
    assert result.text("request-1") == "Reply to request-1."
    assert "input 30, cached 12, output 15, reasoning 6, total **45**" in batch_markdown(result.batches[0].id)
    assert all(b.status == "completed" for b in result.batches)


def test_deadline_cancels_and_attaches_partial_results(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.default_batch_script = BatchScript(
        validating_seconds=0.01, in_progress_seconds=4.0, cancelling_seconds=0.3
    )

    with pytest.raises(JobTimedOut) as caught:
        run_batch(credentials, bodies(10), max_wait_seconds=1.0, cancel_wait_seconds=5.0, poll_schedule=FAST)

    [record] = runs_emulator.batches()
    assert statuses(runs_emulator, record.id) == ["validating", "in_progress", "cancelling", "cancelled"]
    assert caught.value.job.status == "cancelled"
    results = caught.value.results
    assert isinstance(results, BatchRunResult)
    assert 0 < len(results.outputs) < 10, "the requests done before the cancel are returned"
    assert "deadline" in caught.value.reason
    assert "deadline" in batch_markdown(record.id)


def test_still_cancelling_after_the_wait_is_reported_honestly(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.default_batch_script = BatchScript(in_progress_seconds=None, cancelling_seconds=30.0)

    with pytest.raises(JobTimedOut) as caught:
        run_batch(credentials, bodies(2), max_wait_seconds=2.0, cancel_wait_seconds=0.3, poll_schedule=FAST)

    [record] = runs_emulator.batches()
    assert record.status == "cancelling"
    assert caught.value.job.status == "cancelling"
    assert "still cancelling" in caught.value.reason and "orphan sweep" in caught.value.reason
    assert caught.value.results.outputs == {}


def test_expired_batch_raises_with_partial_results(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.default_batch_script = BatchScript(
        validating_seconds=0.01, in_progress_seconds=6.0, completion_window_seconds=1.0
    )

    with pytest.raises(JobExpired) as caught:
        run_batch(credentials, bodies(10), poll_schedule=FAST)

    results = caught.value.results
    assert 0 < len(results.outputs) < 10
    assert len(results.outputs) + len(results.errors) == 10
    assert {e.code for e in results.errors.values()} == {"batch_expired"}
    assert caught.value.job.status == "expired"


def test_batch_wide_validation_failure_raises_job_failed(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.default_batch_script = BatchScript(
        validation_error=("token_limit_exceeded", "Enqueued token limit reached for gpt-5-mini.")
    )

    with pytest.raises(JobFailed) as caught:
        run_batch(credentials, bodies(2), poll_schedule=FAST)

    assert "token_limit_exceeded" in caught.value.reason
    assert caught.value.results.outputs == {} and caught.value.results.batches[0].status == "failed"


@pytest.mark.parametrize(
    ("requests", "line", "fix"),
    [
        ([{"model": "m", "input": "ok"}, "not a dict"], 2, "must be a dict"),
        ([{"custom_id": "x", "body": {}}, {"custom_id": "x", "body": {}}], 2, "used twice"),
        ([{"custom_id": "x", "body": {}, "url": "/v1/embeddings"}], 1, "url must be"),
    ],
    ids=["not-a-dict", "duplicate-id", "wrong-url"],
)
def test_bad_input_names_the_line_before_any_request(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, requests: list[Any], line: int, fix: str
) -> None:
    with pytest.raises(BatchInputError, match=fix) as caught:
        run_batch(credentials, requests)

    assert caught.value.line == line
    assert runs_emulator.request_count() == 0


def test_bad_jsonl_file_names_the_line_before_any_request(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, tmp_path: Path
) -> None:
    good = {"custom_id": "a", "method": "POST", "url": "/v1/responses", "body": {"model": "m"}}
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(good) + "\n{not json\n")

    with pytest.raises(BatchInputError) as caught:
        run_batch(credentials, str(path))

    assert caught.value.line == 2
    assert runs_emulator.request_count() == 0


def test_bad_parameters_fail_before_any_request(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    with pytest.raises(ValueError, match="completion_window"):
        run_batch(credentials, bodies(1), completion_window="48h")
    with pytest.raises(ValueError, match="max_wait_seconds"):
        run_batch(credentials, bodies(1), max_wait_seconds=0)

    assert runs_emulator.request_count() == 0


def test_flow_timeout_cancels_the_batch(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.default_batch_script = BatchScript(in_progress_seconds=None, cancelling_seconds=0.05)
    timed = run_batch.with_options(timeout_seconds=3)

    state = timed(credentials, bodies(2), poll_schedule=FAST, cancel_wait_seconds=5.0, return_state=True)

    assert state.is_failed()
    [record] = runs_emulator.batches()
    assert record.status == "cancelled"
    assert "flow timeout" in batch_markdown(record.id)


def test_flow_retry_reuses_the_file_and_finds_the_batch(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    """The first attempt uploads, creates (answer lost) and cannot look the batch up: it fails. The
    retry reuses the uploaded file (recorded in the intent) and follows the batch found by its key."""
    runs_emulator.default_batch_script = QUICK
    no_retries = credentials.model_copy(update={"max_retries": 0})
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/batches$", kind="drop_after", times=1))
    # Both lookups of attempt 1 fail (the one after the create and the one before it gives up), so it
    # leaves the batch running for the retry to find.
    runs_emulator.add_fault(FaultRule(method="GET", path=r"^/v1/batches$", kind="drop_before", times=2))

    state = run_batch.with_options(retries=1, retry_delay_seconds=0)(
        no_retries, bodies(3), poll_schedule=FAST, return_state=True
    )

    assert sorted(state.result().outputs) == ["request-1", "request-2", "request-3"]
    assert len(runs_emulator.batches()) == 1
    assert [f.purpose for f in runs_emulator.files()].count("batch") == 1
    assert runs_emulator.request_count("POST", r"^/v1/files$") == 1


def test_flow_retry_after_a_failed_attempt_whose_batch_was_cancelled_creates_a_new_one(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    """Attempt 1 fails while its batch runs (a poll answered 500, not retried) and its cleanup cancels the
    batch. The retry finds that cancelled batch by its key: it must not follow it (it would only report
    it cancelled again, and no retry could ever succeed), but create a new one, on the same file."""
    runs_emulator.default_batch_script = BatchScript(validating_seconds=0.01, in_progress_seconds=1.0)
    no_retries = credentials.model_copy(update={"max_retries": 0})
    runs_emulator.add_fault(FaultRule(method="GET", path=r"^/v1/batches/batch_[^/]+$", status=500, times=1))

    state = run_batch.with_options(retries=1, retry_delay_seconds=0)(
        no_retries, bodies(2), poll_schedule=FAST, return_state=True
    )

    assert state.is_completed(), state.message
    assert sorted(state.result().outputs) == ["request-1", "request-2"]
    statuses = sorted(b.status for b in runs_emulator.batches())
    assert statuses == ["cancelled", "completed"]
    assert [f.purpose for f in runs_emulator.files()].count("batch") == 1  # the file was reused


def test_events_and_a_progress_artifact_of_the_requests_done(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, asserting_events_worker: Any
) -> None:
    from prefect.events.clients import AssertingEventsClient

    from flow_helpers import flow_run_artifacts

    runs_emulator.default_batch_script = QUICK
    state = run_batch(credentials, bodies(4), poll_schedule=FAST, return_state=True)
    [batch] = state.result().batches
    asserting_events_worker.drain()

    ours = [e for c in AssertingEventsClient.all for e in c.events if e.resource.id == f"openai.batch.{batch.id}"]
    assert [e.event for e in ours][-1] == "openai.batch.completed"
    assert {e.event for e in ours} <= {
        f"openai.batch.{s}" for s in ("created", "validating", "in_progress", "finalizing", "completed")
    }
    assert ours[-1].payload["request_counts"] == {"total": 4, "completed": 4, "failed": 0}
    [progress] = [a for a in flow_run_artifacts(state.state_details.flow_run_id) if a.type == "progress"]
    assert progress.data == 100.0


def test_the_card_lists_the_first_failed_requests_once_the_results_are_in(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.default_batch_script = BatchScript(
        validating_seconds=0.01,
        in_progress_seconds=0.05,
        finalizing_seconds=0.01,
        failing_ids=["b"],
        error_code="server_error",
        error_message="Upstream ```broke``` <b>badly</b>\nsecond line",
    )
    requests = [{"custom_id": cid, "body": {"model": "gpt-5-mini", "input": cid}} for cid in ("a", "b")]

    [batch] = run_batch(credentials, requests, poll_schedule=FAST).batches

    markdown = batch_markdown(batch.id)
    assert "## First failed requests (1 shown)" in markdown
    assert "b: HTTP 500 · server_error: Upstream ```broke``` <b>badly</b> second line" in markdown
    section = markdown.split("## First failed requests")[1].split("\n## ")[0]
    assert section.count("````") == 2, "fenced past the message's backticks, shown as it is"
    assert "a:" not in section


def test_the_progress_of_a_batch_cancelled_midway_keeps_its_real_fraction(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    from flow_helpers import flow_run_artifacts

    runs_emulator.default_batch_script = BatchScript(
        validating_seconds=0.01, in_progress_seconds=4.0, cancelling_seconds=0.05
    )

    state = run_batch(
        credentials, bodies(10), max_wait_seconds=1.0, cancel_wait_seconds=5.0, poll_schedule=FAST, return_state=True
    )

    assert state.is_failed()
    [record] = runs_emulator.batches()
    counts = record.object["request_counts"]
    done = 100.0 * (counts["completed"] + counts["failed"]) / counts["total"]
    assert 0 < done < 100
    [progress] = [a for a in flow_run_artifacts(state.state_details.flow_run_id) if a.type == "progress"]
    assert progress.data == pytest.approx(done)
    assert progress.description is not None and "ended cancelled" in progress.description
    assert f"{done:.0f}% done" in progress.description and "deadline" not in progress.description


def test_an_input_file_in_error_fails_at_once_with_its_details(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.file_processing_seconds = 0.05
    runs_emulator.file_processing_error = "Invalid file format: line 1 is not JSON."

    with pytest.raises(BatchFileNotReadyError, match="could not be processed: Invalid file format") as caught:
        run_batch(credentials, bodies(2), max_wait_seconds=600.0)

    assert caught.value.status == "error" and caught.value.details == "Invalid file format: line 1 is not JSON."
    assert runs_emulator.batches() == []
    assert runs_emulator.request_count("GET", r"^/v1/files/file-[^/]+$") <= 2, "read again at a sane cadence"


def test_a_file_still_pending_at_the_deadline_fails_then(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.file_processing_seconds = 60.0
    started = time.monotonic()

    with pytest.raises(BatchFileNotReadyError, match="still pending") as caught:
        run_batch(credentials, bodies(2), max_wait_seconds=1.5)

    assert time.monotonic() - started < 10, "the wait ends with the deadline, not after 5 minutes"
    assert caught.value.status == "pending" and runs_emulator.batches() == []
    assert runs_emulator.request_count("GET", r"^/v1/files/file-[^/]+$") <= 5, "read at a growing cadence"
