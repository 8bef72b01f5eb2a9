"""W6 (background responses): detection and cancel, the official SDK vs ours, against the emulator in its
own process (part of ``run_bench.py``: ``--only w6``).

The SDK has no poller for responses: its best effort is ``responses.create(background=True)`` then a
``responses.retrieve`` every second until the status is terminal, and a hand-written cancel
(``asyncio.wait_for`` around that loop, then ``responses.cancel``). Ours is the library's own lifecycle
as ``run_response`` runs it (its async twin, ``run_job`` over ``AsyncResponsesApi``, without Prefect
recording): streamed (the create's stream followed to its terminal event) or polled (the default
``PollSchedule``).

Each response has its own model name (``w6-<i>``), which its emulator script rule is matched on; its
requests are found in the emulator's request log by that model (the create) or its id (reads, resumed
streams, cancels).

* **detection**: N responses of spread durations started together; lag = the caller holds the
  terminal response - the emulator's ``terminal_at`` (p50, p95, max), and requests per response.
* **cancel**: N responses that would run 60 s, a 1 s deadline: time from each caller's deadline to
  the response ``cancelled`` on the emulator, how many were cancelled, how many were left active.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psutil
from _common import detection_lags, emulator_cpu, ratio, spread, summary_ms, when
from openai import AsyncOpenAI

from prefect_openai_runs import AsyncResponsesClient
from prefect_openai_runs._lifecycle._async._driver import run_job
from prefect_openai_runs._lifecycle._async._responses import AsyncResponsesApi, ResponseSpec
from prefect_openai_runs._lifecycle._hooks import SilentHooks
from prefect_openai_runs._lifecycle._keys import logical_key
from prefect_openai_runs.client._async.responses import response_params
from prefect_openai_runs.exceptions import JobTimedOut
from prefect_openai_runs.testing import RemoteEmulator, ResponseRecord, ResponseScript

DURATIONS = (0.5, 5.0)
"""Detection: the responses' durations (queued 0.1 s, then in progress), evenly spread."""
CANCEL_RESPONSE_SECONDS = 60.0
DEADLINE = 1.0
SDK_POLL_SECONDS = 1.0
QUEUED_SECONDS = 0.1
TERMINAL = frozenset({"completed", "failed", "cancelled", "incomplete"})
ACTIVE = frozenset({"queued", "in_progress"})
INPUT = "Benchmark prompt."


@dataclass(frozen=True)
class PlannedResponse:
    """One response of a workload: the model name its script is matched by, its duration."""

    model: str
    duration: float


@dataclass
class Seen:
    """What a caller saw of one response."""

    model: str
    response_id: str | None = None
    status: str | None = None
    have_at: float | None = None
    """``time.time()`` when the caller held the final response (detection), or returned (cancel)."""
    deadline_at: float | None = None
    """``time.time()`` of the caller's 1 s deadline (cancel)."""
    error: str | None = None


Contender = Callable[[PlannedResponse], Awaitable[Seen]]


# -- the SDK's best effort ----------------------------------------------------------------------------


async def _sdk_until_terminal(sdk: AsyncOpenAI, response: Any) -> Any:
    """A ``responses.retrieve`` every second until the status is terminal (the SDK has no poller)."""
    while response.status not in TERMINAL:
        await asyncio.sleep(SDK_POLL_SECONDS)
        response = await sdk.responses.retrieve(response.id)
    return response


def sdk_detect(sdk: AsyncOpenAI) -> Contender:
    """``responses.create(background=True)``, then a ``retrieve`` every second."""

    async def one(p: PlannedResponse) -> Seen:
        created = await sdk.responses.create(model=p.model, input=INPUT, background=True)
        final = await _sdk_until_terminal(sdk, created)
        return Seen(p.model, final.id, final.status, have_at=time.time())

    return one


