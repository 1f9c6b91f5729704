"""What a valid feature value is, defined once for every front door: the API, `leadscore score` and the
analyst API (`serving.reports.analyst.explain`). The same lead is refused by all of them, with the same words.

A value fits its feature when it has the feature's type (a JSON `true` is not a company size), is a
finite number where a number is due, and lies within the schema's `min`/`max`. Category values
outside the schema's list are not refused: the model scores them as missing and says so in warnings.

    >>> value_problem(spec_of_company_size, -5)                        # doctest: +SKIP
    '-5 is below the minimum 0'
    >>> check_frame(leads, schema, source="leads.csv")                 # doctest: +SKIP
    DataError: leads.csv: company_size: -5 is below the minimum 0 (data row 2; 1 value like it); ...
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from features.errors import DataError
from features.schema import FeatureSpec, LeadSchema

if TYPE_CHECKING:
    import pandas as pd  # the frame checks' only; the API's per-value checks (and so the server) never load it

TYPE_WORDS = {
    "numeric": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "datetime": "a date",
    "categorical": "text",
}
NUMBER_TYPES = ("numeric", "integer")


def type_problem(spec: FeatureSpec) -> str:
    return f"expected {TYPE_WORDS[spec.type]}"


def value_problem(spec: FeatureSpec, value: Any) -> str | None:
    """Why a typed number does not fit its feature (not finite, below the minimum, above the maximum), or None."""
    if spec.type not in NUMBER_TYPES or value is None or isinstance(value, bool):
        return None
    number = float(value)
    if not math.isfinite(number):
        return f"{_number(number)} is not a finite number"
    if spec.min is not None and number < spec.min:
        return f"{_number(number)} is below the minimum {_number(spec.min)}"
    if spec.max is not None and number > spec.max:
        return f"{_number(number)} is above the maximum {_number(spec.max)}"
    return None


def bad_values(values: pd.Series, spec: FeatureSpec) -> pd.Series:
    """Mask of cells that do not fit their feature: the wrong type (including booleans in a number
    column), not finite, or out of the schema's range. Missing cells fit (missing data is scored)."""
    import pandas as pd

    from features.loading import coerce_feature

    if spec.type == "categorical":
        return pd.Series(False, index=values.index)
    if spec.type in NUMBER_TYPES and (values.dtype == bool or str(values.dtype) == "boolean"):
        return values.notna()
    if spec.type in NUMBER_TYPES and values.dtype == object:
        is_bool = values.map(lambda v: isinstance(v, bool | np.bool_)).astype(bool)
        if is_bool.any():
            return is_bool | bad_values(values.where(~is_bool), spec)
    cast, bad = coerce_feature(values, spec)
    if spec.type in NUMBER_TYPES:
        numbers = cast.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        out = ~np.isfinite(numbers) & ~np.isnan(numbers)
        if spec.min is not None:
            out |= numbers < spec.min
        if spec.max is not None:
            out |= numbers > spec.max
        bad = bad | pd.Series(out, index=values.index)
    return bad.fillna(False).astype(bool)


def check_frame(frame: pd.DataFrame, schema: LeadSchema, *, source: str = "data", rows_before: int = 0) -> None:
    """Refuse the first feature column with a value that does not fit: scored as missing or as an
    impossible number, it would skew the score without anyone noticing."""
    for spec in schema.features:
        if spec.name not in frame.columns:
            continue
        bad = bad_values(frame[spec.name], spec)
        if not bad.any():
            continue
        first = int(bad.to_numpy(dtype=bool).argmax())
        value = frame[spec.name].iloc[first]
        problem = cell_problem(spec, value)
        if problem == type_problem(spec):
            problem += f", got {value!r}"
        count = int(bad.sum())
        raise DataError(
            f"{source}: {spec.name}: {problem} (data row {rows_before + first + 1}; "
            f"{count:,} value{'s' if count != 1 else ''} like it); fix them or leave those cells empty",
            field=spec.name,
        )


def cell_problem(spec: FeatureSpec, value: Any) -> str:
    """Why a value that failed its feature's check does not fit: a number out of range or not finite
    is named as such (also for an integer feature given 1e308), anything else is of the wrong type."""
    if spec.type in NUMBER_TYPES and not isinstance(value, bool | np.bool_):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if number is not None and (spec.type == "numeric" or not math.isfinite(number) or number == int(number)):
            found = value_problem(spec, number)
            if found:
                return found
    return type_problem(spec)


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return f"{value:g}" if value != int(value) or abs(value) >= 1e15 else str(int(value))
