"""Pytest plugin (registered through the ``pytest11`` entry point): the ``runs_emulator`` fixture.

One emulator is started per test session (per xdist worker) the first time a test asks for it,
and :meth:`RunsEmulator.reset` is called before each test, so the fixture costs a reset, not a
server start. Settings a test changes on it (``poll_after_ms``, ``cancelling_delay``,
``expires_after``, ``default_script``, ``rate_limits``) are restored before the next test, and the
clients' rate budgets for it are forgotten (a ``retry-after`` one test met does not pace the next).
Tests that need other constructor arguments (``api_key``, ``require_beta_header``...) should create
their own ``RunsEmulator``.

The plugin is loaded into every pytest session of every project that installs this package, so it
imports nothing of the emulator (nor uvicorn, starlette) until a test asks for the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._emulator import RunsEmulator


@pytest.fixture(scope="session")
def _runs_emulator_session() -> Iterator[RunsEmulator]:
    from ._emulator import RunsEmulator

    with RunsEmulator() as emulator:
        yield emulator


@pytest.fixture
def runs_emulator(_runs_emulator_session: RunsEmulator) -> Iterator[RunsEmulator]:
    """A started :class:`RunsEmulator` with no runs, requests, rules or faults, and default settings."""
    from prefect_openai_runs.client._pacing import forget_budgets

    from ._batch_scripts import BatchScript
    from ._ratelimit import RateLimits
    from ._scripts import RunScript

    emulator = _runs_emulator_session
    emulator.start()  # in case a test stopped it
    emulator.reset()
    forget_budgets(emulator.base_url)  # what clients learnt of its limits (a retry-after) goes with them
    emulator.poll_after_ms = None
    emulator.cancelling_delay = 0.05
    emulator.expires_after = 600.0
    emulator.default_script = RunScript()
    emulator.default_batch_script = BatchScript()
    emulator.file_processing_seconds = 0.0
    emulator.file_processing_error = None
    emulator.rate_limits = RateLimits()
    yield emulator
    emulator.reset()
