"""Creating many runs at once, concurrently and bounded, each on its own (empty) thread, never losing one.

The creates go in waves: a wave's intents are recorded first (one artifact for the wave, through one
async Prefect client) and each run is known in-process at once (its card is queued once every run
exists, so that the cards do not slow the creates down), so a run is never lost; the first create
that fails stops the ones not yet started, lets the ones in flight finish (a create cut short could
leave a run nobody knows), and the caller cancels what was created.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prefect.client.orchestration import PrefectClient

from prefect_openai_runs._intents import Intent, record_intents_async
from prefect_openai_runs._lifecycle._async._driver import start_job
from prefect_openai_runs._lifecycle._async._runs import AsyncRunsApi, RunSpec
from prefect_openai_runs._lifecycle._follower import StatusChange
from prefect_openai_runs._lifecycle._run_kind import RUN
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import ArtifactWriter
from prefect_openai_runs.client import AsyncRunsClient
from prefect_openai_runs.client._operations import refused_outright
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
    """Create one run per ``params`` (tagged with its key), each on a new empty thread, in waves of ``concurrency``.

    A wave creates its threads at once, records its intents in one artifact (see
    :func:`~prefect_openai_runs._intents.record_intents_async`), then creates its runs at once; the next
    wave's threads and intents are made meanwhile (so up to twice ``concurrency`` requests are in
    flight). Every run is appended to ``created`` the moment it exists (so a caller interrupted
    meanwhile knows what to cancel); once ``stopped`` is set (by such a caller) no further create starts.

    A key an ``earlier`` attempt recorded goes on that attempt's thread and re-attaches to its run.

    Returns:
        The runs, in the order of ``params``.

    Raises:
        Exception: The first create that failed, once every create in flight has ended; ``created`` then
            holds the runs that exist.
    """
    api = AsyncRunsApi(client)
    writer = ArtifactWriter(stopped)  # the cards once every run exists
    failures: list[BaseException] = []
    runs: list[Run | None] = [None] * len(params)
    recorded = earlier or {}

    def going() -> bool:
        return not failures and not stopped.is_set()

    async def thread_of(index: int) -> _Thread | None:
        before = recorded.get(keys[index])
        if before is not None and before.parent_id:
            return _Thread(index, before.parent_id, reattach=True)
        if not going():
            return None
        try:
            return _Thread(index, (await client.create_thread()).id, reattach=False)
        except Exception as exc:
            failures.append(exc)
            return None

    async def prepare(wave: range) -> list[_Thread]:
        """The wave's threads, then its intents recorded (an intent recorded whose run is never created
        is harmless: nothing is found by its key; a retry creates the run on its thread)."""
        threads = [thread for thread in await asyncio.gather(*(thread_of(i) for i in wave)) if thread is not None]
        if going():
            fresh = [Intent(RUN.name, keys[t.index], t.id) for t in threads if not t.reattach]
            await record_intents_async(prefect, fresh)
        return threads

    async def create(thread: _Thread) -> None:
        if not going():  # its thread stays: its intent is recorded, a retry goes back to it
            return
        key = keys[thread.index]
        try:
            spec = RunSpec(thread.id, params[thread.index], key, reattach=thread.reattach)
            run, _ = await start_job(api, spec, key=key, parent_id=thread.id, stream=False, hooks=_Silent())
        except Exception as exc:
            failures.append(exc)
            if not thread.reattach and refused_outright(exc):  # nothing was created but the thread
                await client.discard_thread(thread.id)
            return
        runs[thread.index] = run
        created.append(run)
        get_logger().info("Created OpenAI run %s on thread %s (status %s)", run.id, run.thread_id, run.status)
        writer.write(run, [], "created; being followed", fresh=not thread.reattach)

    waves = [range(start, min(start + concurrency, len(params))) for start in range(0, len(params), concurrency)]
    upcoming: asyncio.Future[list[_Thread]] | None = None
    try:
        for number, wave in enumerate(waves):
            threads = await (upcoming or prepare(wave))
            upcoming = None
            if not going():
                break
            if number + 1 < len(waves):
                upcoming = asyncio.ensure_future(prepare(waves[number + 1]))
            await asyncio.gather(*(create(thread) for thread in threads))
    finally:
        writer.release()
        if upcoming is not None:
            await asyncio.gather(upcoming, return_exceptions=True)  # what is in flight ends (empty threads: harmless)
    if failures:
        raise failures[0]
    return [run for run in runs if run is not None]


@dataclass(frozen=True)
class _Thread:
    """A wave member's thread: new, or an earlier attempt's (whose run is re-attached to)."""

    index: int
    id: str
    reattach: bool
