"""The score response, defined once: the scorer builds it, the API serialises and documents it.

TypedDicts rather than pydantic models: a lead's answer holds some twenty small objects, and building
them as typed dicts costs what plain dicts cost (a validated model would add tens of µs per lead on
the hot path). mypy checks the scorer fills every key; pydantic's TypeAdapter gives the JSON bytes
(pydantic-core, in Rust) and the OpenAPI schema from this same definition.

    >>> to_json(scorer.score([lead])[0])          # doctest: +SKIP
"""

from __future__ import annotations

from typing import (
    Annotated,
    Any,
    NotRequired,  # pydantic needs this one on Python < 3.12
)

from pydantic import Field, TypeAdapter
from typing_extensions import TypedDict


def lead_id_text(value: Any) -> str | None:
    """The lead's id as the answer echoes it: text (a CRM's numeric id too), or null when none was sent."""
    return None if value is None else str(value)


class Problem(TypedDict):
    field: str
    problem: str


class ModelRef(TypedDict):
    name: str
    version: str
    as_of: str | None
    family: Annotated[str, Field(description="lightgbm, logistic or blend (their log-odds blend)")]


class FeatureReason(TypedDict):
    name: str
    label: str
    value: Any
    impact: Annotated[float, Field(description="log-odds: the feature's exact Shapley value")]
    reason: str


class FactorImpact(TypedDict):
    key: str
    label: str
    impact: Annotated[float, Field(description="log-odds: the sum of the factor's features' Shapley values")]


class LoweringFactor(TypedDict):
    key: str
    label: str
    impact: Annotated[float, Field(description="log-odds: the sum of the factor's features' Shapley values")]
    cost_points: Annotated[
        float, Field(description="percentage points of probability this factor costs: 100 * (p(raw - impact) - p(raw))")
    ]
    features: list[FeatureReason]


WhatIf = TypedDict(
    "WhatIf",
    {  # "from" is a Python keyword, hence the functional form
        "feature": str,
        "label": str,
        "from": Any,
        "to": Any,
        "probability": Annotated[float, Field(description="calibrated probability after this one change, re-scored")],
        "gain_points": float,
    },
)


class LogOdds(TypedDict):
    baseline: float
    raw_score: Annotated[float, Field(description="baseline + sum of factor impacts")]


class ScoreResponse(TypedDict):
    lead_id: str | None
    probability: Annotated[float, Field(description="calibrated P(convert)")]
    score: Annotated[int, Field(ge=1, le=99, description="probability in percent, rounded, clipped to 1-99")]
    grade: Annotated[str, Field(description="A-D from the schema's grade floors")]
    model: ModelRef
    baseline_probability: float
    log_odds: LogOdds
    factors: list[FactorImpact]
    lowering_factors: list[LoweringFactor]
    what_if: list[WhatIf]
    warnings: list[Problem]
    explore: NotRequired[
        Annotated[
            bool,
            Field(
                description="only with LEADSCORE_EXPLORE_SHARE set: route this lead regardless of its score, "
                "so the next model also learns from such leads"
            ),
        ]
    ]


class BatchResponse(TypedDict):
    results: list[ScoreResponse]


_ONE: TypeAdapter[ScoreResponse] = TypeAdapter(ScoreResponse)
_BATCH: TypeAdapter[BatchResponse] = TypeAdapter(BatchResponse)


def to_json(result: ScoreResponse) -> bytes:
    """One lead's answer as JSON bytes, exactly the documented fields."""
    return _ONE.dump_json(result)


def batch_to_json(results: list[ScoreResponse]) -> bytes:
    return _BATCH.dump_json({"results": results})
