"""Fan-out at fleet scale: the prompts split into chunks, each chunk a deployment run of
``run-assistant-fan-out`` on a work pool (whichever worker picks it up runs it), awaited, re-run when it
failed, crashed or went silent, and the answers merged in prompt order.

Prefect is the engine: work pools, workers and the server's flow-run states and heartbeats. Nothing here
schedules. A chunk's creates carry idempotency keys derived from (this flow run, the chunk, the prompt's
rank), so a chunk re-run on a new flow run re-attaches to the runs its lost attempt created (their
intents are on the Prefect server) instead of creating others. The results are read back from the API
by those keys, so no result storage has to be shared between the workers and this flow.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from prefect import flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter
from prefect.states import Cancelling, Crashed

from prefect_openai_runs._intents import recorded_intents
from prefect_openai_runs._lifecycle._keys import derived_key
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import current_flow_run_id
from prefect_openai_runs._run_sync import run_coroutine
from prefect_openai_runs.blocks import OpenAICredentials, resolve_credentials
from prefect_openai_runs.models import Run

HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
RERUN_STATES = frozenset({StateType.FAILED, StateType.CRASHED})
"""Chunk flow-run states after which the chunk is run again (while attempts are left)."""
STOPPED_STATES = frozenset({StateType.CANCELLED, StateType.CANCELLING})
"""Chunk flow-run states that stop the fleet: someone cancelled a chunk."""


@dataclass
class Chunk:
    """A slice of the prompts and the flow runs that ran it (the last one current)."""

    index: int
    start: int
    prompts: list[str]
    key_prefix: str
    flow_runs: list[FlowRun] = field(default_factory=list)

    def idempotency_keys(self) -> list[str]:
        """The idempotency keys of the chunk's creates, in prompt order."""
        return [derived_key(self.key_prefix, i) for i in range(len(self.prompts))]


def split(prompts: list[str], chunk_size: int, key_base: str) -> list[Chunk]:
    """The prompts in chunks of ``chunk_size``, each with its key prefix."""
    return [
        Chunk(index, start, prompts[start : start + chunk_size], f"{key_base}-{index}")
        for index, start in enumerate(range(0, len(prompts), chunk_size))
    ]


def _block_name(credentials: OpenAICredentials | str) -> str:
    if isinstance(credentials, str):
        return credentials
    name = credentials._block_document_name
    if not name:
        raise ValueError("save the credentials block and pass its name: the chunks run in other processes")
    return name


def _silent_since(client: SyncPrefectClient, flow_run: FlowRun, lost_after_seconds: float) -> bool:
    """Whether a pending or running flow run has given no sign of life (a state change, a heartbeat) for
    ``lost_after_seconds``: its worker or machine is gone."""
    now = datetime.now(timezone.utc)
    since = now - timedelta(seconds=lost_after_seconds)
    changed = flow_run.state.timestamp if flow_run.state is not None else None
    if changed is not None and changed > since:
        return False
    page = client.read_events(
        EventFilter(
            occurred=EventOccurredFilter(since=since, until=now),
            event=EventNameFilter(name=[HEARTBEAT_EVENT]),
            resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run.id}"]),
        ),
        limit=1,
    )
    return not page.events


