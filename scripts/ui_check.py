"""What a user sees in the Prefect UI after a ``run_assistant`` flow run, rendered by headless Chromium.

``python3 dev.py ui-check`` (or ``.venv/bin/python scripts/ui_check.py``) starts everything it needs:
the emulator (in this process), ``prefect server start`` with its UI (SQLite in a temporary
``PREFECT_HOME``, a free loopback port), runs ``run_assistant`` once (against a saved credentials
block, with one tool call), then drives Debian's Chromium over the DevTools protocol and checks what
the rendered pages show:

- the flow run's *Task Runs* tab lists the flow's task runs (create, wait, the tool call, the submit),
  the same task runs the Prefect API has for the flow run;
- its *Artifacts* tab shows the run's card, whose description starts with the status
  (``completed · run_...``);
- the event feed filtered on the OpenAI run lists its ``openai.run.*`` events, as the API has them;
- the run artifact's own page (the run id, its final status, the status timeline, the usage, the reply).

Each page is saved as a PNG screenshot under ``screenshots/``. Exits 0 when every check passes, 1 when
one fails, 2 when Chromium is missing (install it with ``apt-get install -y chromium``).

Options:
    --keep    leave the server and emulator running until Enter is pressed (to look yourself).
    --out DIR where to save screenshots (default: screenshots/).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import html
import json
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
from dataclasses import dataclass
from functools import partial
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
REPLY = "The release went out at 09:00; no incidents."
TOOL = "deployment_status"
TASK_STEPS = ("Create OpenAI run", "Wait for OpenAI run", f"tool {TOOL}", "Submit OpenAI tool outputs")
"""The task runs the flow run must show (each task run's name starts with its task's name)."""
RUN_EVENTS = ("openai.run.created", "openai.run.requires_action", "openai.run.completed")
"""Events the run must have emitted (among others: one per status it went through)."""
WINDOW = (1400, 1000)
DOCS_SCALE = 0.6
"""The README's screenshot (docs/images/flow-run.png) is the Task Runs page at this scale (small to commit)."""
SERVER_STARTUP_TIMEOUT = 300.0
"""Seconds for `prefect server start` to answer (its migrations take minutes on a loaded 2-core machine)."""
PAGE_TIMEOUT = 60.0
"""Seconds a page has to show what is checked."""
FIRST_LOG_LINE = "Beginning flow run"
"""In the flow run page's Logs tab (shown first), not in its other tabs."""


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


def wait_for(
    predicate: Callable[[], Any], what: str, timeout: float, process: subprocess.Popen[bytes] | None
) -> Any:
    """Poll ``predicate`` until truthy; fail if ``process`` (when given) exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
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
        healthy = partial(_healthy, f"{base}/api/health")
        wait_for(healthy, "the Prefect server's /api/health", SERVER_STARTUP_TIMEOUT, process)
        yield base, process
    finally:
        stop(process)


@dataclass(frozen=True)
class Story:
    """What ``run_assistant`` left on the server: the ids the pages are opened with, and what the API says."""

    run_id: str
    artifact_id: str
    flow_run_id: str
    task_run_names: list[str]
    event_names: list[str]
    artifact_description: str


def run_one_flow(api_url: str) -> Story:
    """Run ``run_assistant`` once against the emulator (one tool call, then the reply); read back its story."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterId,
    )
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefect_openai_runs import OpenAICredentials
    from prefect_openai_runs._recording import artifact_key
    from prefect_openai_runs._recording._writer import flush
    from prefect_openai_runs.flows import run_assistant
    from prefect_openai_runs.testing import RunScript, RunsEmulator, ToolCallSpec

    reply = RunScript(queued_seconds=0.2, in_progress_seconds=1.0, reply_text=REPLY, usage=(40, 12))
    script = RunScript(
        queued_seconds=0.3,
        in_progress_seconds=0.5,
        outcome="requires_action",
        tool_calls=[ToolCallSpec(name=TOOL, arguments='{"service": "billing"}')],
        then=reply,
    )
    with temporary_settings(updates={PREFECT_API_URL: api_url}), RunsEmulator() as emulator:
        emulator.add_script(script)
        OpenAICredentials(api_key=emulator.api_key, base_url=emulator.base_url, timeout=10.0).save(
            "emulator", overwrite=True
        )
        run = run_assistant(
            "emulator",
            emulator.default_assistant_id,
            messages=["What happened in the release?"],
            tool_handlers={TOOL: lambda service: f"{service}: deployed at 09:00, no incidents"},
        )
        flush()  # the artifacts' writes and the events are queued in this process until sent
        EventsWorker.drain_all(timeout=30)
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key(run.id)]))
            )
            latest = max(artifacts, key=lambda a: a.created or 0)
            flow_run_id = latest.flow_run_id
            task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        event_names = wait_for(
            lambda: _event_names(api_url, run.id, RUN_EVENTS), "the run's events on the server", 60, None
        )
        return Story(
            run_id=run.id,
            artifact_id=str(latest.id),
            flow_run_id=str(flow_run_id),
            task_run_names=sorted(t.name for t in task_runs),
            event_names=event_names,
            artifact_description=latest.description or "",
        )


