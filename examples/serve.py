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

from prefect.runner import Runner

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import CREDENTIALS_BLOCK, DEFAULT_PROMPTS, assistant_pipeline

from prefect_openai_runs.flows import run_assistant


def build_runner() -> Runner:
    """A runner serving the three deployments (created on the server when it starts)."""
    assistant = os.environ.get("PIPELINE_ASSISTANT_ID", "asst_default")
    runner = Runner(name="openai-runs-examples")
    runner.add_flow(
        assistant_pipeline,
        name="nightly-served",
        cron=os.environ.get("PIPELINE_CRON", "0 6 * * *"),
        parameters={"prompts": DEFAULT_PROMPTS, "assistant_id": assistant, "max_wait_seconds": 900},
        tags=["openai"],
        description="Morning briefing: three questions fanned out, then a summary run.",
    )
    run_parameters = {"credentials": CREDENTIALS_BLOCK, "assistant_id": assistant, "max_wait_seconds": 600}
    runner.add_flow(run_assistant, name="on-demand-served", parameters=run_parameters, tags=["openai"])
    timeout = float(os.environ.get("SHORT_TIMEOUT_SECONDS", "30"))
    runner.add_flow(
        run_assistant.with_options(timeout_seconds=timeout),
        name="short-timeout-served",
        parameters=run_parameters,
        tags=["openai"],
        description=f"run-assistant with timeout_seconds={timeout:g}: past it, the flow run and its OpenAI run end.",
    )
    return runner


if __name__ == "__main__":
    asyncio.run(build_runner().start())
