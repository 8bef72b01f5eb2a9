"""The contenders of W1 (detection) and W2 (cancel): the official SDK and ours, each as a user would write it.

Each contender is an async function taking one :class:`PlannedRun` and returning what the caller saw:
the run id, its final status, and ``time.time()`` at the moments that matter. They are driven
concurrently (one coroutine per run) from one event loop, one shared client per contender.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from _common import PlannedRun
from openai import AsyncOpenAI

from prefect_openai_runs._lifecycle._async._backend import Reader
from prefect_openai_runs._lifecycle._async._driver import cancel_job, follow
from prefect_openai_runs._lifecycle._async._runs import AsyncRunsApi, RunSpec
from prefect_openai_runs._lifecycle._follower import JobFollower, PollSchedule
from prefect_openai_runs._lifecycle._run_kind import RUN
from prefect_openai_runs.client import AsyncRunsClient
from prefect_openai_runs.exceptions import RunTimedOut
from prefect_openai_runs.models import CreateRunParams, Run


@dataclass
class Seen:
    """What a caller saw of one run."""

    thread_id: str
    run_id: str | None
    status: str | None
    have_at: float | None = None
    """``time.time()`` when the caller held the final run (W1)."""
    deadline_at: float | None = None
    """``time.time()`` of the caller's 1 s deadline (W2)."""
    error: str | None = None


Contender = Callable[[PlannedRun], Awaitable[Seen]]


@dataclass
class Clients:
    """One SDK client and one of ours, pointed at the emulator."""

    sdk: AsyncOpenAI
    ours: AsyncRunsClient
    assistant_id: str
    ours_httpx2: AsyncRunsClient | None = None
    """Experiment: our client over ``httpx2`` (the SDK's HTTP stack, Python >= 3.11), passed as
    ``http_client``; ``None`` when httpx2 is not installed."""

    @classmethod
    def open(cls, base_url: str, api_key: str, assistant_id: str) -> Clients:
        ours = AsyncRunsClient(api_key=api_key, base_url=base_url)
        return cls(
            sdk=AsyncOpenAI(api_key=api_key, base_url=base_url),
            ours=ours,
            assistant_id=assistant_id,
            ours_httpx2=_ours_over_httpx2(ours, base_url, api_key),
        )

    async def close(self) -> None:
        await self.sdk.close()
        await self.ours.aclose()
        if self.ours_httpx2 is not None:
            await self.ours_httpx2.aclose()


def _ours_over_httpx2(ours: AsyncRunsClient, base_url: str, api_key: str) -> AsyncRunsClient | None:
    try:
        import httpx2
    except ImportError:
        return None
    # The same headers, timeout and limits as AsyncRunsClient._http_options(), in httpx2's types.
    http = httpx2.AsyncClient(
        headers=ours._headers,
        timeout=60.0,
        limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=1000),
    )
    return AsyncRunsClient(api_key=api_key, base_url=base_url, http_client=http)  # type: ignore[arg-type]


# -- W1: detection ----------------------------------------------------------------------------------


def w1_sdk(c: Clients) -> Contender:
    """``runs.create_and_poll``: 1 s polls (or the server's hint; the emulator sends none here)."""

    async def one(p: PlannedRun) -> Seen:
        run = await c.sdk.beta.threads.runs.create_and_poll(
            thread_id=p.thread_id, assistant_id=c.assistant_id, metadata={"bench": p.key}
        )
        return Seen(p.thread_id, run.id, run.status, have_at=time.time())

    return one


async def start_streamed(c: Clients, p: PlannedRun, max_wait: float) -> tuple[JobFollower[Run], Reader[Run] | None]:
    """What ``flows.run_assistant`` does: the core's start (stream the create, read up to the first run
    event), then a follower of the run."""
    params = CreateRunParams(assistant_id=c.assistant_id, metadata={"bench": p.key})
    first, events = await AsyncRunsApi(c.ours).start(RunSpec(p.thread_id, params, p.key), stream=True)
    follower = JobFollower(RUN, RUN.ref(first), max_wait)
    follower.observe(first)
    return follower, events


def w1_ours_stream(c: Clients) -> Contender:
    """The core's streamed start + ``follow`` with the event stream."""

    async def one(p: PlannedRun) -> Seen:
        follower, events = await start_streamed(c, p, 120.0)
        run = await follow(AsyncRunsApi(c.ours), follower, events)
        return Seen(p.thread_id, run.id, run.status.value, have_at=time.time())

    return one


