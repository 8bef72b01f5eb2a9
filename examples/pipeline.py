"""An example scheduled pipeline: several prompts fanned out at once, then one summary run over their answers.

Every OpenAI run it creates is cancelled if the flow run fails, is cancelled (the UI's *Cancel* button)
or crashes: the runs created by the fan-out through the guard's hooks, the summary run by
``run_assistant`` itself.

The credentials block is named by ``PREFECT_OPENAI_RUNS_BLOCK`` (default ``openai``): the hooks are
attached when the flow is defined, so the name is read when this module is imported. Save the block
once (see docs/index.md), then serve or deploy (``examples/serve.py``, or ``prefect deploy`` with
``prefect.yaml``). Run it once by hand with::

    PREFECT_OPENAI_RUNS_BLOCK=emulator python examples/pipeline.py
"""

from __future__ import annotations

import os

from prefect import flow, unmapped

from prefect_openai_runs.flows import run_assistant
from prefect_openai_runs.guard import cancel_runs_hooks
from prefect_openai_runs.tasks import create_thread_and_run, get_run_output, wait_for_runs

CREDENTIALS_BLOCK = os.environ.get("PREFECT_OPENAI_RUNS_BLOCK", "openai")
"""The name of the saved ``OpenAICredentials`` block the pipeline and its cancel hooks use."""

DEFAULT_PROMPTS = [
    "What changed in the billing service yesterday?",
    "Which support tickets were escalated yesterday?",
    "Which deployments failed yesterday, and why?",
]


def summary_prompt(prompts: list[str], answers: list[str]) -> str:
    """The message of the summary run: every question with its answer."""
    pairs = "\n\n".join(f"Question: {q}\nAnswer: {a}" for q, a in zip(prompts, answers, strict=True))
    return f"Write a short morning briefing from these answers.\n\n{pairs}"


@flow(name="assistant-pipeline", log_prints=True, **cancel_runs_hooks(CREDENTIALS_BLOCK))
def assistant_pipeline(
    prompts: list[str] | None = None,
    assistant_id: str = "asst_default",
    summary_assistant_id: str | None = None,
    max_wait_seconds: float = 600.0,
) -> str:
    """Ask one assistant several questions at once, then have an assistant summarise the answers.

    Args:
        prompts: The questions, one run (on its own thread) each; default: ``DEFAULT_PROMPTS``.
        assistant_id: The assistant that answers them.
        summary_assistant_id: The assistant that writes the summary (default: ``assistant_id``).
        max_wait_seconds: The deadline of the fan-out, and of the summary run.

    Returns:
        The summary text.
    """
    questions = list(prompts or DEFAULT_PROMPTS)
    created = create_thread_and_run.map(unmapped(CREDENTIALS_BLOCK), unmapped(assistant_id), [[q] for q in questions])
    # fail_fast: the first run that does not complete cancels the others and fails the flow run.
    finished = wait_for_runs(CREDENTIALS_BLOCK, created.result(), max_wait_seconds=max_wait_seconds)
    answers = [get_run_output(CREDENTIALS_BLOCK, run.thread_id, run.id) for run in finished]
    summary = run_assistant(
        CREDENTIALS_BLOCK,
        summary_assistant_id or assistant_id,
        messages=[summary_prompt(questions, answers)],
        max_wait_seconds=max_wait_seconds,
    )
    text = get_run_output(CREDENTIALS_BLOCK, summary.thread_id, summary.id)
    print(text)
    return text


if __name__ == "__main__":
    assistant_pipeline()