def sdk_cancel(sdk: AsyncOpenAI) -> Contender:
    """The create, ``asyncio.wait_for`` (1 s) around the retrieve loop, then ``responses.cancel``."""

    async def one(p: PlannedResponse) -> Seen:
        created = await sdk.responses.create(model=p.model, input=INPUT, background=True)
        deadline_at = time.time() + DEADLINE
        try:
            final = await asyncio.wait_for(_sdk_until_terminal(sdk, created), DEADLINE)
        except asyncio.TimeoutError:
            final = await sdk.responses.cancel(created.id)
        return Seen(p.model, final.id, final.status, have_at=time.time(), deadline_at=deadline_at)

    return one


# -- ours ---------------------------------------------------------------------------------------------


async def _run_ours(client: AsyncResponsesClient, p: PlannedResponse, stream: bool, max_wait: float) -> Seen:
    """The library's lifecycle for one response, as ``run_response`` runs it (async, no Prefect recording):
    create (streamed or not), follow under one deadline, and end it (cancel, read again) on any other path."""
    key = logical_key("response")
    spec = ResponseSpec(response_params(None, {"model": p.model, "input": INPUT}), key)
    deadline_at = time.time() + max_wait
    try:
        final = await run_job(
            AsyncResponsesApi(client),
            spec,
            key=key,
            parent_id=None,
            max_wait_seconds=max_wait,
            cancel_wait_seconds=30.0,
            stream=stream,
            hooks=SilentHooks(),
        )
    except JobTimedOut as exc:
        final = exc.job
    return Seen(p.model, final.id, str(final.status), have_at=time.time(), deadline_at=deadline_at)


def ours_detect(client: AsyncResponsesClient, stream: bool) -> Contender:
    """``run_job`` streamed, or polled on the default schedule (generous deadline)."""

    async def one(p: PlannedResponse) -> Seen:
        return await _run_ours(client, p, stream, 120.0)

    return one


def ours_cancel(client: AsyncResponsesClient, stream: bool) -> Contender:
    """``run_job`` with a 1 s deadline: it cancels the response and waits for the cancel."""

    async def one(p: PlannedResponse) -> Seen:
        return await _run_ours(client, p, stream, DEADLINE)

    return one


# -- set-up and attribution -----------------------------------------------------------------------------


def _script(duration: float) -> ResponseScript:
    queued = min(QUEUED_SECONDS, duration / 2)
    return ResponseScript(queued_seconds=queued, in_progress_seconds=max(0.0, duration - queued))


async def prepare(emu: RemoteEmulator, durations: list[float]) -> list[PlannedResponse]:
    """Reset the emulator, then give each duration its own model name and script rule."""
    plan = [PlannedResponse(f"w6-{i}", d) for i, d in enumerate(durations)]

    def add_rules() -> None:
        emu.reset()
        for p in plan:
            emu.add_response_script(_script(p.duration), model=p.model)

    await asyncio.to_thread(add_rules)
    return plan


def _records(emu: RemoteEmulator) -> dict[str, ResponseRecord]:
    """The emulator's responses keyed by model (one response per model)."""
    return {str(r.object.get("model")): r for r in emu.responses()}


def _requests(emu: RemoteEmulator, records: dict[str, ResponseRecord]) -> tuple[Counter[str], Counter[str]]:
    """Requests per response (keyed by model) and requests by kind, from the emulator's request log."""
    model_of = {r.id: model for model, r in records.items()}
    per_model: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for req in emu.requests:
        parts = req.path.split("/")  # "", "v1", "responses", id, "cancel"
        if parts[1:3] != ["v1", "responses"]:
            continue
        streamed = "stream=true" in req.query or (isinstance(req.body, dict) and req.body.get("stream") is True)
        if len(parts) == 3 and req.method == "POST":
            model, kind = str((req.body or {}).get("model")), "create"
        elif len(parts) >= 4:
            model = model_of.get(parts[3], "?")
            kind = "cancel" if parts[-1] == "cancel" else req.method.lower()
        else:
            continue
        per_model[model] += 1
        kinds[f"{kind} (stream)" if streamed else kind] += 1
    return per_model, kinds


async def _drive(contender: Contender, plan: list[PlannedResponse]) -> list[Seen]:
    """Start every response at once and wait for all; a failure is recorded, not raised."""

    async def guarded(p: PlannedResponse) -> Seen:
        try:
            return await contender(p)
        except Exception as exc:
            return Seen(p.model, error=f"{type(exc).__name__}: {exc}"[:300])

    return list(await asyncio.gather(*(guarded(p) for p in plan)))


