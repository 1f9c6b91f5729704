"""POST /v1/score and POST /v1/score/batch: calibrated probability, grade and explanation per lead.

`serving.api.hot.ScoringRoutes` answers these two paths before FastAPI's routing, with the same
`serving.api.hot.answer` these routes call: here they document the API (request and response
schemas, error bodies) and serve an app that mounts this router without that shortcut.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from serving.api import hot
from serving.api.schemas import ErrorBody
from serving.model.response import BatchResponse, ScoreResponse

router = APIRouter(prefix="/v1", tags=["scoring"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 413, 415, 422, 503)}


@router.post("/score", response_model=ScoreResponse, responses=_ERRORS, summary="Score and explain one lead")
async def score_one(request: Request) -> Response:
    """One lead (fields from the lead schema, all optional) to its probability, grade and reasons."""
    return _response(await hot.answer(request.app, request.scope, request.receive, batch=False))


@router.post(
    "/score/batch", response_model=BatchResponse, responses=_ERRORS, summary="Score and explain up to max_batch leads"
)
async def score_batch(request: Request) -> Response:
    """`{"leads": [...]}` to `{"results": [...]}` in the same order; over the limit is a 413."""
    return _response(await hot.answer(request.app, request.scope, request.receive, batch=True))


def _response(answer: hot.Answer) -> Response:
    status, body, _ = answer
    return Response(body, status_code=status, media_type="application/json")