def _event_names(api_url: str, run_id: str, expected: tuple[str, ...]) -> list[str] | None:
    """The names of the OpenAI run's events on the server, once ``expected`` are all there."""
    reply = httpx.post(
        f"{api_url}/events/filter",
        json={"filter": {"resource": {"id": [f"openai.run.{run_id}"]}}, "limit": 50},
        timeout=10.0,
    )
    names = sorted({event["event"] for event in reply.json().get("events", [])}) if reply.is_success else []
    return names if set(expected) <= set(names) else None


class Browser:
    """Headless Chromium with one page, driven over the DevTools protocol (a websocket on loopback)."""

    def __init__(self, chromium: str, profile: Path, size: tuple[int, int]) -> None:
        from websockets.sync.client import connect

        profile.mkdir(parents=True, exist_ok=True)
        self.size = size
        with (profile.parent / f"{profile.name}.log").open("wb") as out:
            self.process = subprocess.Popen(
                [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                 f"--window-size={size[0]},{size[1]}", "about:blank"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        port_file = profile / "DevToolsActivePort"
        port = wait_for(lambda: _first_line(port_file), "Chromium's DevTools port", 60, self.process)
        pages = wait_for(
            lambda: [t for t in _json(f"http://127.0.0.1:{port}/json/list") if t.get("type") == "page"],
            "Chromium's first page", 30, self.process,
        )
        self.socket = connect(pages[0]["webSocketDebuggerUrl"], max_size=None, proxy=None, open_timeout=30)
        self._next_id = 0
        metrics = {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False}
        self.call("Emulation.setDeviceMetricsOverride", **metrics)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.socket.close()
        stop(self.process)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (events arriving meanwhile are skipped)."""
        self._next_id += 1
        self.socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"DevTools {method} failed: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def open(self, url: str, ready: Callable[[str], bool], what: str) -> str:
        """Navigate to ``url``; its visible text once ``ready`` holds (see :meth:`wait_text`)."""
        self.call("Page.navigate", url=url)
        return self.wait_text(ready, what)

    def click_tab(self, label: str, ready: Callable[[str], bool], what: str) -> str:
        """Click the page's tab named ``label`` once it is shown; the visible text once ``ready`` holds.

        The flow run page shows its Task Runs and Artifacts tabs only once the flow run is loaded (a
        ``?tab=`` in the URL is reset before that), so the tab is clicked, as a user would.
        """
        click = f"""(() => {{
            const tab = [...document.querySelectorAll('[role="tablist"] li, [role="tab"], button')]
                .find(e => (e.innerText || '').trim() === {json.dumps(label)});
            if (tab) tab.click();
            return tab ? 'clicked' : '';
        }})()"""
        if not self.poll(lambda: self.evaluate(click), f"the {label} tab"):
            return ""
        return self.wait_text(ready, what)

    def wait_text(self, ready: Callable[[str], bool], what: str) -> str:
        """Poll the page's visible text until ``ready`` holds; returns it (the last text on timeout: the
        page's checks then say what is missing)."""
        texts = [""]

        def text_ready() -> bool:
            texts[0] = self.evaluate("document.body ? document.body.innerText : ''")
            return ready(texts[0])

        self.poll(text_ready, what)
        return texts[0]

    @staticmethod
    def poll(predicate: Callable[[], Any], what: str, timeout: float = PAGE_TIMEOUT) -> Any:
        """Poll ``predicate`` every quarter second until truthy; logs and returns falsy on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        if not value:
            log(f"FAIL {what}: not shown within {timeout:.0f}s")
        return value

    def evaluate(self, expression: str) -> str:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return str(result.get("result", {}).get("value") or "")

    def screenshot(self, path: Path, scale: float = 1.0) -> None:
        """The viewport as a PNG, scaled (0.5 halves each side)."""
        width, height = self.size
        clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": scale}
        data = self.call("Page.captureScreenshot", format="png", clip=clip)["data"]
        path.write_bytes(base64.b64decode(data))
        log(f"screenshot {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def _first_line(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(path.read_text().splitlines()[0])
    return None


def _json(url: str) -> list[dict[str, Any]]:
    try:
        data: list[dict[str, Any]] = httpx.get(url, timeout=5.0).json()
        return data
    except (httpx.HTTPError, ValueError):
        return []


def visible_text(dom: str) -> str:
    """The DOM's text, tags and scripts removed, whitespace collapsed."""
    dom = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", dom)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"(?s)<[^>]+>", " ", dom)))


def report(checks: dict[str, bool]) -> list[str]:
    """Log each check; returns the failed ones."""
    for name, ok in checks.items():
        log(f"{'ok  ' if ok else 'FAIL'} {name}")
    return [name for name, ok in checks.items() if not ok]


def check_task_runs(text: str, story: Story) -> list[str]:
    """The flow run's Task Runs tab: the flow's steps, as the API has them."""
    names = story.task_run_names
    return report({
        f"the API has the flow's steps as task runs ({', '.join(names)})": all(
            any(n.startswith(step) for n in names) for step in TASK_STEPS
        ),
        "the Task Runs tab lists every one of them": bool(names)
        and all(n in text for n in names)
        and FIRST_LOG_LINE not in text,
    })


def check_artifacts(text: str, story: Story) -> list[str]:
    """The flow run's Artifacts tab: the run's card, its description starting with the status."""
    return report({
        f"the card's description starts with the status ({story.artifact_description!r})":
            story.artifact_description.replace("\\", "").startswith(f"completed · {story.run_id}"),
        "the Artifacts tab shows it (completed · run id)":
            re.search(rf"completed\s*·\s*{re.escape(story.run_id)}", text) is not None,
    })


def check_events(text: str, story: Story) -> list[str]:
    """The event feed filtered on the OpenAI run: its openai.run.* events."""
    return report({
        f"the API has the run's events ({', '.join(story.event_names)})": set(RUN_EVENTS) <= set(story.event_names),
        "the event feed lists every one of them": bool(story.event_names)
        and all(name in text for name in story.event_names),
    })


def check_artifact_page(dom: str, run_id: str) -> list[str]:
    """The run artifact's page: what the markdown must show, rendered."""
    text = visible_text(dom)
    return report({
        "the run id": run_id in text,
        "the final status (completed)": re.search(rf"OpenAI run\s+{re.escape(run_id)}\s*:\s*completed", text)
        is not None,
        "why it ended": "Why it ended this way: ended completed" in text,
        "the status timeline heading": "Status timeline" in text,
        "a timeline row per status": all(re.search(rf"\b{s}\s+\d{{4}}-\d\d-\d\d", text) for s in
                                         ("queued", "in_progress", "requires_action", "completed")),
        "the token usage": "total 52" in text,
        "the reply": REPLY in text,
        "rendered as a table": "<table" in dom and "<td" in dom,
    })


def check_ui(chromium: str, base: str, story: Story, out: Path, profile: Path) -> list[str]:
    """Open each page in one browser, check it, save its screenshot; returns the failed checks."""
    flow_run = f"{base}/runs/flow-run/{story.flow_run_id}"
    browser = Browser(chromium, profile, WINDOW)
    failures: list[str] = []
    try:
        log(f"flow run page: {flow_run}")
        browser.open(flow_run, lambda t: "Task Runs" in t and "Artifacts" in t, "the flow run page")
        # The Logs tab (shown first) names the task runs too; the Task Runs tab replaces it.
        text = browser.click_tab(
            "Task Runs",
            lambda t: all(n in t for n in story.task_run_names) and FIRST_LOG_LINE not in t,
            "the task runs",
        )
        browser.screenshot(out / "flow-run-task-runs.png")
        browser.screenshot(ROOT / "docs" / "images" / "flow-run.png", scale=DOCS_SCALE)
        failures += check_task_runs(text, story)

        text = browser.click_tab("Artifacts", lambda t: f"· {story.run_id}" in t, "the artifact card")
        browser.screenshot(out / "flow-run-artifacts.png")
        failures += check_artifacts(text, story)

        events = f"{base}/events?resource=openai.run.{story.run_id}"
        log(f"event feed: {events}")
        text = browser.open(events, lambda t: all(n in t for n in story.event_names), "the events")
        browser.screenshot(out / "events.png")
        failures += check_events(text, story)

        artifact = f"{base}/artifacts/artifact/{story.artifact_id}"
        log(f"run artifact: {artifact}")
        browser.open(artifact, lambda t: "Status timeline" in t and REPLY in t, "the run artifact")
        browser.screenshot(out / "run-artifact.png")
        failures += check_artifact_page(browser.evaluate("document.documentElement.outerHTML"), story.run_id)
    finally:
        browser.close()
    return failures


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
    (ROOT / "docs" / "images").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ui-check-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        log(f"starting prefect server (PREFECT_HOME={home}) ...")
        with prefect_server(home) as (base, _server):
            log(f"server up at {base}; running run_assistant against the emulator ...")
            story = run_one_flow(f"{base}/api")
            log(f"OpenAI run {story.run_id}, flow run {story.flow_run_id}; opening the UI in {chromium} ...")
            failures = check_ui(chromium, base, story, args.out, Path(tmp) / "profile")
            if args.keep:
                input(f"Prefect UI at {base}/runs/flow-run/{story.flow_run_id}; Enter to stop. ")
    elapsed = time.monotonic() - started
    if failures:
        log(f"FAILED ({len(failures)} check(s)) in {elapsed:.1f}s: {', '.join(failures)}")
        return 1
    log(f"all checks passed in {elapsed:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
