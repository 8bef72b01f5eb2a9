"""Follow one OpenAI job in its own process, for the tests that kill that process.

Usage: python follow_in_subprocess.py <credentials block name> <assistant id> [run|response|batch]
``run`` (the default) runs ``run_assistant``, ``response`` ``run_response``, ``batch`` ``run_batch``, each
with a long deadline. The Prefect API URL comes from PREFECT_API_URL in the environment.
"""

from __future__ import annotations

import sys

from prefect_openai_runs.flows import run_assistant, run_batch, run_response

if __name__ == "__main__":
    block_name, assistant_id = sys.argv[1], sys.argv[2]
    kind = sys.argv[3] if len(sys.argv) > 3 else "run"
    if kind == "response":
        run_response(block_name, "gpt-5", "a long job", max_wait_seconds=120)
    elif kind == "batch":
        run_batch(block_name, [{"model": "gpt-5", "input": "a long job"}], max_wait_seconds=120)
    else:
        run_assistant(block_name, assistant_id, messages=["a long job"], max_wait_seconds=120)
