"""The JobBlock interface: trigger, wait_for_completion, fetch_result, cancel."""

from __future__ import annotations

import asyncio

import pytest
from prefect import flow

from flow_helpers import assert_nothing_active, final_markdown
from prefect_openai_runs import OpenAIAssistantRun, OpenAICredentials, RunFailed, RunStatus, RunTimedOut
from prefect_openai_runs.testing import RunScript, RunsEmulator

pytestmark = pytest.mark.usefixtures("prefect_server")


def _job(runs_emulator: RunsEmulator, credentials: OpenAICredentials, **options: float) -> OpenAIAssistantRun:
    return OpenAIAssistantRun(
        credentials=credentials, assistant_id=runs_emulator.default_assistant_id, messages=["hi"], **options
    )


def test_trigger_wait_and_fetch(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_script(RunScript(reply_text="Job done."))

    @flow
    async def pipeline() -> str:
        job_run = await _job(runs_emulator, credentials).trigger()
        await job_run.wait_for_completion()
        try:
            return await job_run.fetch_result()
        finally:
            await job_run.close()

    assert asyncio.run(pipeline()) == "Job done."


def test_deadline_cancels_and_raises(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_script(RunScript(in_progress_seconds=60))

    @flow
    async def pipeline() -> None:
        job_run = await _job(runs_emulator, credentials, max_wait_seconds=0.5).trigger()
        try:
            await job_run.wait_for_completion()
        finally:
            await job_run.close()

    with pytest.raises(RunTimedOut) as caught:
        asyncio.run(pipeline())

    assert caught.value.run.status is RunStatus.CANCELLED
    assert "deadline" in final_markdown(caught.value.run.id)
    assert_nothing_active(runs_emulator)


def test_cancel_and_failure(runs_emulator: RunsEmulator, credentials: OpenAICredentials) -> None:
    runs_emulator.add_script(RunScript(in_progress_seconds=60))

    @flow
    async def cancel_it() -> str:
        job_run = await _job(runs_emulator, credentials).trigger()
        try:
            return str((await job_run.cancel()).status)
        finally:
            await job_run.close()

    assert asyncio.run(cancel_it()) == "cancelled"

    runs_emulator.add_script(RunScript(outcome="failed"))

    @flow
    async def fail_it() -> None:
        job_run = await _job(runs_emulator, credentials).trigger()
        try:
            await job_run.wait_for_completion()
        finally:
            await job_run.close()

    with pytest.raises(RunFailed):
        asyncio.run(fail_it())
    assert_nothing_active(runs_emulator)
