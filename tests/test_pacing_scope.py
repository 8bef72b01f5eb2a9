"""Issue 15: rate pacing on by default, one budget per Prefect flow run (unrelated flow runs never hold each
other back), the registry of budgets bounded, and no wait for a turn past a job's deadline. Real HTTP to
the emulator."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from prefect import flow, task

from conftest import FAKE_KEY
from flow_helpers import assert_nothing_active
from prefect_openai_runs import OpenAICredentials, RunStatus, RunTimedOut
from prefect_openai_runs.client._pacing import MAX_BUDGETS, RateBudget, budget_count, shared_budget
from prefect_openai_runs.flows import run_assistant, run_assistant_fan_out
from prefect_openai_runs.testing import FaultRule, RateLimits, RunScript, RunsEmulator

pytestmark = pytest.mark.usefixtures("prefect_server")

THREADS = r"^/v1/threads$"
RUN = r"^/v1/threads/[^/]+/runs/run_[^/]+$"
CREATE = r"^/v1/threads/[^/]+/runs$"


@pytest.fixture
def credentials(credentials: OpenAICredentials) -> OpenAICredentials:
    """The suite's credentials, paced (as by default, whatever the suite's fixture says)."""
    return credentials.model_copy(update={"pace_requests": True})


def _budget(client: object) -> RateBudget:
    budget = getattr(client, "_budget", None)
    assert isinstance(budget, RateBudget), "the client is not paced"
    return budget


def test_the_clients_of_one_flow_run_share_a_budget_and_other_flow_runs_have_their_own(
    credentials: OpenAICredentials,
) -> None:
    @task
    def budget_in_a_task() -> RateBudget:
        with credentials.get_client() as client:
            return _budget(client)

    @flow
    def budgets_of_a_flow_run() -> tuple[RateBudget, RateBudget, RateBudget]:
        with credentials.get_client() as one, credentials.get_responses_client() as other:
            return _budget(one), _budget(other), budget_in_a_task()

    first = budgets_of_a_flow_run()
    second = budgets_of_a_flow_run()
    with credentials.get_client() as outside:
        process = _budget(outside)

    assert first[0] is first[1] is first[2]  # one flow run, its tasks included: one budget
    assert second[0] is second[1] is second[2]
    assert len({id(first[0]), id(second[0]), id(process)}) == 3
    with OpenAICredentials(api_key=FAKE_KEY, pace_requests=False).get_client() as unpaced:
        assert unpaced._budget is None


async def test_a_429_in_one_flow_run_backs_off_its_own_requests_not_another_flow_runs(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=THREADS, status=429, headers={"retry-after": "2"}, times=1))
    refused = asyncio.Event()

    @flow
    async def refused_then_held() -> float:
        async with credentials.get_async_client() as client:
            budget = _budget(client)
            first = asyncio.ensure_future(client.create_thread())  # 429, retried in 2 s
            while budget.state().resume_at is None:
                await asyncio.sleep(0.005)
            refused.set()
            started = time.monotonic()
            await client.create_thread()  # waits for the shared retry moment
            held = time.monotonic() - started
            await first
            return held

    @flow
    async def unrelated() -> float:
        await refused.wait()
        started = time.monotonic()
        async with credentials.get_async_client() as client:
            thread = await client.create_thread()
            await client.add_message(thread.id, "hi")
            await client.create_thread()
        return time.monotonic() - started

    held, other = await asyncio.gather(refused_then_held(), unrelated())

    assert held >= 1.5, f"the refused flow run's next request went after {held:.2f}s, not at the retry moment"
    assert other < 1.0, f"the unrelated flow run took {other:.2f}s: held behind the other's retry-after"
    assert runs_emulator.request_count("POST", THREADS) == 5  # the refused create and its retry, three others


@pytest.mark.timeout(120)
def test_a_paced_fan_out_meets_almost_no_429(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.rate_limits = RateLimits(rpm=1800, burst_seconds=1)  # 30 a second, bursts of 30
    runs_emulator.default_script = RunScript(queued_seconds=0.05, in_progress_seconds=0.3)
    prompts = [f"prompt {i}" for i in range(50)]

    runs = run_assistant_fan_out(credentials, runs_emulator.default_assistant_id, prompts=prompts, max_wait_seconds=60)

    assert [run.status for run in runs] == [RunStatus.COMPLETED] * 50
    sent = len(runs_emulator.requests)
    refused = runs_emulator.counters.get("rate_limited", 0)
    assert sent >= 100  # the fan-out really went past the limit's burst
    # Alone this meets at most 2 (unpaced: about 1 in 4). On a loaded machine requests reach the server's
    # one-second windows bunched, so the bound here is 1 in 10; the <1% target is measured in bench/ (W5).
    assert refused <= sent // 10, f"{refused} of {sent} requests met a 429"


DEADLINE = 3.0


def test_a_job_whose_deadline_passes_while_it_waits_for_a_turn_ends_at_its_deadline_cancelled(
    runs_emulator: RunsEmulator,
) -> None:
    runs_emulator.add_script(RunScript(queued_seconds=0.01, in_progress_seconds=60.0))
    runs_emulator.add_fault(FaultRule(method="GET", path=RUN, status=429, headers={"retry-after": "30"}, times=1))
    paced = OpenAICredentials(
        api_key=runs_emulator.api_key, base_url=runs_emulator.base_url, timeout=5.0, pace_requests=True
    )

    with pytest.raises(RunTimedOut) as caught:
        run_assistant(
            paced, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=DEADLINE, stream=False
        )

    run = caught.value.run
    assert run.status is RunStatus.CANCELLED
    assert runs_emulator.run(run.id).status == "cancelled"
    created = min(r.at for r in runs_emulator.requests if r.method == "POST" and re.search(CREATE, r.path))
    refused_at = next(r.at for r in runs_emulator.requests if r.status == 429)
    cancel_at = next(r.at for r in runs_emulator.requests if r.path.endswith("/cancel"))
    assert cancel_at - created < DEADLINE + 0.5, f"cancelled {cancel_at - created:.2f}s after the create"
    assert cancel_at - refused_at > 1.5  # the deadline ended it, long after the refused poll
    polls_between = [r for r in runs_emulator.requests if re.search(RUN, r.path) and refused_at < r.at < cancel_at]
    assert polls_between == []  # the poll after the 429 waited for its turn (never sent) until the deadline
    assert_nothing_active(runs_emulator)


def test_the_registry_of_budgets_stays_bounded_dropping_the_least_recently_used() -> None:
    url = "http://127.0.0.1:9/v1"
    kept = shared_budget(url, FAKE_KEY, "flow-run:kept")
    first_dropped = shared_budget(url, FAKE_KEY, "flow-run:0")
    for i in range(1, MAX_BUDGETS * 2):
        shared_budget(url, FAKE_KEY, f"flow-run:{i}")
        if i % 50 == 0:
            assert shared_budget(url, FAKE_KEY, "flow-run:kept") is kept  # in use: kept
    assert budget_count() <= MAX_BUDGETS
    assert shared_budget(url, FAKE_KEY, "flow-run:kept") is kept
    assert shared_budget(url, FAKE_KEY, "flow-run:0") is not first_dropped  # ended long ago: forgotten
