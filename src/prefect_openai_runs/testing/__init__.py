"""An emulator of the OpenAI Assistants runs API (and of the Batch API with its files), for tests, demos
and benchmarks.

A real HTTP server on 127.0.0.1 (Starlette on uvicorn, in a background thread with its own event
loop) that follows the official runs contract, error bodies included, and whose runs do what
emulator-side *scripts* say. Faults (error statuses, hangs, dropped connections) can be injected
and every run and request inspected::

    from openai import OpenAI
    from prefect_openai_runs.testing import RunsEmulator, RunScript

    with RunsEmulator() as emu:
        emu.add_script(RunScript(outcome="failed", error_code="rate_limit_exceeded"))
        client = OpenAI(api_key=emu.api_key, base_url=emu.base_url)
        run = client.beta.threads.create_and_run_poll(assistant_id=emu.default_assistant_id)
        assert run.status == "failed"

Files and batches (``/v1/files``, ``/v1/batches``) follow the Batch API; a :class:`BatchScript` says
how long each phase lasts and which requests fail::

    emu.add_batch_script(BatchScript(in_progress_seconds=0.2, failing_ids={"q-3"}), metadata={"job": "x"})
    emu.batches()  # BatchRecord snapshots; emu.files() and emu.file_content(file_id) for files

The pytest fixture ``runs_emulator`` (from :mod:`.pytest_plugin`) yields a started, freshly reset
emulator; :func:`spawn_emulator_process` serves one from a subprocess and yields a
:class:`RemoteEmulator` driving it over the ``/_emulator`` control surface.

Importing this package is cheap: the names below load their modules (and the server stack, uvicorn and
Starlette) on first use, so the pytest plugin that lives here costs nothing to sessions that never ask for
the fixture.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._batch_records import BatchRecord, FileRecord
    from ._batch_scripts import BatchScript
    from ._core import DEFAULT_API_KEY
    from ._emulator import RunsEmulator
    from ._faults import FaultRule
    from ._ratelimit import RateLimits
    from ._records import RequestRecord, ResponseRecord, RunRecord
    from ._remote import RemoteEmulator, spawn_emulator_process
    from ._response_scripts import ResponseContext, ResponseScript
    from ._responses_api import ResponsesSettings
    from ._scripts import CreateContext, RunScript, ToolCallSpec

_HOMES = {
    "BatchRecord": "_batch_records",
    "FileRecord": "_batch_records",
    "BatchScript": "_batch_scripts",
    "DEFAULT_API_KEY": "_core",
    "RunsEmulator": "_emulator",
    "FaultRule": "_faults",
    "RateLimits": "_ratelimit",
    "RequestRecord": "_records",
    "ResponseRecord": "_records",
    "RunRecord": "_records",
    "RemoteEmulator": "_remote",
    "spawn_emulator_process": "_remote",
    "ResponseContext": "_response_scripts",
    "ResponseScript": "_response_scripts",
    "ResponsesSettings": "_responses_api",
    "CreateContext": "_scripts",
    "RunScript": "_scripts",
    "ToolCallSpec": "_scripts",
}


def __getattr__(name: str) -> Any:
    """Load a public name's module on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_API_KEY",
    "BatchRecord",
    "BatchScript",
    "CreateContext",
    "FaultRule",
    "FileRecord",
    "RateLimits",
    "RemoteEmulator",
    "RequestRecord",
    "ResponseContext",
    "ResponseRecord",
    "ResponseScript",
    "ResponsesSettings",
    "RunRecord",
    "RunScript",
    "RunsEmulator",
    "ToolCallSpec",
    "spawn_emulator_process",
]
