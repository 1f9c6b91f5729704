"""From per-feature SHAP values to the words sales and marketing share: factor impacts, what lowers a
lead and which single change would help most. Pure functions over numpy arrays and the schema.

Definitions (log-odds are the model's raw score units):
- A factor's impact is the sum of its features' SHAP values, so baseline + sum of impacts = raw score.
- A lowering factor has a negative impact. Its `cost_points` is how many percentage points of
  calibrated probability it costs this lead: 100 * (p(raw - impact) - p(raw)), i.e. how much higher
  the probability would be if that factor were neutral (at the average lead's level) and all else
  stayed as it is.
- A what-if is one actionable feature set to one of its schema candidates, re-scored by the model.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from features.encoding import LeadEncoder
from features.factors import FACTOR_LABELS, FACTORS
from features.schema import LeadSchema
from serving.model.response import FactorImpact, FeatureReason, LoweringFactor, WhatIf

MAX_WHAT_IF = 3
_EPS = 1e-12


@dataclass(frozen=True)
class WhatIfChange:
    """One single change a person can make: feature column `column` set to `value` (encoded `code`)."""

    column: int
    name: str
    label: str
    value: Any
    code: float


def what_if_candidates(schema: LeadSchema, encoder: LeadEncoder) -> list[WhatIfChange]:
    """Every actionable (feature, value) pair from the schema, encoded once."""
    out: list[WhatIfChange] = []
    for j, spec in enumerate(schema.features):
        for value in spec.actionable:
            code = float(encoder.transform_records([{spec.name: value}])[0, j])
            if not math.isnan(code):
                out.append(WhatIfChange(column=j, name=spec.name, label=spec.label, value=value, code=code))
    return out


def factors_list(impacts: np.ndarray) -> list[FactorImpact]:
    """Every factor with its impact, in the vocabulary's order."""
    return [{"key": key, "label": FACTOR_LABELS[key], "impact": float(impacts[k])} for k, key in enumerate(FACTORS)]


def lowering_factors(
    *,
    impacts: np.ndarray,
    contributions: np.ndarray,
    raw: float,
    record: Mapping[str, Any],
    unseen: Mapping[str, str],
    schema: LeadSchema,
    calibrate: Callable[[np.ndarray], np.ndarray],
) -> list[LoweringFactor]:
    """The factors with negative impact, largest first, each with the features and reasons behind it."""
    order = [k for k in np.argsort(impacts, kind="stable") if impacts[k] < -_EPS]
    if not order:
        return []
    shifted = calibrate(np.array([raw] + [raw - impacts[k] for k in order]))
    out: list[LoweringFactor] = []
    for i, k in enumerate(order):
        key = FACTORS[k]
        out.append(
            {
                "key": key,
                "label": FACTOR_LABELS[key],
                "impact": float(impacts[k]),
                "cost_points": float(100.0 * (shifted[i + 1] - shifted[0])),
                "features": _lowering_features(key, contributions, record, unseen, schema),
            }
        )
    return out


def _lowering_features(
    factor: str, contributions: np.ndarray, record: Mapping[str, Any], unseen: Mapping[str, str], schema: LeadSchema
) -> list[FeatureReason]:
    rows: list[tuple[float, FeatureReason]] = []
    for j, spec in enumerate(schema.features):
        if spec.factor != factor or contributions[j] >= -_EPS:
            continue
        value = record.get(spec.name)
        shown_as = None if spec.name in unseen else value  # the model read an unseen value as missing
        rows.append(
            (
                contributions[j],
                {
                    "name": spec.name,
                    "label": spec.label,
                    "value": json_value(value),
                    "impact": float(contributions[j]),
                    "reason": spec.reason_for(shown_as),
                },
            )
        )
    rows.sort(key=lambda item: item[0])
    return [row for _, row in rows]


def what_if(
    *,
    x: np.ndarray,
    probability: float,
    candidates: Sequence[WhatIfChange],
    record: Mapping[str, Any],
    rescored: np.ndarray,
    limit: int = MAX_WHAT_IF,
) -> list[WhatIf]:
    """The single changes that raise the probability most; `rescored[c]` is candidate c's probability."""
    found: list[tuple[float, WhatIf]] = []
    for c, cand in enumerate(candidates):
        if x[cand.column] == cand.code or rescored[c] <= probability + _EPS:
            continue
        found.append(
            (
                rescored[c],
                {
                    "feature": cand.name,
                    "label": cand.label,
                    "from": json_value(record.get(cand.name)),
                    "to": json_value(cand.value),
                    "probability": float(rescored[c]),
                    "gain_points": float(100.0 * (rescored[c] - probability)),
                },
            )
        )
    found.sort(key=lambda item: -item[0])
    return [row for _, row in found[:limit]]


def what_if_rows(X: np.ndarray, candidates: Sequence[WhatIfChange]) -> np.ndarray:
    """All single-change variants of every lead, lead-major: row i * len(candidates) + c."""
    rows = np.repeat(X, len(candidates), axis=0)
    for c, cand in enumerate(candidates):
        rows[c :: len(candidates), cand.column] = cand.code
    return rows


def json_value(value: Any) -> Any:
    """A lead's field value as JSON can carry it (numpy scalars, NaN and timestamps included)."""
    if value is None:
        return None
    pd = sys.modules.get("pandas")  # a pandas value only exists once pandas is loaded: never import it here
    if pd is not None and (value is pd.NA or value is pd.NaT):
        return None
    if isinstance(value, bool | str | int):
        return value
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
