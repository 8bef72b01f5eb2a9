"""The background-response tasks and the guard over real HTTP and a real Prefect server."""

from __future__ import annotations

import pytest
from prefect import flow

from prefect_openai_runs import JobFailed, OpenAICredentials
from prefect_openai_runs.exceptions import ResponseMayExistError
from prefect_openai_runs.guard import cancel_runs_hooks
from prefect_openai_runs.models import Response, ResponseStatus
from prefect_openai_runs.tasks import (
    cancel_response,
    create_background_response,
    get_response,
    wait_for_response,
    wait_for_responses,
)
from prefect_openai_runs.testing import FaultRule, ResponseScript, RunsEmulator
from responses_helpers import assert_no_response_active, response_artifacts, response_markdown

pytestmark = pytest.mark.usefixtures("prefect_server")

NEVER = ResponseScript(outcome="never")


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "poll"])
def test_create_then_wait(runs_emulator: RunsEmulator, credentials: OpenAICredentials, stream: bool) -> None:
    runs_emulator.add_response_script(ResponseScript(in_progress_seconds=0.2, output_text="done"))

    @flow
    def pipeline() -> tuple[Response, Response]:
        created = create_background_response(credentials, "gpt-5", "hi", metadata={"job": "nightly"})
        return created, wait_for_response(credentials, created.id, max_wait_seconds=10, stream=stream)

    created, response = pipeline()

    assert created.status is ResponseStatus.QUEUED and (created.metadata or {})["job"] == "nightly"
    assert response.status is ResponseStatus.COMPLETED and response.output_text == "done"
    [first, *_] = response_artifacts(created.id)
    assert first.metadata_ is not None
    assert (first.metadata_["kind"], first.metadata_["id"]) == ("response", created.id)
    assert "**completed**" in response_markdown(created.id)


def test_wait_cancels_at_its_deadline(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_response_script(NEVER)

    @flow
    def pipeline() -> None:
        created = create_background_response(credentials, "gpt-5", "hi")
        wait_for_response(credentials, created.id, max_wait_seconds=0.5)

    state = pipeline(return_state=True)

    assert state.is_failed()
    [record] = runs_emulator.responses()
    assert record.status == "cancelled" and "deadline" in response_markdown(record.id)


def test_get_and_cancel(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_response_script(NEVER)

    @flow
    def pipeline() -> tuple[Response, Response, Response]:
        created = create_background_response(credentials, "gpt-5", "hi")
        cancelled = cancel_response(credentials, created.id, reason="window closed", wait_seconds=2)
        return get_response(credentials, created.id), cancelled, cancel_response(credentials, created.id)

    seen, cancelled, again = pipeline()

    assert cancelled.status is ResponseStatus.CANCELLED and again.status is ResponseStatus.CANCELLED
    assert seen.status is ResponseStatus.CANCELLED
    assert "window closed" in response_markdown(cancelled.id)


def test_cancel_of_a_completed_response_returns_it_completed(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    @flow
    def pipeline() -> Response:
        created = create_background_response(credentials, "gpt-5", "hi")
        wait_for_response(credentials, created.id)
        return cancel_response(credentials, created.id)

    response = pipeline()

    assert response.status is ResponseStatus.COMPLETED
    assert runs_emulator.request_count("POST", r"/cancel$") == 0  # read first: nothing to cancel
    assert "**completed**" in response_markdown(response.id)


def test_wait_for_responses_fails_fast_and_cancels_the_others(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_response_script(NEVER, model="slow")
    runs_emulator.add_response_script(ResponseScript(outcome="failed", in_progress_seconds=0.2), model="broken")

    @flow
    def pipeline() -> list[Response]:
        started = [create_background_response(credentials, model, "hi") for model in ("slow", "broken", "slow")]
        return wait_for_responses(credentials, started, max_wait_seconds=20)

    state = pipeline(return_state=True)

    assert state.is_failed()
    with pytest.raises(JobFailed):
        state.result()
    assert sorted(r.status for r in runs_emulator.responses()) == ["cancelled", "cancelled", "failed"]
    assert_no_response_active(runs_emulator)


def test_wait_for_responses_returns_them_all(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    @flow
    def pipeline() -> list[Response]:
        started = [create_background_response(credentials, "gpt-5", f"q{i}") for i in range(3)]
        return wait_for_responses(credentials, [r.id for r in started], max_wait_seconds=20)

    responses = pipeline()

    assert [r.status for r in responses] == [ResponseStatus.COMPLETED] * 3


def test_guard_hooks_cancel_the_responses_of_a_failed_flow(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_response_script(NEVER)

    @flow(**cancel_runs_hooks(credentials))
    def pipeline() -> None:
        for i in range(2):
            create_background_response(credentials, "gpt-5", f"job {i}")
        raise RuntimeError("the warehouse load failed")

    state = pipeline(return_state=True)

    assert state.is_failed()
    records = runs_emulator.responses()
    assert [r.status for r in records] == ["cancelled", "cancelled"]
    assert all("upstream failure" in response_markdown(r.id) for r in records)


def test_an_ambiguous_create_is_not_retried_by_prefect(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/responses$", kind="drop_after", times=1))
    retried = create_background_response.with_options(retries=2, retry_delay_seconds=0)

    @flow
    def pipeline() -> Response:
        return retried(credentials, "gpt-5", "hi")

    state = pipeline(return_state=True)

    with pytest.raises(ResponseMayExistError):
        state.result()
    assert runs_emulator.request_count("POST", r"^/v1/responses$") == 1
    assert len(runs_emulator.responses()) == 1
