"""Shared fixtures: one temporary Prefect server per test process, the emulator, credentials."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")

FAKE_KEY = "sk-emulator-test-key"
"""The recognisable fake key every test uses; the secrets scan looks for it everywhere."""


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A temporary Prefect server (SQLite) for the whole test session (per xdist worker)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def credentials(runs_emulator):  # type: ignore[no-untyped-def]
    """Credentials pointing at the emulator, with short timeouts."""
    from prefect_openai_runs import OpenAICredentials

    return OpenAICredentials(api_key=runs_emulator.api_key, base_url=runs_emulator.base_url, timeout=5.0)


from prefect.testing.fixtures import asserting_events_worker  # noqa: E402, F401
