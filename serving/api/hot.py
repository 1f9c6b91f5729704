"""POST /v1/score and /v1/score/batch answered as plain ASGI, before FastAPI's stack.

A scored lead is the request this service exists for; FastAPI's layers (Starlette's error and
exception middlewares, routing, dependency solving, a Request object, a Response object) cost more
CPU per request than parsing and validating the lead does (measured in the note of branch s5-9h).
`ScoringRoutes`, the app's outermost middleware of its own, answers these two paths and passes
everything else on; FastAPI still documents them (the routes in serving.api.routes.score call
`answer` too).

What a client sees does not change: the same body limits (serving.api.middleware), the same checks
in the same order (413 by Content-Length, 503 without a model, 415, 413/408 while reading, 400/422 by
field), the same JSON bodies for every error (serving.api.errors), the same metrics per route.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import MutableMapping
from typing import Any

from fastapi import HTTPException

from serving.api import errors, fast_json, lead_input, service
from serving.api.heap import collector_off
from serving.api.lead_input import ParsedLeads
from serving.api.middleware import BodyLimit, BodyRefused
from serving.api.schemas import RequestModels, request_models
from serving.model.response import ScoreResponse
from serving.model.scorer import Scorer

_logger = logging.getLogger(__name__)
PATHS = {"/v1/score": False, "/v1/score/batch": True}  # path -> is a batch
NO_MODEL = "no model loaded yet; see GET /readyz"
Scope = MutableMapping[str, Any]
Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]


class ScoringRoutes:
    """ASGI middleware: POST /v1/score and /v1/score/batch answered here, everything else passed on."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in PATHS:
            await serve(scope["app"], scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def serve(app: Any, scope: Scope, receive: Any, send: Any) -> None:
    """Answer one scoring request; counted and timed in /metrics under its route like any other."""
    start = time.perf_counter()
    status = 500
    try:
        answer = await answer_request(app, scope, receive)
        if answer is not None:  # None: the client went away before its body arrived
            status, body, headers = answer
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
    finally:
        seconds = time.perf_counter() - start
        app.state.metrics.observe(route=scope["path"], method="POST", status=status, seconds=seconds)


async def answer_request(app: Any, scope: Scope, receive: Any) -> Answer | None:
    """The status, body and headers for a scoring request; every failure as its JSON error."""
    try:
        return await answer(app, scope, receive, batch=PATHS[scope["path"]])
    except _Gone:
        return None
    except BodyRefused as exc:
        return exc.status, exc.body, exc.headers
    except Exception as exc:  # noqa: BLE001 - each exception has its answer in serving.api.errors
        if errors.status_of(exc) == 500:
            _logger.exception("unexpected error on POST %s", scope["path"])
        return errors.json_answer(exc)


async def answer(app: Any, scope: Scope, receive: Any, *, batch: bool) -> Answer:
    """Score the request's lead(s): the work of both routes, in the order their checks always ran."""
    settings, state = app.state.settings, app.state.model
    limit = BodyLimit(settings.max_body_bytes, settings.body_timeout_s)
    content_type, length = _headers(scope)
    limit.check_length(length)
    scorer = state.scorer  # taken once: a reload meanwhile does not affect this request
    if scorer is None:
        raise HTTPException(503, NO_MODEL)
    service.require_json(content_type)
    body = await _read_body(limit, receive)
    models = request_models(scorer, scorer.schema, settings.max_batch)
    if batch:
        content = await service.in_worker(_batch, app, scorer, models, body, timeout_s=settings.scoring_timeout_s)
    else:  # about a millisecond: a thread hand-off would cost more than it saves
        parsed = await service.parse_lead(models=models, body=body, strict_fields=settings.strict_fields)
        content = _written(app, parsed, scorer.score(parsed.leads, what_if=settings.what_if), batch=False)
    return 200, content, [(b"content-length", str(len(content)).encode()), (b"content-type", b"application/json")]


def _batch(app: Any, scorer: Scorer, models: RequestModels, body: bytes, cancel: threading.Event) -> bytes:
    """A batch from its body to its answer's bytes, in one worker thread: the answers are written to
    JSON (and dropped) by the thread that built them, while they are in its core's cache (in the event
    loop's thread, writing and freeing them cost ~1.5 times as much)."""
    settings = app.state.settings
    with collector_off():
        parsed = lead_input.parse_batch(models, body, strict_fields=settings.strict_fields)
        results = service.score_in_chunks(scorer, parsed.leads, settings.what_if, cancel)
        if cancel.is_set():  # answered 503 meanwhile: nothing counted, flagged or logged
            raise service.Cancelled
        return _written(app, parsed, results, batch=True)


def _written(app: Any, parsed: ParsedLeads, results: list[ScoreResponse], *, batch: bool) -> bytes:
    """The answer's bytes: the ignored fields' warnings, the grades counted, the exploration flags set,
    the JSON written and handed to the prediction log."""
    results = service.with_warnings(results, parsed)
    app.state.metrics.scored([r["grade"] for r in results])
    loop = app.state.loop
    loop.flag(results)
    content = fast_json.dump_batch(results) if batch else fast_json.dump_result(results[0])
    loop.record(parsed.leads, results, content, batch=batch)
    return content


def _headers(scope: Scope) -> tuple[str | None, bytes | None]:
    content_type = length = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"content-length":
            length = value
    return content_type, length


async def _read_body(limit: BodyLimit, receive: Any) -> bytes:
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(limit.remaining()):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    raise _Gone
                chunks.append(limit.counted(message.get("body", b"")))
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except TimeoutError:
        raise limit.too_slow() from None


class _Gone(Exception):
    """The client disconnected before its request body arrived: nobody to answer."""
