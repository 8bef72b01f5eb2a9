"""Chaos: flows run against the emulator while its fault rules break requests, and nothing is lost.

Every scenario is checked against the emulator's own record, not the library's word:

* no run is left active;
* no logical create made two runs (one run per thread, and as many runs as flows asked for);
* every followed run has its final artifact, showing the status the emulator ended it in;
* the flow ended in the state its run's outcome calls for (Completed, or Failed with the right error);
* no request was sent sooner after a 429 than its ``retry-after`` / ``retry-after-ms`` allowed.

The faults: 429 bursts with ``retry-after`` and ``retry-after-ms``, 500/502/503, connections dropped
before and after the request was applied, responses slower than the client's timeout (``hang``),
event streams cut mid-run (``cut_stream``, with and without garbage before the cut), and cancels the
server ignores. Then a load scenario: 300 runs through ``wait_for_runs`` while 10% of requests get a
429 and 2% a 5xx. Fault rules with a probability are seeded; script timings are fractions of a second.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.objects import State

from flow_helpers import assert_nothing_active, final_markdown
from prefect_openai_runs import OpenAICredentials, RunFailed, RunTimedOut
from prefect_openai_runs._recording import artifact_key
from prefect_openai_runs.client import AsyncRunsClient
from prefect_openai_runs.flows import run_assistant
from prefect_openai_runs.models import Run
from prefect_openai_runs.tasks import create_thread_and_run, wait_for_runs
from prefect_openai_runs.testing import FaultRule, RequestRecord, RunScript, RunsEmulator, ToolCallSpec

pytestmark = [pytest.mark.usefixtures("prefect_server"), pytest.mark.timeout(120)]

THREADS = r"^/v1/threads$"
CREATE = r"^/v1/threads/[^/]+/runs$"
RUN = r"^/v1/threads/[^/]+/runs/[^/]+$"
CANCEL = r"/cancel$"
TOOL_OUTPUTS = r"/submit_tool_outputs$"
MESSAGES = r"/messages$"

CLIENT_TIMEOUT = 0.5
"""Seconds before one request times out; ``hang`` faults last longer than this."""
HANG = 3.0
POLL_HINT_MS = 100
"""The emulator's ``openai-poll-after-ms``: followers poll every 0.1 s, so each run meets more faults."""
QUICK = RunScript(queued_seconds=0.02, in_progress_seconds=0.3, reply_text="Survived the chaos.")
TOOLS = RunScript(
    queued_seconds=0.02,
    in_progress_seconds=0.1,
    outcome="requires_action",
    tool_calls=[ToolCallSpec(name="get_weather", arguments='{"city": "Oslo"}')],
    then=QUICK,
)
GARBAGE = "retry: 5\nid: 42\n: a comment\nnonsense without a colon\nevent: thread.run.completed\ndata: {not json\n\n"
"""Lines an event stream must survive: unknown fields and comments are ignored, then data that is not JSON."""


def limited(
    path: str, *, seconds: str | None = None, ms: str | None = None, times: int | None = 1, **kw: Any
) -> FaultRule:
    """A 429 telling the client to wait ``seconds`` (``retry-after``) or ``ms`` (``retry-after-ms``)."""
    headers = {"retry-after": seconds} if seconds is not None else {"retry-after-ms": ms or "100"}
    return FaultRule(path=path, status=429, headers=headers, times=times, **kw)


def chaos_credentials(emu: RunsEmulator, timeout: float = CLIENT_TIMEOUT) -> OpenAICredentials:
    """Credentials with a short request timeout and enough retries to outlast every burst."""
    return OpenAICredentials(
        api_key=emu.api_key, base_url=emu.base_url, timeout=timeout, max_retries=8, retry_deadline=30.0
    )


# -- the checks -------------------------------------------------------------------------------------


def retry_after_of(rule: FaultRule) -> float:
    """The wait a 429 rule asks for, as the client reads it (``retry-after-ms`` first)."""
    headers = rule.response_headers()
    if "retry-after-ms" in headers:
        return float(headers["retry-after-ms"]) / 1000.0
    return float(headers["retry-after"])


