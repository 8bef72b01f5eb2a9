"""Creating many runs at once, concurrently and bounded, each on its own (empty) thread, never losing one.

Each create records its intent first and its run at once (both through one async Prefect client), so a
run is never lost; the first create that fails stops the ones not yet started, lets the ones in flight
finish (a create cut short could leave a run nobody knows), and the caller cancels what was created.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from prefect.client.orchestration import PrefectClient

from prefect_openai_runs._intents import Intent, record_intent_async
from prefect_openai_runs._lifecycle._async._driver import start_job
from prefect_openai_runs._lifecycle._async._runs import AsyncRunsApi, RunSpec
from prefect_openai_runs._lifecycle._follower import StatusChange
from prefect_openai_runs._lifecycle._run_kind import RUN
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import ArtifactWriter
from prefect_openai_runs.client import AsyncRunsClient
from prefect_openai_runs.models import CreateRunParams, Run


class _Silent:
    """Hooks that report nothing: intent and creation are recorded asynchronously around the create."""

    def intent(self, kind: str, key: str, parent_id: str | None) -> None:
        """Recorded before, by :func:`create_runs`."""

    def created(self, job: Any) -> None:
        """Recorded after, by :func:`create_runs`."""

    def changed(self, change: StatusChange, job: Any) -> None:
        """Not followed here."""

    def tick(self, elapsed: float) -> None:
        """Not followed here."""

    def ended(self, job: Any, timeline: list[StatusChange], reason: str) -> None:
        """Not followed here."""


async def create_runs(
    client: AsyncRunsClient,
    prefect: PrefectClient,
    params: Sequence[CreateRunParams],
    keys: Sequence[str],
    concurrency: int,
    created: list[Run],
    stopped: threading.Event,
    earlier: Mapping[str, Intent] | None = None,
) -> list[Run]:
    """Create one run per ``params`` (tagged with its key), each on a new empty thread, ``concurrency`` at once.

    Every run is appended to ``created`` the moment it exists (so a caller interrupted meanwhile knows
    what to cancel); once ``stopped`` is set (by such a caller) no further create starts.

    A key an ``earlier`` attempt recorded goes on that attempt's thread and re-attaches to its run.

    Returns:
        The runs, in the order of ``params``.

    Raises:
        Exception: The first create that failed, once every create in flight has ended; ``created`` then
            holds the runs that exist.
    """
    api = AsyncRunsApi(client)
    slots = asyncio.Semaphore(concurrency)
    writer = ArtifactWriter(prefect, concurrency=min(concurrency, 8), stopped=stopped)
    failures: list[BaseException] = []
    runs: list[Run | None] = [None] * len(params)

    async def create(index: int) -> None:
        async with slots:
            if failures or stopped.is_set():
                return
            try:
                key = keys[index]
                before = (earlier or {}).get(key)
                if before is not None and before.parent_id:
                    thread_id, reattach = before.parent_id, True
                else:
                    thread_id, reattach = (await client.create_thread()).id, False
                    await record_intent_async(prefect, Intent(RUN.name, key, thread_id))
                spec = RunSpec(thread_id, params[index], key, reattach=reattach)
                run, _ = await start_job(api, spec, key=key, parent_id=thread_id, stream=False, hooks=_Silent())
            except Exception as exc:
                failures.append(exc)
                return
            runs[index] = run
            created.append(run)
            get_logger().info("Created OpenAI run %s on thread %s (status %s)", run.id, run.thread_id, run.status)
            await writer.write(run, [], "created; being followed")

    await asyncio.gather(*(create(i) for i in range(len(params))))
    if failures:
        raise failures[0]
    return [run for run in runs if run is not None]
