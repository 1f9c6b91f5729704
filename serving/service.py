"""What the routes do, as plain keyword-only functions: testable without HTTP, one place each."""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from fastapi import HTTPException
from pydantic import SecretStr, ValidationError
from starlette.concurrency import run_in_threadpool

from features.factors import FACTOR_LABELS
from features.periods import outcome_label
from serving.errors import input_error
from serving.schemas import RequestModels
from serving.scorer import Scorer


def parse_lead(*, models: RequestModels, body: bytes) -> dict[str, Any]:
    try:
        return models.parse_lead(body)
    except ValidationError as exc:
        raise input_error(exc) from None


def parse_batch(*, models: RequestModels, body: bytes) -> list[dict[str, Any]]:
    try:
        return models.parse_batch(body)
    except ValidationError as exc:
        raise input_error(exc, max_batch=models.max_batch) from None


INLINE_MAX = 1


async def score_leads(*, scorer: Scorer, leads: list[dict[str, Any]], what_if: int,
                      timeout_s: float) -> list[dict[str, Any]]:
    """Score one lead right here (about a millisecond: a thread hand-off would cost more than it
    saves), batches in a worker thread bounded by the timeout (the TreeSHAP kernel releases the GIL)."""
    if len(leads) <= INLINE_MAX:
        return scorer.score(leads, what_if=what_if)
    try:
        return await asyncio.wait_for(run_in_threadpool(scorer.score, leads, what_if=what_if), timeout_s)
    except TimeoutError:
        raise HTTPException(503, f"scoring took longer than {timeout_s:g} s; send fewer leads per request") \
            from None


def describe_model(*, scorer: Scorer) -> dict[str, Any]:
    """What a CRM integrator needs to know about the model being served."""
    bundle, schema = scorer.bundle, scorer.schema
    meta = bundle.metadata
    return {
        **scorer.model_info,
        "trained_at": meta.get("trained_at"),
        "run_id": meta.get("run_id"),
        "data_window": meta.get("data_window"),
        "label": outcome_label(schema.outcome_window_days),
        "outcome_window_days": schema.outcome_window_days,
        "family": bundle.family,
        "test_quarter": meta.get("test_quarter"),
        "test_metrics": meta.get("metrics", {}),
        "grades": dict(schema.grades),
        "baseline_probability": scorer.baseline_probability,
        "factors": dict(FACTOR_LABELS),
        "id_field": schema.id_column,
        "fields": [spec.to_dict() for spec in schema.features],
        "context_fields": list(schema.context),
        "explainer": scorer.engine,
    }


def check_admin(*, configured: SecretStr | None, authorization: str | None) -> None:
    """404 while no token is configured; 401 unless the bearer token matches (constant-time compare)."""
    check_token(configured=configured, authorization=authorization, kind="admin", variable="LEADSCORE_ADMIN_TOKEN")


def check_token(*, configured: SecretStr | None, authorization: str | None, kind: str, variable: str) -> None:
    """404 while `variable` is unset (the endpoints are disabled); 401 unless the bearer token matches."""
    if configured is None or not configured.get_secret_value():
        raise HTTPException(404, f"{kind} endpoints are disabled: set {variable} to enable them")
    scheme, _, supplied = (authorization or "").partition(" ")
    expected = configured.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.strip().encode(), expected):
        raise HTTPException(401, f"missing or wrong {kind} token (send Authorization: Bearer <token>)",
                            headers={"WWW-Authenticate": "Bearer"})
