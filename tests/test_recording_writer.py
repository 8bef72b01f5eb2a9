"""The safety net does not depend on the Prefect server (issue 11, hole 16).

The session's real Prefect server is reached through a TCP relay that is taken down in the middle (to
the client, the server is gone: connections refused, open ones cut): every write and event returns at
once, what could not be written is logged locally with the job's ids, the registry still knows this
process's jobs, and once the server answers again on the same URL (the relay back on its port)
everything is written, with progress coalesced to its latest value. The writer's own rules
(coalescing, bounded backlog that never drops a job's record) are checked with writes that block until
released.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from uuid import UUID

import httpx
import pytest
from prefect import flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_API_URL, temporary_settings

from flow_helpers import wait_until
from prefect_openai_runs import StatusChange
from prefect_openai_runs._recording import (
    JobRef,
    PrefectWriter,
    ProgressReporter,
    emit_job_event,
    emit_status_event,
    flush,
    get_writer,
    job_artifact_key,
    record_created,
    registered_jobs,
    run_view,
    write_job_artifact,
)
from prefect_openai_runs._recording._artifacts import CREATED_WAIT_SECONDS
from prefect_openai_runs.models import Run, RunStatus
from tcp_relay import TcpRelay

FAST = 0.05
"""Each call that touches the Prefect API must return within this (seconds), server or not."""


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def library_log() -> Iterator[_Records]:
    handler = _Records()
    logger = logging.getLogger("prefect_openai_runs")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def _run(status: str, run_id: str) -> Run:
    return Run.model_validate(
        {"id": run_id, "created_at": 1_700_000_000, "thread_id": "thread_w", "assistant_id": "asst_w", "status": status}
    )


def _timed(call: object, *args: object, **kwargs: object) -> float:
    started = time.perf_counter()
    call(*args, **kwargs)  # type: ignore[operator]
    return time.perf_counter() - started


@pytest.mark.usefixtures("prefect_server")
def test_a_stopped_prefect_server_blocks_nothing_and_gets_every_record_once_back(
    library_log: _Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_writer(), "max_backoff", 1.0)  # retry often, to see the restart soon
    api = httpx.URL(str(PREFECT_API_URL.value()))
    relay = TcpRelay((api.host, api.port or 80))
    relay.up()  # and left up after the test: Prefect's log and event workers for its URL may still send
    with temporary_settings({PREFECT_API_URL: str(api.copy_with(port=relay.port))}):

        @flow
        def pipeline() -> UUID:
            from prefect.context import get_run_context

            return get_run_context().flow_run.id  # type: ignore[union-attr]

        flow_run_id = pipeline()
        before = _run("queued", "run_before")
        record_created(before, flow_run_id=flow_run_id)
        assert flush(20)

        relay.down()  # the server goes away three seconds into a followed run, say

        final = run_view(_run("completed", "run_before"))
        later = run_view(_run("queued", "run_later"))
        progress = ProgressReporter("run_before", 600, flow_run_id=flow_run_id)
        change = StatusChange(RunStatus.COMPLETED, time.time(), 3.0)
        durations = [
            _timed(write_job_artifact, final, [change], "ended completed", flow_run_id=flow_run_id),
            *(_timed(progress.update, 6.0 * n, force=True) for n in range(1, 20)),
            _timed(progress.finish, "completed", 120.0),
            _timed(emit_status_event, final, change, "deadline: max_wait_seconds passed", flow_run_id),
            _timed(emit_job_event, later, "created", None, None, flow_run_id),
        ]
        assert max(durations) < FAST, f"a call took {max(durations):.3f}s with the server down"
        # a new job's record waits a little for the server, bounded, and not at all once it is known down
        assert _timed(record_created, later, flow_run_id=flow_run_id) < CREATED_WAIT_SECONDS + FAST
        wait_until(lambda: get_writer().stats.failures > 0)
        assert _timed(record_created, later, flow_run_id=flow_run_id) < FAST

        # logged locally at once, with the kind, the ids and the status
        for logged in (
            "of OpenAI run run_before (thread_w), completed",
            "of OpenAI run run_later (thread_w), queued",
        ):
            wait_until(
                lambda logged=logged: any(
                    m.startswith("Could not write") and logged in m for m in library_log.messages
                ),
                timeout=20,
            )
        # this process still knows its jobs, without the server
        assert {JobRef("run", "run_before", "thread_w"), JobRef("run", "run_later", "thread_w")} <= set(
            registered_jobs(flow_run_id)
        )
        assert not flush(0.2)

        relay.up()  # back, on the same URL
        assert flush(60)
        EventsWorker.drain_all(timeout=30)  # what was emitted meanwhile leaves while the server is up

        with get_client(sync_client=True) as client:
            cards = _cards(client, flow_run_id)
        assert cards[job_artifact_key("run", "run_before")].startswith("completed · run_before")
        assert cards[job_artifact_key("run", "run_later")].startswith("queued · run_later")
        assert float(cards["progress"]) == 100.0
        assert any("Written to the Prefect API after" in m and "run_before" in m for m in library_log.messages)
        EventsWorker.drain_all(timeout=30)  # no worker stays bound to the relay's URL


@pytest.mark.usefixtures("prefect_server")
def test_a_request_the_server_never_answers_is_given_up_after_the_writers_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every attempt is bounded by the writer's timeout. A first attempt through the flow run's own client
    was not (Prefect's request timeout, a minute): one request a loaded server never answered kept a
    card's write busy past a task's flush."""
    monkeypatch.setattr(get_writer(), "timeout", 1.0)
    api = httpx.URL(str(PREFECT_API_URL.value()))
    relay = TcpRelay((api.host, api.port or 80))
    relay.up()  # left up after the test: Prefect's log and event workers for its URL may still send
    with temporary_settings({PREFECT_API_URL: str(api.copy_with(port=relay.port))}):

        @flow
        def pipeline() -> None:
            relay.black_hole(b"GET /api/hello")
            get_writer().submit("test-unanswered-request", lambda client: client.hello(), "a hello")

        pipeline()
        started = time.monotonic()
        assert flush(15), "the write waited on a request the server never answers"
        assert relay.swallowed == 1
        assert time.monotonic() - started < 10
        EventsWorker.drain_all(timeout=30)  # no worker stays bound to the relay's URL


