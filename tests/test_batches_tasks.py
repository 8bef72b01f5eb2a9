"""The batch tasks (upload, create, get, wait, cancel, download) in flows, against the emulator and a real
(temporary) Prefect server: results, failures with line numbers, cancels, and re-attach on a retry."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prefect import flow

from emulator_helpers import wait_for
from prefect_openai_runs import OpenAICredentials
from prefect_openai_runs._lifecycle._follower import PollSchedule
from prefect_openai_runs.exceptions import JobFailed, JobTimedOut
from prefect_openai_runs.flows import BatchRunResult
from prefect_openai_runs.models import Batch
from prefect_openai_runs.tasks import (
    cancel_batch,
    create_batch,
    download_batch_results,
    get_batch,
    upload_batch_file,
    wait_for_batch,
)
from prefect_openai_runs.testing import BatchScript, FaultRule, RunsEmulator

pytestmark = pytest.mark.usefixtures("prefect_server")

FAST = PollSchedule(initial=0.02, factor=1.0, cap=0.02, steady_polls=0)
REQUESTS = [{"custom_id": f"q{i}", "body": {"model": "gpt-5-mini", "input": f"question {i}"}} for i in range(3)]


def test_tasks_upload_create_wait_and_download(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.default_batch_script = BatchScript(validating_seconds=0.01, in_progress_seconds=0.05)

    @flow
    def pipeline() -> tuple[Batch, Batch, BatchRunResult]:
        uploaded = upload_batch_file(credentials, REQUESTS)
        created = create_batch(credentials, uploaded.id, metadata={"job": "tasks"})
        done = wait_for_batch(credentials, created.id, max_wait_seconds=30, poll_schedule=FAST)
        return get_batch(credentials, created.id), done, download_batch_results(credentials, done)

    current, done, results = pipeline()

    assert done.status == "completed" and current.id == done.id
    assert sorted(results.outputs) == ["q0", "q1", "q2"] and results.errors == {}
    assert [f.purpose for f in runs_emulator.files()].count("batch") == 1


def test_validation_failure_raises_job_failed_naming_the_lines(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    good: dict[str, Any] = {"custom_id": "a", "method": "POST", "url": "/v1/responses", "body": {"model": "m"}}
    wrong_url = {**good, "custom_id": "b", "url": "/v1/embeddings"}
    content = "\n".join(json.dumps(line) for line in (good, wrong_url)).encode() + b"\n"
    with credentials.get_batches_client() as client:
        uploaded = client.upload_file(content, "hand-made.jsonl")

    @flow
    def pipeline() -> Batch:
        created = create_batch(credentials, uploaded.id)
        return wait_for_batch(credentials, created.id, max_wait_seconds=30, poll_schedule=FAST)

    with pytest.raises(JobFailed) as caught:
        pipeline()

    assert "line 2" in caught.value.reason and "mismatched_url" in caught.value.reason
    assert caught.value.job.errors.data[0].line == 2


def test_wait_deadline_cancels_and_cancel_is_idempotent(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.default_batch_script = BatchScript(in_progress_seconds=None, cancelling_seconds=0.1)

    @flow
    def pipeline() -> tuple[Batch, Batch]:
        uploaded = upload_batch_file(credentials, REQUESTS)
        created = create_batch(credentials, uploaded.id)
        try:
            wait_for_batch(credentials, created.id, max_wait_seconds=0.3, poll_schedule=FAST, cancel_wait_seconds=5)
        except JobTimedOut as exc:
            first = exc.job
        else:
            raise AssertionError("the wait should have timed out")
        return first, cancel_batch(credentials, created.id, wait_seconds=1)

    first, again = pipeline()

    assert first.status == "cancelled" and again.status == "cancelled"
    [record] = runs_emulator.batches()
    assert [s for s, _ in record.history] == ["validating", "in_progress", "cancelling", "cancelled"]


def test_cancel_task_waits_for_cancelling(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.default_batch_script = BatchScript(in_progress_seconds=None, cancelling_seconds=0.2)

    @flow
    def pipeline() -> Batch:
        created = create_batch(credentials, upload_batch_file(credentials, REQUESTS).id)
        return cancel_batch(credentials, created.id, reason="window closed", wait_seconds=5)

    assert pipeline().status == "cancelled"


def test_prefect_retry_after_a_dropped_create_reattaches_to_one_batch(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    """The create is applied but its answer lost, and the look-up that follows fails too: the task
    fails, Prefect retries it, and the retry finds the batch by its key instead of creating another."""
    runs_emulator.default_batch_script = BatchScript(validating_seconds=0.01, in_progress_seconds=0.05)
    no_retries = credentials.model_copy(update={"max_retries": 0})
    with credentials.get_batches_client() as client:
        line = REQUESTS[0] | {"method": "POST", "url": "/v1/responses"}
        uploaded = client.upload_file(json.dumps(line).encode(), "one.jsonl")
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/batches$", kind="drop_after", times=1))
    runs_emulator.add_fault(FaultRule(method="GET", path=r"^/v1/batches$", kind="drop_before", times=1))

    @flow
    def pipeline() -> Batch:
        created = create_batch.with_options(retries=1, retry_delay_seconds=0)(no_retries, uploaded.id)
        return wait_for_batch(credentials, created.id, max_wait_seconds=30, poll_schedule=FAST)

    batch = pipeline()

    assert batch.status == "completed"
    assert [b.id for b in runs_emulator.batches()] == [batch.id]
    assert runs_emulator.request_count("POST", r"^/v1/batches$") == 1
    assert runs_emulator.request_count("GET", r"^/v1/batches$") >= 2, "the retry looked the batch up"


def test_download_reads_a_batch_given_before_it_ended_again(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.default_batch_script = BatchScript(validating_seconds=0.01, in_progress_seconds=0.05)

    @flow
    def pipeline() -> tuple[Batch, BatchRunResult]:
        uploaded = upload_batch_file(credentials, REQUESTS)
        created = create_batch(credentials, uploaded.id)  # validating: no result files yet
        wait_for(lambda: runs_emulator.batch(created.id).status == "completed")
        return created, download_batch_results(credentials, created)

    created, results = pipeline()

    assert created.status == "validating"
    assert sorted(results.outputs) == ["q0", "q1", "q2"]
    assert [b.status for b in results.batches] == ["completed"]
