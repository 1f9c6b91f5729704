"""Which leads can teach the model at a date, and how they divide into train, valid and test.

A lead is labelled only when its outcome is known at `as_of` (see `features.periods.mature_mask`):
it converted by then, or it is older than the schema's outcome window. A young lead that has not
converted is not a negative, its outcome is still open, so it is left out and counted.

The split is by time, because the model is used on leads that arrive after it was trained:

- test  = the latest quarter whose leads are *all* mature at `as_of` (its last day is more than
  the outcome window before `as_of`);
- valid = the quarter before it (early stopping and calibration);
- train = every earlier quarter.

With fewer than three fully mature quarters the mature leads are cut by creation time instead
(oldest 70% train, next 15% valid, newest 15% test). Without a created-at column there is no time,
so the split is stratified and random, and the report says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.errors import TrainingError
from features.loading import labels
from features.periods import mature_mask
from features.schema import LeadSchema, normalise_label

QUARTERLY = "quarterly"
TIME_ORDERED = "time_ordered"
STRATIFIED_RANDOM = "stratified_random"

LEFT_AFTER_AS_OF = "created after as-of"
LEFT_IMMATURE = "outcome not known yet at as-of"
LEFT_NO_DATE = "no readable created-at date"
LEFT_BAD_TARGET = "target value neither positive nor negative"
LEFT_PARTIAL_QUARTER = "in a quarter not yet fully mature at as-of"

VALID_SHARE = 0.15
TEST_SHARE = 0.15


@dataclass(frozen=True)
class Labelled:
    """The leads whose outcome is known at `as_of`, their 0/1 labels, and what was left out."""

    frame: pd.DataFrame
    y: np.ndarray
    as_of: pd.Timestamp | None
    n_rows: int
    left_out: dict[str, int]


@dataclass
class SplitReport:
    """What went where and why: logged to MLflow and printed in the training summary."""

    method: str
    as_of: str | None
    outcome_window_days: int
    n_rows: int
    left_out: dict[str, int]
    n_train: int
    n_valid: int
    n_test: int
    positives_train: int
    positives_valid: int
    positives_test: int
    train_window: tuple[str, str] | None = None
    valid_window: tuple[str, str] | None = None
    test_window: tuple[str, str] | None = None
    valid_quarter: str | None = None
    test_quarter: str | None = None
    note: str = ""

    @property
    def n_used(self) -> int:
        return self.n_train + self.n_valid + self.n_test

    @property
    def n_left_out(self) -> int:
        return sum(self.left_out.values())

    @property
    def data_window(self) -> dict[str, str | None]:
        """From the oldest training lead to the newest test lead."""
        first = self.train_window[0] if self.train_window else None
        last = (self.test_window or self.valid_window or self.train_window or (None, None))[1]
        return {"start": first, "end": last}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["data_window"] = self.data_window
        return out


@dataclass(frozen=True)
class Split:
    """Frames and labels for each part, plus the report. `test` is empty when none was asked for."""

    train: pd.DataFrame
    y_train: np.ndarray
    valid: pd.DataFrame
    y_valid: np.ndarray
    test: pd.DataFrame
    y_test: np.ndarray
    report: SplitReport = field(repr=False)


def default_as_of(frame: pd.DataFrame, schema: LeadSchema) -> pd.Timestamp | None:
    """The export's end: the newest creation time (None when the data has no dates)."""
    if not schema.created_at or schema.created_at not in frame.columns:
        return None
    newest = pd.to_datetime(frame[schema.created_at], errors="coerce").max()
    return None if pd.isna(newest) else pd.Timestamp(newest)


def label_at(frame: pd.DataFrame, schema: LeadSchema, as_of: pd.Timestamp | str | None = None) -> Labelled:
    """Keep the leads whose outcome is known at `as_of` and label them as they were known then.

    A lead that converted after `as_of` counts as not converted (that is what one knew then).
    """
    n_rows = len(frame)
    left: dict[str, int] = {}
    known_target = _known_target(frame, schema)
    if not known_target.all():
        left[LEFT_BAD_TARGET] = int((~known_target).sum())
    if not schema.created_at or schema.created_at not in frame.columns:
        kept = frame[known_target]
        return Labelled(kept, labels(kept, schema), None, n_rows, left)

    created = pd.to_datetime(frame[schema.created_at], errors="coerce")
    first = created.min()
    if pd.isna(first):
        raise TrainingError(f"no lead has a readable {schema.created_at} date", field=schema.created_at)
    as_of = default_as_of(frame, schema) if as_of is None else pd.Timestamp(as_of)
    if as_of <= first:
        raise TrainingError(f"as-of {as_of:%Y-%m-%d} is before the first lead ({first:%Y-%m-%d}): "
                            "there is nothing to learn from", field="as_of")
    no_date = created.isna().to_numpy()
    after = (created > as_of).fillna(False).to_numpy(dtype=bool)
    mature = mature_mask(frame, schema, as_of).to_numpy(dtype=bool)
    immature = ~no_date & ~after & ~mature
    usable = mature & known_target.to_numpy()
    for reason, mask in ((LEFT_NO_DATE, no_date), (LEFT_AFTER_AS_OF, after), (LEFT_IMMATURE, immature)):
        count = int((mask & known_target.to_numpy()).sum())
        if count:
            left[reason] = count
    kept = frame[usable]
    y = labels(kept, schema)
    if schema.converted_at and schema.converted_at in kept.columns:
        converted_at = pd.to_datetime(kept[schema.converted_at], errors="coerce")
        y = np.where(converted_at.to_numpy() > as_of.to_datetime64(), 0, y).astype(np.int8)
    return Labelled(kept, y, as_of, n_rows, left)


