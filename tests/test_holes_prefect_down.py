"""The safety net does not depend on the Prefect server, end to end (issue 11, hole 16).

``run_assistant`` follows a run while the Prefect server goes away (a TCP relay between the flow and the
session's real server is taken down three seconds in): its deadline still cancels the OpenAI run on time.
The server comes back once the cancel was seen, so the flow run's own state updates (Prefect's, retried by
its client) get through and the flow ends.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_API_URL, temporary_settings

from emulator_helpers import wait_for
from flow_helpers import assert_nothing_active
from prefect_openai_runs import OpenAICredentials
from prefect_openai_runs.exceptions import JobTimedOut
from prefect_openai_runs.flows import run_assistant
from prefect_openai_runs.testing import RunScript, RunsEmulator
from tcp_relay import TcpRelay

DEADLINE = 6.0
SLACK = 2.5


@pytest.mark.usefixtures("prefect_server")
def test_the_deadline_cancels_the_run_while_the_prefect_server_is_away(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_script(RunScript(in_progress_seconds=60))
    api = httpx.URL(str(PREFECT_API_URL.value()))
    relay = TcpRelay((api.host, api.port or 80))
    relay.up()  # and left up after the test: Prefect's log and event workers for its URL may still send
    cut_at: list[float] = []

    def server_away_then_back() -> None:
        record = wait_for(lambda: next(iter(runs_emulator.runs()), None), timeout=60)
        wait_for(lambda: time.time() - record.created_at_precise >= 3.0, timeout=10)
        relay.down()
        cut_at.append(time.time())
        wait_for(lambda: runs_emulator.run(record.id).status in ("cancelling", "cancelled"), timeout=60)
        relay.up()

    outage = threading.Thread(target=server_away_then_back, daemon=True)
    outage.start()
    with temporary_settings({PREFECT_API_URL: str(api.copy_with(port=relay.port))}):
        with pytest.raises(JobTimedOut):
            run_assistant(
                credentials, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=DEADLINE
            )
        outage.join(timeout=60)
        EventsWorker.drain_all(timeout=30)  # no worker stays bound to the relay's URL

    assert cut_at, "the run never started"
    [record] = runs_emulator.runs()
    assert record.cancel_requested_at is not None, "never cancelled"
    cancel = record.cancel_requested_at
    assert cancel - record.created_at_precise < DEADLINE + SLACK, (
        f"cancelled {cancel - record.created_at_precise:.1f}s after the create, the Prefect server away since "
        f"{cut_at[0] - record.created_at_precise:.1f}s, with a {DEADLINE:g}s deadline"
    )
    assert runs_emulator.run(record.id).status == "cancelled"
    assert_nothing_active(runs_emulator)
