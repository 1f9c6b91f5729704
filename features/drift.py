"""Feature drift: has the kind of lead we receive changed since the model was trained?

The population stability index (PSI) compares each feature's distribution in a reference frame (the
training window) with a current frame (the latest quarter):

    PSI = sum over bins of (current share - reference share) * ln(current share / reference share)

Numbers are cut into quantile bins of the reference (10 by default) plus a bin for missing values;
categories and booleans use one bin per level, missing included. Shares are floored at a small
epsilon, so a level that is new (or gone) counts as a large but finite change. Rule of thumb: below
0.1 stable, 0.1-0.2 worth a look, above 0.2 a real shift.

    >>> table = psi_table(train_frame, latest_quarter_frame, schema)    # doctest: +SKIP
    >>> table[table.flagged]                                             # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.datasets import load_history_with_schema
from features.errors import DataError
from features.periods import (
    created_at,
    data_end,
    days_before,
    latest_quarter,
    mature_mask,
    parse_quarter,
    quarter_label,
    quarters,
)
from features.schema import FeatureSpec, LeadSchema

N_BINS = 10
EPSILON = 1e-4
DEFAULT_THRESHOLD = 0.2
WATCH = 0.1
MISSING = "(missing)"
TABLE_COLUMNS = ["feature", "factor", "psi", "flagged", "largest_change"]


def psi(reference_share: np.ndarray, current_share: np.ndarray, *, epsilon: float = EPSILON) -> float:
    """PSI of two share vectors over the same bins (each summing to 1)."""
    ref = np.maximum(np.asarray(reference_share, dtype=float), epsilon)
    cur = np.maximum(np.asarray(current_share, dtype=float), epsilon)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def feature_shares(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: FeatureSpec,
    *,
    schema: LeadSchema | None = None,
    bins: int = N_BINS,
) -> pd.DataFrame:
    """One row per bin: its label and the share of reference and current leads in it."""
    if spec.type in ("numeric", "integer", "datetime"):
        ref = _as_numbers(reference, spec, schema)
        cur = _as_numbers(current, spec, schema)
        edges = _quantile_edges(ref, bins)
        ref_codes, cur_codes = _bin_numbers(ref, edges), _bin_numbers(cur, edges)
        labels = _edge_labels(edges) + [MISSING]
    else:
        ref_codes, cur_codes, labels = _level_codes(reference[spec.name], current[spec.name])
    return pd.DataFrame(
        {
            "bin": labels,
            "reference": _shares(ref_codes, len(labels)),
            "current": _shares(cur_codes, len(labels)),
        }
    )


def psi_table(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    schema: LeadSchema,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    bins: int = N_BINS,
) -> pd.DataFrame:
    """PSI per schema feature, largest first, flagged above `threshold`, with the bin that moved most."""
    rows = []
    for spec in schema.features:
        if spec.name not in reference.columns or spec.name not in current.columns:
            continue
        shares = feature_shares(reference, current, spec, schema=schema, bins=bins)
        value = psi(shares["reference"].to_numpy(), shares["current"].to_numpy())
        rows.append(
            {
                "feature": spec.name,
                "factor": spec.factor,
                "psi": value,
                "flagged": bool(value > threshold),
                "largest_change": _largest_change(shares),
            }
        )
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return table.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)


def drift_windows(
    frame: pd.DataFrame, schema: LeadSchema, quarter: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Current = one quarter (default the latest); reference = the mature leads created before it.

    The reference is what a model trained at the end of that quarter learned from: maturity is judged
    as if the export ended with the quarter, so a past quarter is checked exactly as it was then.
    """
    labels = quarters(frame, schema)
    current_q = latest_quarter(frame, schema) if quarter is None else quarter_label(parse_quarter(quarter))
    if not (labels == current_q).any():
        raise DataError(f"no leads in {current_q} (the data covers {labels.min()} to {labels.max()})", field="quarter")
    as_of = min(parse_quarter(current_q).end_time, data_end(frame, schema))
    before = (labels < current_q).fillna(False).to_numpy(dtype=bool)
    mature = mature_mask(frame, schema, as_of=as_of).to_numpy(dtype=bool)
    in_quarter = (labels == current_q).fillna(False).to_numpy(dtype=bool)
    if not (before & mature).any():
        raise DataError(f"no mature leads before {current_q} to compare it with", field="quarter")
    return frame[before & mature], frame[in_quarter], current_q