def rule_of(rules: Sequence[FaultRule], record: RequestRecord) -> FaultRule:
    """The 429 rule that answered ``record`` (scenarios never arm two 429 rules for one request)."""
    matching = [
        rule
        for rule in rules
        if rule.status == 429
        and rule.kind == "status"
        and (rule.method is None or rule.method.upper() == record.method)
        and re.search(rule.path, record.path)
    ]
    assert matching, f"no 429 rule matches {record.method} {record.path}"
    return matching[0]


def assert_retry_after_respected(
    emu: RunsEmulator, rules: Sequence[FaultRule], shared_paths: frozenset[str] = frozenset()
) -> int:
    """Every 429 was followed by a retry of the same request no sooner than its retry-after allowed.

    The retry is the next request with the same method and path (the library sends one request per
    path at a time, except on ``shared_paths`` such as ``/v1/threads`` under concurrency, which are
    skipped). Returns how many 429s were checked.
    """
    records = emu.requests
    checked = 0
    for record in records:
        if record.status != 429 or record.fault != "status" or record.path in shared_paths:
            continue
        wait = retry_after_of(rule_of(rules, record))
        answered = record.at + record.duration
        later = [r for r in records if r.method == record.method and r.path == record.path and r.at > record.at]
        assert later, f"the 429 on {record.method} {record.path} was never retried"
        retry = min(later, key=lambda r: r.at)
        early = answered + wait - retry.at
        assert early <= 0.002, (
            f"{record.method} {record.path} was retried {early:.3f}s before its retry-after of {wait}s allowed"
        )
        checked += 1
    return checked


def assert_one_run_per_thread(emu: RunsEmulator, expected_runs: int) -> None:
    """No logical create made two runs."""
    runs = emu.runs()
    per_thread = Counter(r.thread_id for r in runs)
    duplicated = {thread: n for thread, n in per_thread.items() if n > 1}
    assert not duplicated, f"threads with more than one run: {duplicated}"
    assert len(runs) == expected_runs, f"{len(runs)} runs for {expected_runs} logical creates"


def assert_final_artifact(emu: RunsEmulator, run_id: str) -> str:
    """The run's newest artifact shows the status the emulator ended it in; returns its markdown."""
    markdown = final_markdown(run_id)
    status = emu.run(run_id).status
    assert f"`{run_id}`: **{status}**" in markdown, f"artifact of {run_id} does not show {status}"
    return markdown


def as_state(returned: object) -> State[Any]:
    """What a flow called with ``return_state=True`` returned (its signature does not say so)."""
    assert isinstance(returned, State), f"expected a State, got {type(returned).__name__}"
    return returned


def flow_outcome(state: State[Any]) -> tuple[Run, BaseException | None]:
    """The run a flow ended with, and its error if it failed (checking the state matches)."""
    if state.is_completed():
        result = state.result()
        assert isinstance(result, Run)
        return result, None
    assert state.is_failed(), f"flow ended {state.type}"
    error = state.result(raise_on_failure=False)
    assert isinstance(error, BaseException)
    run = getattr(error, "run", None)
    assert isinstance(run, Run), f"the flow failed with {type(error).__name__}: {error}"
    return run, error


