"""Serving and the emulator explain themselves: ``emulator --help`` shows the defaults, the docs document
the control API route by route, README and docs use the emulator's one real key, the docs tell the truth
about ``wait_for_runs`` on SIGTERM, and ``examples/serve.py`` says what it serves and how to trigger it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from prefect_openai_runs.cli import main
from prefect_openai_runs.testing import DEFAULT_API_KEY, RunScript
from prefect_openai_runs.testing._core import EmulatorConfig, EmulatorCore
from prefect_openai_runs.testing._routes import control_routes

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "docs" / "index.md").read_text()
README = (ROOT / "README.md").read_text()


def test_emulator_help_shows_the_defaults(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as done:
        main(["emulator", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert f"(default: {DEFAULT_API_KEY})" in text
    assert "(default: 8787)" in text and "(default: 0.05)" in text and "(default: 600.0)" in text


def test_docs_table_lists_every_control_route() -> None:
    core = EmulatorCore(EmulatorConfig(), default_script=RunScript(), cancelling_delay=0.05, expires_after=600.0)
    try:
        routes = {
            (method, route.path)
            for route in control_routes(core)
            if route.path.startswith("/_emulator")
            for method in route.methods or ()
        }
    finally:
        core.close()
    documented = set(re.findall(r"^\| `([A-Z]+)` \| `(/_emulator[^`]*)` \|", DOCS, re.M))
    assert documented == {(method, path) for method, path in routes if method != "HEAD"}


def test_readme_and_docs_use_the_emulators_one_key() -> None:
    keys = set(re.findall(r"sk-[A-Za-z0-9_-]+", README + DOCS)) - {"sk-"}
    assert keys == {DEFAULT_API_KEY}


def test_docs_do_not_say_wait_for_runs_ignores_sigterm() -> None:
    flat = " ".join(DOCS.split())
    assert "does **not** cancel on SIGTERM" not in flat
    assert "`wait_for_runs`, which cancels every run it follows" in flat


def test_serve_example_says_what_it_serves_and_how_to_trigger() -> None:
    code = "import serve; print(serve.describe())"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT / "examples", capture_output=True, text=True, check=True, timeout=120
    ).stdout
    for deployment in ("assistant-pipeline/nightly-served", "run-assistant/on-demand-served"):
        assert f"prefect deployment run {deployment}" in out
    assert "run-assistant/short-timeout-served" in out and "cron 0 6 * * *" in out
    assert "Waiting for flow runs" in out
