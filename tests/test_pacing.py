"""The client-side rate budget (:mod:`prefect_openai_runs.client._pacing`) with an injected clock, and the waits
of :mod:`prefect_openai_runs.client._throttle` (real time, short)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable

import pytest

from conftest import FAKE_KEY, find_secrets
from emulator_helpers import wait_for
from prefect_openai_runs.client._pacing import RateBudget, key_fingerprint, parse_duration, shared_budget
from prefect_openai_runs.client._throttle import TurnTimeout, acquire_async, acquire_sync


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limits(limit: int, remaining: int, reset: str, **tokens: str) -> dict[str, str]:
    """Response headers reporting a requests limit (and optionally the tokens trio)."""
    headers = {
        "x-ratelimit-limit-requests": str(limit),
        "x-ratelimit-remaining-requests": str(remaining),
        "x-ratelimit-reset-requests": reset,
    }
    headers.update({f"x-ratelimit-{name.replace('_', '-')}-tokens": value for name, value in tokens.items()})
    return headers


def informed(
    limit: int, remaining: int, reset: str, *, reserve_fraction: float = 0.0, clock: Callable[[], float] | None = None
) -> tuple[RateBudget, FakeClock]:
    """A budget (on a fake clock unless one is given) that has seen one response with these headers."""
    fake = FakeClock()
    budget = RateBudget(clock=clock or fake, reserve_fraction=reserve_fraction)
    assert budget.delay_before() == 0.0  # the probe
    budget.observe(200, limits(limit, remaining, reset))
    return budget, fake


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("120ms", 0.12),
        ("59.9s", 59.9),
        ("1h2m3.5s", 3723.5),
        ("0s", 0.0),
        ("250us", 0.00025),
        ("2", 2.0),
        (" 1.5S ", 1.5),
    ],
)
def test_durations_as_the_api_writes_them_are_read(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "", "soon", "1x", "-1", "1s garbage", "m"])
def test_unreadable_durations_are_none(text: str | None) -> None:
    assert parse_duration(text) is None


def test_a_cold_start_lets_one_request_probe_and_the_others_wait_for_its_headers() -> None:
    clock = FakeClock()
    budget = RateBudget(clock=clock, probe_timeout=1.0)
    assert budget.delay_before() == 0.0
    assert budget.delay_before() == pytest.approx(1.0)
    generation = budget.generation
    budget.observe(200, limits(600, 599, "100ms"))
    assert budget.generation == generation + 1  # the waiters' turns are void: they book again
    assert budget.delay_before() == 0.0


def test_a_probe_that_never_answers_stops_holding_the_others_back() -> None:
    clock = FakeClock()
    budget = RateBudget(clock=clock, probe_timeout=1.0)
    budget.delay_before()
    clock.now += 1.5
    assert budget.delay_before() == 0.0


def test_a_server_without_rate_headers_is_not_paced() -> None:
    budget, _ = informed(600, 5, "1s")
    fresh = RateBudget(clock=FakeClock())
    fresh.delay_before()
    fresh.observe(200, {"content-type": "application/json"})
    assert [fresh.delay_before() for _ in range(100)] == [0.0] * 100
    assert budget.state().requests_per_second == pytest.approx(10.0)


def test_turns_go_at_once_while_the_bucket_holds_then_spread_evenly_at_the_limit() -> None:
    budget, _ = informed(600, 5, "9.5s")  # 10 requests a second, 5 left
    delays = [budget.delay_before() for _ in range(10)]
    assert delays[:5] == [0.0] * 5
    assert delays[5:] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


def test_a_reserve_keeps_part_of_the_bucket_unspent() -> None:
    budget, _ = informed(6000, 100, "0s", reserve_fraction=0.05)  # a full bucket of 100
    delays = [budget.delay_before() for _ in range(100)]
    assert delays.count(0.0) == 95


def test_the_estimate_refills_continuously() -> None:
    budget, clock = informed(600, 0, "10s")
    assert budget.delay_before() == pytest.approx(0.1)
    clock.now += 10.0
    assert budget.state().requests_level == pytest.approx(99.0)  # full again (100) but for the booked turn
    assert budget.delay_before() == 0.0


def test_the_estimate_follows_the_server_down_but_not_up() -> None:
    budget, _ = informed(600, 50, "5s")
    budget.observe(200, limits(600, 2, "9.8s"))  # another process spent most of it
    assert budget.state().requests_level == pytest.approx(2.0)
    budget.observe(200, limits(600, 90, "1s"))  # stale or optimistic: ignored
    assert budget.state().requests_level == pytest.approx(2.0)


def test_after_a_429_every_caller_waits_for_the_shared_retry_moment_then_spreads() -> None:
    budget, clock = informed(600, 50, "5s")
    told: list[int] = []
    budget.on_change(lambda: told.append(budget.generation))
    budget.observe(429, {**limits(600, 0, "10s"), "retry-after-ms": "500", "retry-after": "1"})
    assert told == [budget.generation]
    delays = [budget.delay_before() for _ in range(5)]
    assert delays == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9])  # nobody before the moment, then evenly
    assert budget.state().resume_at == pytest.approx(clock.now + 0.5)


def test_a_429_without_a_hint_waits_one_turn_of_the_known_rate_or_the_default() -> None:
    budget, _ = informed(600, 50, "5s")
    budget.observe(429, limits(600, 0, "10s"))
    assert budget.delay_before() == pytest.approx(0.1)
    blind = RateBudget(clock=FakeClock(), default_retry_after=2.0)
    blind.delay_before()
    blind.observe(429, {})
    assert blind.delay_before() == pytest.approx(2.0)


def test_tokens_are_paced_when_the_caller_says_how_many() -> None:
    clock = FakeClock()
    budget = RateBudget(clock=clock, reserve_fraction=0.0)
    budget.delay_before()
    headers = {**limits(10_000, 9_000, "6s"), "x-ratelimit-limit-tokens": "60000"}
    budget.observe(200, {**headers, "x-ratelimit-remaining-tokens": "1000", "x-ratelimit-reset-tokens": "59s"})
    assert budget.delay_before(tokens=1000) == 0.0
    assert budget.delay_before(tokens=500) == pytest.approx(0.5)  # 1,000 tokens a second
    assert budget.delay_before() == 0.0  # a request that uses no tokens only needs a request turn


def test_turns_booked_from_many_threads_are_distinct_and_evenly_spaced() -> None:
    budget, _ = informed(6000, 0, "1s")  # 100 a second, nothing left
    delays: list[float] = []
    lock = threading.Lock()

    def book() -> None:
        mine = [budget.delay_before() for _ in range(50)]
        with lock:
            delays.extend(mine)

    threads = [threading.Thread(target=book) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(delays) == pytest.approx([(i + 1) / 100 for i in range(400)])


def test_bad_settings_are_refused_before_anything_is_sent() -> None:
    with pytest.raises(ValueError, match="reserve_fraction"):
        RateBudget(reserve_fraction=1.0)
    with pytest.raises(ValueError, match="probe_timeout"):
        RateBudget(probe_timeout=-1)


def test_one_budget_per_server_and_key_holding_only_a_fingerprint() -> None:
    a = shared_budget("http://127.0.0.1:1/v1/", FAKE_KEY)
    assert shared_budget("http://127.0.0.1:1/v1", FAKE_KEY) is a
    assert shared_budget("http://127.0.0.1:1/v1", FAKE_KEY + "x") is not a
    assert shared_budget("http://127.0.0.1:2/v1", FAKE_KEY) is not a
    assert shared_budget("http://127.0.0.1:1/v1", FAKE_KEY, "flow-run:1") is not a  # one per scope too
    assert shared_budget("http://127.0.0.1:1/v1", FAKE_KEY, "flow-run:1") is shared_budget(
        "http://127.0.0.1:1/v1", FAKE_KEY, "flow-run:1"
    )
    assert key_fingerprint(FAKE_KEY) in repr(a)
    assert not find_secrets(repr(a) + str(vars(a)))


def test_acquire_sync_wakes_when_the_probe_answers() -> None:
    budget = RateBudget(probe_timeout=30.0)
    assert acquire_sync(budget) < 0.05  # the probe goes at once
    waited: list[float] = []
    thread = threading.Thread(target=lambda: waited.append(acquire_sync(budget)))
    thread.start()
    wait_for(lambda: budget.state().waiters == 1, timeout=2)
    budget.observe(200, limits(6000, 99, "10ms"))
    thread.join(timeout=5)
    assert waited and waited[0] < 5.0  # not the 30 s probe timeout


async def test_acquire_async_waits_its_turn_and_wakes_when_a_429_pushes_it_back() -> None:
    budget, _ = informed(600, 0, "10s", clock=time.monotonic)
    started = time.monotonic()
    assert await acquire_async(budget) == pytest.approx(0.1, abs=0.08)
    assert time.monotonic() - started >= 0.09
    waiter = asyncio.ensure_future(acquire_async(budget))
    while budget.state().waiters == 0:
        await asyncio.sleep(0.001)
    budget.observe(429, {**limits(600, 0, "10s"), "retry-after-ms": "50"})
    waited = await asyncio.wait_for(waiter, 5)
    assert 0.04 <= waited < 1.0


def test_turns_still_on_their_way_hold_back_the_refill() -> None:
    budget, clock = informed(6000, 50, "0s")  # a full bucket of 50, 100 a second
    assert [budget.delay_before() for _ in range(50)] == [0.0] * 50
    clock.now += 1.0  # no answer yet: the server may not have counted them, its bucket cannot hold more
    assert budget.delay_before() > 0
    assert budget.state().outstanding == 51
    for _ in range(51):
        budget.observe(200, limits(6000, 49, "10ms"))
    assert budget.state().outstanding == 0
    clock.now += 1.0
    assert budget.delay_before() == 0.0


def test_a_turn_that_will_never_be_answered_can_be_released() -> None:
    budget, _ = informed(600, 10, "9s")
    budget.delay_before()
    budget.release()
    assert budget.state().outstanding == 0


async def test_a_cancelled_wait_gives_its_turn_back() -> None:
    budget, _ = informed(60, 0, "60s", clock=time.monotonic)  # one a second, none left
    waiter = asyncio.ensure_future(acquire_async(budget))
    while budget.state().waiters == 0:
        await asyncio.sleep(0.001)
    assert budget.state().outstanding == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert budget.state().outstanding == 0


def test_a_sync_wait_that_would_outlast_its_timeout_ends_at_it_and_gives_the_turn_back() -> None:
    budget, _ = informed(60, 0, "60s", clock=time.monotonic)  # one a second, none left
    started = time.monotonic()
    with pytest.raises(TurnTimeout):
        acquire_sync(budget, timeout=0.2)
    assert 0.15 <= time.monotonic() - started < 0.6
    assert budget.state().outstanding == 0


async def test_an_async_wait_that_would_outlast_its_timeout_ends_at_it_and_gives_the_turn_back() -> None:
    budget, _ = informed(60, 0, "60s", clock=time.monotonic)
    started = time.monotonic()
    with pytest.raises(TurnTimeout):
        await acquire_async(budget, timeout=0.2)
    assert 0.15 <= time.monotonic() - started < 0.6
    assert budget.state().outstanding == 0


async def test_a_turn_that_comes_within_the_timeout_is_waited_for() -> None:
    budget, _ = informed(600, 0, "10s", clock=time.monotonic)  # the next turn in 0.1 s
    assert 0.05 <= await acquire_async(budget, timeout=2.0) < 1.0
    with pytest.raises(TurnTimeout):
        acquire_sync(budget, timeout=0.0)  # the next turn is 0.1 s away and no time is left
    assert budget.state().outstanding == 1  # only the turn taken above, not yet answered


def test_a_429_pushes_the_turns_booked_ahead_back_together_in_their_order() -> None:
    budget, _ = informed(600, 1, "9.9s")  # 10 a second, one left
    assert budget.delay_before() == 0.0  # sent at once: on its way
    assert [budget.delay_before() for _ in range(4)] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    generation = budget.generation
    budget.observe(429, {**limits(600, 0, "10s"), "retry-after-ms": "300"})  # the one on its way
    assert budget.pushed == pytest.approx(0.2)  # the first turn booked ahead now comes at the retry moment
    assert budget.generation == generation  # nobody books again (nobody goes to the back of the queue)
    assert budget.delay_before() == pytest.approx(0.7)  # a new turn comes after the pushed ones (0.3-0.6)


async def test_waiters_pushed_back_by_a_429_keep_their_order_and_spacing() -> None:
    budget, _ = informed(600, 1, "9.9s", clock=time.monotonic)  # 10 a second, one left
    started = time.monotonic()
    assert await acquire_async(budget) < 0.05  # sent at once: the request the 429 below answers
    done: list[tuple[int, float]] = []

    async def waiter(n: int) -> None:
        await acquire_async(budget)
        done.append((n, time.monotonic() - started))

    tasks = [asyncio.ensure_future(waiter(n)) for n in range(5)]  # turns at 0.1 ... 0.5 s
    while budget.state().waiters < 5:
        await asyncio.sleep(0.001)
    budget.observe(429, {**limits(600, 0, "10s"), "retry-after-ms": "400"})
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert [n for n, _ in done] == [0, 1, 2, 3, 4]
    assert done[0][1] >= 0.38  # not before the retry moment
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(done)]
    assert all(0.05 <= gap <= 0.3 for gap in gaps), gaps  # still one turn apart, not a burst


def test_the_first_reply_to_a_request_sent_after_the_retry_moment_is_believed_even_above_the_estimate() -> None:
    budget, clock = informed(600, 50, "5s")
    budget.observe(429, {**limits(600, 0, "10s"), "retry-after-ms": "500"})
    low = budget.state().requests_level
    budget.observe(200, limits(600, 90, "1s"), sent_at=clock.now + 0.1)  # sent before the retry moment
    assert budget.state().requests_level == pytest.approx(low)
    clock.now += 0.6
    generation = budget.generation
    budget.observe(200, limits(600, 90, "1s"), sent_at=clock.now - 0.05)  # sent after it: the bucket is full
    assert budget.state().requests_level == pytest.approx(90.0)
    assert budget.generation == generation + 1  # the turns booked on the low estimate are void
    budget.observe(200, limits(600, 95, "1s"), sent_at=clock.now)  # once only: up again is ignored
    assert budget.state().requests_level == pytest.approx(90.0)


def test_requests_on_their_way_when_a_429_comes_do_not_count_against_what_it_says_is_left() -> None:
    budget, _ = informed(600, 10, "9s")  # 10 left, all sent at once
    assert [budget.delay_before() for _ in range(10)] == [0.0] * 10
    budget.observe(429, {**limits(600, 0, "10s"), "retry-after-ms": "200"})
    # They will be refused too (a refusal spends nothing): the next turn is the retry moment, not 1 s later.
    assert budget.delay_before() == pytest.approx(0.2)


def test_the_reserve_is_at_most_a_quarter_second_of_refill() -> None:
    budget, _ = informed(6000, 0, "60s", reserve_fraction=0.05)  # a bucket of 6,000, empty; 100 a second
    assert budget.delay_before() == pytest.approx((25 + 1) / 100)  # not (300 + 1) / 100: 3 s for 5% of a minute


def test_turns_voided_by_a_believed_reading_are_not_counted_twice() -> None:
    budget, clock = informed(60, 59, "0s")  # one a second
    budget.delay_before()
    budget.observe(429, {**limits(60, 50, "0s"), "retry-after-ms": "500"})
    assert min(budget.delay_before() for _ in range(100)) > 0  # 100 turns booked ahead, one a second
    clock.now += 0.6
    budget.observe(200, limits(60, 58, "0s"), sent_at=clock.now)  # the first reply after the retry moment
    # The 100 waiters book again: the 58 the server has go at once (they were counted in the reading's
    # level once, as turns still to come; booking again must not count them a second time).
    assert sum(budget.delay_before() == 0.0 for _ in range(100)) == 58


async def test_without_a_known_rate_a_later_429_holds_back_the_waiters_too() -> None:
    budget = RateBudget()
    budget.delay_before()
    budget.observe(200, {"x-ratelimit-remaining-requests": "5"})  # Azure's style: no limit, no reset
    budget.observe(429, {"retry-after-ms": "200"})
    started = time.monotonic()
    waiter = asyncio.ensure_future(acquire_async(budget))
    while budget.state().waiters == 0:
        await asyncio.sleep(0.001)
    budget.observe(429, {"retry-after-ms": "600"})  # another request's 429: a later retry moment
    await asyncio.wait_for(waiter, 5)
    assert time.monotonic() - started >= 0.55
