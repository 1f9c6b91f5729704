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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from features.encoding import LeadEncoder
from features.factors import FACTOR_LABELS, FACTORS
from features.schema import LeadSchema, is_missing
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


FeatureRow = tuple[str, str, str, str, int]  # name, label, reason, reason when missing, factor (FACTORS index)


def feature_rows(schema: LeadSchema) -> list[FeatureRow]:
    """What a feature's lowering-factor row needs besides the lead, looked up once per scorer, not per lead."""
    return [
        (
            spec.name,
            spec.label,
            spec.reason_text(missing=False),
            spec.reason_text(missing=True),
            FACTORS.index(spec.factor),
        )
        for spec in schema.features
    ]


def what_if_candidates(schema: LeadSchema, encoder: LeadEncoder) -> list[WhatIfChange]:
    """Every actionable (feature, value) pair from the schema, encoded once."""
    out: list[WhatIfChange] = []
    for j, spec in enumerate(schema.features):
        for value in spec.actionable:
            code = float(encoder.transform_records([{spec.name: value}])[0, j])
            if not math.isnan(code):
                out.append(WhatIfChange(column=j, name=spec.name, label=spec.label, value=value, code=code))
    return out


def factors_list(impacts: Sequence[float]) -> list[FactorImpact]:
    """Every factor with its impact, in the vocabulary's order."""
    return [
        {"key": key, "label": label, "impact": impact}
        for (key, label), impact in zip(_KEYS_LABELS, impacts, strict=True)
    ]


_KEYS_LABELS = [(key, FACTOR_LABELS[key]) for key in FACTORS]


def lowering_factors(
    *,
    impacts: Sequence[float],
    probability: float,
    neutral: Sequence[float],
    factor_order: Sequence[int],
    contributions: Sequence[float],
    feature_order: Sequence[int],
    record: Mapping[str, Any],
    unseen: Mapping[str, str],
    features: Sequence[FeatureRow],
) -> list[LoweringFactor]:
    """The factors with negative impact, largest first, each with the features and reasons behind it.

    One lead's numbers as plain lists (the scorer computes them for a whole batch at once): `neutral[k]`
    is the probability with factor k neutral (p(raw - impact)), `factor_order` the factors by impact and
    `feature_order` the features by contribution (both stable sorts; `contributions` is read at feature
    indices only), `features[j]` feature j's words and factor (`feature_rows`)."""
    lowering = [k for k in factor_order if impacts[k] < -_EPS]
    if not lowering:
        return []
    out: list[LoweringFactor] = []
    rows_of: dict[int, list[FeatureReason]] = {}
    for k in lowering:
        key, label = _KEYS_LABELS[k]
        rows_of[k] = []
        out.append(
            {
                "key": key,
                "label": label,
                "impact": impacts[k],
                "cost_points": 100.0 * (neutral[k] - probability),
                "features": rows_of[k],
            }
        )
    for j in feature_order:  # most negative first, so each factor's features come in that order too
        impact = contributions[j]
        if not impact < -_EPS:
            break
        name, label, reason_present, reason_missing, factor = features[j]
        shown = rows_of.get(factor)
        if shown is not None:
            value = record.get(name)
            missing = name in unseen or is_missing(value)  # the model read an unseen value as missing
            shown.append(
                {
                    "name": name,
                    "label": label,
                    "value": value if value is None or type(value) in _AS_IS else json_value(value),
                    "impact": impact,
                    "reason": reason_missing if missing else reason_present,
                }
            )
    return out


def what_if(
    *,
    probability: float,
    candidates: Sequence[WhatIfChange],
    record: Mapping[str, Any],
    rescored: Sequence[float],
    same: Sequence[bool],
    limit: int = MAX_WHAT_IF,
) -> list[WhatIf]:
    """The single changes that raise the probability most: `rescored[c]` is candidate c's probability,
    `same[c]` true when the lead already has that value."""
    found = [c for c, p in enumerate(rescored) if not same[c] and p > probability + _EPS]
    if not found:
        return []
    found.sort(key=lambda c: -rescored[c])
    return [
        {
            "feature": candidates[c].name,
            "label": candidates[c].label,
            "from": json_value(record.get(candidates[c].name)),
            "to": json_value(candidates[c].value),
            "probability": rescored[c],
            "gain_points": 100.0 * (rescored[c] - probability),
        }
        for c in found[:limit]
    ]


def what_if_rows(X: np.ndarray, columns: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """All single-change variants of every lead, lead-major: row i * len(columns) + c has column
    `columns[c]` set to `codes[c]` (the encoder's matrix, or the logistic model's terms)."""
    n_cand = len(columns)
    rows = np.repeat(X, n_cand, axis=0)
    rows.reshape(len(X), n_cand, X.shape[1])[:, np.arange(n_cand), columns] = codes
    return rows


_AS_IS = frozenset({bool, str, int})


def json_value(value: Any) -> Any:
    """A lead's field value as JSON can carry it (numpy scalars, NaN and timestamps included)."""
    if value is None or type(value) in _AS_IS:  # what a JSON request holds, answered first
        return value
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
