"""Contract tests: the official ``openai`` SDK (v3.57) drives the emulator's files and batches."""

from __future__ import annotations

import json

import openai
import pytest
from openai import OpenAI

from emulator_helpers import wait_for
from prefect_openai_runs.testing import BatchScript, RunsEmulator

LINES = b"".join(
    json.dumps(
        {
            "custom_id": f"q{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"hi {i}"}]},
        }
    ).encode()
    + b"\n"
    for i in range(6)
)


@pytest.fixture
def sdk(runs_emulator: RunsEmulator) -> OpenAI:
    runs_emulator.default_batch_script = BatchScript(
        validating_seconds=0.01, in_progress_seconds=0.05, finalizing_seconds=0.01, failing_ids={"q4"}
    )
    return OpenAI(api_key=runs_emulator.api_key, base_url=runs_emulator.base_url, max_retries=0)


def test_sdk_upload_create_retrieve_content(sdk: OpenAI, runs_emulator: RunsEmulator) -> None:
    uploaded = sdk.files.create(file=("requests.jsonl", LINES), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == len(LINES) and uploaded.status == "processed"
    assert sdk.files.retrieve(uploaded.id).filename == "requests.jsonl"
    batch = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"k": "v"}
    )
    assert batch.status == "validating" and batch.metadata == {"k": "v"}
    done = wait_for(lambda: (b := sdk.batches.retrieve(batch.id)).status == "completed" and b)
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (6, 5, 1)
    assert done.usage is not None and done.usage.total_tokens == 75
    assert done.output_file_id is not None and done.error_file_id is not None
    outputs = [json.loads(line) for line in sdk.files.content(done.output_file_id).text.splitlines()]
    assert outputs[0]["response"]["body"]["object"] == "chat.completion"
    assert outputs[0]["response"]["body"]["choices"][0]["message"]["content"] == "Reply to q0."
    errors = [json.loads(line) for line in sdk.files.content(done.error_file_id).text.splitlines()]
    assert [e["custom_id"] for e in errors] == ["q4"]
    assert runs_emulator.batch(batch.id).status == "completed"


def test_sdk_cancel_and_cancel_again(sdk: OpenAI, runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_batch_script(BatchScript(in_progress_seconds=None, cancelling_seconds=0.02))
    uploaded = sdk.files.create(file=("requests.jsonl", LINES), purpose="batch")
    batch = sdk.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert sdk.batches.cancel(batch.id).status == "cancelling"
    wait_for(lambda: sdk.batches.retrieve(batch.id).status == "cancelled")
    with pytest.raises(openai.BadRequestError, match="Cannot cancel a batch with status 'cancelled'"):
        sdk.batches.cancel(batch.id)


def test_sdk_list_pages_through_every_batch(sdk: OpenAI) -> None:
    uploaded = sdk.files.create(file=("requests.jsonl", LINES), purpose="batch")
    ids = [
        sdk.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h").id
        for _ in range(5)
    ]
    first = sdk.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2]
    assert [b.id for b in sdk.batches.list(limit=2)] == ids[::-1]  # auto-pagination follows `after`


def test_sdk_files_list_and_delete(sdk: OpenAI) -> None:
    uploaded = sdk.files.create(file=("requests.jsonl", LINES), purpose="batch")
    assert [f.id for f in sdk.files.list(purpose="batch")] == [uploaded.id]
    assert sdk.files.delete(uploaded.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        sdk.files.retrieve(uploaded.id)
