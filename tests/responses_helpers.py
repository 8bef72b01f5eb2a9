"""Helpers for the background-responses tests: the emulator's record and the responses' artifacts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.objects import Artifact

from prefect_openai_runs._lifecycle._response_hooks import response_artifact_key
from prefect_openai_runs.testing import RunsEmulator

TERMINAL = {"completed", "failed", "cancelled", "incomplete"}


def assert_no_response_active(emulator: RunsEmulator) -> None:
    """The emulator's own record: every response is terminal."""
    active = [(r.id, r.status) for r in emulator.responses() if r.status not in TERMINAL]
    assert not active, f"responses left active: {active}"


def response_artifacts(response_id: str) -> list[Artifact]:
    """Every version of a response's artifact, oldest first."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[response_artifact_key(response_id)]))
        )
    return sorted(found, key=lambda a: a.created or 0)


def response_markdown(response_id: str) -> str:
    """The newest version of a response's artifact, as markdown."""
    artifacts = response_artifacts(response_id)
    assert artifacts, f"no artifact for response {response_id}"
    data = artifacts[-1].data
    assert isinstance(data, str)
    return data


def response_statuses(emulator: RunsEmulator, response_id: str) -> list[str]:
    """The statuses the response went through on the emulator."""
    return [status for status, _ in emulator.response(response_id).history]


@contextmanager
def resume_window(emulator: RunsEmulator, seconds: float) -> Iterator[None]:
    """Set how long a response's stream can be resumed, restoring the default after."""
    before = emulator.responses_settings.resume_window
    emulator.responses_settings.resume_window = seconds
    try:
        yield
    finally:
        emulator.responses_settings.resume_window = before
