"""Typed HTTP clients of the OpenAI APIs the library drives.

The layers, bottom up: ``_http`` (what a request is, headers, error responses to exceptions),
``_operations`` (every request written once without I/O, as generators), ``_config`` (settings and
request building shared by both sides), ``_async`` (the clients that drive the operations; the one
hand-kept source) and ``_sync`` (generated from ``_async`` by ``scripts/unasync.py``; CI checks it is
current).

Example:
    ```python
    from prefect_openai_runs import OpenAICredentials

    with OpenAICredentials.load("openai").get_client() as client:
        thread = client.create_thread()
        run = client.create_run(thread.id, assistant_id="asst_abc123")
        print(client.get_run(thread.id, run.id).status)
    ```
"""

from prefect_openai_runs.client._async.batches import AsyncBatchesClient
from prefect_openai_runs.client._async.responses import AsyncResponsesClient
from prefect_openai_runs.client._async.runs import AsyncRunsClient
from prefect_openai_runs.client._config import DEFAULT_BASE_URL, DEFAULT_TIMEOUT
from prefect_openai_runs.client._operations import IDEMPOTENCY_METADATA_KEY
from prefect_openai_runs.client._sync.batches import BatchesClient
from prefect_openai_runs.client._sync.responses import ResponsesClient
from prefect_openai_runs.client._sync.runs import RunsClient

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "IDEMPOTENCY_METADATA_KEY",
    "AsyncBatchesClient",
    "AsyncResponsesClient",
    "AsyncRunsClient",
    "BatchesClient",
    "ResponsesClient",
    "RunsClient",
]
