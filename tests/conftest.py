"""Shared fixtures: one temporary Prefect server per test process, the emulator, credentials, and the
secrets scan that fails the suite if the API key shows up in any log record, artifact, flow or task run
state message, Prefect log or event produced anywhere in it."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")

from prefect.testing.fixtures import asserting_events_worker  # noqa: F401

from prefect_openai_runs.testing import DEFAULT_API_KEY

LONG_MODULES = ("test_e2e_fleet.py", "test_e2e_deployment.py")
"""Modules of end-to-end tests that start their own Prefect server and workers: each runs whole on one
test process (``--dist loadgroup``) and first, so the short tests fill the other process meanwhile."""


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long end-to-end modules first, each in its own xdist group; the rest in their usual order."""
    for item in items:
        if item.path.name in LONG_MODULES:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
    items.sort(key=lambda item: item.path.name not in LONG_MODULES)


@pytest.fixture(autouse=True, scope="module")
def _prefect_workers_follow_the_session_server(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a module that ran flows in this process against a Prefect server of its own (the e2e ones):
    drain Prefect's events and log workers, bounded. They are one per process and keep the URL they were
    created with: left bound to a server that is gone, every later event would wait for it, and the
    session's harness would hang draining them at the end."""
    yield
    if request.path.name in LONG_MODULES:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        EventsWorker.drain_all(timeout=15)
        APILogWorker.drain_all(timeout=15)


FAKE_KEY = DEFAULT_API_KEY
"""The recognisable fake key every test uses (the emulator's)."""

SECRET_FORMS = (FAKE_KEY, FAKE_KEY.removeprefix("sk-"), FAKE_KEY.removeprefix("sk-")[:8])
"""The key, and the parts of it that would still identify it."""


def find_secrets(text: str) -> list[str]:
    """The forms of the key that appear in ``text``."""
    return [form for form in SECRET_FORMS if form in text]


class _CollectingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=0)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f"\n{record.exc_info[1]!r}\n{record.exc_info[1]}"
        self.texts.append(text)


@pytest.fixture(autouse=True)
def _no_key_in_log_records() -> Iterator[None]:
    """Every log record of every test, from any logger, is scanned for the key."""
    handler = _CollectingHandler()
    loggers = [logging.getLogger(name) for name in ("", "prefect", "prefect_openai_runs", "httpx", "uvicorn")]
    for logger in loggers:
        logger.addHandler(handler)
    yield
    for logger in loggers:
        logger.removeHandler(handler)
    leaks = [text for text in handler.texts if find_secrets(text)]
    assert not leaks, f"the API key appeared in {len(leaks)} log record(s), e.g. {leaks[0][:300]!r}"


def _all_pages(read: Any, page: int = 200) -> Iterator[Any]:
    offset = 0
    while True:
        items = read(limit=page, offset=offset)
        yield from items
        if len(items) < page:
            return
        offset += page


def _server_texts(api_url: str) -> list[str]:
    """Everything the Prefect server holds that a user or an automation could read."""
    from prefect.client.orchestration import get_client

    texts: list[str] = []
    with get_client(sync_client=True) as client:
        for artifact in _all_pages(client.read_artifacts):
            texts += [str(artifact.data), str(artifact.description), str(artifact.metadata_)]
        for flow_run in _all_pages(client.read_flow_runs):
            texts += [str(flow_run.parameters), str(flow_run.state.message if flow_run.state else "")]
        for task_run in _all_pages(client.read_task_runs):
            texts.append(str(task_run.state.message if task_run.state else ""))
        for log in _all_pages(client.read_logs):
            texts.append(log.message)
        # What the API shows of a saved block without asking for secrets: the key must be masked there.
        for document in client.read_block_documents(include_secrets=False):
            texts.append(str(document.data))
    events: Any = httpx.post(f"{api_url}/events/filter", json={"limit": 200}, timeout=30).json()
    texts += [str(event) for event in events.get("events", [])]
    return texts


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A temporary Prefect server (SQLite) for the whole test session (one per xdist worker).

    At the end of the session, everything it holds is scanned for the API key.
    """
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield
        texts = _server_texts(str(PREFECT_API_URL.value()))
        leaks = [text for text in texts if find_secrets(text)]
        assert not leaks, f"the API key is stored on the Prefect server: {leaks[0][:300]!r}"


@pytest.fixture
def credentials(runs_emulator):  # type: ignore[no-untyped-def]
    """Credentials pointing at the emulator, with short timeouts."""
    from prefect_openai_runs import OpenAICredentials

    return OpenAICredentials(api_key=runs_emulator.api_key, base_url=runs_emulator.base_url, timeout=5.0)
