"""Every HTTP route of the emulator, in one place: the ``/v1`` API (runs, responses, files, batches) onto
:class:`._runs_api.RunsApi`, :class:`._responses_api.ResponsesApi` and :class:`._batch_api.BatchesApi`, and the
``/_emulator`` control surface: inspection and configuration over HTTP (loopback only, no auth).

========  ==============================  ==========================================================
GET       /_emulator/info                 ``{"api_key", "default_assistant_id"}``
GET       /_emulator/runs                 every run record (``?active=true``: active runs only)
GET       /_emulator/runs/{run_id}        one run record
GET       /_emulator/responses            every response record
GET       /_emulator/responses/{id}       one response record
POST      /_emulator/response_scripts     ``{"script": ResponseScript, "model", "metadata", "input_contains"}``
GET       /_emulator/requests             every request record
GET       /_emulator/counters             the counters
POST      /_emulator/scripts              ``{"script": RunScript, "assistant_id", "metadata",
                                          "last_user_message_contains"}``
POST      /_emulator/faults               a FaultRule
DELETE    /_emulator/faults               disarm every fault
GET       /_emulator/rate_limits          ``{"rpm", "tpm", "burst_seconds"}`` (null: not enforced)
PUT       /_emulator/rate_limits          set them (the buckets start full)
GET       /_emulator/batches              every batch record
GET       /_emulator/batches/{batch_id}   one batch record
GET       /_emulator/files                every file record (without content)
POST      /_emulator/batch_scripts        ``{"script": BatchScript.to_dict(), "metadata": {...}}``
POST      /_emulator/reset                forget all state but the default assistant
========  ==============================  ==========================================================
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import _errors as errors
from ._asgi import ApiGate
from ._batch_api import BatchesApi
from ._batch_records import BatchRecord, FileRecord
from ._batch_scripts import BatchScript, BatchScriptRule
from ._core import EmulatorCore
from ._events import Subscription
from ._faults import FaultRule
from ._multipart import parse_form
from ._ratelimit import RateLimits
from ._response_scripts import ResponseScript, ResponseScriptRule, response_matcher
from ._responses_api import response_subscription
from ._scripts import RunScript, ScriptRule, simple_matcher

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


def _api_routes(core: EmulatorCore) -> list[Route]:
    """The ``/v1`` routes of runs (and their assistants, threads, messages, steps) and of responses."""
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

    async def thread(request: Request) -> Response:
        if request.method == "DELETE":
            return JSONResponse(api.delete_thread(request.path_params["thread_id"]))
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
        return with_poll_hint(JSONResponse(api.get_run(thread_id, run_id)), core.config.poll_after_ms)

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

    return [
        Route("/v1/assistants", create_assistant, methods=["POST"]),
        Route("/v1/assistants/{assistant_id}", get_assistant, methods=["GET"]),
        Route("/v1/threads", create_thread, methods=["POST"]),
        Route("/v1/threads/runs", create_thread_and_run, methods=["POST"]),
        Route("/v1/threads/{thread_id}", thread, methods=["GET", "DELETE"]),
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
    ]


def with_poll_hint(response: Response, poll_after_ms: int | None) -> Response:
    """``response`` with the ``openai-poll-after-ms`` header, when the emulator is set to send one."""
    if poll_after_ms is not None:
        response.headers["openai-poll-after-ms"] = str(poll_after_ms)
    return response


def _file_and_batch_routes(api: BatchesApi, poll_after_ms: Callable[[], int | None]) -> list[Route]:
    """The ``/v1`` routes of files and batches (GET batch carries the polling hint, as GET run does)."""

    async def files(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(api.list_files(request.query_params))
        parts = parse_form(request.headers.get("content-type", ""), await request.body())
        return JSONResponse(api.upload_file(parts))

    async def file(request: Request) -> Response:
        file_id = request.path_params["file_id"]
        if request.method == "DELETE":
            return JSONResponse(api.delete_file(file_id))
        return JSONResponse(api.get_file(file_id))

    async def content(request: Request) -> Response:
        return Response(api.file_content(request.path_params["file_id"]), media_type="application/octet-stream")

    async def batches(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(api.list_batches(request.query_params))
        return JSONResponse(api.create_batch(await _json_body(request)))

    async def batch(request: Request) -> Response:
        return with_poll_hint(JSONResponse(api.get_batch(request.path_params["batch_id"])), poll_after_ms())

    async def cancel(request: Request) -> Response:
        return JSONResponse(api.cancel_batch(request.path_params["batch_id"]))

    return [
        Route("/v1/files", files, methods=["GET", "POST"]),
        Route("/v1/files/{file_id}", file, methods=["GET", "DELETE"]),
        Route("/v1/files/{file_id}/content", content, methods=["GET"]),
        Route("/v1/batches", batches, methods=["GET", "POST"]),
        Route("/v1/batches/{batch_id}", batch, methods=["GET"]),
        Route("/v1/batches/{batch_id}/cancel", cancel, methods=["POST"]),
    ]


def _batch_control_routes(api: BatchesApi) -> list[Route]:
    """The control routes of batches and files."""

    async def batch_records(request: Request) -> Response:
        return JSONResponse([r.to_dict() for r in BatchRecord.all(api)])

    async def batch_record(request: Request) -> Response:
        try:
            return JSONResponse(BatchRecord.one(api, request.path_params["batch_id"]).to_dict())
        except KeyError:
            return JSONResponse({"detail": "no such batch"}, status_code=404)

    async def file_records(request: Request) -> Response:
        return JSONResponse([r.to_dict() for r in FileRecord.all(api)])

    async def scripts(request: Request) -> Response:
        data: dict[str, Any] = await request.json()
        try:
            rule = BatchScriptRule(BatchScript.from_dict(data.get("script") or {}), data.get("metadata"))
        except (TypeError, ValueError) as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        api.scripts.add(rule)
        return JSONResponse({"ok": True})

    return [
        Route("/_emulator/batches", batch_records, methods=["GET"]),
        Route("/_emulator/batches/{batch_id}", batch_record, methods=["GET"]),
        Route("/_emulator/files", file_records, methods=["GET"]),
        Route("/_emulator/batch_scripts", scripts, methods=["POST"]),
    ]


def control_routes(core: EmulatorCore) -> list[Route]:
    """The ``/_emulator`` routes of one emulator (the table in this module's docstring)."""

    async def info(request: Request) -> Response:
        return JSONResponse({"api_key": core.config.api_key, "default_assistant_id": core.store.default_assistant_id})

    async def runs(request: Request) -> Response:
        active = request.query_params.get("active", "").lower() in ("1", "true", "yes")
        return JSONResponse([r.to_dict() for r in core.run_records(active_only=active)])

    async def run(request: Request) -> Response:
        try:
            return JSONResponse(core.run_record(request.path_params["run_id"]).to_dict())
        except KeyError:
            return JSONResponse({"detail": "no such run"}, status_code=404)

    async def responses(request: Request) -> Response:
        return JSONResponse([r.to_dict() for r in core.response_records()])

    async def response(request: Request) -> Response:
        try:
            return JSONResponse(core.response_record(request.path_params["response_id"]).to_dict())
        except KeyError:
            return JSONResponse({"detail": "no such response"}, status_code=404)

    async def response_scripts(request: Request) -> Response:
        data: dict[str, Any] = await request.json()
        try:
            rule = ResponseScriptRule(
                script=ResponseScript.from_dict(data.get("script") or {}),
                model=data.get("model"),
                match=response_matcher(data.get("metadata"), data.get("input_contains")),
            )
        except (TypeError, ValueError) as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        core.response_scripts.add(rule)
        return JSONResponse({"ok": True})

    async def requests(request: Request) -> Response:
        return JSONResponse([r.to_dict() for r in core.log.records()])

    async def counters(request: Request) -> Response:
        return JSONResponse(core.log.counters())

    async def scripts(request: Request) -> Response:
        data: dict[str, Any] = await request.json()
        try:
            rule = ScriptRule(
                script=RunScript.from_dict(data.get("script") or {}),
                assistant_id=data.get("assistant_id"),
                match=simple_matcher(data.get("metadata"), data.get("last_user_message_contains")),
            )
        except (TypeError, ValueError) as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        core.scripts.add(rule)
        return JSONResponse({"ok": True})

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            core.faults.clear()
            return JSONResponse({"ok": True})
        try:
            core.faults.add(FaultRule.from_dict(await request.json()))
        except (TypeError, ValueError) as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        return JSONResponse({"ok": True})

    async def rate_limits(request: Request) -> Response:
        if request.method == "PUT":
            try:
                core.config.rate_limits = RateLimits(**await request.json())
            except (TypeError, ValueError) as exc:
                return JSONResponse({"detail": str(exc)}, status_code=422)
        return JSONResponse(asdict(core.config.rate_limits))

    async def reset(request: Request) -> Response:
        core.reset()
        return JSONResponse({"ok": True})

    return [
        *_batch_control_routes(core.batches),
        Route("/_emulator/info", info, methods=["GET"]),
        Route("/_emulator/runs", runs, methods=["GET"]),
        Route("/_emulator/runs/{run_id}", run, methods=["GET"]),
        Route("/_emulator/responses", responses, methods=["GET"]),
        Route("/_emulator/responses/{response_id}", response, methods=["GET"]),
        Route("/_emulator/response_scripts", response_scripts, methods=["POST"]),
        Route("/_emulator/requests", requests, methods=["GET"]),
        Route("/_emulator/counters", counters, methods=["GET"]),
        Route("/_emulator/scripts", scripts, methods=["POST"]),
        Route("/_emulator/faults", faults, methods=["POST", "DELETE"]),
        Route("/_emulator/rate_limits", rate_limits, methods=["GET", "PUT"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
    ]


def build_app(core: EmulatorCore) -> ApiGate:
    """The ASGI application of one emulator: the gate in front of the API and control routes."""
    batch_routes = _file_and_batch_routes(core.batches, lambda: core.config.poll_after_ms)
    routes = [*_api_routes(core), *batch_routes, *control_routes(core)]

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
