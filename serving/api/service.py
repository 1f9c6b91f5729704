"""What the routes do, as plain keyword-only functions: testable without HTTP, one place each."""

from __future__ import annotations

import asyncio
import hmac
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import HTTPException
from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool

from features.factors import FACTOR_LABELS
from features.schema import outcome_label
from serving.api import lead_input
from serving.api.lead_input import ParsedLeads
from serving.api.schemas import RequestModels
from serving.model.response import ScoreResponse, lead_id_text
from serving.model.scorer import Scorer

JSON_TYPES = ("application/json",)
INLINE_BODY_BYTES = 64 * 1024  # one lead's larger body is parsed in a worker thread
T = TypeVar("T")
# Leads scored between two looks at the cancel flag: ~0.15 s of CPU at ~140 µs per lead, and enough
# rows for the forest to split them over its threads (serving.model.forest: pieces of >= 256 rows).
SCORE_CHUNK = 1024


def require_json(content_type: str | None) -> None:
    """415 for a body declared as something other than JSON (a form post, text/plain); none declared is read as JSON."""
    if content_type is None:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media and media not in JSON_TYPES and not (media.startswith("application/") and media.endswith("+json")):
        raise HTTPException(415, f"the body must be JSON (content-type: application/json), not {media[:100]}")


async def parse_lead(*, models: RequestModels, body: bytes, strict_fields: bool = False) -> ParsedLeads:
    """One lead's body: parsed right here, or in a worker thread when large, so /healthz never waits on it."""
    if len(body) <= INLINE_BODY_BYTES:
        return lead_input.parse_lead(models, body, strict_fields=strict_fields)
    return await run_in_threadpool(lead_input.parse_lead, models, body, strict_fields=strict_fields)


async def in_worker(work: Callable[..., T], *args: Any, timeout_s: float) -> T:
    """`work(*args, cancel)` in a worker thread, bounded by the timeout (503). Scoring is chunked and
    looks at `cancel` between chunks: when the timeout answers, the thread stops at the next chunk
    instead of spending the rest of the batch's CPU on an answer nobody will read. The TreeSHAP
    kernels release the GIL; /healthz and one-lead requests are answered meanwhile."""
    cancel = threading.Event()
    try:
        return await asyncio.wait_for(run_in_threadpool(work, *args, cancel), timeout_s)
    except TimeoutError:
        cancel.set()
        raise HTTPException(503, f"scoring took longer than {timeout_s:g} s; send fewer leads per request") from None


class Cancelled(Exception):
    """The request that wanted these scores has already been answered."""


def score_in_chunks(
    scorer: Scorer, leads: list[dict[str, Any]], what_if: int, cancel: threading.Event, chunk: int = SCORE_CHUNK
) -> list[ScoreResponse]:
    """Every lead's answer, in order. Leads identical but for their id are explained once: a batch costs
    its distinct leads, so 10,000 copies of `{}` (40 KB) cost one explanation, not ten seconds."""
    distinct, which = distinct_leads(leads, scorer.schema.id_column)
    out: list[ScoreResponse] = []
    for start in range(0, len(distinct), chunk):
        if cancel.is_set():
            raise Cancelled
        out.extend(scorer.score(distinct[start : start + chunk], what_if=what_if))
    if len(distinct) == len(leads):
        return out
    id_column = scorer.schema.id_column
    # A shallow copy each: the route adds warnings and the log an explore flag per lead.
    return [{**out[j], "lead_id": lead_id_text(lead.get(id_column))} for lead, j in zip(leads, which, strict=True)]


def distinct_leads(leads: list[dict[str, Any]], id_column: str) -> tuple[list[dict[str, Any]], list[int]]:
    """The distinct leads (the first of each, ids aside) and, for every lead, which of them it equals.
    Values are compared with their types, so `1` and `true` are never taken for the same answer."""
    first: dict[Any, int] = {}
    distinct: list[dict[str, Any]] = []
    which: list[int] = []
    for lead in leads:
        fields = lead.copy()
        fields.pop(id_column, None)
        values = tuple(fields.values())
        key = (tuple(fields), values, tuple(map(type, values)))  # built by C loops: ~1 µs a lead, not ~8
        j = first.setdefault(key, len(distinct))
        if j == len(distinct):
            distinct.append(lead)
        which.append(j)
    return distinct, which


def with_warnings(results: list[ScoreResponse], parsed: ParsedLeads) -> list[ScoreResponse]:
    """Each result's warnings, after the fields its request sent that were ignored."""
    for result, ignored in zip(results, parsed.warnings, strict=True):
        if ignored:
            result["warnings"] = [*ignored, *result["warnings"]]
    return results


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
        raise HTTPException(
            401,
            f"missing or wrong {kind} token (send Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
