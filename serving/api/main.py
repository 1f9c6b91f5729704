"""The FastAPI app: built by `create_app`, nothing at import time.

    uvicorn --factory serving.api.main:create_app        # settings from LEADSCORE_* variables
    leadscore serve --model models/lead-conversion/3 # the same, loading the model before listening

/docs and /redoc are served with Swagger UI and ReDoc from the installed `fastapi-offline` package, not
from a CDN: scoring services often run on networks without internet access.

The model loads in the lifespan (in a worker thread, so /healthz answers and /readyz says 503 until
it is there) unless a ready Scorer is handed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline

from features.errors import LeadscoreError
from serving.api import errors
from serving.api.heap import settle_heap
from serving.api.hot import ScoringRoutes
from serving.api.metrics import Metrics
from serving.api.middleware import BodyLimitMiddleware, MetricsMiddleware
from serving.api.reload_signal import ReloadSignal
from serving.api.routes import admin, health, model, outcomes, score
from serving.api.schemas import request_models
from serving.api.settings import Settings
from serving.api.state import ModelState
from serving.model.scorer import Scorer
from serving.predlog.service import Loop

_logger = logging.getLogger(__name__)
TITLE = "Lead conversion predictor"
DOCS_ASSETS = "/docs-assets"  # Swagger UI and ReDoc's scripts, shipped inside the fastapi-offline wheel


def create_app(settings: Settings | None = None, *, scorer: Scorer | None = None) -> FastAPI:
    """An app serving `settings.model`, or the given scorer (reload still re-resolves settings.model)."""
    settings = settings or Settings()
    metrics = Metrics()
    app = FastAPIOffline(
        title=TITLE,
        version="1",
        lifespan=_lifespan,
        static_url=DOCS_ASSETS,
        swagger_ui_parameters={"defaultModelsExpandDepth": 2},
        description="Calibrated conversion probability per lead, with the quality factors that lower it.",
    )
    app.state.settings = settings
    app.state.metrics = metrics
    signal = ReloadSignal(settings.reload_signal) if settings.reload_signal else None
    app.state.model = ModelState(model=settings.model, metrics=metrics, scorer=scorer, signal=signal)
    app.state.loop = Loop.from_settings(settings, metrics.registry)
    for router in (score.router, model.router, health.router, admin.router, outcomes.router):
        app.include_router(router)
    errors.install(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(ScoringRoutes)  # added last, so first to see a request: see serving.api.hot
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ModelState = app.state.model
    tasks = [] if state.scorer is not None else [asyncio.create_task(_first_load(state))]
    if state.signal is not None:
        tasks.append(asyncio.create_task(state.follow()))
    app.state.loop.start()
    if state.scorer is not None:
        settle_heap()  # a model loaded here instead settles the heap when it is swapped in
    yield
    for task in tasks:
        if not task.done():
            task.cancel()
    await asyncio.to_thread(app.state.loop.stop)


async def _first_load(state: ModelState) -> None:
    with contextlib.suppress(LeadscoreError):  # kept in state.error and shown by /readyz
        await state.load(announce=False)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the request bodies built from the served model's lead schema."""
    scorer = app.state.model.scorer
    key = None if scorer is None else scorer.schema.fingerprint()
    if app.openapi_schema is not None and getattr(app.state, "openapi_key", None) == key:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    if scorer is not None:
        models = request_models(scorer, scorer.schema, app.state.settings.max_batch)
        doc.setdefault("components", {}).setdefault("schemas", {}).update(models.openapi_components())
        for path, ref in (("/v1/score", "Lead"), ("/v1/score/batch", "LeadBatch")):
            example = models.example if ref == "Lead" else {"leads": [models.example]}
            doc["paths"][path]["post"]["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}, "example": example}
                },
            }
    app.openapi_schema, app.state.openapi_key = doc, key
    return doc
