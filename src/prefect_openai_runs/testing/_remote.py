"""Driving an emulator in another process: :class:`RemoteEmulator` and :func:`spawn_emulator_process`."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from typing import Any

import httpx

from ._batch_records import BatchRecord, FileRecord
from ._batch_scripts import BatchScript
from ._faults import FaultRule
from ._ratelimit import RateLimits
from ._records import RequestRecord, ResponseRecord, RunRecord
from ._response_scripts import ResponseScript
from ._scripts import RunScript

READY_PATTERN = re.compile(r"listening on (http://\S+/v1)")


class RemoteEmulator:
    """The inspection and configuration methods of :class:`RunsEmulator`, over ``/_emulator``.

    Args:
        base_url: The emulator's ``.../v1`` URL.
        timeout: HTTP timeout for control calls.
    """

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        root = self.base_url.removesuffix("/v1")
        self._http = httpx.Client(base_url=f"{root}/_emulator", timeout=timeout)
        info = self._get("/info")
        self.api_key: str = info["api_key"]
        self.default_assistant_id: str = info["default_assistant_id"]

    def _get(self, path: str, **params: str) -> Any:
        response = self._http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def _send(self, method: str, path: str, json: Any = None) -> None:
        self._http.request(method, path, json=json).raise_for_status()

    def runs(self) -> list[RunRecord]:
        """Every run, oldest first."""
        return [RunRecord.from_dict(r) for r in self._get("/runs")]

    def run(self, run_id: str) -> RunRecord:
        """One run.

        Raises:
            KeyError: If there is no such run.
        """
        response = self._http.get(f"/runs/{run_id}")
        if response.status_code == 404:
            raise KeyError(run_id)
        response.raise_for_status()
        return RunRecord.from_dict(response.json())

    def active_runs(self) -> list[RunRecord]:
        """Runs that are queued, in progress, waiting for tool outputs, or cancelling."""
        return [RunRecord.from_dict(r) for r in self._get("/runs", active="true")]

    def responses(self) -> list[ResponseRecord]:
        """Every response still kept, oldest first."""
        return [ResponseRecord.from_dict(r) for r in self._get("/responses")]

    def response(self, response_id: str) -> ResponseRecord:
        """One response.

        Raises:
            KeyError: If there is no such response.
        """
        response = self._http.get(f"/responses/{response_id}")
        if response.status_code == 404:
            raise KeyError(response_id)
        response.raise_for_status()
        return ResponseRecord.from_dict(response.json())

    @property
    def requests(self) -> list[RequestRecord]:
        """Every recorded ``/v1`` request, oldest first."""
        return [RequestRecord.from_dict(r) for r in self._get("/requests")]

    def request_count(self, method: str | None = None, path_regex: str | None = None) -> int:
        """How many recorded requests have this method and a path matching ``path_regex``."""
        pattern = re.compile(path_regex) if path_regex is not None else None
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method.upper()) and (pattern is None or pattern.search(r.path))
        )

    @property
    def counters(self) -> dict[str, int]:
        """The emulator's counters."""
        data: dict[str, int] = self._get("/counters")
        return data

    def add_script(
        self,
        script: RunScript,
        assistant_id: str | None = None,
        *,
        metadata: Mapping[str, str] | None = None,
        last_user_message_contains: str | None = None,
    ) -> None:
        """Add a script rule; over HTTP, matching is by metadata subset and/or last-message substring."""
        self._send(
            "POST",
            "/scripts",
            {
                "script": script.to_dict(),
                "assistant_id": assistant_id,
                "metadata": dict(metadata) if metadata else None,
                "last_user_message_contains": last_user_message_contains,
            },
        )

    def add_response_script(
        self,
        script: ResponseScript,
        model: str | None = None,
        *,
        metadata: Mapping[str, str] | None = None,
        input_contains: str | None = None,
    ) -> None:
        """Add a response script rule; over HTTP, matching is by model, metadata subset and/or input substring."""
        body = {
            "script": script.to_dict(),
            "model": model,
            "metadata": dict(metadata) if metadata else None,
            "input_contains": input_contains,
        }
        self._send("POST", "/response_scripts", body)

    def batches(self) -> list[BatchRecord]:
        """Every batch, oldest first."""
        return [BatchRecord.from_dict(r) for r in self._get("/batches")]

    def batch(self, batch_id: str) -> BatchRecord:
        """One batch (an HTTP 404 error if there is none)."""
        return BatchRecord.from_dict(self._get(f"/batches/{batch_id}"))

    def files(self) -> list[FileRecord]:
        """Every file, oldest first."""
        return [FileRecord.from_dict(r) for r in self._get("/files")]

    def add_batch_script(self, script: BatchScript, metadata: Mapping[str, str] | None = None) -> None:
        """Add a batch script rule (``fail_when`` does not travel over HTTP; use ``failing_ids``)."""
        self._send(
            "POST", "/batch_scripts", {"script": script.to_dict(), "metadata": dict(metadata) if metadata else None}
        )

    def add_fault(self, rule: FaultRule) -> None:
        """Arm a fault rule."""
        self._send("POST", "/faults", rule.to_dict())

    def clear_faults(self) -> None:
        """Disarm every fault rule."""
        self._send("DELETE", "/faults")

    @property
    def rate_limits(self) -> RateLimits:
        """The requests and tokens per minute enforced per API key; setting new limits refills every bucket."""
        return RateLimits(**self._get("/rate_limits"))

    @rate_limits.setter
    def rate_limits(self, limits: RateLimits) -> None:
        self._send("PUT", "/rate_limits", asdict(limits))

    def reset(self) -> None:
        """Forget all state but the default assistant."""
        self._send("POST", "/reset")

    def close(self) -> None:
        """Close the control client."""
        self._http.close()


def emulator_command(**options: Any) -> list[str]:
    """The command serving an emulator in the foreground with these ``emulator`` CLI options."""
    args = [sys.executable, "-m", "prefect_openai_runs.testing", "--port", str(options.pop("port", 0))]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is not None and value is not False:
            args += [flag, str(value)]
    return args


@contextlib.contextmanager
def spawn_emulator_process(timeout: float = 30.0, **options: Any) -> Iterator[RemoteEmulator]:
    """Serve an emulator from a subprocess (so its CPU is not the caller's) and drive it remotely.

    Args:
        timeout: Seconds to wait for the server to be ready.
        **options: ``emulator`` CLI options as keywords: ``port``, ``api_key``, ``poll_after_ms``,
            ``cancelling_delay``, ``expires_after``, ``queued_seconds``, ``in_progress_seconds``,
            ``rpm``, ``tpm``, ``rate_burst_seconds``, ``log_requests`` (True/False), ...

    Yields:
        A :class:`RemoteEmulator` for the subprocess' emulator.

    Raises:
        RuntimeError: If the subprocess exits or does not announce its URL in time.
    """
    process = subprocess.Popen(
        emulator_command(**options), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        base_url = _await_ready(process, timeout)
        remote = RemoteEmulator(base_url)
        try:
            yield remote
        finally:
            remote.close()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _await_ready(process: subprocess.Popen[str], timeout: float) -> str:
    import threading

    found: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            match = READY_PATTERN.search(line)
            if match:
                found.append(match.group(1))
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(timeout) or not found:
        raise RuntimeError(f"the emulator process did not start (exit code {process.poll()})")
    return found[0]
