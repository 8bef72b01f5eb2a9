"""Issue 15 (W4): a fan-out records its intents one artifact per wave, and nothing is lost for it.

A wave's intents go in one table artifact keyed by the wave's first idempotency key, on the Prefect
server before the wave's creates are sent: :func:`find_intents` (by keys) and :func:`recorded_intents`
(by flow run) read them back; a Prefect retry of the fan-out goes on the threads of its first attempt
(re-attaching to the run whose answer was lost, never making a second live run for a prompt); the
orphan sweep finds a run recorded only in a group.
"""

from __future__ import annotations

import json
import math
from typing import Any
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.context import FlowRunContext

from emulator_helpers import wait_for
from flow_helpers import assert_nothing_active
from prefect_openai_runs import OpenAICredentials
from prefect_openai_runs._intents import INTENT_KEY_PREFIX, Intent, find_intents, intent_key, recorded_intents
from prefect_openai_runs._lifecycle._keys import derived_key
from prefect_openai_runs._recording import flush
from prefect_openai_runs.guard import cancel_orphaned_runs
from prefect_openai_runs.models import Run
from prefect_openai_runs.tasks import create_threads_and_runs
from prefect_openai_runs.testing import FaultRule, RunScript, RunsEmulator

pytestmark = pytest.mark.usefixtures("prefect_server")

LONG = RunScript(queued_seconds=0.01, in_progress_seconds=60.0)
CREATE = r"^/v1/threads/[^/]+/runs$"
PROMPTS = 120
WAVE = 50


def _no_retries(emulator: RunsEmulator) -> OpenAICredentials:
    """Credentials whose client does not retry: what the library does itself is then what is tested."""
    return OpenAICredentials(api_key=emulator.api_key, base_url=emulator.base_url, timeout=5.0, max_retries=0)


def _drop_one_create_answer(emulator: RunsEmulator) -> None:
    """One create is applied and its answer lost; its lookup answers 500: the create fails, its run exists."""
    emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="drop_after", times=1))
    emulator.add_fault(FaultRule(method="GET", path=CREATE, status=500, times=1))


def _intent_artifacts(flow_run_id: UUID) -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                key=ArtifactFilterKey(like_=f"{INTENT_KEY_PREFIX}%"),
            )
        )


def _cancel(emulator: RunsEmulator, credentials: OpenAICredentials, runs: list[Run]) -> None:
    with credentials.get_client() as client:
        for run in runs:
            client.cancel_run(run.thread_id, run.id)
    wait_for(lambda: not emulator.active_runs())


def test_a_fan_out_records_one_intent_artifact_per_wave(runs_emulator: RunsEmulator) -> None:
    credentials = _no_retries(runs_emulator)
    runs_emulator.add_script(LONG)
    keys = [derived_key("w4-groups", i) for i in range(PROMPTS)]
    prompts = [f"prompt {i}" for i in range(PROMPTS)]

    @flow
    def pipeline() -> tuple[list[Run], UUID, dict[str, Intent], dict[str, Intent]]:
        assistant = runs_emulator.default_assistant_id
        runs = create_threads_and_runs(credentials, assistant, prompts, WAVE, idempotency_key_prefix="w4-groups")
        assert flush(30)  # the run cards, queued without waiting, are on the server before the flow ends
        ctx = FlowRunContext.get()
        assert ctx is not None and ctx.flow_run is not None
        wanted = [keys[0], keys[1], keys[WAVE], keys[WAVE + 3]]  # waves' first keys and members
        return runs, ctx.flow_run.id, find_intents(keys, always=True), find_intents(wanted, always=True)

    runs, flow_run_id, by_keys, some = pipeline()

    try:
        artifacts = _intent_artifacts(flow_run_id)
        assert len(artifacts) == math.ceil(PROMPTS / WAVE)
        assert {a.key for a in artifacts} == {intent_key(keys[start]) for start in range(0, PROMPTS, WAVE)}
        assert {a.type for a in artifacts} == {"table"}
        first = next(a for a in artifacts if a.key == intent_key(keys[0]))
        rows = json.loads(first.data) if isinstance(first.data, str) else first.data
        assert rows[0] == {"kind": "run", "idempotency_key": keys[0], "parent_id": runs[0].thread_id}
        assert len(rows) == WAVE

        expected = {key: Intent("run", key, run.thread_id) for key, run in zip(keys, runs, strict=True)}
        assert by_keys == expected
        assert {intent.key: intent for intent in recorded_intents(flow_run_id)} == expected
        # found through their wave's first key (as a retry asks for every key); only the wanted ones come back
        assert some == {key: expected[key] for key in (keys[0], keys[1], keys[WAVE], keys[WAVE + 3])}
    finally:
        _cancel(runs_emulator, credentials, runs)
    assert_nothing_active(runs_emulator)


def test_a_retried_fan_out_reattaches_to_every_run_of_its_first_attempt(runs_emulator: RunsEmulator) -> None:
    credentials = _no_retries(runs_emulator)
    runs_emulator.add_script(LONG)
    _drop_one_create_answer(runs_emulator)  # attempt 1 fails in its first wave; one run exists unknown to it

    @flow
    def pipeline() -> list[Run]:
        task = create_threads_and_runs.with_options(retries=1)
        return task(credentials, runs_emulator.default_assistant_id, [f"p{i}" for i in range(PROMPTS)], WAVE)

    runs = pipeline()

    try:
        on_server = runs_emulator.runs()
        # the retry went on the first attempt's threads: one thread per prompt, however many attempts
        assert len({record.thread_id for record in on_server}) == len({run.thread_id for run in runs}) == PROMPTS
        # the lost run is re-attached to; the runs attempt 1 cancelled on its way out are made again,
        # on their threads: one live run per prompt, none made twice
        live = {record.id for record in on_server if record.status != "cancelled"}
        assert live == {run.id for run in runs}
        assert len(on_server) < 2 * PROMPTS
    finally:
        _cancel(runs_emulator, credentials, runs)
    assert_nothing_active(runs_emulator)


def test_the_orphan_sweep_finds_a_run_recorded_only_in_a_group_intent(runs_emulator: RunsEmulator) -> None:
    credentials = _no_retries(runs_emulator)
    runs_emulator.add_script(LONG)
    _drop_one_create_answer(runs_emulator)

    @flow
    def pipeline() -> None:
        prompts = [f"p{i}" for i in range(PROMPTS)]
        create_threads_and_runs(credentials, runs_emulator.default_assistant_id, prompts, WAVE)

    state = pipeline(return_state=True)
    assert state.is_failed()
    # the task cancelled the runs it knew; the one whose answer was lost is known only by its wave's intents
    [lost] = runs_emulator.active_runs()
    assert len(runs_emulator.runs()) > 1

    swept = cancel_orphaned_runs(credentials, lookback_hours=0.1, wait_seconds=5)

    assert lost.id in [ref.id for ref in swept]
    assert runs_emulator.run(lost.id).status == "cancelled"
    assert_nothing_active(runs_emulator)