def w1_ours_poll(c: Clients, schedule: PollSchedule | None = None, httpx2: bool = False) -> Contender:
    """``create_run`` + the core's ``follow`` without events (what the ``wait_for_run`` task does), with the
    default or another ``PollSchedule``; ``httpx2`` uses our client over httpx2 (experiment)."""
    client = c.ours_httpx2 if httpx2 else c.ours
    assert client is not None, "httpx2 is not installed"

    async def one(p: PlannedRun) -> Seen:
        run = await client.create_run(p.thread_id, assistant_id=c.assistant_id, metadata={"bench": p.key})
        follower = JobFollower(RUN, RUN.ref(run), 120.0, schedule=schedule or PollSchedule())
        follower.observe(run)
        final = await follow(AsyncRunsApi(client), follower)
        return Seen(p.thread_id, final.id, final.status.value, have_at=time.time())

    return one


# -- W2: cancel at a 1 s deadline ---------------------------------------------------------------------

DEADLINE = 1.0


def w2_sdk_best(c: Clients) -> Contender:
    """The SDK's best effort: ``runs.create`` (to learn the id), ``asyncio.wait_for(runs.poll(...), 1)``,
    then ``runs.cancel`` on timeout. The cancel is not awaited to its end (the SDK has no helper for that)."""

    async def one(p: PlannedRun) -> Seen:
        run = await c.sdk.beta.threads.runs.create(
            thread_id=p.thread_id, assistant_id=c.assistant_id, metadata={"bench": p.key}
        )
        deadline_at = time.time() + DEADLINE
        try:
            final = await asyncio.wait_for(c.sdk.beta.threads.runs.poll(run.id, thread_id=p.thread_id), DEADLINE)
            return Seen(p.thread_id, run.id, final.status, deadline_at=deadline_at)
        except asyncio.TimeoutError:
            cancelled = await c.sdk.beta.threads.runs.cancel(run.id, thread_id=p.thread_id)
            return Seen(p.thread_id, run.id, cancelled.status, deadline_at=deadline_at)

    return one


def w2_sdk_naive(c: Clients) -> Contender:
    """What most SDK code does: ``asyncio.wait_for(create_and_poll(...), 1)``; the run id is never known,
    so nothing can be cancelled."""

    async def one(p: PlannedRun) -> Seen:
        deadline_at = time.time() + DEADLINE
        try:
            run = await asyncio.wait_for(
                c.sdk.beta.threads.runs.create_and_poll(
                    thread_id=p.thread_id, assistant_id=c.assistant_id, metadata={"bench": p.key}
                ),
                DEADLINE,
            )
            return Seen(p.thread_id, run.id, run.status, deadline_at=deadline_at)
        except asyncio.TimeoutError:
            return Seen(p.thread_id, None, "timed out (run id unknown)", deadline_at=deadline_at)

    return one


async def _follow_then_cancel(
    client: AsyncRunsClient, follower: JobFollower[Run], events: Reader[Run] | None, deadline_at: float
) -> Seen:
    """The core's ``follow`` to the deadline, then ``cancel_job``: what ``wait_for_run`` and the flows do."""
    api = AsyncRunsApi(client)
    thread_id = follower.ref.parent_id or ""
    try:
        run = await follow(api, follower, events)
        return Seen(thread_id, run.id, run.status.value, deadline_at=deadline_at)
    except RunTimedOut:
        result = await cancel_job(api, follower.ref, 30.0)
        return Seen(thread_id, follower.ref.id, result.job.status.value, deadline_at=deadline_at)


def w2_ours_poll(c: Clients) -> Contender:
    """``create_run`` + ``follow`` (1 s deadline) + ``cancel_job`` (the ``wait_for_run`` task)."""

    async def one(p: PlannedRun) -> Seen:
        run = await c.ours.create_run(p.thread_id, assistant_id=c.assistant_id, metadata={"bench": p.key})
        follower = JobFollower(RUN, RUN.ref(run), DEADLINE)
        deadline_at = time.time() + DEADLINE
        follower.observe(run)
        return await _follow_then_cancel(c.ours, follower, None, deadline_at)

    return one


def w2_ours_stream(c: Clients) -> Contender:
    """streamed start + ``follow`` (1 s deadline) + ``cancel_job`` (``run_assistant``)."""

    async def one(p: PlannedRun) -> Seen:
        follower, events = await start_streamed(c, p, DEADLINE)
        deadline_at = time.time() + follower.remaining
        try:
            return await _follow_then_cancel(c.ours, follower, events, deadline_at)
        finally:
            if events is not None:
                await events.close()

    return one


async def drive(contender: Contender, plan: list[PlannedRun]) -> list[Seen]:
    """Start every run at once and wait for all; a failure is recorded, not raised."""

    async def guarded(p: PlannedRun) -> Seen:
        try:
            return await contender(p)
        except Exception as exc:
            return Seen(p.thread_id, None, None, error=f"{type(exc).__name__}: {exc}"[:300])

    return list(await asyncio.gather(*(guarded(p) for p in plan)))