@pytest.mark.usefixtures("prefect_server")
def test_a_server_slower_than_the_first_timeout_still_gets_the_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loaded server answering later than the first attempt's timeout: each attempt in a row waits twice
    as long, so the write gets through instead of timing out forever."""
    monkeypatch.setattr(get_writer(), "timeout", 0.4)
    api = httpx.URL(str(PREFECT_API_URL.value()))
    relay = TcpRelay((api.host, api.port or 80))
    relay.up()
    relay.delay(b"GET /api/hello", 1.2)  # answered 1.2 s late: attempts of 0.4 and 0.8 s time out, 1.6 s does not
    failures = get_writer().stats.failures
    with temporary_settings({PREFECT_API_URL: str(api.copy_with(port=relay.port))}):
        get_writer().submit("test-slow-request", lambda client: client.hello(), "a hello")
        assert flush(20), "every attempt timed out"
    assert get_writer().stats.failures - failures == 2


def _cards(client: SyncPrefectClient, flow_run_id: UUID) -> dict[str, str]:
    found = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    )
    assert len([a for a in found if a.type == "markdown"]) == 2  # one card per job, not one per write
    return {a.key or str(a.type): str(a.description) if a.key else str(a.data) for a in found}


def _blocked_writer(**settings: float) -> tuple[PrefectWriter, threading.Event]:
    """A writer (one worker) whose worker is held inside a first write until the event is set."""
    writer = PrefectWriter(workers=1, **settings)  # type: ignore[arg-type]
    release, started = threading.Event(), threading.Event()

    def hold(_: SyncPrefectClient) -> None:
        started.set()
        release.wait(30)

    writer.submit("hold", hold, "the held write")
    assert started.wait(10)
    return writer, release


@pytest.mark.usefixtures("prefect_server")
def test_progress_updates_are_coalesced_to_the_latest_value() -> None:
    writer, release = _blocked_writer()
    written: list[int] = []

    durations = [_timed(writer.submit, "bar", lambda _, n=n: written.append(n), "progress", False) for n in range(50)]
    assert max(durations) < FAST
    release.set()
    assert writer.flush(20)

    assert written == [49]


@pytest.mark.usefixtures("prefect_server")
def test_a_full_backlog_drops_the_oldest_progress_updates_never_a_job_record() -> None:
    writer, release = _blocked_writer(max_pending=3)
    written: list[str] = []

    def submit(slot: str, essential: bool) -> float:
        return _timed(writer.submit, slot, lambda _: written.append(slot), slot, essential)

    durations = [submit("bar0", False), submit("bar1", False), *(submit(f"job{n}", True) for n in range(5))]
    durations.append(submit("bar2", False))
    assert max(durations) < FAST
    release.set()
    assert writer.flush(20)

    assert sorted(written) == [f"job{n}" for n in range(5)]  # past the bound, yet every record is written
    assert writer.stats.dropped == 3


@pytest.mark.usefixtures("prefect_server")
def test_a_failed_write_is_retried_with_backoff_until_it_succeeds(library_log: _Records) -> None:
    writer = PrefectWriter(workers=2, first_backoff=0.01, max_backoff=0.05)
    attempts: list[float] = []

    def flaky(_: SyncPrefectClient) -> None:
        attempts.append(time.monotonic())
        if len(attempts) < 4:
            raise ConnectionError("server restarting")

    writer.submit("job", flaky, "artifact of OpenAI batch batch_1, in_progress")
    assert writer.flush(10)

    assert len(attempts) == 4 and writer.stats.failures == 3
    assert attempts[3] - attempts[0] >= 0.01 + 0.02 + 0.04  # waited between attempts, doubling
    warnings = [m for m in library_log.messages if "Could not write" in m]
    assert warnings and "batch_1" in warnings[0] and "in_progress" in warnings[0]
    assert any("after 4 attempt(s)" in m for m in library_log.messages)
