"""run_batch keeps the requests out of the Prefect server: a list is stored as a count, so a list over the
server's 512 KB limit on parameters runs, and users' prompts never land in Prefect's database."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

from prefect_openai_runs import OpenAICredentials
from prefect_openai_runs._lifecycle._follower import PollSchedule
from prefect_openai_runs.flows import BatchRunResult, run_batch
from prefect_openai_runs.testing import BatchScript, RunsEmulator

pytestmark = pytest.mark.usefixtures("prefect_server")

FAST = PollSchedule(initial=0.02, factor=1.0, cap=0.02, steady_polls=0)
QUICK = BatchScript(validating_seconds=0.01, in_progress_seconds=0.05, finalizing_seconds=0.01)
PROMPT = "secret-prompt-{}-" + "x" * 600


def stored_parameters(flow_run_id: UUID) -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        return dict(client.read_flow_run(flow_run_id).parameters)


def test_a_list_over_the_servers_limit_runs_and_its_prompts_are_not_stored(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.default_batch_script = QUICK
    requests = [{"model": "gpt-5-mini", "input": PROMPT.format(n)} for n in range(1000)]
    assert len(str(requests)) > 600_000, "over Prefect's 524,288 bytes of parameters"

    state = run_batch(credentials, requests, poll_schedule=FAST, metadata={"job": "big"}, return_state=True)

    assert state.is_completed(), state.message
    assert len(state.result().outputs) == 1000
    stored = stored_parameters(state.state_details.flow_run_id)
    assert stored["requests"] == "<1,000 batch requests>"
    assert "secret-prompt" not in str(stored)
    assert stored["params"] == {"metadata": {"job": "big"}}, "every other parameter is stored as Prefect would"


def test_a_path_is_stored_as_it_is_and_options_and_parent_flows_keep_the_summary(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, tmp_path: Path
) -> None:
    runs_emulator.default_batch_script = QUICK
    path = tmp_path / "in.jsonl"
    path.write_text('{"custom_id": "a", "method": "POST", "url": "/v1/responses", "body": {"model": "m"}}\n')

    by_path = run_batch.with_options(retries=1)(credentials, str(path), poll_schedule=FAST, return_state=True)

    @flow
    def parent() -> BatchRunResult:
        return run_batch(credentials, [{"model": "m", "input": "secret-prompt-child"}], poll_schedule=FAST)

    parent_state = parent(return_state=True)

    assert stored_parameters(by_path.state_details.flow_run_id)["requests"] == str(path)
    assert parent_state.is_completed(), parent_state.message
    parent_id = parent_state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        [child] = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id]))
        )
    assert not [run for run in runs if "secret-prompt-child" in str(run.parameters)]
    assert child.parameters["requests"] == "<1 batch request>"


def test_the_parameter_schema_still_lists_requests_for_serve_and_deployments() -> None:
    deployment = run_batch.to_deployment(name="batches")

    assert "requests" in deployment._parameter_openapi_schema.properties
    assert deployment.entrypoint is not None and deployment.entrypoint.endswith(":run_batch")
