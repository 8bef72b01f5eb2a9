"""Issue 11, holes 2, 3, 8 and part of 15: a run created by the library is never lost, never made twice.

The tasks find their run after a dropped create answer; its intent is on the Prefect server before the
create is sent, so the guard hooks and the orphan sweep find a run whose answer was lost; a Prefect retry
(of a task or of ``run_assistant``) re-attaches to the run and thread of its earlier attempt; a request
once ambiguous stays ambiguous through a 429; an answer that is not a run is looked into; the recovery
after an interruption looks more than once; a retried ``POST /threads`` never carries the messages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flow_helpers import assert_nothing_active
from prefect_openai_runs import OpenAICredentials, RunStatus
from prefect_openai_runs._intents import intent_key
from prefect_openai_runs.client._operations import IDEMPOTENCY_METADATA_KEY
from prefect_openai_runs.exceptions import InvalidResponseError, OpenAIRunsError
from prefect_openai_runs.flows import run_assistant
from prefect_openai_runs.guard import cancel_orphaned_runs, cancel_runs_hooks
from prefect_openai_runs.models import CreateRunParams
from prefect_openai_runs.tasks import create_run, create_thread_and_run
from prefect_openai_runs.testing import FaultRule, RunScript, RunsEmulator

pytestmark = pytest.mark.usefixtures("prefect_server")

LONG = RunScript(queued_seconds=0.01, in_progress_seconds=60.0)
CREATE = r"^/v1/threads/[^/]+/runs$"
LIST = CREATE
EMPTY_PAGE = {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


def _no_retries(emulator: RunsEmulator) -> OpenAICredentials:
    """Credentials whose client does not retry: what the library does itself is then what is tested."""
    return OpenAICredentials(api_key=emulator.api_key, base_url=emulator.base_url, timeout=5.0, max_retries=0)


def _drop_create_answer(emulator: RunsEmulator, lookups_failing: int = 0) -> None:
    """The create is applied and its answer lost; the next ``lookups_failing`` lookups answer 500."""
    emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="drop_after", times=1))
    if lookups_failing:
        emulator.add_fault(FaultRule(method="GET", path=LIST, status=500, times=lookups_failing))


def _intent(key: str) -> Any:
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[intent_key(key)]))
        )
    return artifact


# -- hole 2: the tasks find their run, and record its intent first ------------------------------------


def test_create_run_finds_its_run_after_a_dropped_answer(runs_emulator: RunsEmulator) -> None:
    credentials = _no_retries(runs_emulator)
    with credentials.get_client() as client:
        thread = client.create_thread()
    _drop_create_answer(runs_emulator)

    @flow
    def pipeline() -> Any:
        return create_run(credentials, thread.id, runs_emulator.default_assistant_id, messages=["hi"])

    run = pipeline()

    assert [r.id for r in runs_emulator.runs()] == [run.id]
    assert runs_emulator.request_count("POST", CREATE) == 1


def test_create_thread_and_run_records_its_intent_before_the_create(runs_emulator: RunsEmulator) -> None:
    credentials = _no_retries(runs_emulator)
    _drop_create_answer(runs_emulator)

    @flow
    def pipeline() -> Any:
        return create_thread_and_run(credentials, runs_emulator.default_assistant_id, ["hi"])

    run = pipeline()

    assert [r.id for r in runs_emulator.runs()] == [run.id]
    key = run.metadata[IDEMPOTENCY_METADATA_KEY]
    intent = _intent(key)
    assert intent.metadata_ == {"kind": "run", "idempotency_key": key, "parent_id": run.thread_id}
    [create] = [r for r in runs_emulator.requests if r.method == "POST" and r.path.endswith("/runs")]
    assert intent.created is not None and intent.created <= datetime.fromtimestamp(create.at, intent.created.tzinfo)


def _flow_losing_its_run(credentials: OpenAICredentials, assistant_id: str, **hooks: Any) -> Any:
    @flow(**hooks)
    def pipeline() -> None:
        create_thread_and_run(credentials, assistant_id, ["a long job"])

    return pipeline


def test_guard_hooks_cancel_a_run_whose_create_answer_was_lost(runs_emulator: RunsEmulator) -> None:
    credentials = _no_retries(runs_emulator)
    runs_emulator.add_script(LONG)
    _drop_create_answer(runs_emulator, lookups_failing=1)  # the task cannot find its run: it fails

    pipeline = _flow_losing_its_run(credentials, runs_emulator.default_assistant_id, **cancel_runs_hooks(credentials))
    state = pipeline(return_state=True)

    assert state.is_failed()
    [record] = runs_emulator.runs()
    assert record.status == "cancelled"
    assert_nothing_active(runs_emulator)


def test_orphan_sweep_cancels_a_run_whose_create_answer_was_lost(runs_emulator: RunsEmulator) -> None:
    credentials = _no_retries(runs_emulator)
    runs_emulator.add_script(LONG)
    _drop_create_answer(runs_emulator, lookups_failing=1)

    state = _flow_losing_its_run(credentials, runs_emulator.default_assistant_id)(return_state=True)
    assert state.is_failed()
    [record] = runs_emulator.runs()
    assert record.status == "in_progress"  # nobody knows it exists but the intent

    swept = cancel_orphaned_runs(credentials, lookback_hours=0.1, wait_seconds=5)

    assert record.id in [ref.id for ref in swept]
    assert runs_emulator.run(record.id).status == "cancelled"
    assert_nothing_active(runs_emulator)


# -- hole 3: a Prefect retry re-attaches ---------------------------------------------------------------


def test_a_task_retry_reattaches_to_the_run_and_thread_of_its_earlier_attempt(runs_emulator: RunsEmulator) -> None:
    credentials = _no_retries(runs_emulator)
    runs_emulator.add_script(LONG)
    _drop_create_answer(runs_emulator, lookups_failing=1)  # attempt 1 fails after creating the run

    @flow
    def pipeline() -> Any:
        return create_thread_and_run.with_options(retries=2)(credentials, runs_emulator.default_assistant_id, ["hi"])

    run = pipeline()

    [record] = runs_emulator.runs()
    assert run.id == record.id and run.status is not RunStatus.CANCELLED
    assert runs_emulator.request_count("POST", r"^/v1/threads$") == 1
    with credentials.get_client() as client:
        client.cancel_run(run.thread_id, run.id)


@pytest.mark.parametrize(("stream", "lookups"), [(True, 3), (False, 2)], ids=["stream", "poll"])
def test_a_flow_retry_of_run_assistant_reattaches(runs_emulator: RunsEmulator, stream: bool, lookups: int) -> None:
    credentials = _no_retries(runs_emulator)
    runs_emulator.add_script(RunScript(in_progress_seconds=1.0))
    # Attempt 1 loses the create's answer and every lookup of its run fails: it fails, the run going on.
    _drop_create_answer(runs_emulator, lookups_failing=lookups)

    run = run_assistant.with_options(retries=1)(
        credentials, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=20, stream=stream
    )

    [record] = runs_emulator.runs()
    assert run.id == record.id and run.status is RunStatus.COMPLETED
    assert runs_emulator.request_count("POST", r"^/v1/threads$") == 1


# -- hole 8: an ambiguous attempt stays ambiguous ------------------------------------------------------


def test_an_ambiguous_create_stays_ambiguous_through_a_429(runs_emulator: RunsEmulator) -> None:
    credentials = OpenAICredentials(api_key=runs_emulator.api_key, base_url=runs_emulator.base_url, timeout=5.0)
    with credentials.get_client() as client:
        thread = client.create_thread()
        # Attempt 1: applied, answer lost. Attempt 2: the lookup does not see the run yet (applied late),
        # the create gets a 429. Attempt 3 must look again, not create a second run (the first has ended).
        runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, kind="drop_after", times=1))
        runs_emulator.add_fault(FaultRule(method="GET", path=LIST, status=200, body=EMPTY_PAGE, times=1))
        runs_emulator.add_fault(FaultRule(method="POST", path=CREATE, status=429, headers={"retry-after": "0.3"}))

        run = client.create_run(
            thread.id, CreateRunParams(assistant_id=runs_emulator.default_assistant_id), idempotency_key="k" * 32
        )

    assert [r.id for r in runs_emulator.runs()] == [run.id]


# -- hole 15 --------------------------------------------------------------------------------------------


def test_a_create_answered_with_a_body_that_is_not_a_run_is_looked_into(runs_emulator: RunsEmulator) -> None:
    credentials = _no_retries(runs_emulator)
    runs_emulator.add_fault(
        FaultRule(
            method="POST", path=CREATE, status=200, raw_body="<html>proxy</html>", headers={"content-type": "text/html"}
        )
    )
    with credentials.get_client() as client:
        thread = client.create_thread()
        with pytest.raises(InvalidResponseError):
            client.create_run(thread.id, CreateRunParams(assistant_id=runs_emulator.default_assistant_id))

    assert runs_emulator.request_count("GET", LIST) == 1  # looked for the run before failing


def test_the_recovery_after_an_interruption_looks_more_than_once(runs_emulator: RunsEmulator) -> None:
    credentials = _no_retries(runs_emulator)
    runs_emulator.add_script(LONG)
    _drop_create_answer(runs_emulator, lookups_failing=1)

    with pytest.raises(OpenAIRunsError):  # found on the second look, then followed to its deadline
        run_assistant(credentials, runs_emulator.default_assistant_id, messages=["hi"], max_wait_seconds=3)

    [record] = runs_emulator.runs()
    assert record.status == "cancelled"
    assert runs_emulator.request_count("GET", LIST) >= 2
    assert_nothing_active(runs_emulator)


def test_a_retried_thread_create_never_carries_the_messages(runs_emulator: RunsEmulator) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/threads$", kind="drop_after", times=1))

    @flow
    def pipeline(credentials: OpenAICredentials) -> Any:
        return create_thread_and_run(credentials, runs_emulator.default_assistant_id, ["only once, please"])

    run = pipeline(OpenAICredentials(api_key=runs_emulator.api_key, base_url=runs_emulator.base_url, timeout=5.0))

    thread_posts = [r for r in runs_emulator.requests if r.method == "POST" and r.path == "/v1/threads"]
    assert len(thread_posts) == 2
    assert all(not (r.body or {}).get("messages") for r in thread_posts)
    with OpenAICredentials(api_key=runs_emulator.api_key, base_url=runs_emulator.base_url).get_client() as client:
        texts = [m.text for m in client.list_messages(run.thread_id) if m.role == "user"]
    assert texts == ["only once, please"]