def _per_response(per_model: Counter[str], plan: list[PlannedResponse]) -> dict[str, Any]:
    counts = [per_model[p.model] for p in plan]
    return {"requests_per_response": round(sum(counts) / len(counts), 2), "min_max": [min(counts), max(counts)]}


# -- the workloads ---------------------------------------------------------------------------------------


async def detection(
    emu: RemoteEmulator, emu_proc: psutil.Process | None, label: str, contender: Contender, durations: list[float]
) -> dict[str, Any]:
    """One detection contender: lag and requests per response."""
    print(f"  W6 detection: {label} ...", flush=True)
    plan = await prepare(emu, durations)
    with emulator_cpu(emu_proc) as emu_cpu:
        t0 = time.perf_counter()
        seen = await _drive(contender, plan)
        wall = time.perf_counter() - t0
    records = await asyncio.to_thread(_records, emu)
    per_model, kinds = await asyncio.to_thread(_requests, emu, records)
    lags, not_completed = detection_lags((s, records.get(s.model)) for s in seen)
    return {
        "label": label,
        "lag": summary_ms(lags),
        **_per_response(per_model, plan),
        "requests_by_kind": dict(kinds),
        "not_completed_or_errors": not_completed,
        "errors": sorted({s.error for s in seen if s.error})[:3],
        "wall_s": round(wall, 2),
        **emu_cpu,
    }


async def cancel(
    emu: RemoteEmulator, emu_proc: psutil.Process | None, label: str, contender: Contender, n: int
) -> dict[str, Any]:
    """One cancel contender: deadline -> cancelled on the emulator, cancelled, left active."""
    print(f"  W6 cancel: {label} ...", flush=True)
    plan = await prepare(emu, [CANCEL_RESPONSE_SECONDS] * n)
    with emulator_cpu(emu_proc) as emu_cpu:
        seen = await _drive(contender, plan)

    def active() -> int:
        return sum(1 for r in emu.responses() if r.status in ACTIVE)

    active_at_return = await asyncio.to_thread(active)
    await asyncio.sleep(1.0)  # grace: a cancel sent but not awaited would land by now
    records = await asyncio.to_thread(_records, emu)
    left_active = sum(1 for r in records.values() if r.status in ACTIVE)
    per_model, kinds = await asyncio.to_thread(_requests, emu, records)
    to_cancelled, to_return = [], []
    for s in seen:
        record = records.get(s.model)
        if record is None or s.deadline_at is None:
            continue
        if (at := when(record, "cancelled")) is not None:
            to_cancelled.append(at - s.deadline_at)
        if s.have_at is not None:
            to_return.append(s.have_at - s.deadline_at)
    return {
        "label": label,
        "cancelled": len(to_cancelled),
        "left_active_at_return": active_at_return,
        "left_active": left_active,
        "deadline_to_cancelled": summary_ms(to_cancelled),
        "deadline_to_caller_return": summary_ms(to_return),
        **_per_response(per_model, plan),
        "requests_by_kind": dict(kinds),
        "errors": sorted({s.error for s in seen if s.error})[:3],
        **emu_cpu,
    }


async def w6(emu: RemoteEmulator, emu_proc: psutil.Process | None, n: int, seed: int) -> dict[str, Any]:
    """Both parts of W6, every contender on a freshly reset emulator."""
    durations = spread(n, *DURATIONS, seed)
    sdk = AsyncOpenAI(api_key=emu.api_key, base_url=emu.base_url)
    ours = AsyncResponsesClient(api_key=emu.api_key, base_url=emu.base_url)
    out: dict[str, Any] = {
        "responses": n,
        "durations_s": list(DURATIONS),
        "seed": seed,
        "cancel_response_seconds": CANCEL_RESPONSE_SECONDS,
        "deadline_s": DEADLINE,
        "detection": {},
        "cancel": {},
    }
    try:
        for key, label, contender in [
            ("sdk", "SDK best effort: create(background=True) + retrieve every 1 s", sdk_detect(sdk)),
            ("ours_stream", "ours stream (run_job: streamed create, followed)", ours_detect(ours, True)),
            ("ours_poll", "ours poll (run_job: create + follow), default schedule", ours_detect(ours, False)),
        ]:
            out["detection"][key] = await detection(emu, emu_proc, label, contender, durations)
        for key, label, contender in [
            ("sdk", "SDK best effort: wait_for(retrieve loop, 1) + cancel", sdk_cancel(sdk)),
            ("ours_stream", "ours stream: run_job(1 s deadline)", ours_cancel(ours, True)),
            ("ours_poll", "ours poll: run_job(1 s deadline)", ours_cancel(ours, False)),
        ]:
            out["cancel"][key] = await cancel(emu, emu_proc, label, contender, n)
        await asyncio.to_thread(emu.reset)
    finally:
        await sdk.close()
        await ours.aclose()
    return out


