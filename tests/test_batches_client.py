"""The files and batches clients (sync and async) over real HTTP against the emulator: multipart uploads
retried whole, streamed downloads, no Assistants beta header, create found again by its key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from emulator_helpers import wait_for
from prefect_openai_runs import OpenAICredentials
from prefect_openai_runs.batch_files import read_results, write_input
from prefect_openai_runs.client import IDEMPOTENCY_METADATA_KEY
from prefect_openai_runs.exceptions import BatchNotCancellableError
from prefect_openai_runs.models import BatchStatus
from prefect_openai_runs.testing import BatchScript, FaultRule, RunsEmulator


@pytest.fixture
def input_file(tmp_path: Path) -> Path:
    return write_input(
        ({"model": "gpt-5-mini", "input": f"q{i}"} for i in range(4)), "/v1/responses", tmp_path / "in.jsonl"
    ).path


def test_upload_retried_whole_then_batch_followed_and_downloaded(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, input_file: Path, tmp_path: Path
) -> None:
    runs_emulator.default_batch_script = BatchScript(validating_seconds=0.0, in_progress_seconds=0.02)
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/files$", kind="status", status=500, times=1))

    with credentials.get_batches_client() as client:
        uploaded = client.upload_file(input_file)
        assert runs_emulator.file_content(uploaded.id) == input_file.read_bytes(), "the retry sent the file whole"
        batch = client.create_batch(input_file_id=uploaded.id, endpoint="/v1/responses", idempotency_key="k" * 32)
        found = client.find_batch("k" * 32)
        assert found is not None and found.id == batch.id
        done = wait_for(lambda: (b := client.get_batch(batch.id)).status.is_terminal and b)
        polled, _hint = client.poll_batch(batch.id)
        assert done.output_file_id is not None and polled.status is BatchStatus.COMPLETED
        target = client.download_file_content(done.output_file_id, tmp_path / "out.jsonl")
        assert target.read_bytes() == client.file_content(done.output_file_id)
        assert [b.id for b in client.list_batches(limit=1)] == [batch.id]
        with pytest.raises(BatchNotCancellableError):
            client.cancel_batch(batch.id)
        assert client.delete_file(uploaded.id).deleted

    assert len(read_results(target).outputs) == 4
    assert runs_emulator.request_count("POST", r"^/v1/files$") == 2
    file_requests = [r for r in runs_emulator.requests if r.path.startswith(("/v1/files", "/v1/batches"))]
    assert file_requests and all("openai-beta" not in r.headers for r in file_requests)
    assert runs_emulator.batch(batch.id).metadata[IDEMPOTENCY_METADATA_KEY] == "k" * 32


def test_async_client_creates_once_after_a_dropped_answer(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, input_file: Path, tmp_path: Path
) -> None:
    runs_emulator.default_batch_script = BatchScript(in_progress_seconds=None, cancelling_seconds=0.0)
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/batches$", kind="drop_after", times=1))

    async def scenario() -> tuple[str, str, bytes]:
        async with credentials.get_async_batches_client() as client:
            uploaded = await client.upload_file(input_file.read_bytes(), "bytes.jsonl")
            batch = await client.create_batch(input_file_id=uploaded.id, endpoint="/v1/responses")
            cancelling = await client.cancel_batch(batch.id)
            await client.download_file_content(uploaded.id, tmp_path / "copy.jsonl")
            return batch.id, str(cancelling.status), (tmp_path / "copy.jsonl").read_bytes()

    batch_id, status, copy = asyncio.run(scenario())

    assert [b.id for b in runs_emulator.batches()] == [batch_id], "the dropped create was found, not repeated"
    assert status in {"cancelling", "cancelled"}
    assert copy == input_file.read_bytes()


def test_bytes_upload_needs_a_filename(credentials: OpenAICredentials, runs_emulator: RunsEmulator) -> None:
    with credentials.get_batches_client() as client, pytest.raises(ValueError, match="filename"):
        client.upload_file(b"{}\n")
    assert runs_emulator.request_count() == 0