def drift_by_quarter(
    frame: pd.DataFrame, schema: LeadSchema, *, min_reference_quarters: int = 2, bins: int = N_BINS
) -> pd.DataFrame:
    """PSI per feature (rows) for each quarter against the window before it (columns): when drift arrived."""
    labels = sorted(quarters(frame, schema).dropna().unique())
    columns = {}
    for current_q in labels[min_reference_quarters:]:
        reference, current, _ = drift_windows(frame, schema, current_q)
        columns[current_q] = psi_table(reference, current, schema, bins=bins).set_index("feature")["psi"]
    table = pd.DataFrame(columns)
    if table.empty:
        return table
    return table.sort_values(table.columns[-1], ascending=False)


def format_psi_table(table: pd.DataFrame, *, threshold: float) -> str:
    """The table as aligned text: DRIFT above the threshold, watch between 0.1 and it."""
    width = max([len("feature"), *table["feature"].str.len()])
    lines = [f"{'feature':<{width}}  {'factor':<14}  {'PSI':>6}  {'':7}  largest change"]
    for row in table.itertuples(index=False):
        mark = "DRIFT" if row.flagged else ("watch" if row.psi > min(WATCH, threshold) else "")
        lines.append(f"{row.feature:<{width}}  {row.factor:<14}  {row.psi:>6.3f}  {mark:<7}  {row.largest_change}")
    flagged = int(table["flagged"].sum())
    lines.append(
        f"{flagged} of {len(table)} features above PSI {threshold:g}"
        + (f": {', '.join(table.loc[table.flagged, 'feature'])}" if flagged else "")
    )
    return "\n".join(lines)


def drift_command(
    *,
    data: str | Path,
    schema: str | Path | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    quarter: str | None = None,
) -> int:
    """`leadscore drift`: print PSI per feature between the training window and the latest quarter."""
    frame, lead_schema = load_history_with_schema(Path(data), schema)
    reference, current, latest = drift_windows(frame, lead_schema, quarter)
    table = psi_table(reference, current, lead_schema, threshold=threshold)
    when = created_at(reference, lead_schema)
    print(
        f"drift: {latest} ({len(current):,} leads) against the training window "
        f"{when.min():%Y-%m-%d} to {when.max():%Y-%m-%d} ({len(reference):,} mature leads)"
    )
    print(format_psi_table(table, threshold=threshold))
    return 0


# -- binning helpers ------------------------------------------------------------------------------


def _as_numbers(frame: pd.DataFrame, spec: FeatureSpec, schema: LeadSchema | None) -> np.ndarray:
    """A feature as floats with NaN for missing; dates become days before the lead was created."""
    column = frame[spec.name]
    if spec.type == "datetime":
        when = pd.to_datetime(column, errors="coerce")
        if schema is not None and schema.created_at in frame.columns:
            return days_before(pd.to_datetime(frame[schema.created_at], errors="coerce"), when)
        return -days_before(pd.Timestamp(0), when)  # no creation time: days since 1970 (PSI needs an order only)
    return pd.to_numeric(column, errors="coerce").astype("Float64").to_numpy(dtype=float, na_value=np.nan)


def _quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Interior cut points at the reference's quantiles; ties (common in counts) merge bins."""
    present = values[~np.isnan(values)]
    if present.size == 0:
        return np.array([], dtype=float)
    return np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))


def _bin_numbers(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index per value: 0..len(edges) by the edges, len(edges)+1 for missing."""
    codes = np.searchsorted(edges, values, side="right")
    codes[np.isnan(values)] = len(edges) + 1
    return codes


def _edge_labels(edges: np.ndarray) -> list[str]:
    if edges.size == 0:
        return ["all values"]
    inner = [f"[{lo:g}, {hi:g})" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return [f"< {edges[0]:g}", *inner, f">= {edges[-1]:g}"]


def _level_codes(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Codes over the union of levels seen in either frame, missing as its own level."""
    ref = reference.astype("string").fillna(MISSING)
    cur = current.astype("string").fillna(MISSING)
    levels = sorted(set(ref.unique()) | set(cur.unique()))
    dtype = pd.CategoricalDtype(levels)
    return (
        pd.Categorical(ref, dtype=dtype).codes.astype(np.int64),
        pd.Categorical(cur, dtype=dtype).codes.astype(np.int64),
        levels,
    )


def _shares(codes: np.ndarray, n_bins: int) -> np.ndarray:
    counts = np.bincount(codes, minlength=n_bins).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def _largest_change(shares: pd.DataFrame) -> str:
    """The bin whose share moved most, e.g. 'ai_assistant: 0.0% -> 16.2%'."""
    moved = (shares["current"] - shares["reference"]).abs()
    row = shares.loc[moved.idxmax()]
    return f"{row['bin']}: {row['reference']:.1%} -> {row['current']:.1%}"
