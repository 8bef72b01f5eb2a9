#!/usr/bin/env python3
"""One entry point for contributors: creates and reuses ``.venv``, then runs a job in it.

Usage (only Python 3.10+ needed on the machine)::

    python3 dev.py demo     # the main job: flows against the embedded emulator and a temporary Prefect server
    python3 dev.py test     # ruff, mypy --strict and the whole test suite
    python3 dev.py bench    # the benchmark against the official SDK (bench/README.md)
    python3 dev.py ui-check # check a flow run in the Prefect UI, headless Chromium (needs Debian's chromium)

The environment is rebuilt only when ``pyproject.toml`` changes (a hash stamp in ``.venv``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".pyproject-sha256"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def _ensure_venv() -> None:
    if sys.version_info < (3, 10):  # noqa: UP036 - dev.py runs on whatever python3 the machine has
        sys.exit(f"Python 3.10 or newer is needed; this is {sys.version.split()[0]}.")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if PY.exists() and STAMP.exists() and STAMP.read_text().strip() == digest:
        return
    if not PY.exists():
        print(f"creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    print("installing prefect-openai-runs with its dev extra ...", flush=True)
    subprocess.run([str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(PY), "-m", "pip", "install", "-q", "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(digest)


def _run(*args: str) -> int:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return subprocess.call(list(args), cwd=ROOT, env=env)


def main(argv: list[str]) -> int:
    job = argv[0] if argv else "help"
    rest = argv[1:]
    if job not in {"demo", "test", "bench", "ui-check", "lint"}:
        print(__doc__)
        return 0 if job == "help" else 2
    _ensure_venv()
    py = str(PY)
    if job == "demo":
        return _run(py, "-m", "prefect_openai_runs.demo", *rest)
    if job == "bench":
        return _run(py, "bench/run_bench.py", *rest)
    if job == "ui-check":
        return _run(py, "scripts/ui_check.py", *rest)
    lint_paths = [p for p in ("src", "tests", "bench", "scripts", "examples", "dev.py") if (ROOT / p).exists()]
    lint_status = _run(py, "-m", "ruff", "check", *lint_paths) or _run(py, "-m", "mypy")
    if job == "lint" or lint_status:
        return lint_status
    return _run(py, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider", *rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
