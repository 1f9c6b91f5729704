"""POST /v1/score and POST /v1/score/batch: calibrated probability, grade and explanation per lead."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic_core import to_json

from serving import service
from serving.deps import MetricsDep, ScorerDep, SettingsDep, models_for
from serving.schemas import BatchResponse, ErrorBody, ScoreResponse

router = APIRouter(prefix="/v1", tags=["scoring"])
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 413, 422, 503)}


@router.post("/score", response_model=None, responses={200: {"model": ScoreResponse}, **_ERRORS},
             summary="Score and explain one lead")
async def score_one(request: Request, scorer: ScorerDep, settings: SettingsDep, metrics: MetricsDep) -> Response:
    """One lead (fields from the lead schema, all optional) to its probability, grade and reasons."""
    lead = service.parse_lead(models=models_for(scorer, settings), body=await request.body())
    [result] = await service.score_leads(scorer=scorer, leads=[lead], what_if=settings.what_if,
                                         timeout_s=settings.scoring_timeout_s)
    metrics.scored([result["grade"]])
    return Response(to_json(result), media_type="application/json")


@router.post("/score/batch", response_model=None, responses={200: {"model": BatchResponse}, **_ERRORS},
             summary="Score and explain up to max_batch leads")
async def score_batch(request: Request, scorer: ScorerDep, settings: SettingsDep, metrics: MetricsDep) -> Response:
    """`{"leads": [...]}` to `{"results": [...]}` in the same order; over the limit is a 413."""
    leads = service.parse_batch(models=models_for(scorer, settings), body=await request.body())
    results = await service.score_leads(scorer=scorer, leads=leads, what_if=settings.what_if,
                                        timeout_s=settings.scoring_timeout_s)
    metrics.scored([r["grade"] for r in results])
    return Response(to_json({"results": results}), media_type="application/json")
