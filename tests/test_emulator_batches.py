"""The emulator's files and batches over real HTTP: uploads, the batch lifecycle, counts, validation
failures with line numbers, cancel with partial results, expiry, pagination and faults."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from batch_spec import validate_batch_body
from emulator_helpers import wait_for
from prefect_openai_runs.testing import BatchScript, FaultRule, RemoteEmulator, RunsEmulator

ENDPOINT = "/v1/responses"
FAST = BatchScript(validating_seconds=0.01, in_progress_seconds=0.05, finalizing_seconds=0.01)


def _check(response: httpx.Response) -> None:
    response.read()
    assert response.headers["x-request-id"].startswith("req_")
    if not response.headers.get("content-type", "").startswith("application/json"):
        return
    body = response.json()
    if "error" in body:
        validate_batch_body("ErrorResponse", body)
    elif body.get("object") == "batch":
        validate_batch_body("Batch", body)
    elif body.get("object") == "file" and "deleted" not in body:
        # `pending` is Azure's status (the emulator's file_processing_seconds), outside the OpenAI spec
        validate_batch_body("OpenAIFile", {**body, "status": "processed"} if body["status"] == "pending" else body)
    elif body.get("object") == "list" and response.request.url.path.endswith("/batches"):
        validate_batch_body("ListBatchesResponse", body)
    elif body.get("object") == "list":
        validate_batch_body("ListFilesResponse", body)


@pytest.fixture
def client(runs_emulator: RunsEmulator) -> Iterator[httpx.Client]:
    runs_emulator.default_batch_script = FAST
    headers = {"Authorization": f"Bearer {runs_emulator.api_key}"}  # no OpenAI-Beta: not needed here
    with httpx.Client(
        base_url=runs_emulator.base_url, headers=headers, timeout=5, event_hooks={"response": [_check]}
    ) as c:
        yield c


def jsonl(n: int, url: str = ENDPOINT, start: int = 0) -> bytes:
    lines = (
        {"custom_id": f"r{i}", "method": "POST", "url": url, "body": {"model": "gpt-5-mini", "input": f"q{i}"}}
        for i in range(start, start + n)
    )
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def upload(client: httpx.Client, content: bytes, purpose: str = "batch") -> dict[str, Any]:
    response = client.post("/files", data={"purpose": purpose}, files={"file": ("in.jsonl", content)})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def create(client: httpx.Client, file_id: str, **extra: Any) -> dict[str, Any]:
    body = {"input_file_id": file_id, "endpoint": ENDPOINT, "completion_window": "24h", **extra}
    response = client.post("/batches", json=body)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def wait_batch(client: httpx.Client, batch_id: str, status: str, timeout: float = 5.0) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/batches/{batch_id}").json()
        return body if body["status"] == status else None

    return wait_for(probe, timeout)


def lines_of(client: httpx.Client, file_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/files/{file_id}/content")
    assert response.status_code == 200
    rows = [json.loads(line) for line in response.content.splitlines()]
    for row in rows:
        validate_batch_body("BatchRequestOutput", row)
    return rows


def test_file_upload_get_list_content_delete(client: httpx.Client, runs_emulator: RunsEmulator) -> None:
    content = jsonl(3)
    uploaded = upload(client, content)
    assert (uploaded["purpose"], uploaded["bytes"], uploaded["filename"]) == ("batch", len(content), "in.jsonl")
    assert client.get(f"/files/{uploaded['id']}").json() == uploaded
    listed = client.get("/files", params={"purpose": "batch"}).json()
    assert [f["id"] for f in listed["data"]] == [uploaded["id"]]
    assert client.get(f"/files/{uploaded['id']}/content").content == content
    assert client.delete(f"/files/{uploaded['id']}").json() == {"id": uploaded["id"], "object": "file", "deleted": True}
    assert client.get(f"/files/{uploaded['id']}").status_code == 404
    assert runs_emulator.files() == []


def test_upload_refuses_a_bad_purpose_and_a_missing_file(client: httpx.Client) -> None:
    bad = client.post("/files", data={"purpose": "fun"}, files={"file": ("in.jsonl", b"{}")})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "purpose"
    missing = client.post("/files", data={"purpose": "batch"}, files={"other": ("x", b"")})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "file"


def test_lifecycle_counts_output_and_error_files(client: httpx.Client, runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_batch_script(
        BatchScript(validating_seconds=0.01, in_progress_seconds=0.3, finalizing_seconds=0.01, failing_ids={"r3"})
    )
    batch = create(client, upload(client, jsonl(10))["id"], metadata={"job": "t"})
    assert batch["status"] == "validating" and batch["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    partial = wait_for(
        lambda: (
            (b := client.get(f"/batches/{batch['id']}").json())["status"] == "in_progress"
            and 0 < b["request_counts"]["completed"] < 9
            and b
        )
    )
    assert partial["request_counts"]["total"] == 10 and partial["output_file_id"] is None
    done = wait_batch(client, batch["id"], "completed")
    assert done["request_counts"] == {"total": 10, "completed": 9, "failed": 1}
    assert done["usage"]["input_tokens"] == 90 and done["usage"]["total_tokens"] == 135
    assert done["model"] == "gpt-5-mini" and done["metadata"] == {"job": "t"}
    for stamp in ("in_progress_at", "finalizing_at", "completed_at"):
        assert isinstance(done[stamp], int)
    outputs = lines_of(client, done["output_file_id"])
    assert sorted(o["custom_id"] for o in outputs) == sorted(f"r{i}" for i in range(10) if i != 3)
    assert outputs[0]["response"]["body"]["object"] == "response"
    assert outputs[0]["response"]["body"]["usage"]["total_tokens"] == 15
    errors = lines_of(client, done["error_file_id"])
    assert [(e["custom_id"], e["response"]["status_code"]) for e in errors] == [("r3", 500)]
    assert [s for s, _ in runs_emulator.batch(batch["id"]).history] == [
        "validating",
        "in_progress",
        "finalizing",
        "completed",
    ]


def test_validation_failures_name_their_lines(client: httpx.Client) -> None:
    good = jsonl(1).rstrip(b"\n")
    bad = b"\n".join([good, b"{not json", good, jsonl(1, url="/v1/embeddings", start=5).rstrip(b"\n")]) + b"\n"
    batch = create(client, upload(client, bad)["id"])
    failed = wait_batch(client, batch["id"], "failed")
    found = {(e["line"], e["code"]) for e in failed["errors"]["data"]}
    assert found == {(2, "invalid_json_line"), (3, "duplicate_custom_id"), (4, "mismatched_url")}
    assert isinstance(failed["failed_at"], int) and failed["output_file_id"] is None


def test_scripted_validation_error_fails_the_batch(client: httpx.Client, runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_batch_script(
        BatchScript(validation_error=("token_limit_exceeded", "Enqueued token limit reached.")), {"big": "yes"}
    )
    batch = create(client, upload(client, jsonl(2))["id"], metadata={"big": "yes"})
    failed = wait_batch(client, batch["id"], "failed")
    assert failed["errors"]["data"][0]["code"] == "token_limit_exceeded"


def test_create_refuses_unknown_wrong_purpose_and_pending_files(
    client: httpx.Client, runs_emulator: RunsEmulator
) -> None:
    unknown = client.post(
        "/batches", json={"input_file_id": "file-x", "endpoint": ENDPOINT, "completion_window": "24h"}
    )
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "input_file_id"
    other = upload(client, jsonl(1), purpose="user_data")
    body = {"input_file_id": other["id"], "endpoint": ENDPOINT, "completion_window": "24h"}
    assert client.post("/batches", json=body).status_code == 400
    bad_window = client.post("/batches", json={**body, "completion_window": "48h"})
    assert bad_window.status_code == 400 and bad_window.json()["error"]["param"] == "completion_window"
    runs_emulator.file_processing_seconds = 0.2
    pending = upload(client, jsonl(1))
    assert pending["status"] == "pending"
    refused = client.post("/batches", json={**body, "input_file_id": pending["id"]})
    assert refused.status_code == 400 and "pending" in refused.json()["error"]["message"]
    wait_for(lambda: client.get(f"/files/{pending['id']}").json()["status"] == "processed")
    assert create(client, pending["id"])["status"] == "validating"


def test_a_file_whose_processing_fails_ends_in_error_with_its_details(
    client: httpx.Client, runs_emulator: RunsEmulator
) -> None:
    runs_emulator.file_processing_seconds = 0.1
    runs_emulator.file_processing_error = "Invalid file format: line 1 is not JSON."
    uploaded = upload(client, jsonl(1))
    assert uploaded["status"] == "pending" and uploaded["status_details"] is None

    failed = wait_for(lambda: (f := client.get(f"/files/{uploaded['id']}").json())["status"] == "error" and f)

    assert failed["status_details"] == "Invalid file format: line 1 is not JSON."
    body = {"input_file_id": uploaded["id"], "endpoint": ENDPOINT, "completion_window": "24h"}
    refused = client.post("/batches", json=body)
    assert refused.status_code == 400 and "could not be processed" in refused.json()["error"]["message"]


def test_cancel_keeps_partial_results(client: httpx.Client, runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_batch_script(BatchScript(validating_seconds=0.0, in_progress_seconds=2.0, cancelling_seconds=0.1))
    batch = create(client, upload(client, jsonl(10))["id"])
    wait_for(lambda: client.get(f"/batches/{batch['id']}").json()["request_counts"]["completed"] >= 1)
    cancelling = client.post(f"/batches/{batch['id']}/cancel").json()
    assert cancelling["status"] == "cancelling" and isinstance(cancelling["cancelling_at"], int)
    again = client.post(f"/batches/{batch['id']}/cancel")
    assert again.status_code == 400 and "cancelling" in again.json()["error"]["message"]
    cancelled = wait_batch(client, batch["id"], "cancelled")
    done = cancelled["request_counts"]["completed"]
    assert 1 <= done < 10
    assert len(lines_of(client, cancelled["output_file_id"])) == done
    final = client.post(f"/batches/{batch['id']}/cancel")
    assert final.status_code == 400
    assert final.json()["error"]["message"] == "Cannot cancel a batch with status 'cancelled'."


def test_expiry_puts_unfinished_requests_in_the_error_file(client: httpx.Client, runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_batch_script(
        BatchScript(validating_seconds=0.0, in_progress_seconds=None, completion_window_seconds=0.2)
    )
    batch = create(client, upload(client, jsonl(4))["id"])
    assert batch["expires_at"] - batch["created_at"] <= 1
    expired = wait_batch(client, batch["id"], "expired")
    assert expired["request_counts"] == {"total": 4, "completed": 0, "failed": 4}
    assert expired["output_file_id"] is None
    errors = lines_of(client, expired["error_file_id"])
    assert {e["error"]["code"] for e in errors} == {"batch_expired"}
    assert len(errors) == 4


def test_list_pages_newest_first(client: httpx.Client) -> None:
    file_id = upload(client, jsonl(1))["id"]
    ids = [create(client, file_id)["id"] for _ in range(5)]
    first = client.get("/batches", params={"limit": 2}).json()
    assert [b["id"] for b in first["data"]] == ids[::-1][:2] and first["has_more"] is True
    second = client.get("/batches", params={"limit": 2, "after": first["last_id"]}).json()
    assert [b["id"] for b in second["data"]] == ids[::-1][2:4]
    last = client.get("/batches", params={"limit": 2, "after": second["last_id"]}).json()
    assert [b["id"] for b in last["data"]] == ids[:1] and last["has_more"] is False
    assert client.get("/batches", params={"limit": 101}).status_code == 400


def test_faults_apply_to_batch_paths(client: httpx.Client, runs_emulator: RunsEmulator) -> None:
    file_id = upload(client, jsonl(1))["id"]
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/batches$", status=503))
    assert (
        client.post(
            "/batches", json={"input_file_id": file_id, "endpoint": ENDPOINT, "completion_window": "24h"}
        ).status_code
        == 503
    )
    assert runs_emulator.batches() == []
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/batches$", kind="drop_after"))
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/batches", json={"input_file_id": file_id, "endpoint": ENDPOINT, "completion_window": "24h"})
    assert len(runs_emulator.batches()) == 1  # applied, answer lost: the ambiguous create


def test_control_surface_lists_batches_and_takes_scripts(client: httpx.Client, runs_emulator: RunsEmulator) -> None:
    script = BatchScript(validating_seconds=0.0, in_progress_seconds=0.02, failing_ids={"r0"})
    posted = httpx.post(f"{runs_emulator.control_url}/batch_scripts", json={"script": script.to_dict()})
    assert posted.json() == {"ok": True}
    batch = create(client, upload(client, jsonl(2))["id"])
    done = wait_batch(client, batch["id"], "completed")
    assert done["request_counts"]["failed"] == 1
    records = httpx.get(f"{runs_emulator.control_url}/batches").json()
    assert [r["id"] for r in records] == [batch["id"]] and records[0]["status"] == "completed"
    files = httpx.get(f"{runs_emulator.control_url}/files").json()
    assert {f["purpose"] for f in files} == {"batch", "batch_output"}


def test_remote_emulator_inspects_batches_and_adds_scripts(client: httpx.Client, runs_emulator: RunsEmulator) -> None:
    remote = RemoteEmulator(runs_emulator.base_url)
    try:
        remote.add_batch_script(BatchScript(validating_seconds=0.0, in_progress_seconds=0.02, failing_ids={"r1"}))
        batch = create(client, upload(client, jsonl(2))["id"])
        wait_batch(client, batch["id"], "completed")
        assert [r.id for r in remote.batches()] == [batch["id"]]
        assert remote.batch(batch["id"]).object["request_counts"]["failed"] == 1
        assert len(remote.files()) == 3  # the input, the output and the error file
    finally:
        remote.close()
