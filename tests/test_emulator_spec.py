"""The emulator checks request bodies against the spec subsets it ships, across all three APIs, and says
what to install when the validator's libraries are missing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator_helpers import api
from prefect_openai_runs.testing import RunsEmulator


@pytest.fixture
def client(runs_emulator: RunsEmulator) -> Iterator[httpx.Client]:
    with api(runs_emulator) as c:
        yield c


def refused(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()["error"]
    assert body["type"] == "invalid_request_error"
    return body


def test_assistant_fields_keep_the_apis_limits(client: httpx.Client) -> None:
    body = refused(client.post("/assistants", json={"model": "gpt-4o", "name": "n" * 257}))
    assert body == {
        "message": "Invalid 'name': string too long. Expected a string with maximum length 256, but got a string "
        "with length 257 instead.",
        "type": "invalid_request_error",
        "param": "name",
        "code": "string_above_max_length",
    }


def test_message_content_parts_are_checked_by_their_type(client: httpx.Client) -> None:
    body = refused(client.post("/threads", json={"messages": [{"role": "user", "content": [{"type": "text"}]}]}))
    assert (body["param"], body["code"]) == ("messages[0].content[0].text", "missing_required_parameter")
    empty = refused(client.post("/threads", json={"messages": [{"role": "user", "content": []}]}))
    assert (empty["param"], empty["code"]) == ("messages[0].content", "empty_array")


def test_response_fields_follow_the_spec(client: httpx.Client) -> None:
    body = refused(client.post("/responses", json={"model": "m", "input": "x", "temperature": "hot"}))
    assert body["message"] == "Invalid type for 'temperature': expected a decimal, but got a string instead."
    assert body["param"] == "temperature"
    not_a_body = refused(client.post("/responses", json=["model"]))
    assert not_a_body["param"] == "body" and not_a_body["code"] == "invalid_type"


def test_batch_endpoint_lists_what_the_spec_supports(client: httpx.Client) -> None:
    body = refused(
        client.post("/batches", json={"input_file_id": "f", "endpoint": "/v1/x", "completion_window": "24h"})
    )
    assert body["param"] == "endpoint"
    assert body["message"].startswith("Invalid value: '/v1/x'. Supported values are: '/v1/responses', ")


def test_missing_validator_names_the_extra_to_install() -> None:
    code = (
        "import sys\n"
        "from prefect_openai_runs.testing import _spec\n"
        "sys.modules['yaml'] = sys.modules['jsonschema'] = None\n"
        "try:\n"
        "    _spec.preload()\n"
        "except RuntimeError as e:\n"
        "    print(e)\n"
    )
    src = Path(__file__).resolve().parents[1] / "src"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120, cwd=src
    ).stdout
    assert "pip install 'prefect-openai-runs[emulator]'" in out
