"""Every error as JSON naming the field and the problem; never a stack trace or a file path."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from features.errors import LeadscoreError
from serving.model.response import Problem

_logger = logging.getLogger(__name__)

# Absolute paths of two or more parts (not API routes like /v1/model) and file-like URIs
_PATH = re.compile(r"(?<![\w.:/-])/(?!v1/)(?:[\w.@+~-]+/)+([\w.@+~-]*)")
_FILE_URI = re.compile(r"\b(?:file|sqlite):/+[^\s'\"()]*")


def scrub_paths(text: str) -> str:
    """The message without the server's file-system layout: /srv/models/lead-conversion/3 -> '3'.

    Error texts are written for the operator's console, where full paths help; API responses get this.
    """
    text = _FILE_URI.sub("<local store>", text)
    return _PATH.sub(lambda m: repr(m.group(1)) if m.group(1) else "<path>", text)


class InputError(Exception):
    """Bad request input, already phrased per field."""

    def __init__(self, status: int, detail: list[Problem]) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def install(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def _input(_: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body") or "body", "problem": str(e["msg"])}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(LeadscoreError)
    async def _leadscore(_: Request, exc: LeadscoreError) -> JSONResponse:
        return JSONResponse(
            {"detail": [{"field": exc.field or "body", "problem": scrub_paths(str(exc))}]}, status_code=422
        )

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        detail = scrub_paths(exc.detail) if isinstance(exc.detail, str) else exc.detail
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        _logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the server log has the details"}, status_code=500)
