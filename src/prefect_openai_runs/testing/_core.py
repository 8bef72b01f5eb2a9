"""The emulator's parts wired together, independent of how (and in which thread) it is served."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from ._batch_api import BatchesApi, BatchStore
from ._batch_scripts import BatchScriptBook
from ._events import EventHub
from ._faults import FaultBook
from ._machine import RunMachine
from ._ratelimit import RateLimiter, RateLimits
from ._records import RequestLog, ResponseRecord, RunRecord
from ._response_scripts import ResponseScript, ResponseScriptBook
from ._responses_api import ResponsesApi, ResponsesSettings
from ._responses_machine import ResponseMachine
from ._runs_api import RunsApi
from ._scripts import RunScript, RunScriptBook
from ._spec import preload as preload_spec
from ._store import Store

DEFAULT_API_KEY = "sk-emu-7Hq2Lx9KpV4mZ8rT"
"""The emulator's key: a recognisable fake, so that tests can scan everything they produce for it."""
DEFAULT_ASSISTANT_ID = "asst_default"


@dataclass
class EmulatorConfig:
    """Settings read per request (safe to change while serving).

    Attributes:
        api_key: The key requests must carry.
        poll_after_ms: If set, GET run and GET batch responses carry ``openai-poll-after-ms``.
        require_beta_header: Whether ``OpenAI-Beta: assistants=v2`` is required (never on ``/v1/responses``,
            ``/v1/files`` and ``/v1/batches``, which are not Assistants endpoints).
        log_requests: Whether to log one line per request to stderr.
        rate_limits: Requests and tokens per minute enforced per API key (unset: none).
    """

    api_key: str = DEFAULT_API_KEY
    poll_after_ms: int | None = None
    require_beta_header: bool = True
    log_requests: bool = False
    rate_limits: RateLimits = field(default_factory=RateLimits)


class EmulatorCore:
    """Store, scheduler, API operations, scripts, faults and request log of one emulator.

    Args:
        config: Per-request settings.
        default_script: What a run does when no script rule applies.
        cancelling_delay: Seconds a run stays ``cancelling``.
        expires_after: Seconds after creation an active run expires.
        request_log_limit: How many requests to keep (None: all).
        default_response_script: What a response does when no response script rule applies.
        responses_settings: Resume window and retention of responses.
    """

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        default_script: RunScript,
        cancelling_delay: float,
        expires_after: float,
        request_log_limit: int | None = 100_000,
        default_response_script: ResponseScript | None = None,
        responses_settings: ResponsesSettings | None = None,
    ) -> None:
        preload_spec()  # before serving: the first request must not pay for parsing the spec
        self.config = config
        self.lock = threading.RLock()
        self.store = Store(default_assistant_id=DEFAULT_ASSISTANT_ID)
        self.hub = EventHub()
        self.log = RequestLog(request_log_limit)
        self.scripts = RunScriptBook(default_script)
        self.faults = FaultBook()
        self.limiter = RateLimiter(lambda: self.config.rate_limits)
        self.machine = RunMachine(self.store, self.hub, self.log, self.lock, cancelling_delay)
        self.api = RunsApi(self.store, self.machine, self.hub, self.scripts, self.lock, expires_after)
        self.response_scripts = ResponseScriptBook(default_response_script or ResponseScript())
        self.responses = ResponsesApi(
            ResponseMachine({}, EventHub(), self.log, self.lock),
            self.response_scripts,
            self.lock,
            responses_settings or ResponsesSettings(),
        )
        self.batches = BatchesApi(BatchStore(), BatchScriptBook(), self.log, self.lock)
        self.closing = asyncio.Event()

    def reset(self) -> None:
        """Forget runs, threads, responses, files, batches, requests, counters, script rules, faults and rate
        buckets (loop thread only)."""
        with self.lock:
            self.machine.reset()
            self.store.reset()
            self.responses.reset()
        self.batches.reset()
        self.scripts.clear()
        self.response_scripts.clear()
        self.faults.clear()
        self.limiter.reset()
        self.log.clear()

    def close(self) -> None:
        """End streams and hangs so the server can stop promptly (loop thread only)."""
        self.closing.set()
        with self.lock:
            self.hub.close_all()
            self.responses.machine.hub.close_all()

    def run_records(self, *, active_only: bool = False) -> list[RunRecord]:
        """Snapshots of every run (or only active ones), oldest first."""
        with self.lock:
            if active_only:
                return [RunRecord.of(self.store.runs[i]) for i in self.store.active_run_ids]
            return [RunRecord.of(run) for run in self.store.runs.values()]

    def run_record(self, run_id: str) -> RunRecord:
        """Snapshot of one run.

        Raises:
            KeyError: If there is no such run.
        """
        with self.lock:
            return RunRecord.of(self.store.runs[run_id])

    def response_records(self) -> list[ResponseRecord]:
        """Snapshots of every response still kept, oldest first."""
        with self.lock:
            return [ResponseRecord.of(r) for r in self.responses.responses.values() if self.responses.kept(r)]

    def response_record(self, response_id: str) -> ResponseRecord:
        """Snapshot of one response.

        Raises:
            KeyError: If there is no such response (or it is no longer kept).
        """
        with self.lock:
            found = self.responses.responses.get(response_id)
            if found is None or not self.responses.kept(found):
                raise KeyError(response_id)
            return ResponseRecord.of(found)
