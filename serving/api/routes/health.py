"""GET /healthz (the process answers), /readyz (a model is loaded), /metrics (Prometheus)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from serving.api.deps import MetricsDep, StateDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, Any]:
    """Always 200 while the process serves HTTP."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: 503 until a model is loaded")
async def readyz(state: StateDep) -> JSONResponse:
    """Ready means a model is loaded and requests will be scored."""
    scorer = state.scorer
    if scorer is None:
        problem = state.error or "model still loading"
        return JSONResponse({"status": "not ready", "detail": problem}, status_code=503)
    return JSONResponse({"status": "ready", "model": scorer.model_info})


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(registry: MetricsDep) -> Response:
    """Requests and latency per route, scores per grade, and the model version being served."""
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)
