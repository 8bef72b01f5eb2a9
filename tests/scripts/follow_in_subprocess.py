"""Run ``run_assistant`` in its own process, for the tests that kill that process.

Usage: python follow_in_subprocess.py <credentials block name> <assistant id>
The Prefect API URL comes from PREFECT_API_URL in the environment.
"""

from __future__ import annotations

import sys

from prefect_openai_runs.flows import run_assistant

if __name__ == "__main__":
    block_name, assistant_id = sys.argv[1], sys.argv[2]
    run_assistant(block_name, assistant_id, messages=["a long job"], max_wait_seconds=120)
