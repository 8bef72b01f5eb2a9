#!/usr/bin/env python3
"""Check that the declared dependency floors work: ``python3 scripts/check_floors.py``.

Reads the lower bounds of ``[project] dependencies`` in ``pyproject.toml`` (``prefect>=3.1`` gives
``prefect==3.1``), builds a separate virtual environment (``.venv-floors``, rebuilt every time) with exactly
those versions pinned as pip constraints, installs the package and the test tools of its ``dev`` extra there, checks pip
really installed the floors, and runs a meaningful subset of the tests: models, retries, both clients over
HTTP to the emulator, keys and errors, proxies, event streams, the emulator's lifecycle, the block catalog,
the flows on a real Prefect server and the run recording.

Why the floors are what they are: tenacity 8.3 brought ``stop_before_delay``; Prefect 3.2 brought the sync
client's ``read_artifacts`` and ``update_artifact`` (the run recording uses them); pydantic 2.9.1 is the
first that Prefect 3.2 imports with (2.9.0 rejects one of its ``ClassVar`` annotations); httpx 0.27 and
everything above work as declared.

Needs only python3 and PyPI. Extra arguments go to pytest. Exit code: pytest's, or 1 when a floor could
not be installed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-floors"
PY = VENV / ("Scripts" if sys.platform == "win32" else "bin") / "python"
TESTS = [
    "tests/test_models.py",
    "tests/test_retry.py",
    "tests/test_client.py",
    "tests/test_client_async.py",
    "tests/test_keys_and_errors.py",
    "tests/test_proxy_env.py",
    "tests/test_sse.py",
    "tests/test_emulator_lifecycle.py",
    "tests/test_block_catalog.py",
    "tests/test_flows.py",
    "tests/test_recording_artifacts.py",
]

CHECK_INSTALLED = """
import importlib.metadata, sys

def norm(version):
    parts = version.split(".")
    while len(parts) > 1 and parts[-1] == "0":
        parts.pop()
    return ".".join(parts)

wanted = dict(arg.split("==") for arg in sys.argv[1:])
wrong = {n: importlib.metadata.version(n) for n, v in wanted.items() if norm(importlib.metadata.version(n)) != norm(v)}
if wrong:
    print("FLOORS: not installed at their floor:", wrong)
sys.exit(1 if wrong else 0)
"""
"""Run in the floors environment: each pinned package is installed at exactly its floor."""

ERA_CONSTRAINTS = ["fastapi<0.116"]
"""Bounds on Prefect's own dependencies that Prefect's floor release leaves open: Prefect 3.2.0's server passes
``min_items`` to FastAPI's ``Body``, which FastAPI releases after 0.115 reject. A user of that Prefect release
needs the same bound; it is not a dependency of this package."""

ERA_EXTRAS = ["importlib-metadata"]
"""What Prefect 3.2.0's CLI imports without declaring it (``prefect block register`` fails without it)."""

TEST_TOOLS = {"pytest", "pytest-timeout", "pytest-asyncio", "jsonschema", "pyyaml", "openai"}
"""What the subset needs from the ``dev`` extra (not the linters), installed with the floors as constraints."""


def dev_extra(pyproject: str) -> list[str]:
    """The requirement strings of ``[project.optional-dependencies] dev``."""
    block = re.search(r"^dev\s*=\s*\[(.*?)\]", pyproject.split("[project.optional-dependencies]", 1)[1], re.S | re.M)
    return re.findall(r'"([^"]+)"', block.group(1)) if block else []


def declared_floors(pyproject: str) -> dict[str, str]:
    """``{name: lowest version}`` from ``[project] dependencies`` (each needs a ``>=`` bound).

    Parsed by hand rather than with ``tomllib``, which Python 3.10 lacks.
    """
    project = pyproject.split("[project]", 1)[1].split("\n[", 1)[0]
    block = re.search(r"^dependencies\s*=\s*\[(.*?)\]", project, re.S | re.M)
    if block is None:
        raise SystemExit("pyproject.toml: no [project] dependencies")
    floors: dict[str, str] = {}
    for spec in re.findall(r'"([^"]+)"', block.group(1)):
        found = re.match(r"\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*)", spec)
        lowest = re.search(r">=\s*([0-9][^,;\s]*)", found.group(2)) if found else None
        if found is None or lowest is None:
            raise SystemExit(f"pyproject.toml: dependency {spec!r} has no '>=' floor")
        floors[found.group(1)] = lowest.group(1)
    return floors


def main(pytest_args: list[str]) -> int:
    started = time.monotonic()
    pyproject = (ROOT / "pyproject.toml").read_text()
    floors = declared_floors(pyproject)
    print("declared floors: " + ", ".join(f"{name}=={version}" for name, version in floors.items()), flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    constraints = VENV / "floors.txt"
    constraints.write_text(
        "".join(
            [
                *(f"{name}=={version}\n" for name, version in floors.items()),
                *(f"{bound}\n" for bound in ERA_CONSTRAINTS),
            ]
        )
    )
    pip = [str(PY), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]
    tools = [spec for spec in dev_extra(pyproject) if re.split(r"[<>=\[ ]", spec, maxsplit=1)[0] in TEST_TOOLS]
    installed = subprocess.run([*pip, "--constraint", str(constraints), "-e", str(ROOT)], check=False).returncode or (
        subprocess.run([*pip, "--constraint", str(constraints), *tools, *ERA_EXTRAS], check=False).returncode
    )
    if installed:
        print("FLOORS: the lowest declared versions cannot be installed together (see pip's message)", flush=True)
        return 1
    if subprocess.run([str(PY), "-c", CHECK_INSTALLED, *(f"{n}=={v}" for n, v in floors.items())]).returncode:
        return 1
    print(f"installed in {time.monotonic() - started:.0f}s; running {len(TESTS)} test files", flush=True)
    status = subprocess.call([str(PY), "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS, *pytest_args], cwd=ROOT)
    print(f"floors check {'passed' if status == 0 else 'FAILED'} in {time.monotonic() - started:.0f}s", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
