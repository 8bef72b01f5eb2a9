"""The pytest plugin loads into every pytest session of every project that installs the package: it must not
bring the emulator's server stack (uvicorn, Starlette's app and routing) into sessions that never use
``runs_emulator``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

INNER_TEST = """
import sys

SERVER_STACK = ("uvicorn", "starlette.applications", "starlette.routing", "prefect_openai_runs.testing._emulator")


def test_plugin_loaded_but_server_stack_not_imported():
    assert "prefect_openai_runs.testing.pytest_plugin" in sys.modules
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "uvicorn" or m in SERVER_STACK)
    assert loaded == []
"""


def test_plugin_does_not_import_the_server_stack(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
