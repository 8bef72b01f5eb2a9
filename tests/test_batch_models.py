"""The batch, file and batch-line models: forward compatibility, Azure's spellings, request limits."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from prefect_openai_runs.models import (
    BATCH_TERMINAL_STATUSES,
    Batch,
    BatchResultLine,
    BatchStatus,
    CreateBatchParams,
    FileObject,
    FileStatus,
)

BATCH: dict[str, Any] = {
    "id": "batch_1",
    "object": "batch",
    "endpoint": "/v1/responses",
    "input_file_id": "file-1",
    "completion_window": "24h",
    "status": "in_progress",
    "created_at": 1711471533,
}


def test_terminal_statuses_are_the_spec_s_and_cancelling_is_not_one() -> None:
    assert {s.value for s in BATCH_TERMINAL_STATUSES} == {"failed", "completed", "expired", "cancelled"}
    assert BatchStatus("cancelling").is_active
    assert not BatchStatus("finalizing").is_terminal


def test_azure_capitalised_status_is_normalised() -> None:
    assert Batch.model_validate({**BATCH, "status": "Validating"}).status is BatchStatus.VALIDATING
    assert BatchStatus(" Completed ").is_terminal


def test_unknown_status_is_active_and_kept() -> None:
    status = Batch.model_validate({**BATCH, "status": "queued_for_gpu"}).status
    assert (status.is_known, status.is_active, str(status)) == (False, True, "queued_for_gpu")


def test_every_field_parses_and_unknown_fields_round_trip() -> None:
    full = {
        **BATCH,
        "model": "gpt-5",
        "errors": {
            "object": "list",
            "data": [{"code": "invalid_json_line", "message": "bad", "param": None, "line": 3}],
        },
        "output_file_id": "file-2",
        "error_file_id": "file-3",
        "in_progress_at": 1,
        "expires_at": 2,
        "finalizing_at": 3,
        "completed_at": 4,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 3, "completed": 2, "failed": 1},
        "usage": {
            "input_tokens": 5,
            "input_tokens_details": {"cached_tokens": 1},
            "output_tokens": 6,
            "output_tokens_details": {"reasoning_tokens": 2},
            "total_tokens": 11,
        },
        "metadata": {"k": "v"},
        "output_expires_after": {"anchor": "created_at", "seconds": 3600},
    }
    batch = Batch.model_validate(full)
    assert batch.errors is not None and batch.errors.data[0].line == 3
    assert batch.usage is not None and batch.usage.total_tokens == 11
    assert batch.model_dump(mode="json") == full


def test_azure_iso_timestamps_become_unix_seconds() -> None:
    batch = Batch.model_validate(
        {**BATCH, "created_at": "2024-03-26T16:45:33Z", "completed_at": "2024-03-26T16:45:34+00:00"}
    )
    assert (batch.created_at, batch.completed_at) == (1711471533, 1711471534)


def test_file_status_includes_azure_pending() -> None:
    base = {"id": "file-1", "object": "file", "bytes": 3, "created_at": 1, "filename": "a.jsonl", "purpose": "batch"}
    assert not FileObject.model_validate({**base, "status": "pending"}).status.is_ready
    assert FileObject.model_validate({**base, "status": "processed"}).status.is_ready
    assert FileObject.model_validate({**base, "status": "deleting"}).status.name == "UNKNOWN"
    assert FileStatus("Processed") is FileStatus.PROCESSED


def test_result_line_failures() -> None:
    ok = BatchResultLine.model_validate(
        {"id": "r", "custom_id": "a", "response": {"status_code": 200, "request_id": "q", "body": {}}, "error": None}
    )
    http = BatchResultLine.model_validate(
        {"custom_id": "b", "response": {"status_code": 429, "body": {"error": {"message": "slow", "code": "rate"}}}}
    )
    lost = BatchResultLine.model_validate(
        {"custom_id": "c", "response": None, "error": {"code": "batch_expired", "message": "late"}}
    )
    assert (ok.succeeded, http.succeeded, lost.succeeded) == (True, False, False)
    assert (http.failure().code, http.failure().message, http.failure().status_code) == ("rate", "slow", 429)
    assert lost.failure().code == "batch_expired"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"endpoint": "/v1/threads"}, "endpoint"),
        ({"completion_window": "48h"}, "completion_window"),
        ({"input_file_id": "file/../x"}, "input_file_id"),
        ({"metadata": {str(i): "v" for i in range(17)}}, "at most 16 keys"),
        ({"metadata": {"k" * 65: "v"}}, "keys are at most 64"),
        ({"metadata": {"k": "v" * 513}}, "values are at most 512"),
        ({"output_expires_after": {"anchor": "created_at", "seconds": 60}}, "seconds"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_create_params_refuse_what_the_api_refuses(change: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        CreateBatchParams.model_validate({"input_file_id": "file-1", "endpoint": "/v1/responses", **change})


def test_create_params_body() -> None:
    params = CreateBatchParams(input_file_id="file-1", endpoint="/v1/chat/completions", metadata={"job": "n"})
    assert params.to_body() == {
        "input_file_id": "file-1",
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        "metadata": {"job": "n"},
    }
