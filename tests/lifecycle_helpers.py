"""Shortcuts to the lifecycle core's run adapter, for tests that drive it directly."""

from __future__ import annotations

from typing import Any

from prefect_openai_runs._lifecycle._async._driver import follow as follow_async_core
from prefect_openai_runs._lifecycle._async._runs import AsyncRunsApi
from prefect_openai_runs._lifecycle._follower import JobFollower
from prefect_openai_runs._lifecycle._kinds import JobRef
from prefect_openai_runs._lifecycle._run_kind import RUN
from prefect_openai_runs._lifecycle._sync._driver import follow as follow_sync_core
from prefect_openai_runs._lifecycle._sync._runs import RunsApi
from prefect_openai_runs.client import AsyncRunsClient, RunsClient
from prefect_openai_runs.models import Run


def RunFollower(thread_id: str, run_id: str, max_wait_seconds: float, **options: Any) -> JobFollower[Run]:
    """A follower of one run."""
    return JobFollower(RUN, JobRef(RUN.name, run_id, thread_id), max_wait_seconds, **options)


def follow_sync(client: RunsClient, follower: JobFollower[Run]) -> Run:
    """Follow a run by polling through a sync client."""
    return follow_sync_core(RunsApi(client), follower)


async def follow_async(client: AsyncRunsClient, follower: JobFollower[Run]) -> Run:
    """Follow a run by polling through an async client."""
    return await follow_async_core(AsyncRunsApi(client), follower)