def time_split(labelled: Labelled, schema: LeadSchema, *, with_test: bool = True, seed: int = 0) -> Split:
    """Train / valid / test by time (see the module docstring); `with_test=False` keeps no test part."""
    if labelled.as_of is None:
        return _random_split(labelled, schema, with_test=with_test, seed=seed)
    created = pd.to_datetime(labelled.frame[schema.created_at], errors="coerce")
    quarter = created.dt.to_period("Q")
    cutoff = labelled.as_of - pd.Timedelta(days=schema.outcome_window_days)
    full = sorted(q for q in quarter.unique() if q.end_time <= cutoff)
    needed = 3 if with_test else 2
    if len(full) >= needed:
        return _quarterly_split(labelled, schema, quarter, full, with_test=with_test)
    return _ordered_split(labelled, schema, created, cutoff, with_test=with_test,
                          note=f"only {len(full)} fully mature quarter(s) at as-of: split by creation time "
                               f"({1 - VALID_SHARE - TEST_SHARE:.0%}/{VALID_SHARE:.0%}/{TEST_SHARE:.0%})")


def _known_target(frame: pd.DataFrame, schema: LeadSchema) -> pd.Series:
    codes, uniques = pd.factorize(frame[schema.target_column])
    allowed = set(schema.positive_values) | set(schema.negative_values)
    ok = np.array([normalise_label(u) in allowed for u in uniques] + [False])
    return pd.Series(ok[codes], index=frame.index)


def _quarterly_split(labelled: Labelled, schema: LeadSchema, quarter: pd.Series, full: list[pd.Period], *,
                     with_test: bool) -> Split:
    test_q = full[-1] if with_test else None
    valid_q = full[-2] if with_test else full[-1]
    train = (quarter < valid_q).to_numpy(dtype=bool)
    valid = (quarter == valid_q).to_numpy(dtype=bool)
    test = (quarter == test_q).to_numpy(dtype=bool) if test_q is not None else np.zeros(len(quarter), bool)
    later = ~(train | valid | test)
    note = "" if with_test else "no test quarter (backtest): valid = latest fully mature quarter"
    return _assemble(labelled, schema, QUARTERLY, train, valid, test, later, note=note,
                     valid_quarter=str(valid_q), test_quarter=str(test_q) if test_q is not None else None)


def _ordered_split(labelled: Labelled, schema: LeadSchema, created: pd.Series, cutoff: pd.Timestamp, *, with_test: bool,
                   note: str) -> Split:
    old = (created <= cutoff).to_numpy(dtype=bool)
    order = np.argsort(created.to_numpy(), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    n_old = int(old.sum())
    # Old leads come first in time order, so ranks below n_old are exactly the fully mature ones.
    n_test = round(n_old * TEST_SHARE) if with_test else 0
    n_valid = round(n_old * VALID_SHARE)
    train = old & (rank < n_old - n_test - n_valid)
    valid = old & (rank >= n_old - n_test - n_valid) & (rank < n_old - n_test)
    test = old & (rank >= n_old - n_test)
    return _assemble(labelled, schema, TIME_ORDERED, train, valid, test, ~old, note=note)


def _random_split(labelled: Labelled, schema: LeadSchema, *, with_test: bool, seed: int) -> Split:
    """No dates: a stratified random split, so both classes appear in every part."""
    y = labelled.y
    rng = np.random.default_rng(seed)
    part = np.zeros(len(y), dtype=np.int8)  # 0 train, 1 valid, 2 test
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        n_test = round(len(idx) * TEST_SHARE) if with_test else 0
        n_valid = round(len(idx) * VALID_SHARE)
        part[idx[:n_test]] = 2
        part[idx[n_test:n_test + n_valid]] = 1
    note = "no created-at column: stratified random split, no maturity check (every labelled lead used)"
    return _assemble(labelled, schema, STRATIFIED_RANDOM, part == 0, part == 1, part == 2,
                     np.zeros(len(y), bool), note=note)


def _assemble(labelled: Labelled, schema: LeadSchema, method: str, train: np.ndarray, valid: np.ndarray,
              test: np.ndarray, later: np.ndarray, *, note: str = "", valid_quarter: str | None = None,
              test_quarter: str | None = None) -> Split:
    frame, y = labelled.frame, labelled.y
    left = dict(labelled.left_out)
    if later.any():
        left[LEFT_PARTIAL_QUARTER] = int(later.sum())
    date_col = _date_column(frame, schema)
    report = SplitReport(
        method=method,
        as_of=None if labelled.as_of is None else labelled.as_of.isoformat(),
        outcome_window_days=schema.outcome_window_days,
        n_rows=labelled.n_rows,
        left_out=left,
        n_train=int(train.sum()), n_valid=int(valid.sum()), n_test=int(test.sum()),
        positives_train=int(y[train].sum()), positives_valid=int(y[valid].sum()),
        positives_test=int(y[test].sum()),
        train_window=_window(frame, date_col, train),
        valid_window=_window(frame, date_col, valid),
        test_window=_window(frame, date_col, test),
        valid_quarter=valid_quarter,
        test_quarter=test_quarter,
        note=note,
    )
    return Split(frame[train], y[train], frame[valid], y[valid], frame[test], y[test], report)


def _date_column(frame: pd.DataFrame, schema: LeadSchema) -> str | None:
    return schema.created_at if schema.created_at and schema.created_at in frame.columns else None


def _window(frame: pd.DataFrame, column: str | None, mask: np.ndarray) -> tuple[str, str] | None:
    if column is None or not mask.any():
        return None
    when = pd.to_datetime(frame[column][mask], errors="coerce")
    return (f"{when.min():%Y-%m-%d}", f"{when.max():%Y-%m-%d}")
