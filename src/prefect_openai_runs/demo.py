"""The main job: three flows against the embedded emulator and a temporary Prefect server.

Run it with ``python3 dev.py demo`` (or ``python -m prefect_openai_runs.demo``). It needs no
network and no API key: the emulator plays the OpenAI runs API, Prefect's test harness starts a
temporary server (SQLite). It prints each run's final status and the key of its run artifact.

1. ``completes``: a prompt answered normally.
2. ``deadline``: a run that would take a minute, cancelled when its 2 s deadline passes.
3. ``tool-call``: a run that calls a function, answered by a Python handler run as a Prefect task.

The same three with background responses (``run_response``): ``resp-completes``, ``resp-deadline``
(cancelled at its 1 s deadline) and ``resp-tool-call`` (a function call answered by a follow-up response).
Then ``batch``: three requests sent through the Batch API (``run_batch``), followed to completion, their
outputs read by ``custom_id``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from prefect_openai_runs._lifecycle._follower import PollSchedule
from prefect_openai_runs._recording import job_artifact_key
from prefect_openai_runs.blocks import OpenAICredentials
from prefect_openai_runs.exceptions import JobOutcomeError, RunOutcomeError
from prefect_openai_runs.flows import run_assistant, run_batch, run_response
from prefect_openai_runs.testing import BatchScript, ResponseScript, RunScript, RunsEmulator, ToolCallSpec


@dataclass(frozen=True)
class Outcome:
    """One demo flow's result."""

    name: str
    run_id: str
    status: str
    detail: str
    kind: str = "run"

    @property
    def artifact(self) -> str:
        """The run (or response) artifact's key."""
        return job_artifact_key(self.kind, self.run_id)


def _weather(city: str) -> dict[str, object]:
    """The demo's tool: a fixed forecast."""
    return {"city": city, "forecast": "sunny", "celsius": 21}


def _scripts(emulator: RunsEmulator) -> None:
    emulator.add_script(
        RunScript(in_progress_seconds=0.3, reply_text="Prefect orchestrates; the emulator answers."),
        match=lambda ctx: (ctx.last_user_message or "").startswith("Explain"),
    )
    emulator.add_script(
        RunScript(in_progress_seconds=60.0),
        match=lambda ctx: (ctx.last_user_message or "").startswith("Write a novel"),
    )
    emulator.add_script(
        RunScript(
            outcome="requires_action",
            tool_calls=[ToolCallSpec(name="get_weather", arguments='{"city": "Paris"}')],
            then=RunScript(reply_text="It is sunny and 21 degrees in Paris."),
        ),
        match=lambda ctx: (ctx.last_user_message or "").startswith("What is the weather"),
    )


def _run(name: str, credentials: OpenAICredentials, assistant_id: str, prompt: str, **options: Any) -> Outcome:
    try:
        run = run_assistant(credentials, assistant_id, messages=[prompt], **options)
    except RunOutcomeError as exc:
        return Outcome(name, exc.run.id, str(exc.run.status), exc.reason)
    return Outcome(name, run.id, str(run.status), f"{run.usage.total_tokens if run.usage else 0} tokens")


WEATHER_TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": False}


def _response_scripts(emulator: RunsEmulator) -> None:
    emulator.add_response_script(ResponseScript(in_progress_seconds=0.3, output_text="Background mode works."))
    emulator.add_response_script(ResponseScript(outcome="never"), match=lambda ctx: "novel" in ctx.input_text)
    emulator.add_response_script(
        ResponseScript(
            output_text="",
            function_calls=[ToolCallSpec(name="get_weather", arguments='{"city": "Paris"}')],
            then=ResponseScript(output_text="It is sunny and 21 degrees in Paris."),
        ),
        match=lambda ctx: "weather" in ctx.input_text,
    )


def _respond(name: str, credentials: OpenAICredentials, prompt: str, **options: Any) -> Outcome:
    try:
        response = run_response(credentials, "gpt-5", prompt, **options)
    except JobOutcomeError as exc:
        return Outcome(name, exc.job.id, str(exc.job.status), exc.reason, "response")
    tokens = response.usage.total_tokens if response.usage else 0
    return Outcome(name, response.id, str(response.status), f"{tokens} tokens: {response.output_text}", "response")


def _batch(credentials: OpenAICredentials, emulator: RunsEmulator) -> Outcome:
    emulator.default_batch_script = BatchScript(validating_seconds=0.2, in_progress_seconds=1.0)
    questions = ["What is Prefect?", "What is a batch?", "Why cancel on timeout?"]
    requests = [{"custom_id": f"q{n}", "body": {"model": "gpt-5-mini", "input": q}} for n, q in enumerate(questions)]
    result = run_batch(credentials, requests, poll_schedule=PollSchedule(initial=0.5, cap=2.0), max_wait_seconds=60)
    [batch] = result.batches
    first = result.text("q0")
    detail = f"{len(result.outputs)} outputs, {result.usage.total_tokens} tokens; q0: {first}"
    return Outcome("batch", batch.id, str(batch.status), detail, "batch")


def main() -> int:
    """Run the demo flows and print the summary; 0 when each ended as expected."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    print("Starting the OpenAI runs emulator and a temporary Prefect server ...", flush=True)
    with RunsEmulator() as emulator, prefect_test_harness(server_startup_timeout=60):
        _scripts(emulator)
        credentials = OpenAICredentials(api_key=emulator.api_key, base_url=emulator.base_url)
        assistant = emulator.default_assistant_id
        outcomes = [
            _run("completes", credentials, assistant, "Explain what Prefect does in one line."),
            _run("deadline", credentials, assistant, "Write a novel about pipelines.", max_wait_seconds=2.0),
            _run(
                "tool-call",
                credentials,
                assistant,
                "What is the weather in Paris?",
                tool_handlers={"get_weather": _weather},
            ),
        ]
        _response_scripts(emulator)
        outcomes += [
            _respond("resp-completes", credentials, "Say hello in background mode."),
            _respond("resp-deadline", credentials, "Write a novel about queues.", max_wait_seconds=1.0),
            _respond(
                "resp-tool-call",
                credentials,
                "What is the weather in Paris?",
                tools=[WEATHER_TOOL],
                tool_handlers={"get_weather": _weather},
            ),
        ]
        outcomes.append(_batch(credentials, emulator))
        left_active = [run.id for run in emulator.active_runs()]
        left_active += [r.id for r in emulator.responses() if r.status in ("queued", "in_progress")]
        left_active += [b.id for b in emulator.batches() if b.terminal_at is None]
    print()
    print(f"{'flow':<14} {'final status':<13} {'job id':<30} artifact key")
    for outcome in outcomes:
        print(f"{outcome.name:<14} {outcome.status:<13} {outcome.run_id:<30} {outcome.artifact}")
        print(f"{'':<14} {outcome.detail}")
    print(f"\nruns, responses and batches left active on the emulator: {len(left_active)}")
    expected = {"completes": "completed", "deadline": "cancelled", "tool-call": "completed"}
    expected |= {f"resp-{name}": status for name, status in expected.items()}
    expected["batch"] = "completed"
    ok = all(expected[o.name] == o.status for o in outcomes) and not left_active
    print("demo: OK" if ok else "demo: UNEXPECTED OUTCOME")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "main",
]
