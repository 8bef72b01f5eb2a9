"""The ``/_emulator`` control surface: inspection and configuration over HTTP (loopback only, no auth).

========  ==========================  ==========================================================
GET       /_emulator/info             ``{"api_key", "default_assistant_id"}``
GET       /_emulator/runs             every run record (``?active=true``: active runs only)
GET       /_emulator/runs/{run_id}    one run record
GET       /_emulator/responses        every response record
GET       /_emulator/responses/{id}   one response record
POST      /_emulator/response_scripts ``{"script": ResponseScript, "model", "metadata", "input_contains"}``
GET       /_emulator/requests         every request record
GET       /_emulator/counters         the counters
POST      /_emulator/scripts          ``{"script": RunScript, "assistant_id", "metadata",
                                      "last_user_message_contains"}``
POST      /_emulator/faults           a FaultRule
DELETE    /_emulator/faults           disarm every fault
GET       /_emulator/rate_limits      ``{"rpm", "tpm", "burst_seconds"}`` (null: not enforced)
PUT       /_emulator/rate_limits      set them (the buckets start full)
POST      /_emulator/reset            forget all state but the default assistant
========  ==========================  ==========================================================

Batches and files have their own control routes (``/_emulator/batches``, ``/_emulator/files``,
``/_emulator/batch_scripts``), listed in :mod:`._batch_routes`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._core import EmulatorCore
from ._faults import FaultRule
from ._ratelimit import RateLimits
from ._response_scripts import ResponseScript, ResponseScriptRule, response_matcher
from ._scripts import RunScript, ScriptRule, simple_matcher


def control_routes(core: EmulatorCore) -> list[Route]:
    """The control surface's routes for one emulator."""

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
