"""A Prefect retry of run_batch finds its earlier attempt's batch however long ago it was created: read
by its id when that attempt recorded it, else searched for back to the attempt's intent, never only
among the last hour's batches (a retry two hours later would create a duplicate)."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from prefect_openai_runs import OpenAICredentials
from prefect_openai_runs._lifecycle._follower import PollSchedule
from prefect_openai_runs.client._sync import batches as sync_batches
from prefect_openai_runs.flows import run_batch
from prefect_openai_runs.testing import BatchScript, FaultRule, RunsEmulator

pytestmark = pytest.mark.usefixtures("prefect_server")

FAST = PollSchedule(initial=0.02, factor=1.0, cap=0.02, steady_polls=0)
LINE = b'{"custom_id": "s", "method": "POST", "url": "/v1/responses", "body": {"model": "m", "input": "x"}}\n'


@pytest.fixture
def two_hours_later(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's clock two hours ahead of the servers': a retry that comes long after its first attempt."""
    real = time.time
    monkeypatch.setattr(sync_batches, "time", SimpleNamespace(time=lambda: real() + 7200))


def sibling_on_retry(credentials: OpenAICredentials) -> Callable[..., None]:
    """An ``on_running`` hook creating another batch (not ours) when the retry starts: newer than ours."""
    calls: list[int] = []

    def hook(*_: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            with credentials.get_batches_client() as client:
                uploaded = client.upload_file(LINE, "sibling.jsonl")
                client.create_batch(input_file_id=uploaded.id, endpoint="/v1/responses", completion_window="24h")

    return hook


def ours(emu: RunsEmulator) -> list[str]:
    """The batches run_batch created (not the sibling)."""
    siblings = {f.id for f in emu.files() if f.filename == "sibling.jsonl"}
    return [b.id for b in emu.batches() if b.object["input_file_id"] not in siblings]


@pytest.mark.usefixtures("two_hours_later")
def test_a_retry_reads_its_recorded_batch_by_id(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    """Attempt 1 creates and records its batch, then fails (a poll answered 500) and cannot cancel it (the
    cancel answered 500): the batch runs on. The retry, two hours later and after another batch was
    created, reads the recorded batch by its id and follows it: no second batch, no search."""
    runs_emulator.default_batch_script = BatchScript(validating_seconds=0.01, in_progress_seconds=1.0)
    no_retries = credentials.model_copy(update={"max_retries": 0})
    runs_emulator.add_fault(FaultRule(method="GET", path=r"^/v1/batches/batch_[^/]+$", status=500, times=1))
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/batches/[^/]+/cancel$", status=500, times=1))

    retried = run_batch.with_options(retries=1, retry_delay_seconds=0, on_running=[sibling_on_retry(credentials)])
    state = retried(no_retries, [{"model": "m", "input": "q"}], poll_schedule=FAST, return_state=True)

    assert state.is_completed(), state.message
    assert len(ours(runs_emulator)) == 1, "the retry followed the first attempt's batch"
    assert len(runs_emulator.batches()) == 2, "ours and the sibling"
    assert runs_emulator.request_count("GET", r"^/v1/batches$") == 0, "read by its id, not searched for"


@pytest.mark.usefixtures("two_hours_later")
def test_a_retry_searches_back_to_its_intent_when_the_batch_was_not_recorded(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials
) -> None:
    """Attempt 1's create answer is lost and its look-ups fail: its batch runs on, unrecorded. The retry,
    two hours later and after another batch was created, searches back to its intent's time and finds it."""
    runs_emulator.default_batch_script = BatchScript(validating_seconds=0.01, in_progress_seconds=0.3)
    no_retries = credentials.model_copy(update={"max_retries": 0})
    runs_emulator.add_fault(FaultRule(method="POST", path=r"^/v1/batches$", kind="drop_after", times=1))
    runs_emulator.add_fault(FaultRule(method="GET", path=r"^/v1/batches$", kind="drop_before", times=2))

    retried = run_batch.with_options(retries=1, retry_delay_seconds=0, on_running=[sibling_on_retry(credentials)])
    state = retried(no_retries, [{"model": "m", "input": "q"}], poll_schedule=FAST, return_state=True)

    assert state.is_completed(), state.message
    assert len(ours(runs_emulator)) == 1, "the retry found the first attempt's batch past the newer one"
    assert len(runs_emulator.batches()) == 2


def test_find_batch_looks_back_to_a_given_time_past_newer_batches(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    with credentials.get_batches_client() as client:
        uploaded = client.upload_file(LINE, "in.jsonl")
        mine = client.create_batch(
            input_file_id=uploaded.id, endpoint="/v1/responses", idempotency_key="k" * 32, completion_window="24h"
        )
        for _ in range(3):
            client.create_batch(input_file_id=uploaded.id, endpoint="/v1/responses", completion_window="24h")
        found = client.find_batch("k" * 32, not_before=mine.created_at - 600)
        later = time.time() + 7200
        monkeypatch.setattr(sync_batches, "time", SimpleNamespace(time=lambda: later))
        within_an_hour = client.find_batch("k" * 32)

    assert found is not None and found.id == mine.id
    assert within_an_hour is None, "without a time, only the last hour's batches are looked at"