class Fleet:
    """Submits the chunks, watches their flow runs, and re-runs the lost ones."""

    def __init__(
        self,
        deployment_name: str,
        parameters: dict[str, Any],
        attempts: int,
        lost_after_seconds: float,
    ) -> None:
        self.deployment_name = deployment_name
        self.parameters = parameters
        self.attempts = attempts
        self.lost_after_seconds = lost_after_seconds

    def submit(self, chunk: Chunk) -> None:
        """Run the chunk as a deployment run (a subflow run of this flow run); do not wait for it."""
        attempt = len(chunk.flow_runs) + 1
        flow_run = run_deployment(
            self.deployment_name,
            parameters={**self.parameters, "prompts": chunk.prompts, "idempotency_key_prefix": chunk.key_prefix},
            flow_run_name=f"chunk-{chunk.index}-attempt-{attempt}",
            timeout=0,
        )
        if not isinstance(flow_run, FlowRun):  # run_deployment answers a coroutine only in async code
            raise TypeError("run_assistant_fleet is a sync flow; run_deployment returned a coroutine")
        chunk.flow_runs.append(flow_run)
        get_logger().info(
            "Chunk %d (prompts %d-%d) is flow run %s (attempt %d)",
            chunk.index,
            chunk.start,
            chunk.start + len(chunk.prompts) - 1,
            flow_run.id,
            attempt,
        )

    def settle(self, client: SyncPrefectClient, chunks: list[Chunk]) -> list[Chunk]:
        """Look at every chunk's current flow run once; re-run the lost ones. Returns those not done."""
        by_id = {c.flow_runs[-1].id: c for c in chunks}
        read = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(by_id))))
        current = {flow_run.id: flow_run for flow_run in read}
        waiting: list[Chunk] = []
        for flow_run_id, chunk in by_id.items():
            flow_run = current.get(flow_run_id, chunk.flow_runs[-1])
            kind = flow_run.state.type if flow_run.state is not None else StateType.SCHEDULED
            if kind is StateType.COMPLETED:
                continue
            if kind in STOPPED_STATES:
                raise RuntimeError(f"chunk {chunk.index}'s flow run {flow_run.name} was cancelled")
            # A pending flow run sends no heartbeat yet (its process is starting): give it twice as long.
            allowance = {StateType.RUNNING: self.lost_after_seconds, StateType.PENDING: 2 * self.lost_after_seconds}
            lost = kind in allowance and _silent_since(client, flow_run, allowance[kind])
            if kind in RERUN_STATES or lost:
                self.rerun(client, chunk, flow_run, lost)
            waiting.append(chunk)
        return waiting

    def rerun(self, client: SyncPrefectClient, chunk: Chunk, flow_run: FlowRun, lost: bool) -> None:
        """Run the chunk again (it re-attaches to the runs already created), or fail once out of attempts."""
        why = "went silent (its worker is gone)" if lost else f"ended {flow_run.state.name if flow_run.state else '?'}"
        if lost:
            message = f"no heartbeat for {self.lost_after_seconds:g}s: its worker is gone"
            client.set_flow_run_state(flow_run.id, Crashed(message=message), force=True)
            # If it was only slow, it goes on; the re-run re-attaches to the same runs, nothing is duplicated.
        if len(chunk.flow_runs) >= self.attempts:
            raise RuntimeError(f"chunk {chunk.index}'s flow run {flow_run.name} {why}, after {self.attempts} attempts")
        get_logger().warning("Chunk %d's flow run %s %s; running the chunk again", chunk.index, flow_run.name, why)
        self.submit(chunk)

    def stop(self, client: SyncPrefectClient, chunks: list[Chunk]) -> None:
        """Cancel the chunks still going (each cancels its OpenAI runs on the way out)."""
        for chunk in chunks:
            client.set_flow_run_state(chunk.flow_runs[-1].id, Cancelling(message="the fleet flow run stopped"))


def collect(credentials: OpenAICredentials | str, chunks: list[Chunk]) -> list[Run]:
    """Every chunk's runs, read back from the API by their keys (threads from the recorded intents)."""
    threads: dict[str, str] = {}
    for chunk in chunks:
        for flow_run in chunk.flow_runs:
            threads.update({i.key: i.parent_id for i in recorded_intents(flow_run.id) if i.parent_id})
    keys = [key for chunk in chunks for key in chunk.idempotency_keys()]
    missing = [key for key in keys if key not in threads]
    if missing:
        raise RuntimeError(f"{len(missing)} prompt(s) have no recorded run (first key {missing[0]})")
    creds = resolve_credentials(credentials)

    async def find_all() -> list[Run | None]:
        async with creds.get_async_client() as client:
            return list(await asyncio.gather(*(client.find_run(threads[key], key) for key in keys)))

    found: list[Run | None] = run_coroutine(find_all()) or []
    runs = [run for run in found if run is not None]
    if len(runs) != len(keys):
        raise RuntimeError(f"{len(keys) - len(runs)} prompt(s) have no run on their thread")
    return runs


