"""Calendar quarters and outcome maturity: the two time ideas reports, drift and notebooks share.

A lead's outcome is *mature* at a date when it is final: the lead converted by then, or it was created
more than the schema's outcome window before it. Comparing expected with actual conversions only
makes sense on mature leads; the newest quarter is usually not mature yet.

    >>> quarter_of(pd.Series(pd.to_datetime(["2026-08-15"]))).tolist()
    ['2026Q3']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.errors import DataError
from features.schema import LeadSchema

# outcome_label is defined beside the window it reads (so the server needs no pandas) and re-exported here
from features.schema import outcome_label as outcome_label
from features.target import matches

SECONDS_PER_DAY = 86_400.0


def quarter_periods(when: pd.Series) -> pd.Series:
    """Each date's calendar quarter as a pandas Period (comparable, with start and end times)."""
    return pd.to_datetime(when, errors="coerce").dt.to_period("Q")


def quarter_label(period: pd.Period) -> str:
    """The one spelling of a quarter: '2026Q3'."""
    return f"{period.year}Q{period.quarter}"


def quarter_of(when: pd.Series) -> pd.Series:
    """Calendar quarter labels such as '2026Q3' (missing dates stay missing)."""
    when = pd.to_datetime(when, errors="coerce")
    labels = when.dt.to_period("Q").astype("string")
    return labels.where(when.notna(), pd.NA)


def days_before(created: pd.Series | pd.Timestamp, when: pd.Series) -> np.ndarray:
    """How many days each date lies before the lead's creation (a datetime feature as the model sees it);
    NaN where either is missing."""
    days = (created - when).dt.total_seconds() / SECONDS_PER_DAY
    return days.to_numpy(dtype=np.float64, na_value=np.nan)


def days_before_one(created: Any, when: Any) -> float:
    """`days_before` for one record (the real-time path); unreadable dates are NaN."""
    try:
        return (pd.Timestamp(created) - pd.Timestamp(when)).total_seconds() / SECONDS_PER_DAY
    except (TypeError, ValueError):
        return np.nan


def parse_quarter(text: str) -> pd.Period:
    """'2026Q3' (or '2026q3', '2026-Q3') as a Period; anything else is one readable error."""
    cleaned = str(text).strip().upper().replace("-", "")
    try:
        period = pd.Period(cleaned, freq="Q")
    except (ValueError, TypeError):
        raise DataError(f"quarter {text!r} is not a quarter like 2026Q3", field="quarter") from None
    if quarter_label(period) != cleaned:
        raise DataError(f"quarter {text!r} is not a quarter like 2026Q3", field="quarter")
    return period


def created_at(frame: pd.DataFrame, schema: LeadSchema) -> pd.Series:
    """The creation time column, or one clear error when the schema or the data has none."""
    column = schema.created_at
    if not column or column not in frame.columns:
        raise DataError(
            "this needs lead creation times: name the created_at column in the schema's roles", field="roles.created_at"
        )
    return pd.to_datetime(frame[column], errors="coerce")


def quarters(frame: pd.DataFrame, schema: LeadSchema) -> pd.Series:
    """Each lead's creation quarter, aligned with the frame."""
    return quarter_of(created_at(frame, schema))


def latest_quarter(frame: pd.DataFrame, schema: LeadSchema) -> str:
    """The quarter of the newest lead: what 'the latest quarter' means in drift and reports."""
    labels = quarters(frame, schema).dropna()
    if labels.empty:
        raise DataError("no lead has a readable creation time", field=schema.created_at)
    return str(labels.max())


def data_end(frame: pd.DataFrame, schema: LeadSchema) -> pd.Timestamp:
    """The newest creation time: the default 'as of' date of an export."""
    return created_at(frame, schema).max()


def outcome_final(frame: pd.DataFrame, schema: LeadSchema, as_of: pd.Timestamp | None = None) -> pd.Series:
    """True where the outcome window has closed at `as_of`, converted or not.

    Expected against actual conversions is only fair on these leads: among younger ones only the
    converters are known, which would make actuals look better than they are.
    """
    as_of = data_end(frame, schema) if as_of is None else pd.Timestamp(as_of)
    created = created_at(frame, schema)
    return (created <= as_of - pd.Timedelta(days=schema.outcome_window_days)).fillna(False).astype(bool)


def mature_mask(frame: pd.DataFrame, schema: LeadSchema, as_of: pd.Timestamp | None = None) -> pd.Series:
    """True where the lead's outcome is final at `as_of`: converted by then, or older than the window."""
    as_of = data_end(frame, schema) if as_of is None else pd.Timestamp(as_of)
    created = created_at(frame, schema)
    old_enough = created <= as_of - pd.Timedelta(days=schema.outcome_window_days)
    if schema.converted_at and schema.converted_at in frame.columns:
        converted = pd.to_datetime(frame[schema.converted_at], errors="coerce") <= as_of
    else:
        converted = pd.Series(matches(frame[schema.target_column], schema.positive_values), index=frame.index)
    return (old_enough | converted.fillna(False)).astype(bool) & (created <= as_of)
