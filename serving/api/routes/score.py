"""POST /v1/score and POST /v1/score/batch: calibrated probability, grade and explanation per lead."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from serving.api import service
from serving.api.deps import MetricsDep, ScorerDep, SettingsDep, models_for
from serving.api.schemas import ErrorBody
from serving.model.response import BatchResponse, ScoreResponse, batch_to_json, to_json

router = APIRouter(prefix="/v1", tags=["scoring"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 413, 415, 422, 503)}


# response_model documents the answer; the route returns its bytes itself (a Response skips FastAPI's
# re-validation of what the scorer built to the same definition).
@router.post("/score", response_model=ScoreResponse, responses=_ERRORS, summary="Score and explain one lead")
async def score_one(request: Request, scorer: ScorerDep, settings: SettingsDep, metrics: MetricsDep) -> Response:
    """One lead (fields from the lead schema, all optional) to its probability, grade and reasons."""
    service.require_json(request.headers.get("content-type"))
    parsed = await service.parse_lead(
        models=models_for(scorer, settings), body=await request.body(), strict_fields=settings.strict_fields
    )
    results = await service.score_leads(
        scorer=scorer, leads=parsed.leads, what_if=settings.what_if, timeout_s=settings.scoring_timeout_s
    )
    [result] = service.with_warnings(results, parsed)
    metrics.scored([result["grade"]])
    request.app.state.loop.record(parsed.leads, [result])
    return Response(to_json(result), media_type="application/json")


@router.post(
    "/score/batch", response_model=BatchResponse, responses=_ERRORS, summary="Score and explain up to max_batch leads"
)
async def score_batch(request: Request, scorer: ScorerDep, settings: SettingsDep, metrics: MetricsDep) -> Response:
    """`{"leads": [...]}` to `{"results": [...]}` in the same order; over the limit is a 413."""
    service.require_json(request.headers.get("content-type"))
    parsed = await service.parse_batch(
        models=models_for(scorer, settings), body=await request.body(), strict_fields=settings.strict_fields
    )
    results = await service.score_leads(
        scorer=scorer, leads=parsed.leads, what_if=settings.what_if, timeout_s=settings.scoring_timeout_s
    )
    results = service.with_warnings(results, parsed)
    metrics.scored([r["grade"] for r in results])
    request.app.state.loop.record(parsed.leads, results)
    return Response(batch_to_json(results), media_type="application/json")
