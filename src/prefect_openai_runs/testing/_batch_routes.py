"""HTTP routing of ``/v1/files`` and ``/v1/batches``, and the batch part of the control surface.

========  ================================  ====================================================
GET       /_emulator/batches                every batch record
GET       /_emulator/batches/{batch_id}     one batch record
GET       /_emulator/files                  every file record (without content)
POST      /_emulator/batch_scripts          ``{"script": BatchScript.to_dict(), "metadata": {...}}``
========  ================================  ====================================================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._batch_api import BatchesApi
from ._batch_records import BatchRecord, FileRecord
from ._batch_scripts import BatchScript, BatchScriptRule
from ._multipart import parse_form


def batch_routes(api: BatchesApi, read_json: Callable[[Request], Awaitable[Any]]) -> list[Route]:
    """The ``/v1`` routes of files and batches, and their control routes (``read_json``: the app's body
    reader, answering the API's 400 for bad JSON)."""

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
        return JSONResponse(api.create_batch(await read_json(request)))

    async def batch(request: Request) -> Response:
        return JSONResponse(api.get_batch(request.path_params["batch_id"]))

    async def cancel(request: Request) -> Response:
        return JSONResponse(api.cancel_batch(request.path_params["batch_id"]))

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
        Route("/v1/files", files, methods=["GET", "POST"]),
        Route("/v1/files/{file_id}", file, methods=["GET", "DELETE"]),
        Route("/v1/files/{file_id}/content", content, methods=["GET"]),
        Route("/v1/batches", batches, methods=["GET", "POST"]),
        Route("/v1/batches/{batch_id}", batch, methods=["GET"]),
        Route("/v1/batches/{batch_id}/cancel", cancel, methods=["POST"]),
        Route("/_emulator/batches", batch_records, methods=["GET"]),
        Route("/_emulator/batches/{batch_id}", batch_record, methods=["GET"]),
        Route("/_emulator/files", file_records, methods=["GET"]),
        Route("/_emulator/batch_scripts", scripts, methods=["POST"]),
    ]
