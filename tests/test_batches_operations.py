"""The sans-IO files and batches operations, driven over real HTTP by a minimal driver that honours
the :class:`Call` contract the clients implement (multipart ``form``/``files``, ``raw`` bodies, ``recover``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator_helpers import wait_for
from prefect_openai_runs.batch_files import read_results, write_input
from prefect_openai_runs.client import _batches_operations as ops
from prefect_openai_runs.client._http import Call, Reply, error_from_response, reply_from_response
from prefect_openai_runs.client._operations import IDEMPOTENCY_METADATA_KEY, Operation
from prefect_openai_runs.exceptions import BatchNotCancellableError
from prefect_openai_runs.models import BatchStatus, CreateBatchParams
from prefect_openai_runs.testing import BatchScript, FaultRule, RunsEmulator


def send(client: httpx.Client, call: Call) -> Reply:
    streams = [(u, u.open()) for u in call.files]
    try:
        response = client.request(
            call.method,
            call.path,
            params=call.params,
            json=call.json,
            data=dict(call.form) if call.form else None,
            files={u.form_field: (u.filename, s, u.content_type) for u, s in streams} or None,
        )
    finally:
        for _, stream in streams:
            stream.close()
    if response.status_code >= 400:
        raise error_from_response(response, secrets=[], max_retry_after=60)
    if call.raw:
        return Reply(body=response.content, request_id=response.headers.get("x-request-id"))
    return reply_from_response(response)


def drive(client: httpx.Client, op: Operation[Any]) -> Any:
    """Run ``op``; after a transport error, run the call's ``recover`` and use what it finds, else resend."""
    try:
        call = next(op)
        while True:
            try:
                reply = send(client, call)
            except httpx.TransportError:
                found = drive(client, call.recover()) if call.recover is not None else None
                reply = found if found is not None else send(client, call)
            except Exception as exc:
                call = op.throw(exc)
                continue
            call = op.send(reply)
    except StopIteration as stop:
        return stop.value


@pytest.fixture
def client(runs_emulator: RunsEmulator) -> Iterator[httpx.Client]:
    runs_emulator.default_batch_script = BatchScript(
        validating_seconds=0.0, in_progress_seconds=0.02, finalizing_seconds=0.0
    )
    with httpx.Client(
        base_url=runs_emulator.base_url, headers={"Authorization": f"Bearer {runs_emulator.api_key}"}
    ) as c:
        yield c


@pytest.fixture
def input_file(tmp_path: Path) -> Path:
    return write_input(
        ({"model": "gpt-5-mini", "input": f"q{i}"} for i in range(3)), "/v1/responses", tmp_path / "in.jsonl"
    ).path


def test_upload_create_follow_and_read_results(client: httpx.Client, input_file: Path) -> None:
    uploaded = drive(client, ops.upload_file(input_file, "in.jsonl"))
    assert uploaded.bytes == input_file.stat().st_size and uploaded.status.is_ready
    assert drive(client, ops.get_file(uploaded.id)).filename == "in.jsonl"
    params = CreateBatchParams(input_file_id=uploaded.id, endpoint="/v1/responses", metadata={"job": "x"})
    batch = drive(client, ops.create_batch(params, "key-1"))
    assert batch.metadata == {"job": "x", IDEMPOTENCY_METADATA_KEY: "key-1"}
    done = wait_for(lambda: (b := drive(client, ops.get_batch(batch.id))).status is BatchStatus.COMPLETED and b)
    content = drive(client, ops.file_content(done.output_file_id))
    assert sorted(read_results(content).outputs) == ["request-1", "request-2", "request-3"]
    assert [b.id for b in drive(client, ops.list_batches(limit=5)).data] == [batch.id]
    assert [f.id for f in drive(client, ops.list_files("batch")).data] == [uploaded.id]
    assert drive(client, ops.delete_file(uploaded.id)).deleted is True


def test_ambiguous_create_is_recovered_not_repeated(
    client: httpx.Client, runs_emulator: RunsEmulator, input_file: Path
) -> None:
    uploaded = drive(client, ops.upload_file(input_file, "in.jsonl"))
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/batches$", kind="drop_after"))
    batch = drive(client, ops.create_batch(CreateBatchParams(input_file_id=uploaded.id, endpoint="/v1/responses"), "k"))
    assert [b.id for b in runs_emulator.batches()] == [batch.id]
    assert runs_emulator.request_count("POST", r"^/v1/batches$") == 1


def test_ambiguous_upload_is_recovered_not_repeated(
    client: httpx.Client, runs_emulator: RunsEmulator, input_file: Path
) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/files$", kind="drop_after"))
    uploaded = drive(client, ops.upload_file(input_file, "unique-name.jsonl"))
    assert [f.id for f in runs_emulator.files()] == [uploaded.id]


def test_key_search_pages_and_stops_at_the_window(client: httpx.Client, input_file: Path) -> None:
    uploaded = drive(client, ops.upload_file(input_file, "in.jsonl"))
    for key in ("old", "mid", "new"):
        drive(client, ops.create_batch(CreateBatchParams(input_file_id=uploaded.id, endpoint="/v1/responses"), key))
    found = drive(client, ops.find_batch_by_key("old", not_before=0, page_size=1))
    assert found is not None and found.body["metadata"][IDEMPOTENCY_METADATA_KEY] == "old"
    assert drive(client, ops.find_batch_by_key("old", not_before=0, page_size=1, max_pages=2)) is None
    assert drive(client, ops.find_batch_by_key("gone", not_before=time.time() + 10)) is None


def test_cancel_of_a_finished_batch_is_not_cancellable(client: httpx.Client, input_file: Path) -> None:
    uploaded = drive(client, ops.upload_file(input_file, "in.jsonl"))
    batch = drive(client, ops.create_batch(CreateBatchParams(input_file_id=uploaded.id, endpoint="/v1/responses"), "k"))
    wait_for(lambda: drive(client, ops.get_batch(batch.id)).status.is_terminal)
    with pytest.raises(BatchNotCancellableError) as caught:
        drive(client, ops.cancel_batch(batch.id))
    assert caught.value.batch_status == "completed"


def test_bad_arguments_fail_before_any_request() -> None:
    with pytest.raises(ValueError, match="purpose must be one of"):
        ops.upload_call(b"{}", "in.jsonl", purpose="fun")
    with pytest.raises(ValueError, match="bare file name"):
        ops.upload_call(b"{}", "../in.jsonl")
    with pytest.raises(ValueError, match="batch_id"):
        next(ops.get_batch("batch/../x"))
    with pytest.raises(ValueError, match="limit must be between 1 and 100"):
        next(ops.list_batches(limit=0))
    with pytest.raises(ValueError, match="endpoint"):
        CreateBatchParams(input_file_id="file-1", endpoint="/v1/threads")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="metadata"):
        next(
            ops.create_batch(
                CreateBatchParams(
                    input_file_id="f", endpoint="/v1/responses", metadata={str(i): "v" for i in range(16)}
                ),
                "k",
            )
        )


def test_any_400_to_a_cancel_is_not_cancellable(client: httpx.Client, runs_emulator: RunsEmulator) -> None:
    body = {
        "error": {"message": "Batch is already done.", "type": "invalid_request_error", "param": None, "code": None}
    }
    runs_emulator.add_fault(FaultRule(method="POST", path=r"/cancel$", status=400, body=body))
    with pytest.raises(BatchNotCancellableError, match="already done") as caught:
        drive(client, ops.cancel_batch("batch_x"))
    assert caught.value.batch_status is None