# -- run_assistant under faults -------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One run_assistant flow under fault rules.

    Attributes:
        faults: The rules armed before the flow starts.
        script: What the run does.
        stream: Whether the flow follows the run's event stream.
        max_wait_seconds: The flow's deadline.
        final: The status the emulator must end the run in.
        error: The error the flow must fail with (None: it completes).
        must_poll: Whether following must have fallen back to polling (the stream broke mid-run).
        artifact_says: Text the final artifact must hold.
    """

    faults: tuple[FaultRule, ...]
    script: RunScript = QUICK
    stream: bool = True
    max_wait_seconds: float = 20.0
    final: str = "completed"
    error: type[BaseException] | None = None
    must_poll: bool = False
    artifact_says: tuple[str, ...] = field(default=())


SCENARIOS: dict[str, Scenario] = {
    "429-retry-after-on-create-and-polls": Scenario(
        faults=(limited(CREATE, seconds="1", method="POST"), limited(RUN, ms="120", times=3, method="GET")),
        stream=False,
    ),
    "429-retry-after-ms-on-thread-and-streamed-create": Scenario(
        faults=(limited(THREADS, ms="150"), limited(CREATE, ms="250", times=2, method="POST")),
    ),
    "5xx-on-thread-create-polls-and-reply": Scenario(
        faults=(
            FaultRule(path=THREADS, status=503),
            FaultRule(method="POST", path=CREATE, status=500),
            FaultRule(method="GET", path=RUN, status=502, times=2),
            FaultRule(method="GET", path=MESSAGES, status=503),
        ),
        stream=False,
    ),
    "drop-before-everywhere": Scenario(
        faults=(
            FaultRule(path=THREADS, kind="drop_before"),
            FaultRule(method="POST", path=CREATE, kind="drop_before"),
            FaultRule(method="GET", path=RUN, kind="drop_before", times=2),
            FaultRule(method="GET", path=MESSAGES, kind="drop_before"),
        ),
        stream=False,
    ),
    "drop-after-create-then-429-on-recovery": Scenario(
        faults=(FaultRule(method="POST", path=CREATE, kind="drop_after"), limited(CREATE, ms="100", method="GET")),
        stream=False,
    ),
    "drop-after-streamed-create-then-drop-on-recovery": Scenario(
        faults=(
            FaultRule(method="POST", path=CREATE, kind="drop_after"),
            FaultRule(method="GET", path=CREATE, kind="drop_before"),
        ),
    ),
    "hang-past-timeout-on-create-and-poll": Scenario(
        faults=(
            FaultRule(method="POST", path=CREATE, kind="hang", hang_seconds=HANG),
            FaultRule(method="GET", path=RUN, kind="hang", hang_seconds=HANG),
        ),
        stream=False,
    ),
    "hang-past-timeout-on-streamed-create": Scenario(
        faults=(FaultRule(method="POST", path=CREATE, kind="hang", hang_seconds=HANG),),
    ),
    "stream-cut-mid-run": Scenario(
        faults=(FaultRule(method="POST", path=CREATE, kind="cut_stream", after_events=3),),
        must_poll=True,
    ),
    "stream-cut-before-the-first-run-event": Scenario(
        faults=(
            FaultRule(method="POST", path=CREATE, kind="cut_stream", after_events=0),
            limited(CREATE, ms="100", method="GET"),
        ),
    ),
    "stream-garbage-then-cut": Scenario(
        faults=(FaultRule(method="POST", path=CREATE, kind="cut_stream", after_events=3, raw_body=GARBAGE),),
        must_poll=True,
    ),
    "tool-outputs-stream-cut": Scenario(
        faults=(FaultRule(method="POST", path=TOOL_OUTPUTS, kind="cut_stream", after_events=1),),
        script=TOOLS,
        must_poll=True,
    ),
    "tool-outputs-dropped-after-submit": Scenario(
        faults=(FaultRule(method="POST", path=TOOL_OUTPUTS, kind="drop_after"), limited(RUN, ms="100", times=2)),
        script=TOOLS,
        must_poll=True,
    ),
    "cancel-ignored-under-faults": Scenario(
        faults=(
            limited(CANCEL, ms="200", times=2, method="POST"),
            FaultRule(method="GET", path=RUN, status=503),
        ),
        script=RunScript(queued_seconds=0.02, in_progress_seconds=5.0, ignore_cancel=True),
        max_wait_seconds=0.3,
        error=RunTimedOut,
        artifact_says=("did not honour the cancel",),
    ),
    "deadline-cancel-under-faults": Scenario(
        faults=(FaultRule(method="POST", path=CANCEL, status=502), limited(RUN, ms="80", times=2, method="GET")),
        script=RunScript(queued_seconds=0.02, in_progress_seconds=60.0),
        max_wait_seconds=0.5,
        final="cancelled",
        error=RunTimedOut,
        artifact_says=("deadline",),
    ),
    "failed-run-under-429s": Scenario(
        faults=(limited(RUN, ms="100", times=3, method="GET"),),
        script=RunScript(queued_seconds=0.02, in_progress_seconds=0.2, outcome="failed", error_code="server_error"),
        stream=False,
        final="failed",
        error=RunFailed,
        artifact_says=("server_error",),
    ),
}

STREAMED_CREATE_5XX = Scenario(faults=(FaultRule(method="POST", path=CREATE, status=503),))
"""A 5xx answering the streamed create: the library gives up on the flow instead of recovering."""

IGNORED_CANCEL_DROPPED_AFTER_APPLIED = Scenario(
    faults=(FaultRule(method="POST", path=CANCEL, kind="drop_after"),),
    script=RunScript(queued_seconds=0.02, in_progress_seconds=5.0, ignore_cancel=True),
    max_wait_seconds=0.3,
    error=RunTimedOut,
    artifact_says=("did not honour the cancel",),
)
"""The cancel is applied but its answer lost; the server then ignores it. The library must not say
"nothing to cancel"."""


def play(emu: RunsEmulator, scenario: Scenario) -> None:
    """Run one scenario and check every invariant."""
    emu.poll_after_ms = POLL_HINT_MS
    emu.add_script(scenario.script)
    for rule in scenario.faults:
        emu.add_fault(rule)
    calls: list[str] = []

    def get_weather(city: str) -> dict[str, Any]:
        calls.append(city)
        return {"city": city, "celsius": 4}

    state = as_state(
        run_assistant(
            chaos_credentials(emu),
            emu.default_assistant_id,
            messages=["Is the chaos over?"],
            stream=scenario.stream,
            max_wait_seconds=scenario.max_wait_seconds,
            tool_handlers={"get_weather": get_weather},
            cancel_wait_seconds=10.0,
            return_state=True,
        )
    )

    run, error = flow_outcome(state)
    assert_nothing_active(emu)
    assert_one_run_per_thread(emu, expected_runs=1)
    record = emu.run(run.id)
    assert record.status == scenario.final == str(run.status)
    if scenario.error is None:
        assert error is None
    else:
        assert isinstance(error, scenario.error), f"expected {scenario.error.__name__}, got {error!r}"
    markdown = assert_final_artifact(emu, run.id)
    for text in scenario.artifact_says:
        assert text in markdown
    if scenario.final == "completed":
        assert (scenario.script.then or scenario.script).reply_text in markdown, "the reply is in the artifact"
    if scenario.script is TOOLS:
        assert calls == ["Oslo"], f"the tool ran {len(calls)} times"
    polls = emu.request_count("GET", rf"^/v1/threads/{run.thread_id}/runs/{run.id}$")
    if scenario.must_poll:
        assert polls >= 1, "the stream broke, so the run must have been followed by polling"
    armed_429s = [rule for rule in scenario.faults if rule.status == 429 and rule.kind == "status"]
    checked = assert_retry_after_respected(emu, scenario.faults)
    assert checked >= len(armed_429s)
    assert emu.counters["faults"] >= len(scenario.faults), "every armed fault must have struck"


@pytest.mark.parametrize("scenario", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_run_assistant_under_faults(runs_emulator: RunsEmulator, scenario: Scenario) -> None:
    play(runs_emulator, scenario)


def test_run_assistant_recovers_from_a_5xx_on_the_streamed_create(runs_emulator: RunsEmulator) -> None:
    play(runs_emulator, STREAMED_CREATE_5XX)


def test_ignored_cancel_whose_answer_was_lost_is_still_reported(runs_emulator: RunsEmulator) -> None:
    play(runs_emulator, IGNORED_CANCEL_DROPPED_AFTER_APPLIED)


def test_a_streamed_create_that_never_answers_does_not_hold_the_flow(runs_emulator: RunsEmulator) -> None:
    emu = runs_emulator
    emu.add_script(QUICK)
    emu.add_fault(FaultRule(method="POST", path=CREATE, kind="hang", hang_seconds=8.0))
    started = time.monotonic()

    state = as_state(
        run_assistant(
            chaos_credentials(emu), emu.default_assistant_id, messages=["hi"], max_wait_seconds=2.0, return_state=True
        )
    )

    elapsed = time.monotonic() - started
    run, _ = flow_outcome(state)
    assert_nothing_active(emu)
    assert_one_run_per_thread(emu, expected_runs=1)
    assert_final_artifact(emu, run.id)
    assert elapsed < 5.0, f"the flow waited {elapsed:.1f}s on a create that never answered (client timeout 0.5s)"


# -- wait_for_runs inside a flow ------------------------------------------------------------------


def fan_out_flow(
    credentials: OpenAICredentials, emu: RunsEmulator, prompts: Sequence[str], fail_fast: bool = True
) -> Callable[..., Any]:
    """A flow creating one run per prompt with tasks, then following them all with wait_for_runs."""

    @flow
    def fan_out() -> list[Run]:
        runs = [create_thread_and_run(credentials, emu.default_assistant_id, [prompt]) for prompt in prompts]
        return wait_for_runs(credentials, runs, max_wait_seconds=30, fail_fast=fail_fast)

    return fan_out


def test_wait_for_runs_under_mixed_faults(runs_emulator: RunsEmulator) -> None:
    emu = runs_emulator
    emu.poll_after_ms = POLL_HINT_MS
    emu.add_script(RunScript(queued_seconds=0.05, in_progress_seconds=0.6, reply_text="fan in"))
    rules = [
        limited(RUN, ms="150", times=None, probability=0.25, seed=11, method="GET"),
        FaultRule(method="GET", path=RUN, status=500, times=None, probability=0.08, seed=12),
        FaultRule(method="GET", path=RUN, kind="drop_before", times=3),
        FaultRule(method="GET", path=RUN, kind="hang", hang_seconds=HANG, times=2),
        FaultRule(method="POST", path=CREATE, kind="drop_after", times=2),
        FaultRule(method="POST", path=CREATE, status=502, times=2),
    ]
    for rule in rules:
        emu.add_fault(rule)
    prompts = [f"prompt {i}" for i in range(6)]

    state = as_state(fan_out_flow(chaos_credentials(emu), emu, prompts)(return_state=True))

    assert state.is_completed(), state.message
    final = state.result()
    assert [str(run.status) for run in final] == ["completed"] * 6
    assert_nothing_active(emu)
    assert_one_run_per_thread(emu, expected_runs=6)
    for run in final:
        assert_final_artifact(emu, run.id)
    assert assert_retry_after_respected(emu, rules) >= 1
    assert sum(1 for r in emu.requests if r.fault == "hang") == 2


def test_wait_for_runs_fail_fast_under_faults_cancels_every_sibling(runs_emulator: RunsEmulator) -> None:
    emu = runs_emulator
    emu.poll_after_ms = POLL_HINT_MS
    emu.add_script(RunScript(queued_seconds=0.02, in_progress_seconds=60.0))
    emu.add_script(
        RunScript(queued_seconds=0.02, in_progress_seconds=0.4, ignore_cancel=True, reply_text="stubborn"),
        match=lambda ctx: ctx.last_user_message == "stubborn",
    )
    emu.add_script(
        RunScript(queued_seconds=0.02, in_progress_seconds=0.2, outcome="failed", error_code="server_error"),
        match=lambda ctx: ctx.last_user_message == "doomed",
    )
    for rule in (
        FaultRule(method="POST", path=CANCEL, status=503, times=2),
        FaultRule(method="POST", path=CANCEL, kind="drop_after", times=1),
        FaultRule(method="GET", path=RUN, status=502, times=3),
    ):
        emu.add_fault(rule)
    prompts = ["slow 1", "stubborn", "slow 2", "doomed", "slow 3"]

    state = as_state(fan_out_flow(chaos_credentials(emu), emu, prompts)(return_state=True))

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, RunFailed)
    assert_nothing_active(emu)
    assert_one_run_per_thread(emu, expected_runs=5)
    final = Counter(r.status for r in emu.runs())
    assert final == Counter({"cancelled": 3, "failed": 1, "completed": 1}), final
    assert emu.run(error.run.id).status == "failed"
    for record in emu.runs():
        assert_final_artifact(emu, record.id)
    assert emu.counters["faults"] >= 6


# -- load -----------------------------------------------------------------------------------------

LOAD_RUNS = 300


CREATE_CONCURRENCY = 16
"""Creates in flight at once: with the emulator in the same process, 16 at a time is 4x faster than 300."""


async def create_runs(credentials: OpenAICredentials, assistant_id: str, n: int) -> list[tuple[str, str]]:
    """Create ``n`` runs, each on its own thread, a few at a time, through one async client."""
    client: AsyncRunsClient
    slots = asyncio.Semaphore(CREATE_CONCURRENCY)
    async with credentials.get_async_client() as client:

        async def one(i: int) -> tuple[str, str]:
            async with slots:
                thread = await client.create_thread(messages=[{"role": "user", "content": f"load {i}"}])
                run = await client.create_run(thread.id, assistant_id=assistant_id)
            return run.thread_id, run.id

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def newest_artifacts(run_ids: Sequence[str]) -> dict[str, str]:
    """The newest artifact markdown of each run, read in pages."""
    keys = {artifact_key(run_id): run_id for run_id in run_ids}
    newest: dict[str, tuple[Any, str]] = {}
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=list(keys))), limit=200, offset=offset
            )
            for artifact in page:
                run_id = keys[str(artifact.key)]
                seen = newest.get(run_id)
                if seen is None or (artifact.created or 0) >= seen[0]:
                    newest[run_id] = (artifact.created or 0, str(artifact.data))
            if len(page) < 200:
                break
            offset += 200
    return {run_id: data for run_id, (_, data) in newest.items()}


@pytest.mark.slow
def test_load_300_runs_through_wait_for_runs_under_429s_and_5xx(runs_emulator: RunsEmulator) -> None:
    emu = runs_emulator
    emu.poll_after_ms = POLL_HINT_MS
    emu.add_script(RunScript(queued_seconds=0.1, in_progress_seconds=1.5, reply_text="load"))
    rules = [
        limited(r".*", ms="100", times=None, probability=0.10, seed=2024),
        FaultRule(status=500, times=None, probability=0.01 / 0.9, seed=2025),
        FaultRule(status=503, times=None, probability=0.01 / 0.89, seed=2026),
    ]
    for rule in rules:
        emu.add_fault(rule)
    credentials = chaos_credentials(emu, timeout=10.0)

    pairs = asyncio.run(create_runs(credentials, emu.default_assistant_id, LOAD_RUNS))

    @flow
    def fan_in(pairs: list[tuple[str, str]]) -> list[str]:
        return [str(run.status) for run in wait_for_runs(credentials, pairs, max_wait_seconds=60)]

    state = as_state(fan_in(pairs, return_state=True))

    assert state.is_completed(), state.message
    assert state.result() == ["completed"] * LOAD_RUNS
    assert_nothing_active(emu)
    assert_one_run_per_thread(emu, expected_runs=LOAD_RUNS)
    assert Counter(r.status for r in emu.runs()) == {"completed": LOAD_RUNS}
    requests = emu.requests
    share_429 = sum(r.status == 429 for r in requests) / len(requests)
    share_5xx = sum(r.status >= 500 for r in requests) / len(requests)
    assert 0.06 <= share_429 <= 0.14, share_429
    assert 0.005 <= share_5xx <= 0.04, share_5xx
    assert assert_retry_after_respected(emu, rules, shared_paths=frozenset({"/v1/threads"})) >= 50
    artifacts = newest_artifacts([run_id for _, run_id in pairs])
    assert len(artifacts) == LOAD_RUNS
    assert all(f"`{run_id}`: **completed**" in data for run_id, data in artifacts.items())
