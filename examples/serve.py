"""Serve the example deployments from this process: ``python examples/serve.py``.

Three deployments, polled by this process (no work pool, no worker), each flow run in a child process:

- ``assistant-pipeline/nightly-served``: :func:`pipeline.assistant_pipeline` on a cron schedule (06:00 UTC
  every day by default; ``PIPELINE_CRON`` overrides it), with its parameters;
- ``run-assistant/on-demand-served``: :func:`prefect_openai_runs.flows.run_assistant`, run from the UI or the
  API with the credentials block's name as a parameter;
- ``run-assistant/short-timeout-served``: the same flow with ``timeout_seconds`` (``SHORT_TIMEOUT_SECONDS``,
  default 30): past it the flow run times out and its OpenAI run is cancelled.

Environment:
    PREFECT_API_URL: The Prefect server (``prefect server start`` prints it).
    PREFECT_OPENAI_RUNS_BLOCK: The saved ``OpenAICredentials`` block (default ``openai``).
    PREFECT_RUNNER_POLL_FREQUENCY: Seconds between polls for due runs (Prefect's default is 10).

The flows are handed to a :class:`prefect.runner.Runner` with ``add_flow`` (what ``flow.serve`` does),
so each flow run executes the very flow object served, options included. ``prefect.serve(*deployments)``
would instead re-import each flow from its entrypoint in the child process, losing options set with
``with_options`` (such as ``timeout_seconds``) while the hooks run from the served object.

Stop it with Ctrl-C; its schedules are then paused.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from prefect.runner import Runner

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import CREDENTIALS_BLOCK, DEFAULT_PROMPTS, assistant_pipeline

from prefect_openai_runs.flows import run_assistant


def build_runner() -> Runner:
    """A runner serving the three deployments (created on the server when it starts)."""
    runner = Runner(name="openai-runs-examples")
    for flow_, name, options in served():
        runner.add_flow(flow_, name=name, tags=["openai"], **options)
    return runner


def served() -> list[tuple[Any, str, dict[str, Any]]]:
    """The deployments to serve: flow, deployment name and ``add_flow`` options."""
    assistant = os.environ.get("PIPELINE_ASSISTANT_ID", "asst_default")
    run_parameters = {"credentials": CREDENTIALS_BLOCK, "assistant_id": assistant, "max_wait_seconds": 600}
    timeout = float(os.environ.get("SHORT_TIMEOUT_SECONDS", "30"))
    return [
        (
            assistant_pipeline,
            "nightly-served",
            {
                "cron": os.environ.get("PIPELINE_CRON", "0 6 * * *"),
                "parameters": {"prompts": DEFAULT_PROMPTS, "assistant_id": assistant, "max_wait_seconds": 900},
                "description": "Morning briefing: three questions fanned out, then a summary run.",
            },
        ),
        (run_assistant, "on-demand-served", {"parameters": run_parameters}),
        (
            run_assistant.with_options(timeout_seconds=timeout),
            "short-timeout-served",
            {
                "parameters": run_parameters,
                "description": f"run-assistant with timeout_seconds={timeout:g}: past it, the flow run and its "
                "OpenAI run end.",
            },
        ),
    ]


def describe() -> str:
    """What this process serves and how to trigger each deployment, printed before it starts waiting."""
    api = os.environ.get("PREFECT_API_URL", "(PREFECT_API_URL is not set: Prefect's default profile)")
    poll = os.environ.get("PREFECT_RUNNER_POLL_FREQUENCY", "10")
    lines = [f"Serving {len(served())} deployments on {api}, credentials block {CREDENTIALS_BLOCK!r}:"]
    for flow_, name, options in served():
        when = f"cron {options['cron']} (UTC)" if "cron" in options else "on demand"
        lines.append(f"  {f'{flow_.name}/{name}':<36} {when}")
    lines += [
        "Trigger a run from another terminal (same PREFECT_API_URL), or press Run in the UI:",
        "  prefect deployment run assistant-pipeline/nightly-served",
        """  prefect deployment run run-assistant/on-demand-served --params '{"messages": ["Hello"]}'""",
        f"Waiting for flow runs (polling every {poll} s); Ctrl-C stops serving and pauses the schedules.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe(), flush=True)
    asyncio.run(build_runner().start())
