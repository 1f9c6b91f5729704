"""Every error as JSON naming the field and the problem; never a stack trace or a file path."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
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
    @app.exception_handler(LeadscoreError)
    @app.exception_handler(HTTPException)
    async def _known(_: Request, exc: Exception) -> Response:
        return _response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body") or "body", "problem": str(e["msg"])}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        _logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return _response(exc)


def content_of(exc: Exception) -> tuple[int, dict[str, Any], Mapping[str, str] | None]:
    """The status, JSON body and extra headers that answer `exc` (anything unexpected: a plain 500)."""
    if isinstance(exc, InputError):
        return exc.status, {"detail": exc.detail}, None
    if isinstance(exc, LeadscoreError):
        return 422, {"detail": [{"field": exc.field or "body", "problem": scrub_paths(str(exc))}]}, None
    if isinstance(exc, HTTPException):
        detail = scrub_paths(exc.detail) if isinstance(exc.detail, str) else exc.detail
        return exc.status_code, {"detail": detail}, exc.headers
    return 500, {"detail": "internal error; the server log has the details"}, None


def status_of(exc: Exception) -> int:
    return content_of(exc)[0]


def json_answer(exc: Exception) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """`exc`'s answer as ASGI parts: the very bytes and headers its JSONResponse would send."""
    response = _response(exc)
    return response.status_code, bytes(response.body), response.raw_headers


def _response(exc: Exception) -> JSONResponse:
    status, content, headers = content_of(exc)
    return JSONResponse(content, status_code=status, headers=headers)
