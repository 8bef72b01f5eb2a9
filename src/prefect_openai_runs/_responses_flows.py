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
from collections.abc import Callable, Mapping
from typing import Any

from prefect import Task, flow, task
from prefect.cache_policies import NO_CACHE

from prefect_openai_runs._lifecycle._follower import DEFAULT_CANCEL_WAIT_SECONDS
from prefect_openai_runs._lifecycle._keys import logical_key
from prefect_openai_runs._lifecycle._response_hooks import ResponseHooks
from prefect_openai_runs._lifecycle._sync._driver import run_job
from prefect_openai_runs._lifecycle._sync._responses import ResponsesApi, ResponseSpec
from prefect_openai_runs._logging import get_logger
from prefect_openai_runs._responses_tasks import build_response_params
from prefect_openai_runs.blocks import OpenAICredentials, resolve_credentials
from prefect_openai_runs.exceptions import JobTimedOut, ToolCallError
from prefect_openai_runs.models import CreateResponseParams, Response

ToolHandler = Callable[..., Any]


def _as_task(name: str, handler: ToolHandler) -> Task[..., Any]:
    return handler if isinstance(handler, Task) else task(name=f"tool {name}", cache_policy=NO_CACHE)(handler)


def answer_function_calls(response: Response, handlers: Mapping[str, ToolHandler]) -> list[dict[str, Any]]:
    """Run the handler of every function call of a completed response (each as a Prefect task) and return
    the ``function_call_output`` input items of the follow-up response.

    Raises:
        ToolCallError: A function has no handler, its arguments are not JSON, or its handler raised.
    """
    items: list[dict[str, Any]] = []
    for call in response.function_calls:
        handler = handlers.get(call.name)
        if handler is None:
            known = ", ".join(sorted(handlers)) or "none"
            raise ToolCallError(
                response, f"the response called function {call.name!r}, which has no tool handler ({known})", call.name
            )
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError as exc:
            raise ToolCallError(
                response, f"function {call.name!r} was called with arguments that are not JSON", call.name
            ) from exc
        try:
            value = _as_task(call.name, handler)(**arguments)
        except Exception as exc:
            reason = f"the tool handler of {call.name!r} raised {type(exc).__name__}: {exc}"
            raise ToolCallError(response, reason, call.name) from exc
        output = value if isinstance(value, str) else json.dumps(value, default=str)
        items.append({"type": "function_call_output", "call_id": call.call_id, "output": output})
    return items


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
        tool_handlers: Function name to Python callable; each call runs as a Prefect task and its return
            value (a string, or anything JSON-serialisable) is the function's output. Without them, a
            response that asks for function calls is returned as it is (completed).
        cancel_wait_seconds: How long to wait for a cancel to finish (0: send it, do not wait).
        **params: Any other *create response* field (tools, metadata, max_output_tokens, reasoning, ...).

    Returns:
        The completed (last) response.

    Raises:
        JobFailed: The response failed (``response.error`` says why).
        JobIncomplete: The response hit a limit (``incomplete_details``).
        JobCancelled: Someone else cancelled it.
        JobTimedOut: The deadline passed; the response was cancelled.
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
        hooks = ResponseHooks(max_wait_seconds)
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
            )
            if not (response.function_calls and handlers):
                return response
            outputs = answer_function_calls(response, handlers)
            hooks.answered(response, {item["call_id"]: item["output"] for item in outputs})
            if time.monotonic() >= deadline:
                raise JobTimedOut(
                    response,
                    f"the {max_wait_seconds:g}s deadline (max_wait_seconds) passed while the tool handlers ran; "
                    "no response was left active",
                )
            get_logger().info("Answering %d function call(s) of response %s", len(outputs), response.id)
            request = follow_up_params(first, response, outputs)
