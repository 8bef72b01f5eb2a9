"""HTTP routing: maps the ``/v1`` endpoints onto :class:`._api.RunsApi` and
:class:`._responses_api.ResponsesApi`, and mounts the control surface."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import _errors as errors
from ._asgi import ApiGate
from ._batch_routes import batch_routes
from ._control import control_routes
from ._core import EmulatorCore
from ._events import Subscription
from ._responses_api import response_subscription

Handler = Callable[[Request], Awaitable[Response]]


class SseResponse(Response):
    """A ``text/event-stream`` response fed by a :class:`Subscription`, flushed event by event."""

    def __init__(self, subscription: Subscription) -> None:
        super().__init__(media_type="text/event-stream")
        self.subscription = subscription
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        pump = asyncio.ensure_future(self._pump(send))
        watch = asyncio.ensure_future(_until_disconnect(receive))
        try:
            await asyncio.wait([pump, watch], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.subscription.close()
            for task in (pump, watch):
                task.cancel()
        if pump.done() and not pump.cancelled():
            pump.result()
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, send: Send) -> None:
        async for chunk in self.subscription:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise errors.invalid_json() from None


def _starting_after(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise errors.invalid_type("starting_after", "an integer", raw) from None


def build_app(core: EmulatorCore) -> ApiGate:
    """The ASGI application of one emulator: the gate in front of the API and control routes."""
    api = core.api

    def streamed(body: Any) -> Subscription | None:
        if isinstance(body, dict) and body.get("stream") is True:
            core.log.count("streams")
            return Subscription()
        return None

    def respond(result: dict[str, Any], stream: Subscription | None) -> Response:
        return SseResponse(stream) if stream is not None else JSONResponse(result)

    async def create_assistant(request: Request) -> Response:
        return JSONResponse(api.create_assistant(await _json_body(request)))

    async def get_assistant(request: Request) -> Response:
        return JSONResponse(api.get_assistant(request.path_params["assistant_id"]))

    async def create_thread(request: Request) -> Response:
        return JSONResponse(api.create_thread(await _json_body(request)))

    async def get_thread(request: Request) -> Response:
        return JSONResponse(api.get_thread(request.path_params["thread_id"]))

    async def messages(request: Request) -> Response:
        thread_id = request.path_params["thread_id"]
        if request.method == "POST":
            return JSONResponse(api.create_message(thread_id, await _json_body(request)))
        return JSONResponse(api.list_messages(thread_id, request.query_params))

    async def create_thread_and_run(request: Request) -> Response:
        body = await _json_body(request)
        stream = streamed(body)
        return respond(api.create_thread_and_run(body, stream), stream)

    async def runs(request: Request) -> Response:
        thread_id = request.path_params["thread_id"]
        if request.method == "GET":
            return JSONResponse(api.list_runs(thread_id, request.query_params))
        body = await _json_body(request)
        stream = streamed(body)
        return respond(api.create_run(thread_id, body, stream), stream)

    async def run(request: Request) -> Response:
        thread_id, run_id = request.path_params["thread_id"], request.path_params["run_id"]
        if request.method == "POST":
            return JSONResponse(api.modify_run(thread_id, run_id, await _json_body(request)))
        response = JSONResponse(api.get_run(thread_id, run_id))
        if core.config.poll_after_ms is not None:
            response.headers["openai-poll-after-ms"] = str(core.config.poll_after_ms)
        return response

    async def cancel(request: Request) -> Response:
        return JSONResponse(api.cancel_run(request.path_params["thread_id"], request.path_params["run_id"]))

    async def submit_tool_outputs(request: Request) -> Response:
        body = await _json_body(request)
        stream = streamed(body)
        thread_id, run_id = request.path_params["thread_id"], request.path_params["run_id"]
        return respond(api.submit_tool_outputs(thread_id, run_id, body, stream), stream)

    async def steps(request: Request) -> Response:
        p = request.path_params
        return JSONResponse(api.list_steps(p["thread_id"], p["run_id"], request.query_params))

    async def step(request: Request) -> Response:
        p = request.path_params
        return JSONResponse(api.get_step(p["thread_id"], p["run_id"], p["step_id"]))

    responses = core.responses

    def response_stream(body: Any) -> Subscription | None:
        if isinstance(body, dict) and body.get("stream") is True:
            core.log.count("streams")
            return response_subscription()
        return None

    async def create_response(request: Request) -> Response:
        body = await _json_body(request)
        stream = response_stream(body)
        return respond(responses.create(body, stream), stream)

    async def response(request: Request) -> Response:
        response_id = request.path_params["response_id"]
        if request.method == "DELETE":
            return JSONResponse(responses.delete(response_id))
        query = request.query_params
        if query.get("stream", "").lower() != "true":
            return JSONResponse(responses.get(response_id))
        stream = response_subscription()
        responses.resume(response_id, _starting_after(query.get("starting_after")), stream)
        core.log.count("streams")
        return SseResponse(stream)

    async def cancel_response(request: Request) -> Response:
        return JSONResponse(responses.cancel(request.path_params["response_id"]))

    routes = [
        Route("/v1/assistants", create_assistant, methods=["POST"]),
        Route("/v1/assistants/{assistant_id}", get_assistant, methods=["GET"]),
        Route("/v1/threads", create_thread, methods=["POST"]),
        Route("/v1/threads/runs", create_thread_and_run, methods=["POST"]),
        Route("/v1/threads/{thread_id}", get_thread, methods=["GET"]),
        Route("/v1/threads/{thread_id}/messages", messages, methods=["GET", "POST"]),
        Route("/v1/threads/{thread_id}/runs", runs, methods=["GET", "POST"]),
        Route("/v1/threads/{thread_id}/runs/{run_id}", run, methods=["GET", "POST"]),
        Route("/v1/threads/{thread_id}/runs/{run_id}/cancel", cancel, methods=["POST"]),
        Route("/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", submit_tool_outputs, methods=["POST"]),
        Route("/v1/threads/{thread_id}/runs/{run_id}/steps", steps, methods=["GET"]),
        Route("/v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}", step, methods=["GET"]),
        Route("/v1/responses", create_response, methods=["POST"]),
        Route("/v1/responses/{response_id}", response, methods=["GET", "DELETE"]),
        Route("/v1/responses/{response_id}/cancel", cancel_response, methods=["POST"]),
        *batch_routes(core.batches, _json_body),
        *control_routes(core),
    ]

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.ApiError)
        return JSONResponse(exc.body(), status_code=exc.status)

    async def no_route(request: Request, exc: Exception) -> Response:
        error = errors.invalid_url(request.method, request.url.path)
        return JSONResponse(error.body(), status_code=error.status)

    app = Starlette(
        routes=routes,
        exception_handlers={errors.ApiError: api_error, HTTPException: no_route},
    )
    return ApiGate(app, core)
