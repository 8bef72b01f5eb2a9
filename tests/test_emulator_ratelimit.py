"""The emulator's rate limits over real HTTP: requests and tokens per minute per API key, 429s shaped like
the API's, ``retry-after`` and the ``x-ratelimit-*`` headers on every response."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from emulator_helpers import api, new_thread, openai_client, wait_for
from prefect_openai_runs.client._pacing import parse_duration
from prefect_openai_runs.testing import FaultRule, RateLimits, RunsEmulator, spawn_emulator_process
from prefect_openai_runs.testing._ratelimit import RateLimiter, estimate_tokens, format_duration

DURATION = re.compile(r"^(\d+ms|(\d+h)?(\d+m)?\d+(\.\d+)?s)$")
TRIO = ("limit", "remaining", "reset")


@pytest.fixture
def client(runs_emulator: RunsEmulator) -> Iterator[httpx.Client]:
    with api(runs_emulator) as c:
        yield c


def rate_headers(response: httpx.Response, kind: str) -> tuple[int, int, str]:
    """The ``x-ratelimit-*-{kind}`` trio of a response."""
    limit, remaining, reset = (response.headers[f"x-ratelimit-{name}-{kind}"] for name in TRIO)
    assert DURATION.match(reset), reset
    return int(limit), int(remaining), reset


def test_every_response_reports_the_real_requests_budget(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.rate_limits = RateLimits(rpm=500)
    answers = [client.get(f"/assistants/{runs_emulator.default_assistant_id}") for _ in range(3)]
    answers.append(client.get("/threads/thread_missing"))  # an API error is counted and reported too
    trios = [rate_headers(r, "requests") for r in answers]
    assert [limit for limit, _, _ in trios] == [500] * 4
    assert [remaining for _, remaining, _ in trios] == [499, 498, 497, 496]
    # A full bucket of 500 refills 500 a minute: one request is back in 120 ms.
    assert parse_duration(trios[0][2]) == pytest.approx(0.12, abs=0.002)
    assert rate_headers(answers[0], "tokens") == (30000000, 29999000, "2ms")  # no tokens limit: nominal


def test_without_limits_the_headers_are_the_nominal_ones(client: httpx.Client) -> None:
    response = client.get("/threads/thread_missing")
    assert rate_headers(response, "requests") == (10000, 9999, "6ms")
    assert rate_headers(response, "tokens") == (30000000, 29999000, "2ms")


def test_past_the_limit_the_answer_is_a_429_like_the_apis(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.rate_limits = RateLimits(rpm=120, burst_seconds=1)  # 2 a second, bursts of 2
    thread_id = new_thread(client)
    assert client.get(f"/threads/{thread_id}").status_code == 200
    limited = client.post(f"/threads/{thread_id}/runs", json={"assistant_id": runs_emulator.default_assistant_id})
    assert limited.status_code == 429
    error = limited.json()["error"]
    assert error["type"] == "requests" and error["code"] == "rate_limit_exceeded" and error["param"] is None
    wait = re.fullmatch(
        r"Rate limit reached for requests per min \(RPM\): Limit 120, Used 120, Requested 1\. Please try again in "
        r"(\d+ms)\. Visit https://platform\.openai\.com/account/rate-limits to learn more\.",
        error["message"],
    )
    assert wait is not None, error["message"]
    assert 0 < int(limited.headers["retry-after-ms"]) <= 500
    assert limited.headers["retry-after"] == "1"
    assert rate_headers(limited, "requests")[:2] == (120, 0)
    assert runs_emulator.runs() == []  # a refused request is not applied
    assert runs_emulator.counters["rate_limited"] == runs_emulator.counters["rate_limited_requests"] == 1
    assert [r.status for r in runs_emulator.requests][-1] == 429


def test_the_bucket_refills_continuously(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.rate_limits = RateLimits(rpm=600, burst_seconds=1)  # 10 a second
    answers = (client.get("/threads/thread_missing") for _ in range(100))
    refused = next(r for r in answers if r.status_code == 429)
    refused_at, retry_ms = time.monotonic(), int(refused.headers["retry-after-ms"])
    assert retry_ms <= 100  # one request is back within a tenth of a second
    wait_for(lambda: client.get("/threads/thread_missing").status_code == 404, timeout=2)
    assert time.monotonic() - refused_at >= retry_ms / 1000 * 0.8


def test_tokens_per_minute_refuse_large_bodies(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.rate_limits = RateLimits(tpm=600)  # a bucket of 600 tokens
    thread_id = new_thread(client, "x" * 800)  # about 200+ tokens
    text = "y" * 1600  # about 400+ tokens: fits a full bucket, not what is left
    limited = client.post(f"/threads/{thread_id}/messages", json={"role": "user", "content": text})
    assert limited.status_code == 429
    assert limited.json()["error"]["type"] == "tokens"
    assert "tokens per min (TPM): Limit 600" in limited.json()["error"]["message"]
    assert rate_headers(limited, "tokens")[0] == 600
    assert rate_headers(limited, "requests") == (10000, 9999, "6ms")
    huge = client.post(f"/threads/{thread_id}/messages", json={"role": "user", "content": "z" * 4000})
    assert huge.status_code == 429 and "retry-after" not in huge.headers  # waiting cannot help
    assert huge.json()["error"]["message"].startswith("Request too large for tokens per min (TPM)")
    assert client.get(f"/threads/{thread_id}").status_code == 200  # a GET asks for no tokens


def test_token_estimate_counts_the_body_and_the_output_allowed() -> None:
    assert estimate_tokens("GET", b"") == 0
    assert estimate_tokens("POST", b"{}") == 1
    assert estimate_tokens("POST", b'{"max_completion_tokens": 100}') == 8 + 100
    assert estimate_tokens("POST", b'{"max_output_tokens": 50, "x": 1}') == 9 + 50
    assert estimate_tokens("POST", b"not json") == 2


def test_each_api_key_has_its_own_buckets() -> None:
    now = [0.0]
    limiter = RateLimiter(lambda: RateLimits(rpm=60, burst_seconds=1), clock=lambda: now[0])
    assert limiter.admit("key-a", 0).error is None
    assert limiter.admit("key-a", 0).error is not None
    assert limiter.admit("key-b", 0).error is None
    now[0] += 1.0
    assert limiter.admit("key-a", 0).error is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.12, "120ms"), (0.0004, "1ms"), (1, "1s"), (59.9, "59.9s"), (360, "6m0s"), (3723.5, "1h2m3.5s"), (0, "0s")],
)
def test_durations_are_written_like_the_apis(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds, abs=0.001)


def test_bad_limits_are_refused(runs_emulator: RunsEmulator) -> None:
    with pytest.raises(ValueError, match="rpm must be a positive whole number of requests per minute"):
        RateLimits(rpm=0)
    with pytest.raises(ValueError, match="burst_seconds"):
        RateLimits(rpm=10, burst_seconds=120)
    bad = httpx.put(f"{runs_emulator.control_url}/rate_limits", json={"tpm": -5})
    assert bad.status_code == 422 and "tpm" in bad.json()["detail"]


def test_a_429_fault_still_reports_nothing_left(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.rate_limits = RateLimits(rpm=500)
    runs_emulator.add_fault(FaultRule(method="GET", path="/threads/"))
    limited = client.get("/threads/thread_missing")
    assert limited.status_code == 429 and rate_headers(limited, "requests")[:2] == (500, 0)
    assert "rate_limited" not in runs_emulator.counters  # the fault, not the limiter, refused it


def test_reset_refills_every_bucket(runs_emulator: RunsEmulator, client: httpx.Client) -> None:
    runs_emulator.rate_limits = RateLimits(rpm=60, burst_seconds=1)
    client.get("/threads/thread_missing")
    assert client.get("/threads/thread_missing").status_code == 429
    runs_emulator.reset()
    assert client.get("/threads/thread_missing").status_code == 404
    assert runs_emulator.rate_limits == RateLimits(rpm=60, burst_seconds=1)  # a setting: kept


def test_the_official_sdk_waits_what_the_429_says_and_gets_through(runs_emulator: RunsEmulator) -> None:
    runs_emulator.rate_limits = RateLimits(rpm=600, burst_seconds=1)
    sdk = openai_client(runs_emulator, max_retries=5)
    answers = [sdk.beta.assistants.retrieve(runs_emulator.default_assistant_id) for _ in range(15)]
    assert len(answers) == 15
    assert runs_emulator.counters["rate_limited"] >= 1  # it met the limit and recovered


def test_the_cli_and_the_control_surface_set_limits() -> None:
    with spawn_emulator_process(quiet=True, rpm=60, rate_burst_seconds=1) as remote:
        assert remote.rate_limits == RateLimits(rpm=60, burst_seconds=1)
        headers = {"Authorization": f"Bearer {remote.api_key}", "OpenAI-Beta": "assistants=v2"}
        with httpx.Client(base_url=remote.base_url, headers=headers) as http:
            assert [http.get("/threads/thread_missing").status_code for _ in range(2)] == [404, 429]
            remote.rate_limits = RateLimits(tpm=1000)
            assert http.get("/threads/thread_missing").status_code == 404
            assert rate_headers(http.get("/threads/thread_missing"), "tokens")[0] == 1000
        assert remote.counters["rate_limited_requests"] == 1


def test_the_cli_refuses_a_limit_that_is_not_a_positive_number(capsys: pytest.CaptureFixture[str]) -> None:
    from prefect_openai_runs.testing import _cli

    with pytest.raises(SystemExit) as exited:
        _cli.main(["--rpm", "0"])
    assert exited.value.code == 2
    assert "--rpm: must be a positive whole number per minute" in capsys.readouterr().err