# -- report ----------------------------------------------------------------------------------------------


def table(w: dict[str, Any]) -> list[str]:
    """The printed rows of W6."""
    low, high = w["durations_s"]
    lines = [f"W6 responses, detection: {w['responses']} background responses of {low}-{high} s started together"]
    lines.append(f"  {'contender':<60} {'lag p50':>8} {'p95':>7} {'max':>7} {'req/resp':>8} {'p50/SDK':>8}")
    sdk = w["detection"]["sdk"]
    for v in w["detection"].values():
        lag = v["lag"]
        lines.append(
            f"  {v['label']:<60} {lag['p50_ms']:>6.1f}ms {lag['p95_ms']:>5.0f}ms {lag['max_ms']:>5.0f}ms "
            f"{v['requests_per_response']:>8.2f} {ratio(lag['p50_ms'], sdk['lag']['p50_ms']):>8}"
            + (f"  [{v['not_completed_or_errors']} not completed]" if v["not_completed_or_errors"] else "")
        )
    lines.append("")
    lines.append(
        f"W6 responses, cancel: {w['responses']} responses of {w['cancel_response_seconds']:g} s, "
        f"{w['deadline_s']:g} s deadline"
    )
    lines.append(
        f"  {'contender':<60} {'cancelled':>9} {'active':>6} {'->cancelled p50':>15} {'p95':>7} {'max':>7}"
        f" {'->return p50':>12} {'req/resp':>8}"
    )
    for v in w["cancel"].values():
        dc, dr = v["deadline_to_cancelled"], v["deadline_to_caller_return"]
        lines.append(
            f"  {v['label']:<60} {v['cancelled']:>9} {v['left_active']:>6} {dc['p50_ms']:>13.1f}ms "
            f"{dc['p95_ms']:>5.0f}ms {dc['max_ms']:>5.0f}ms {dr['p50_ms']:>10.1f}ms {v['requests_per_response']:>8.2f}"
        )
    lines.append("")
    return lines


def targets(w: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets: streaming detection p50 < 20 ms with one request per response; with a 1 s
    deadline, every response cancelled and none left active (ours, both modes)."""
    stream = w["detection"]["ours_stream"]
    out = [
        {
            "target": "W6 responses stream: p50 lag < 20 ms and exactly 1 request per response",
            "figures": f"p50 {stream['lag']['p50_ms']} ms, requests/response {stream['requests_per_response']} "
            f"(min {stream['min_max'][0]}, max {stream['min_max'][1]})",
            "met": stream["lag"]["p50_ms"] < 20
            and stream["min_max"] == [1, 1]
            and not stream["not_completed_or_errors"],
        }
    ]
    for key in ("ours_stream", "ours_poll"):
        c = w["cancel"][key]
        out.append(
            {
                "target": f"W6 responses cancel {key}: all {w['responses']} cancelled at the 1 s deadline, none active",
                "figures": f"cancelled {c['cancelled']}, left active {c['left_active']} "
                f"(at return {c['left_active_at_return']}), p50 deadline->cancelled "
                f"{c['deadline_to_cancelled']['p50_ms']} ms",
                "met": c["cancelled"] == w["responses"] and c["left_active"] == 0 and c["left_active_at_return"] == 0,
            }
        )
    return out
