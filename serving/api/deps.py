"""Dependencies the routes declare: settings, the model state, the scorer (503 until loaded).

Tests swap any of them with `app.dependency_overrides`. They are `async def` on purpose: FastAPI runs
plain `def` dependencies in its thread pool, a thread hand-off per dependency per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from serving.api.metrics import Metrics
from serving.api.schemas import RequestModels, request_models
from serving.api.settings import Settings
from serving.api.state import ModelState
from serving.model.scorer import Scorer


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_state(request: Request) -> ModelState:
    return request.app.state.model


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_scorer(request: Request) -> Scorer:
    """The model for this request, taken once: a reload meanwhile does not affect it."""
    scorer = request.app.state.model.scorer
    if scorer is None:
        raise HTTPException(503, "no model loaded yet; see GET /readyz")
    return scorer


def models_for(scorer: Scorer, settings: Settings) -> RequestModels:
    return request_models(scorer, scorer.schema, settings.max_batch)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StateDep = Annotated[ModelState, Depends(get_state)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ScorerDep = Annotated[Scorer, Depends(get_scorer)]
