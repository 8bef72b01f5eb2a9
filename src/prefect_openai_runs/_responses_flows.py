"""The flow that runs a background response end to end and never leaves one behind (re-exported by
:mod:`prefect_openai_runs.flows`).

:func:`run_response` creates a background response (streamed: the id is known from the first event),
follows it (resuming the stream after drops, polling when resuming is refused), answers its function
calls with follow-up responses, and returns the completed response, all under one deadline. On every
other path the response still active is cancelled, read again, recorded, and the flow fails with the
outcome family (:class:`~prefect_openai_runs.exceptions.JobOutcomeError`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from prefect import flow

from prefect_openai_runs._lifecycle._follower import DEFAULT_CANCEL_WAIT_SECONDS
from prefect_openai_runs._lifecycle._keys import logical_key
from prefect_openai_runs._lifecycle._response_hooks import ResponseHooks
from prefect_openai_runs._lifecycle._steps import STEPS
from prefect_openai_runs._lifecycle._sync._driver import run_job
from prefect_openai_runs._lifecycle._sync._responses import ResponsesApi, ResponseSpec
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._recording import ArtifactExtras
from prefect_openai_runs._responses_tasks import build_response_params
from prefect_openai_runs._tool_tasks import ToolHandler, call_tool
from prefect_openai_runs.blocks import OpenAICredentials, resolve_credentials
from prefect_openai_runs.exceptions import JobTimedOut, ToolCallError
from prefect_openai_runs.models import CreateResponseParams, Response


def answer_function_calls(
    response: Response, handlers: Mapping[str, ToolHandler], timeout_seconds: float | None = None
) -> list[dict[str, Any]]:
    """Run the handler of every function call of a completed response (each as a Prefect task, on the
    model's arguments as one dict) and return the ``function_call_output`` input items of the follow-up.

    Args:
        response: The completed response that asks for function calls.
        handlers: Function name to callable (or Prefect task); it gets the model's arguments unchanged.
        timeout_seconds: How long each handler may run (the task's ``timeout_seconds``).

    Raises:
        ToolCallError: A function has no handler, its arguments are not a JSON object, or its handler
            raised (or ran out of time).
    """
    return [
        {
            "type": "function_call_output",
            "call_id": call.call_id,
            "output": call_tool(response, call.name, call.arguments, handlers, timeout_seconds),
        }
        for call in response.function_calls
    ]


def follow_up_params(
    first: CreateResponseParams, previous: Response, outputs: list[dict[str, Any]]
) -> CreateResponseParams:
    """The follow-up that answers ``previous``'s function calls: the first request's settings (model,
    instructions, tools, ...) with the outputs as input, chained by ``previous_response_id`` (or, in a
    conversation, by the conversation itself)."""
    update: dict[str, Any] = {"input": outputs}
    if first.conversation is None:
        update["previous_response_id"] = previous.id
    return first.model_copy(update=update)


def _tools_timed_out(response: Response, max_wait_seconds: float) -> JobTimedOut:
    return JobTimedOut(
        response,
        f"the {max_wait_seconds:g}s deadline (max_wait_seconds) passed while the tool handlers ran; "
        "no response was left active",
    )


@flow(name="run-response", description="Run an OpenAI background response to completion; cancel it on any other path.")
def run_response(
    credentials: OpenAICredentials | str,
    model: str,
    input: str | list[dict[str, Any]],
    instructions: str | None = None,
    max_wait_seconds: float = 600.0,
    stream: bool = True,
    tool_handlers: dict[str, ToolHandler] | None = None,
    cancel_wait_seconds: float = DEFAULT_CANCEL_WAIT_SECONDS,
    **params: Any,
) -> Response:
    """Create a background response, follow it to its end under one deadline, and return it once completed.

    Streamed (the default), the response is known from its first event and followed on its stream;
    when the stream drops it is resumed after the last event seen, and when resuming is refused or fails
    it is polled. When a completed response asks for function calls and ``tool_handlers`` are given,
    each handler runs as a Prefect task and a follow-up background response carries the outputs
    (``previous_response_id``), under the same deadline; each response is recorded (artifact, events).
    On every path other than completion (the deadline, the Prefect flow's ``timeout_seconds``, a
    failing tool, an upstream error, a cancellation) the active response is cancelled and read again,
    and the flow fails with what really happened. The create is never sent twice: after a failure the
    server may have applied, the flow fails with ``ResponseMayExistError``.

    Args:
        credentials: The credentials block, or the name of a saved one.
        model: The model (on Azure, the deployment name).
        input: The input: a string, or a list of input items.
        instructions: System instructions.
        max_wait_seconds: The deadline for the whole exchange (every response and tool call).
        stream: Follow the responses through their streams (falls back to polling).
        tool_handlers: Function name to Python callable; each call runs as a Prefect task (bounded by
            what is left of the deadline) on the model's arguments, and its return value (a string, or
            anything JSON-serialisable) is the function's output. Without them, a
            response that asks for function calls is returned as it is (completed).
        cancel_wait_seconds: How long to wait for a cancel to finish (0: send it, do not wait).
        **params: Any other *create response* field (tools, metadata, max_output_tokens, reasoning, ...).

    Returns:
        The completed (last) response.

    Raises:
        JobFailed: The response failed (``response.error`` says why).
        JobIncomplete: The response hit a limit (``incomplete_details``).
        JobCancelled: Someone else cancelled it.
        JobTimedOut: The deadline passed; the response was cancelled (or a tool handler was stopped).
        JobGone: The response disappeared while followed (404: deleted, or past its retention).
        ToolCallError: A function call could not be answered.
        ResponseMayExistError: The create's answer was lost; it was not sent again.

    Example:
        ```python
        from prefect_openai_runs.flows import run_response

        response = run_response("openai", "gpt-5", "Summarise the release notes.", max_wait_seconds=300)
        print(response.output_text)
        ```
    """
    if not max_wait_seconds > 0:
        raise ValueError(f"max_wait_seconds must be positive, got {max_wait_seconds}")
    if cancel_wait_seconds < 0:
        raise ValueError(f"cancel_wait_seconds must be 0 or more, got {cancel_wait_seconds}")
    first = build_response_params(model, input, instructions, params)
    handlers = dict(tool_handlers or {})
    deadline = time.monotonic() + max_wait_seconds
    with resolve_credentials(credentials).get_responses_client() as client:
        api = ResponsesApi(client)
        prompt = input if isinstance(input, str) else json.dumps(input, default=str)
        extras = ArtifactExtras(prompt=prompt, deadline_seconds=max_wait_seconds, sum_flow_usage=True)
        hooks = ResponseHooks(max_wait_seconds, extras=extras)
        request = first
        while True:
            key = logical_key("response")
            response = run_job(
                api,
                ResponseSpec(request, key),
                key=key,
                parent_id=None,
                max_wait_seconds=max(deadline - time.monotonic(), 0.001),
                cancel_wait_seconds=cancel_wait_seconds,
                stream=stream,
                hooks=hooks,
                steps=STEPS,
            )
            if not (response.function_calls and handlers):
                return response
            try:
                outputs = answer_function_calls(response, handlers, max(deadline - time.monotonic(), 0.001))
            except ToolCallError as exc:
                if time.monotonic() < deadline:
                    raise
                raise _tools_timed_out(response, max_wait_seconds) from exc
            hooks.answered(response, {item["call_id"]: item["output"] for item in outputs})
            if time.monotonic() >= deadline:
                raise _tools_timed_out(response, max_wait_seconds)
            get_logger().info("Answering %d function call(s) of response %s", len(outputs), response.id)
            request = follow_up_params(first, response, outputs)
