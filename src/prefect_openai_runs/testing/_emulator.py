"""``RunsEmulator``: the emulator served from a background thread, with its thread-safe public surface."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from types import TracebackType

from ._batch_records import BatchRecord, FileRecord
from ._batch_scripts import BatchScript, BatchScriptRule
from ._core import DEFAULT_API_KEY, EmulatorConfig, EmulatorCore
from ._faults import FaultRule
from ._ratelimit import RateLimits
from ._records import RequestRecord, ResponseRecord, RunRecord
from ._response_scripts import ResponseMatcher, ResponseScript, ResponseScriptRule
from ._responses_api import ResponsesSettings
from ._routes import build_app
from ._scripts import Matcher, RunScript, ScriptRule
from ._uvicorn import BackgroundServer


class RunsEmulator:
    """An emulator of the OpenAI Assistants runs API (and of background responses, ``/v1/responses``),
    served over real HTTP on 127.0.0.1.

    Use it as a context manager (``with`` or ``async with``) or call :meth:`start` / :meth:`stop`.
    Point clients at :attr:`base_url` with :attr:`api_key`. Every method is safe to call from any
    thread; inspection methods return copies.

    Args:
        api_key: The key requests must carry (``Authorization: Bearer <key>`` or ``api-key: <key>``).
        port: The port to serve on; None picks a free one.
        poll_after_ms: If set, GET run and GET batch responses carry ``openai-poll-after-ms``.
        cancelling_delay: Seconds a run stays ``cancelling`` before ``cancelled``.
        expires_after: Seconds after creation a still-active run expires.
        default_script: What a run does when no script rule matches.
        require_beta_header: Whether requests need ``OpenAI-Beta: assistants=v2``.
        log_requests: Log one line per request to stderr.
        host: The interface to bind.
        request_log_limit: How many request records to keep (None: all).
        default_response_script: What a response does when no response script rule matches.
        resume_window: Seconds after creation a background response's stream can be resumed.
        unstored_retention: Seconds a response created with ``store: false`` stays retrievable.
        stored_retention: Seconds a stored response stays retrievable (None: for good).
        rpm: Requests per minute allowed per API key (None: no limit); more are answered 429.
        tpm: Tokens per minute allowed per API key (None: no limit), estimated from each request's body.
        rate_burst_seconds: How many seconds' worth of ``rpm`` / ``tpm`` a full bucket holds (60: a
            whole minute's budget may go at once; 1: the limit is enforced per second).
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        port: int | None = None,
        poll_after_ms: int | None = None,
        cancelling_delay: float = 0.05,
        expires_after: float = 600.0,
        default_script: RunScript | None = None,
        require_beta_header: bool = True,
        log_requests: bool = False,
        *,
        host: str = "127.0.0.1",
        request_log_limit: int | None = 100_000,
        default_response_script: ResponseScript | None = None,
        resume_window: float = 300.0,
        unstored_retention: float = 600.0,
        stored_retention: float | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        rate_burst_seconds: float = 60.0,
    ) -> None:
        self._core = EmulatorCore(
            EmulatorConfig(
                api_key=api_key,
                poll_after_ms=poll_after_ms,
                require_beta_header=require_beta_header,
                log_requests=log_requests,
                rate_limits=RateLimits(rpm=rpm, tpm=tpm, burst_seconds=rate_burst_seconds),
            ),
            default_script=default_script or RunScript(),
            cancelling_delay=cancelling_delay,
            expires_after=expires_after,
            request_log_limit=request_log_limit,
            default_response_script=default_response_script,
            responses_settings=ResponsesSettings(resume_window, unstored_retention, stored_retention),
        )
        self._host = host
        self._port = port
        self._server: BackgroundServer | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> RunsEmulator:
        """Start serving (no-op if already serving); returns once connections are accepted."""
        if self._server is not None and self._server.running:
            return self
        self._core.closing = asyncio.Event()
        server = BackgroundServer(build_app(self._core), self._host, self._port, self._core.close)
        server.start()
        self._server, self._port = server, server.port
        return self

    def stop(self) -> None:
        """Stop serving: open streams and hangs end, the thread exits. State is kept."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> RunsEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> RunsEmulator:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- where and how to connect -----------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port served on.

        Raises:
            RuntimeError: If the emulator never started.
        """
        if self._port is None:
            raise RuntimeError("the emulator is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, for ``OpenAI(base_url=...)``."""
        return f"http://{self._host}:{self.port}/v1"

    @property
    def control_url(self) -> str:
        """``http://127.0.0.1:PORT/_emulator``, the HTTP control surface."""
        return f"http://{self._host}:{self.port}/_emulator"

    @property
    def api_key(self) -> str:
        """The API key requests must carry."""
        return self._core.config.api_key

    @property
    def default_assistant_id(self) -> str:
        """An assistant that exists from the start (``asst_default``)."""
        return self._core.store.default_assistant_id

    # -- settings that may change while serving ----------------------------------------------------

    @property
    def poll_after_ms(self) -> int | None:
        """The ``openai-poll-after-ms`` hint on GET run and GET batch responses (None: no header)."""
        return self._core.config.poll_after_ms

    @poll_after_ms.setter
    def poll_after_ms(self, value: int | None) -> None:
        self._core.config.poll_after_ms = value

    @property
    def cancelling_delay(self) -> float:
        """Seconds a run stays ``cancelling`` unless its script says otherwise."""
        return self._core.machine.cancelling_delay

    @cancelling_delay.setter
    def cancelling_delay(self, value: float) -> None:
        self._core.machine.cancelling_delay = value

    @property
    def expires_after(self) -> float:
        """Seconds after creation a still-active run expires (applies to runs created afterwards)."""
        return self._core.api.expires_after

    @expires_after.setter
    def expires_after(self, value: float) -> None:
        self._core.api.expires_after = value

    @property
    def default_script(self) -> RunScript:
        """What a run does when no rule applies."""
        return self._core.scripts.default

    @default_script.setter
    def default_script(self, script: RunScript) -> None:
        self._core.scripts.default = script

    @property
    def rate_limits(self) -> RateLimits:
        """The requests and tokens per minute enforced per API key; setting new limits refills every bucket.

        Example:
            ```python
            emu.rate_limits = RateLimits(rpm=600, burst_seconds=1)
            ```
        """
        return self._core.config.rate_limits

    @rate_limits.setter
    def rate_limits(self, limits: RateLimits) -> None:
        self._core.config.rate_limits = limits

    # -- scripts and faults -----------------------------------------------------------------------

    def add_script(self, script: RunScript, assistant_id: str | None = None, match: Matcher | None = None) -> None:
        """Make runs that match follow ``script``; rules are checked newest first, the first match wins.

        Args:
            script: What matching runs do.
            assistant_id: Only runs of this assistant (None: any).
            match: Only runs for which ``match(CreateContext)`` is true (None: any).
        """
        self._core.scripts.add(ScriptRule(script, assistant_id, match))

    def add_response_script(
        self, script: ResponseScript, model: str | None = None, match: ResponseMatcher | None = None
    ) -> None:
        """Make responses that match follow ``script``; rules are checked newest first, the first match wins.

        Args:
            script: What matching responses do.
            model: Only responses requested with this model (None: any).
            match: Only responses for which ``match(ResponseContext)`` is true (None: any).
        """
        self._core.response_scripts.add(ResponseScriptRule(script, model, match))

    @property
    def default_response_script(self) -> ResponseScript:
        """What a response does when no rule applies."""
        return self._core.response_scripts.default

    @default_response_script.setter
    def default_response_script(self, script: ResponseScript) -> None:
        self._core.response_scripts.default = script

    @property
    def responses_settings(self) -> ResponsesSettings:
        """The resume window and retention of responses (attributes may be changed while serving)."""
        return self._core.responses.settings

    def add_batch_script(self, script: BatchScript, metadata: Mapping[str, str] | None = None) -> None:
        """Make batches that match follow ``script``; rules are checked newest first, the first match wins.

        Args:
            script: What matching batches do (phase durations, which requests fail, expiry).
            metadata: Only batches whose metadata holds these pairs (None: any batch).
        """
        self._core.batches.scripts.add(BatchScriptRule(script, dict(metadata) if metadata else None))

    @property
    def default_batch_script(self) -> BatchScript:
        """What a batch does when no batch script rule applies."""
        return self._core.batches.scripts.default

    @default_batch_script.setter
    def default_batch_script(self, script: BatchScript) -> None:
        self._core.batches.scripts.default = script

    @property
    def file_processing_seconds(self) -> float:
        """Seconds an uploaded file stays ``pending`` (as on Azure) before ``processed`` (0: never pending)."""
        return self._core.batches.file_processing_seconds

    @file_processing_seconds.setter
    def file_processing_seconds(self, value: float) -> None:
        self._core.batches.file_processing_seconds = value

    @property
    def file_processing_error(self) -> str | None:
        """When set, files uploaded from now on fail processing: ``error`` (after
        :attr:`file_processing_seconds`) with this as their ``status_details``. ``None``: they succeed."""
        return self._core.batches.file_processing_error

    @file_processing_error.setter
    def file_processing_error(self, value: str | None) -> None:
        self._core.batches.file_processing_error = value

    def add_fault(self, rule: FaultRule) -> None:
        """Arm a fault rule (see :class:`FaultRule`)."""
        self._core.faults.add(rule)

    def clear_faults(self) -> None:
        """Disarm every fault rule."""
        self._core.faults.clear()

    def reset(self) -> None:
        """Forget runs, threads, messages, responses, files, batches, requests, counters, script rules and faults.

        The default assistant, the default scripts and the settings stay. Open streams end.
        """
        if self._server is not None:
            self._server.call(self._core.reset)
        else:
            self._core.reset()

    # -- inspection -------------------------------------------------------------------------------

    def runs(self) -> list[RunRecord]:
        """Every run, oldest first."""
        return self._core.run_records()

    def run(self, run_id: str) -> RunRecord:
        """One run.

        Raises:
            KeyError: If there is no such run.
        """
        return self._core.run_record(run_id)

    def active_runs(self) -> list[RunRecord]:
        """Runs that are queued, in progress, waiting for tool outputs, or cancelling."""
        return self._core.run_records(active_only=True)

    def responses(self) -> list[ResponseRecord]:
        """Every response still kept (not deleted, within retention), oldest first."""
        return self._core.response_records()

    def response(self, response_id: str) -> ResponseRecord:
        """One response.

        Raises:
            KeyError: If there is no such response (deleted, or past its retention).
        """
        return self._core.response_record(response_id)

    def batches(self) -> list[BatchRecord]:
        """Every batch, oldest first."""
        return BatchRecord.all(self._core.batches)

    def batch(self, batch_id: str) -> BatchRecord:
        """One batch.

        Raises:
            KeyError: If there is no such batch.
        """
        return BatchRecord.one(self._core.batches, batch_id)

    def files(self) -> list[FileRecord]:
        """Every file (uploads, outputs and error files), oldest first."""
        return FileRecord.all(self._core.batches)

    def file_content(self, file_id: str) -> bytes:
        """The bytes of one file.

        Raises:
            KeyError: If there is no such file.
        """
        with self._core.lock:
            return self._core.batches.store.files[file_id].content

    @property
    def requests(self) -> list[RequestRecord]:
        """Every ``/v1`` request received (most recent ``request_log_limit``), oldest first."""
        return self._core.log.records()

    def request_count(self, method: str | None = None, path_regex: str | None = None) -> int:
        """How many recorded requests have this method and a path matching ``path_regex`` (search)."""
        pattern = re.compile(path_regex) if path_regex is not None else None
        return sum(
            1
            for r in self._core.log.records()
            if (method is None or r.method == method.upper()) and (pattern is None or pattern.search(r.path))
        )

    @property
    def counters(self) -> dict[str, int]:
        """Counters such as ``requests``, ``runs_created``, ``cancels``, ``faults``, ``runs_completed``."""
        return self._core.log.counters()

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        return f"RunsEmulator({where})"