@flow(name="run-assistant-fleet", description="Fan out many prompts over a work pool's workers, in chunks.")
def run_assistant_fleet(
    credentials: OpenAICredentials | str,
    assistant_id: str,
    prompts: list[str],
    chunk_size: int = 100,
    deployment_name: str = "run-assistant-fan-out/fleet",
    max_wait_seconds: float = 600.0,
    attempts: int = 3,
    lost_after_seconds: float = 600.0,
    poll_seconds: float = 2.0,
    **run_parameters: Any,
) -> list[Run]:
    """Run an assistant on many prompts across a work pool: each chunk of prompts is a deployment run of
    ``run_assistant_fan_out`` (shown as a subflow run), awaited; the runs are returned in prompt order.

    A chunk whose flow run failed or crashed, or went silent for ``lost_after_seconds`` (no state change
    nor heartbeat: its worker was killed, its machine lost; twice that while pending, before its first
    heartbeat), is marked crashed and run again, at most
    ``attempts`` times in all. The runs' idempotency keys derive from this flow run, the chunk and the
    prompt's rank, so a re-run re-attaches to the runs its earlier attempt created (still active, or
    already ended) and creates only the missing ones: no duplicates. If this flow run stops (an error, a
    cancellation), the chunks still going are cancelled, and cancel their OpenAI runs.

    Args:
        credentials: The name of a saved credentials block (or the saved block): the chunks load it.
        assistant_id: The assistant to run.
        prompts: One run per prompt, each on its own thread.
        chunk_size: Prompts per deployment run.
        deployment_name: The deployment of ``run-assistant-fan-out`` on the work pool (``flow/deployment``).
        max_wait_seconds: Each chunk's deadline.
        attempts: Flow runs per chunk at most (the first included).
        lost_after_seconds: Silence after which a pending or running chunk counts as lost; keep it above
            the workers' heartbeat period (``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``, 180 s by default).
        poll_seconds: How often the chunks' flow runs are read.
        **run_parameters: Any other *create run* parameter, passed to every chunk.

    Returns:
        One completed run per prompt, in prompt order.

    Raises:
        RuntimeError: A chunk was cancelled, or failed ``attempts`` times, or a prompt has no run.

    Example:
        ```python
        from prefect_openai_runs.flows import run_assistant_fleet

        runs = run_assistant_fleet("openai", "asst_abc", prompts, chunk_size=100)
        ```
    """
    if not prompts:
        raise ValueError("prompts must hold at least one prompt")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    if not lost_after_seconds > 0 or not poll_seconds > 0:
        raise ValueError("lost_after_seconds and poll_seconds must be positive")
    name = _block_name(credentials)
    parameters = {
        "credentials": name,
        "assistant_id": assistant_id,
        "max_wait_seconds": max_wait_seconds,
        **run_parameters,
    }
    fleet = Fleet(deployment_name, parameters, attempts, lost_after_seconds)
    chunks = split(prompts, chunk_size, f"fleet-{current_flow_run_id() or uuid.uuid4()}")
    for chunk in chunks:
        fleet.submit(chunk)
    waiting = chunks
    with get_client(sync_client=True) as client:
        try:
            while waiting:
                time.sleep(poll_seconds)
                waiting = fleet.settle(client, waiting)
        except BaseException:
            fleet.stop(client, waiting)
            raise
    get_logger().info("All %d chunks completed; reading their %d runs", len(chunks), len(prompts))
    return collect(name, chunks)
