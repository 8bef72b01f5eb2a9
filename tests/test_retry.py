"""Retries: what is retried, how long the client waits, and that the waits are the server's.

Unit tests of the header parsing and the verdicts, then the client against emulator faults: request
timestamps recorded by the emulator prove the waits.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from prefect_openai_runs.client import RunsClient
from prefect_openai_runs.client._http import parse_retry_after
from prefect_openai_runs.exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    RetryAfterTooLongError,
)
from prefect_openai_runs.retry import RetryPolicy, is_ambiguous, is_retryable
from prefect_openai_runs.testing import FaultRule, RunsEmulator

THREADS = r"^/v1/threads$"


# -- parse_retry_after --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"retry-after-ms": "300"}, 0.3),
        ({"retry-after-ms": "0"}, 0.0),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # milliseconds win
        ({"retry-after-ms": "soon", "retry-after": "3"}, 3.0),  # garbage ms falls back to seconds
        ({"retry-after": "-5"}, 0.0),
        ({"retry-after": "in a while"}, None),
        ({"retry-after": ""}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(given: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(httpx.Headers(given)) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(httpx.Headers({"retry-after": date}), now=now) == pytest.approx(30.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(httpx.Headers({"retry-after": past}), now=now) == 0.0


# -- is_retryable / is_ambiguous ------------------------------------------------------------------------


def api_error(status: int, should_retry: bool | None = None) -> APIError:
    return APIError("boom", status_code=status, should_retry=should_retry)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_never_retried(status: int) -> None:
    assert is_retryable(api_error(status)) is False


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(status: int) -> None:
    assert is_retryable(api_error(status)) is True


@pytest.mark.parametrize(("status", "header", "verdict"), [(500, False, False), (400, True, True), (429, False, False)])
def test_x_should_retry_overrides(status: int, header: bool, verdict: bool) -> None:
    assert is_retryable(api_error(status, should_retry=header)) is verdict


def test_connection_errors_are_retried_and_other_exceptions_are_not() -> None:
    assert is_retryable(APIConnectionError("refused", request_sent=False))
    assert is_retryable(APITimeoutError("slow"))
    assert not is_retryable(ValueError("bug"))


@pytest.mark.parametrize(
    ("exc", "ambiguous"),
    [
        (APITimeoutError("read timeout", request_sent=True), True),
        (APIConnectionError("dropped", request_sent=True), True),
        (APIConnectionError("refused", request_sent=False), False),
        (InternalServerError("oops", status_code=500), True),
        (RateLimitError("slow down", status_code=429), False),
        (BadRequestError("bad", status_code=400), False),
    ],
)
def test_is_ambiguous(exc: BaseException, ambiguous: bool) -> None:
    assert is_ambiguous(exc) is ambiguous


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="deadline_seconds"):
        RetryPolicy(deadline_seconds=0)


# -- against the emulator --------------------------------------------------------------------------------


@pytest.fixture
def client(runs_emulator: RunsEmulator) -> Iterator[RunsClient]:
    policy = RetryPolicy(max_attempts=3, initial_wait=0.02, max_wait=0.05, jitter=0.01, max_retry_after=5)
    with RunsClient(api_key=runs_emulator.api_key, base_url=runs_emulator.base_url, retry_policy=policy) as c:
        yield c


def arrivals(emu: RunsEmulator, method: str, path: str) -> list[float]:
    return [r.at for r in emu.requests if r.method == method and re.search(path, r.path)]


@pytest.mark.parametrize(("hint", "wait"), [({"retry-after-ms": "300"}, 0.3), ({"retry-after": "1"}, 1.0)])
def test_429_waits_what_the_server_asked(
    runs_emulator: RunsEmulator, client: RunsClient, hint: dict[str, str], wait: float
) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=THREADS, status=429, headers=hint))
    thread = client.create_thread()
    assert thread.id.startswith("thread_")
    first, second = arrivals(runs_emulator, "POST", THREADS)
    assert second - first >= wait
    assert [r.status for r in runs_emulator.requests] == [429, 200]


def test_retry_after_longer_than_the_policy_allows_fails_at_once(
    runs_emulator: RunsEmulator, client: RunsClient
) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=THREADS, status=429, headers={"retry-after": "3600"}))
    started = time.monotonic()
    with pytest.raises(RetryAfterTooLongError) as info:
        client.create_thread()
    assert time.monotonic() - started < 2
    assert len(runs_emulator.requests) == 1
    assert info.value.retry_after == 3600 and info.value.status_code == 429
    assert "max_retry_after" in str(info.value)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried_until_success(runs_emulator: RunsEmulator, client: RunsClient, status: int) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=THREADS, status=status, times=2))
    client.create_thread()
    assert [r.status for r in runs_emulator.requests] == [status, status, 200]


def test_server_errors_give_up_after_max_attempts(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=THREADS, status=500, times=None))
    with pytest.raises(InternalServerError) as info:
        client.create_thread()
    records = runs_emulator.requests
    assert [r.status for r in records] == [500, 500, 500]
    assert info.value.request_id == records[-1].request_id
    assert info.value.request_id is not None and info.value.request_id in str(info.value)


@pytest.mark.parametrize(
    ("status", "error"), [(400, BadRequestError), (401, APIError), (404, NotFoundError), (422, APIError)]
)
def test_client_errors_are_sent_exactly_once(
    runs_emulator: RunsEmulator, client: RunsClient, status: int, error: type[APIError]
) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=THREADS, status=status, times=None))
    with pytest.raises(error) as info:
        client.create_thread()
    assert info.value.status_code == status
    assert len(runs_emulator.requests) == 1


def test_x_should_retry_false_stops_a_503(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    runs_emulator.add_fault(
        FaultRule(method="POST", path=THREADS, status=503, headers={"x-should-retry": "false"}, times=None)
    )
    with pytest.raises(InternalServerError):
        client.create_thread()
    assert len(runs_emulator.requests) == 1


def test_x_should_retry_true_retries_a_400(runs_emulator: RunsEmulator, client: RunsClient) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=THREADS, status=400, headers={"x-should-retry": "true"}))
    client.create_thread()
    assert [r.status for r in runs_emulator.requests] == [400, 200]


def test_deadline_bounds_the_whole_sequence(runs_emulator: RunsEmulator) -> None:
    policy = RetryPolicy(max_attempts=100, deadline_seconds=1.0)
    runs_emulator.add_fault(
        FaultRule(method="POST", path=THREADS, status=503, headers={"retry-after-ms": "300"}, times=None)
    )
    with RunsClient(api_key=runs_emulator.api_key, base_url=runs_emulator.base_url, retry_policy=policy) as client:
        started = time.monotonic()
        with pytest.raises(InternalServerError):
            client.create_thread()
        elapsed = time.monotonic() - started
    assert elapsed < 1.5
    sent = arrivals(runs_emulator, "POST", THREADS)
    assert 2 <= len(sent) <= 4  # 300 ms apart, and no sleep crosses the 1 s deadline
    assert sent[-1] - sent[0] < 1.0


def test_each_retry_is_logged_with_reason_and_wait(
    runs_emulator: RunsEmulator, client: RunsClient, caplog: pytest.LogCaptureFixture
) -> None:
    runs_emulator.add_fault(FaultRule(method="POST", path=THREADS, status=429, headers={"retry-after-ms": "50"}))
    runs_emulator.add_fault(FaultRule(method="POST", path=THREADS, status=502))
    with caplog.at_level(logging.WARNING, logger="prefect_openai_runs"):
        client.create_thread()
    retries = [r for r in caplog.records if r.name.startswith("prefect_openai_runs") and "retrying" in r.getMessage()]
    assert [r.levelno for r in retries] == [logging.WARNING, logging.WARNING]
    first, second = (r.getMessage() for r in retries)
    assert "HTTP 429" in first and "rate_limit_exceeded" in first and "retrying in 0.05s" in first
    assert "as the server asked" in first
    assert "attempt 2" in second and "HTTP 502" in second
    assert re.search(r"retrying in \d+\.\d\ds", second)
    assert [r.status for r in runs_emulator.requests] == [429, 502, 200]
