"""The ``OpenAICredentials`` block against a real temporary Prefect server: save, load, secrets masked,
the environment fallback, block type registration from the collection's entry point, and the clients it
builds."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from pydantic import SecretStr

from prefect_openai_runs import AsyncRunsClient, OpenAICredentials, RunsClient
from prefect_openai_runs.blocks import API_KEY_ENV
from prefect_openai_runs.testing import RunsEmulator

HEADER_SECRET = "azure-header-secret-9f8e7d"


def block_name() -> str:
    return f"creds-{uuid.uuid4().hex[:12]}"


@flow
def thread_from_block(name: str) -> str:
    """A flow that loads the credentials block by name and creates a thread with its client."""
    with OpenAICredentials.load(name).get_client() as client:
        return client.create_thread().id


def check_save_and_load(runs_emulator: RunsEmulator) -> None:
    name = block_name()
    OpenAICredentials(
        api_key=runs_emulator.api_key,
        organization="org_1",
        project="proj_1",
        base_url=runs_emulator.base_url,
        default_headers={"api-key": HEADER_SECRET},
        default_query={"api-version": "2024-05-01-preview"},
        timeout=7.5,
        max_retries=2,
    ).save(name)
    loaded = OpenAICredentials.load(name)
    assert isinstance(loaded.api_key, SecretStr)
    assert loaded.api_key != runs_emulator.api_key and runs_emulator.api_key not in repr(loaded)
    assert loaded.api_key.get_secret_value() == runs_emulator.api_key
    assert loaded.default_headers.get_secret_value() == {"api-key": HEADER_SECRET}
    assert HEADER_SECRET not in repr(loaded) and HEADER_SECRET not in str(loaded.default_headers)
    assert (loaded.organization, loaded.project, loaded.base_url) == ("org_1", "proj_1", runs_emulator.base_url)
    assert loaded.default_query == {"api-version": "2024-05-01-preview"}
    assert (loaded.timeout, loaded.max_retries) == (7.5, 2)

    with loaded.get_client() as client:
        thread = client.create_thread()
    assert thread.id.startswith("thread_")
    sent = runs_emulator.requests[-1]
    assert sent.headers["openai-project"] == "proj_1" and "api-version=2024-05-01-preview" in sent.query


def check_document_without_secrets(runs_emulator: RunsEmulator) -> None:
    name = block_name()
    OpenAICredentials(api_key=runs_emulator.api_key, default_headers={"api-key": HEADER_SECRET}).save(name)
    with get_client(sync_client=True) as prefect:
        masked = prefect.read_block_document_by_name(name, "openai-runs-credentials", include_secrets=False)
        revealed = prefect.read_block_document_by_name(name, "openai-runs-credentials", include_secrets=True)
    text = repr(masked.data)
    for secret in (runs_emulator.api_key, runs_emulator.api_key[3:11], HEADER_SECRET):
        assert secret not in text
    assert masked.data["api_key"] != runs_emulator.api_key
    assert set(masked.data["default_headers"]) == {"api-key"}
    assert masked.data["default_headers"]["api-key"] != HEADER_SECRET
    # the server does hold them, encrypted, for a reader allowed to see them
    revealed_key = revealed.data["api_key"]
    plain = revealed_key.get_secret_value() if isinstance(revealed_key, SecretStr) else revealed_key
    assert plain == runs_emulator.api_key


def test_environment_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_KEY_ENV, "sk-from-env-abcdef123")
    assert OpenAICredentials().resolved_api_key().get_secret_value() == "sk-from-env-abcdef123"
    assert OpenAICredentials(api_key="sk-block-abcdef123").resolved_api_key().get_secret_value() == "sk-block-abcdef123"


def test_no_key_anywhere_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with pytest.raises(ValueError, match=f"api_key.*{API_KEY_ENV}"):
        OpenAICredentials().get_client()
    with pytest.raises(ValueError, match=API_KEY_ENV):
        OpenAICredentials(api_key="").get_async_client()


def test_clients_carry_the_block_settings(runs_emulator: RunsEmulator) -> None:
    block = OpenAICredentials(
        api_key=runs_emulator.api_key, base_url=runs_emulator.base_url, timeout=3.0, max_retries=4, retry_deadline=9
    )
    with block.get_client() as client:
        assert isinstance(client, RunsClient)
        assert client.base_url == runs_emulator.base_url
        assert client._timeout.read == 3.0
        assert (client.retry_policy.max_attempts, client.retry_policy.deadline_seconds) == (5, 9)
    async_client = block.get_async_client(timeout=1.5)
    assert isinstance(async_client, AsyncRunsClient)
    assert async_client._timeout.read == 1.5 and async_client.retry_policy.max_attempts == 5
    assert OpenAICredentials(api_key="sk-x-123456", max_retries=0).retry_policy().max_attempts == 1


def test_retry_policy_from_max_retries_is_used(runs_emulator: RunsEmulator) -> None:
    from prefect_openai_runs.exceptions import InternalServerError
    from prefect_openai_runs.testing import FaultRule

    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/threads$", status=503, times=None))
    block = OpenAICredentials(api_key=runs_emulator.api_key, base_url=runs_emulator.base_url, max_retries=1)
    with block.get_client() as client, pytest.raises(InternalServerError):
        client.create_thread()
    assert runs_emulator.request_count("POST", r"^/v1/threads$") == 2


def test_collection_entry_point() -> None:
    found = [
        ep for ep in importlib.metadata.entry_points(group="prefect.collections") if ep.name == "prefect_openai_runs"
    ]
    assert len(found) == 1 and found[0].value == "prefect_openai_runs"
    assert found[0].load().OpenAICredentials is OpenAICredentials


def check_block_register(prefect_api: str) -> None:
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    prefect_cli = Path(sys.executable).with_name("prefect")
    result = subprocess.run(
        [str(prefect_cli), "block", "register", "-m", "prefect_openai_runs"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with get_client(sync_client=True) as prefect:
        block_type = prefect.read_block_type_by_slug("openai-runs-credentials")
        schema = prefect.get_most_recent_block_schema_for_block_type(block_type.id)
    assert block_type.name == "OpenAI Runs Credentials"
    assert schema is not None
    assert {"api_key", "default_headers"} <= set(schema.fields["secret_fields"]) | {
        f.split(".")[0] for f in schema.fields["secret_fields"]
    }


def test_credentials_block_on_a_real_prefect_server(prefect_server: None, runs_emulator: RunsEmulator) -> None:
    """One test, so that a single xdist worker starts a Prefect server: a flow loads a saved block by name and
    uses it; save/load keeps every setting; the stored document masks the secrets; ``prefect block register
    -m prefect_openai_runs`` registers the block type. The session's end scans the server for the key."""
    from prefect.settings import PREFECT_API_URL

    name = block_name()
    OpenAICredentials(api_key=runs_emulator.api_key, base_url=runs_emulator.base_url).save(name)
    thread_id = thread_from_block(name)
    assert thread_id.startswith("thread_")
    assert [r.path for r in runs_emulator.requests] == ["/v1/threads"]

    check_save_and_load(runs_emulator)
    check_document_without_secrets(runs_emulator)
    check_block_register(str(PREFECT_API_URL.value()))
