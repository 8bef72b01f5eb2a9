"""Ending the background responses a flow run created, from any process: what the guard hooks, the
``cancel_runs_on_error`` block and the orphan sweep do for responses (see :mod:`prefect_openai_runs.guard`).

The responses are read back from the Prefect server (their artifacts carry ``kind="response"`` and the
id in their metadata). A response whose create answer was lost cannot be found (the API has no search):
it is in no record, and ends by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID

from prefect.utilities.asyncutils import run_coro_as_sync

from prefect_openai_runs._lifecycle._async._driver import Ending, end_job
from prefect_openai_runs._lifecycle._async._responses import AsyncResponsesApi
from prefect_openai_runs._lifecycle._follower import DEFAULT_CANCEL_WAIT_SECONDS, JobFollower
from prefect_openai_runs._lifecycle._kinds import JobRef
from prefect_openai_runs._lifecycle._outcome import CancelOutcome, CancelResult
from prefect_openai_runs._lifecycle._response_hooks import ResponseHooks, registered_responses
from prefect_openai_runs._lifecycle._response_kind import RESPONSE
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs.blocks import OpenAICredentials, resolve_credentials
from prefect_openai_runs.exceptions import NotFoundError
from prefect_openai_runs.models import Response


def cancel_responses(
    credentials: OpenAICredentials | str,
    response_ids: Sequence[str],
    reason: str,
    wait_seconds: float = DEFAULT_CANCEL_WAIT_SECONDS,
    flow_run_id: UUID | None = None,
) -> list[CancelResult[Response]]:
    """End the given responses concurrently, the one way every job ends (safe in every state).

    A response that had already ended keeps its artifact as it was; one that no longer exists (deleted,
    past its retention) is logged as a warning.

    Returns:
        One result per response that was cancelled or found already ended.
    """
    if not response_ids:
        return []
    creds = resolve_credentials(credentials)

    async def end_all() -> list[Ending[Response] | BaseException]:
        async with creds.get_async_responses_client() as client:
            api = AsyncResponsesApi(client)
            hooks = ResponseHooks(flow_run_id=flow_run_id, record_intents=False, rewrite_ended=False)
            followers = [JobFollower(RESPONSE, JobRef(RESPONSE.name, i), max(wait_seconds, 1.0)) for i in response_ids]
            return await asyncio.gather(
                *(end_job(api, f, None, wait_seconds, hooks, reason) for f in followers), return_exceptions=True
            )

    outcomes: list[Ending[Response] | BaseException] = run_coro_as_sync(end_all()) or []
    results: list[CancelResult[Response]] = []
    for response_id, outcome in zip(response_ids, outcomes, strict=True):
        if isinstance(outcome, NotFoundError):
            get_logger().warning("OpenAI response %s no longer exists (%s): %s", response_id, reason, outcome)
        elif isinstance(outcome, BaseException):
            get_logger().error("Could not cancel OpenAI response %s (%s): %s", response_id, reason, outcome)
        else:
            results.append(outcome.cancel or CancelResult(CancelOutcome.ALREADY_ENDED, outcome.job))
    return results


def cancel_flow_run_responses(
    credentials: OpenAICredentials | str,
    flow_run_id: UUID,
    reason: str,
    wait_seconds: float = DEFAULT_CANCEL_WAIT_SECONDS,
) -> list[CancelResult[Response]]:
    """End every background response our tasks and flows created in a flow run (read from its artifacts)."""
    return cancel_responses(credentials, registered_responses(flow_run_id), reason, wait_seconds, flow_run_id)
