"""What a user sees in the Prefect UI: a finished run's artifact page, rendered by headless Chromium.

``python3 dev.py ui-check`` (or ``.venv/bin/python scripts/ui_check.py``) starts everything it needs:
the emulator (in this process), ``prefect server start`` with its UI (SQLite in a temporary
``PREFECT_HOME``, a free loopback port), runs ``run_assistant`` once (against a saved credentials
block), then opens the run artifact's page in Debian's Chromium, checks the rendered DOM (the run id,
its final status, the status timeline with its rows, the reply) and saves a PNG screenshot under
``screenshots/``. Exits 0 when every check passes, 1 when one fails, 2 when Chromium is missing
(install it with ``apt-get install -y chromium``).

Options:
    --keep    leave the server and emulator running until Enter is pressed (to look yourself).
    --out DIR where to save screenshots (default: screenshots/).
"""

from __future__ import annotations

import argparse
import contextlib
import html
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]
VIRTUAL_TIME_BUDGET_MS = 20_000
REPLY = "The release went out at 09:00; no incidents."


def log(message: str) -> None:
    print(f"[ui-check {time.strftime('%H:%M:%S')}] {message}", flush=True)


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], Any], what: str, timeout: float, process: subprocess.Popen[bytes]) -> Any:
    """Poll ``predicate`` until truthy; fail if ``process`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if process.poll() is not None:
            raise RuntimeError(f"the process waited on exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``prefect server start`` with its UI on a free loopback port; yields (base URL, process)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=f"{base}/api",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="true",
        PREFECT_SERVER_LOGGING_LEVEL="WARNING",
        NO_PROXY="127.0.0.1,localhost",
    )
    with (home / "server.log").open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    try:
        wait_for(lambda: _healthy(f"{base}/api/health"), "the Prefect server's /api/health", 120, process)
        yield base, process
    finally:
        stop(process)


def run_one_flow(api_url: str) -> tuple[str, str]:
    """Run ``run_assistant`` once against the emulator; returns (OpenAI run id, artifact id)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefect_openai_runs import OpenAICredentials
    from prefect_openai_runs._recording import artifact_key
    from prefect_openai_runs.flows import run_assistant
    from prefect_openai_runs.testing import RunScript, RunsEmulator

    with temporary_settings(updates={PREFECT_API_URL: api_url}), RunsEmulator() as emulator:
        emulator.add_script(RunScript(queued_seconds=0.3, in_progress_seconds=1.5, reply_text=REPLY, usage=(40, 12)))
        OpenAICredentials(api_key=emulator.api_key, base_url=emulator.base_url, timeout=10.0).save(
            "emulator", overwrite=True
        )
        run = run_assistant("emulator", emulator.default_assistant_id, messages=["What happened in the release?"])
        key = artifact_key(run.id)
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
        latest = max(artifacts, key=lambda a: a.created or 0)
        return run.id, str(latest.id)


def render(chromium: str, url: str, profile: Path, screenshot: Path) -> str:
    """The DOM of ``url`` once rendered, and a screenshot of it."""
    common = [
        chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"
    ]
    dom = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    if dom.returncode != 0:
        raise RuntimeError(f"chromium --dump-dom failed ({dom.returncode}): {dom.stderr[-2000:]}")
    shot = subprocess.run(
        [*common, "--window-size=1400,1800", f"--screenshot={screenshot}", url],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    if shot.returncode != 0 or not screenshot.exists():
        raise RuntimeError(f"chromium --screenshot failed ({shot.returncode}): {shot.stderr[-2000:]}")
    return dom.stdout


def visible_text(dom: str) -> str:
    """The DOM's text, tags and scripts removed, whitespace collapsed."""
    dom = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", dom)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"(?s)<[^>]+>", " ", dom)))


def check_page(dom: str, run_id: str) -> list[str]:
    """What the artifact page must show; returns the failed checks."""
    text = visible_text(dom)
    checks = {
        "the run id": run_id in text,
        "the final status (completed)": re.search(rf"OpenAI run\s+{re.escape(run_id)}\s*:\s*completed", text)
        is not None,
        "why it ended": "Why it ended this way: ended completed" in text,
        "the status timeline heading": "Status timeline" in text,
        "a timeline row per status": all(re.search(rf"\b{s}\s+\d{{4}}-\d\d-\d\d", text) for s in
                                         ("queued", "in_progress", "completed")),
        "the token usage": "total 52" in text,
        "the reply": REPLY in text,
        "rendered as a table": "<table" in dom and "<td" in dom,
    }
    for name, ok in checks.items():
        log(f"{'ok  ' if ok else 'FAIL'} {name}")
    return [name for name, ok in checks.items() if not ok]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the server up until Enter is pressed")
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots", help="screenshot directory")
    args = parser.parse_args(argv)

    chromium = find_chromium()
    if chromium is None:
        log("Chromium is not installed: apt-get install -y chromium")
        return 2
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ui-check-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        log(f"starting prefect server (PREFECT_HOME={home}) ...")
        with prefect_server(home) as (base, _server):
            log(f"server up at {base}; running run_assistant against the emulator ...")
            run_id, artifact_id = run_one_flow(f"{base}/api")
            failures: list[str] = []
            for name, url in (
                ("run-artifact", f"{base}/artifacts/artifact/{artifact_id}"),
                ("run-artifact-by-key", f"{base}/artifacts/key/{_key(run_id)}"),
            ):
                screenshot = args.out / f"{name}.png"
                log(f"rendering {url} in {chromium} ...")
                dom = render(chromium, url, Path(tmp) / f"profile-{name}", screenshot)
                (args.out / f"{name}.html").write_text(dom)
                log(f"screenshot {screenshot.relative_to(ROOT) if screenshot.is_relative_to(ROOT) else screenshot}")
                if name == "run-artifact":
                    failures += check_page(dom, run_id)
                else:
                    ok = run_id in visible_text(dom)
                    log(f"{'ok  ' if ok else 'FAIL'} the key page lists the run")
                    failures += [] if ok else ["the key page lists the run"]
            if args.keep:
                input(f"Prefect UI at {base} (artifact {base}/artifacts/artifact/{artifact_id}); Enter to stop. ")
    elapsed = time.monotonic() - started
    if failures:
        log(f"FAILED ({len(failures)} check(s)) in {elapsed:.1f}s: {', '.join(failures)}")
        return 1
    log(f"all checks passed in {elapsed:.1f}s")
    return 0


def _key(run_id: str) -> str:
    from prefect_openai_runs._recording import artifact_key

    return artifact_key(run_id)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
