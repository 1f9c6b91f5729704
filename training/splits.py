"""Which leads can teach the model at a date, and how they divide into train, valid and test.

`as_of` defaults to what the export knows: its newest event, a creation or a conversion (an export
taken in November knows November's conversions of March's leads). The label is "converted within the
outcome window": a lead is labelled only when that is final at `as_of` (see
`features.periods.mature_mask`): it converted by then, or it is older than the window. A young lead
that has not converted is not a negative, its outcome is still open, so it is left out and counted;
a lead that converted after its window is a negative.

The evaluation is by time, because the model is used on leads that arrive after it was trained, and
adapts to how much the export holds:

- quarterly: test = the latest quarter whose leads are *all* mature at `as_of`, valid = the quarter
  before it, train = every earlier quarter; used while there are three such quarters and the valid
  and test quarters each hold MIN_HOLDOUT_POSITIVES conversions (and as many non-conversions);
- time_ordered: otherwise the mature leads are cut by creation time (70% / 15% / 15%);
- rolling_origin: small data (fewer than SMALL_DATA_POSITIVES mature conversions), the newest
  ROLLING_SHARE of the leads is cut into ROLLING_FOLDS blocks and each block is scored by a model fitted
  on everything before it (expanding window); metrics are pooled, with the mean and spread across folds;
- stratified_random: without a created-at column there is no time; the report says so.

Each fold says what its model may learn from (`fit`), which newest slice of that chooses the rounds,
the family and the calibration (`select`), and what it is judged on (`score`). The served model is
refitted on every used lead, with the newest slice (`deploy_select`) in the `select` role.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.errors import TrainingError
from features.periods import mature_mask, quarter_periods
from features.schema import LeadSchema
from features.target import known, labels

QUARTERLY = "quarterly"
TIME_ORDERED = "time_ordered"
ROLLING_ORIGIN = "rolling_origin"
STRATIFIED_RANDOM = "stratified_random"

LEFT_AFTER_AS_OF = "created after as-of"
LEFT_IMMATURE = "outcome not known yet at as-of"
LEFT_NO_DATE = "no readable created-at date"
LEFT_BAD_TARGET = "target value neither positive nor negative"
LEFT_PARTIAL_QUARTER = "in a quarter not yet fully mature at as-of"

VALID_SHARE = 0.15
TEST_SHARE = 0.15
MIN_HOLDOUT_POSITIVES = 50  # fewer conversions than this in a holdout make its AUC a coin toss (SE > 0.04)
SMALL_DATA_POSITIVES = 1000  # below this many mature conversions one holdout is too small: rolling origin
ROLLING_FOLDS = 4
ROLLING_SHARE = 0.4  # the newest 40% of mature leads are scored, in ROLLING_FOLDS blocks
SELECT_SHARE = 0.2  # each rolling fold chooses with the newest fifth of what it learns from

AS_OF_GIVEN = "given with --as-of"
AS_OF_EXPORT_DATE = "the export date (--export-date)"


@dataclass(frozen=True)
class Labelled:
    """The leads whose outcome is known at `as_of`, their 0/1 labels, and what was left out."""

    frame: pd.DataFrame
    y: np.ndarray
    as_of: pd.Timestamp | None
    n_rows: int
    left_out: dict[str, int]
    as_of_source: str = ""


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
    as_of_source: str = ""
    folds: int = 1
    n_deploy: int = 0
    positives_deploy: int = 0

    @property
    def n_used(self) -> int:
        return self.n_deploy or (self.n_train + self.n_valid + self.n_test)

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
class Fold:
    """One evaluation: positions in `Split.frame` to learn from, to choose with, and to judge on."""

    fit: np.ndarray  # int positions the model may learn from
    select: np.ndarray  # the newest slice of `fit`: early stopping, family choice, calibration
    score: np.ndarray  # positions it is judged on (after `fit` in time); empty for a backtest
    label: str


@dataclass(frozen=True)
class Split:
    """All used leads (`frame`, `y`), the evaluation folds, and the classic three parts for reports.

    `train`/`valid` are the first fold's learning and choosing parts, `test` every scored lead (one
    quarter or slice, or the rolling blocks together); `test` is empty when none was asked for.
    """

    train: pd.DataFrame
    y_train: np.ndarray
    valid: pd.DataFrame
    y_valid: np.ndarray
    test: pd.DataFrame
    y_test: np.ndarray
    report: SplitReport = field(repr=False)
    frame: pd.DataFrame = field(default=None, repr=False)
    y: np.ndarray = field(default=None, repr=False)  # type: ignore[arg-type]
    folds: tuple[Fold, ...] = ()
    deploy_select: np.ndarray = field(default=None, repr=False)  # type: ignore[arg-type]

    @property
    def test_positions(self) -> np.ndarray:
        """Positions in `frame` of the `test` rows, in the same order."""
        return np.concatenate([f.score for f in self.folds]) if self.folds else np.zeros(0, dtype=np.int64)


def export_end(frame: pd.DataFrame, schema: LeadSchema) -> pd.Timestamp | None:
    """What the export knows: its newest event, a creation or a conversion (None without dates)."""
    if not schema.created_at or schema.created_at not in frame.columns:
        return None
    newest = pd.to_datetime(frame[schema.created_at], errors="coerce").max()
    if schema.converted_at and schema.converted_at in frame.columns:
        converted = pd.to_datetime(frame[schema.converted_at], errors="coerce").max()
        if pd.notna(converted) and (pd.isna(newest) or converted > newest):
            newest = converted
    return None if pd.isna(newest) else pd.Timestamp(newest)


def default_as_of(frame: pd.DataFrame, schema: LeadSchema) -> pd.Timestamp | None:
    """The export's end: its newest creation or conversion (None when the data has no dates)."""
    return export_end(frame, schema)


def label_at(
    frame: pd.DataFrame,
    schema: LeadSchema,
    as_of: pd.Timestamp | str | None = None,
    *,
    export_date: pd.Timestamp | str | None = None,
) -> Labelled:
    """Keep the leads whose outcome is known at `as_of` and label them as they were known then.

    A lead that converted after `as_of` counts as not converted (that is what one knew then), and so
    does one that converted after its outcome window: the label is "converted within the window".
    `as_of` defaults to `export_date`, else to the export's newest event.
    """
    n_rows = len(frame)
    left: dict[str, int] = {}
    known_target = pd.Series(known(frame, schema), index=frame.index)
    if not known_target.all():
        left[LEFT_BAD_TARGET] = int((~known_target).sum())
    if not schema.created_at or schema.created_at not in frame.columns:
        kept = frame[known_target]
        return Labelled(kept, labels(kept, schema), None, n_rows, left)

    created = pd.to_datetime(frame[schema.created_at], errors="coerce")
    first = created.min()
    if pd.isna(first):
        raise TrainingError(f"no lead has a readable {schema.created_at} date", field=schema.created_at)
    as_of, source = _resolve_as_of(frame, schema, as_of, export_date)
    if as_of <= first:
        raise TrainingError(
            f"as-of {as_of:%Y-%m-%d} is before the first lead ({first:%Y-%m-%d}): there is nothing to learn from",
            field="as_of",
        )
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
        converted_at = pd.to_datetime(kept[schema.converted_at], errors="coerce").to_numpy()
        deadline = (created[usable] + pd.Timedelta(days=schema.outcome_window_days)).to_numpy()
        late = (converted_at > pd.Timestamp(as_of).to_datetime64()) | (converted_at > deadline)
        y = np.where(late, 0, y).astype(np.int8)
    return Labelled(kept, y, as_of, n_rows, left, as_of_source=source)


def _resolve_as_of(
    frame: pd.DataFrame, schema: LeadSchema, as_of: pd.Timestamp | str | None, export_date: pd.Timestamp | str | None
) -> tuple[pd.Timestamp, str]:
    """The date outcomes are read at, and in words where it came from (for the summary)."""
    if as_of is not None:
        return pd.Timestamp(as_of), AS_OF_GIVEN
    if export_date is not None:
        return pd.Timestamp(export_date), AS_OF_EXPORT_DATE
    end = export_end(frame, schema)
    assert end is not None  # the caller checked that there are readable creation dates
    newest_created = pd.to_datetime(frame[schema.created_at], errors="coerce").max()
    kind = "creation" if end == newest_created else "conversion"
    return end, f"the newest event in the file (a {kind} on {end:%Y-%m-%d})"


def time_split(labelled: Labelled, schema: LeadSchema, *, with_test: bool = True, seed: int = 0) -> Split:
    """Folds by time (see the module docstring); `with_test=False` keeps no test part (backtest)."""
    if labelled.as_of is None:
        return _random_split(labelled, schema, with_test=with_test, seed=seed)
    created = pd.to_datetime(labelled.frame[schema.created_at], errors="coerce")
    quarter = quarter_periods(created)
    cutoff = labelled.as_of - pd.Timedelta(days=schema.outcome_window_days)
    full = sorted(q for q in quarter.unique() if q.end_time <= cutoff)
    needed = 3 if with_test else 2
    y = labelled.y
    old = (created <= cutoff).to_numpy(dtype=bool)
    small = with_test and int(y[old].sum()) < SMALL_DATA_POSITIVES
    if len(full) >= needed and not small:
        holdouts = full[-2:] if with_test else full[-1:]
        if all(_enough(y[(quarter == q).to_numpy()]) for q in holdouts):
            return _quarterly_split(labelled, schema, quarter, full, with_test=with_test)
    if small:
        return _rolling_split(
            labelled,
            schema,
            created,
            cutoff,
            note=f"small data, {int(y[old].sum()):,} mature conversions: rolling-origin "
            f"evaluation over {ROLLING_FOLDS} time blocks (expanding window), mean and "
            "spread across folds",
        )
    why = (
        f"only {len(full)} fully mature quarter(s) at as-of"
        if len(full) < needed
        else f"the latest mature quarters hold fewer than {MIN_HOLDOUT_POSITIVES} conversions each"
    )
    return _ordered_split(
        labelled,
        schema,
        created,
        cutoff,
        with_test=with_test,
        note=f"{why}: split by creation time ({1 - VALID_SHARE - TEST_SHARE:.0%}/{VALID_SHARE:.0%}/{TEST_SHARE:.0%})",
    )


def _enough(y: np.ndarray) -> bool:
    positives = int(y.sum())
    return positives >= MIN_HOLDOUT_POSITIVES and len(y) - positives >= MIN_HOLDOUT_POSITIVES


def _quarterly_split(
    labelled: Labelled, schema: LeadSchema, quarter: pd.Series, full: list[pd.Period], *, with_test: bool
) -> Split:
    test_q = full[-1] if with_test else None
    valid_q = full[-2] if with_test else full[-1]
    train = (quarter < valid_q).to_numpy(dtype=bool)
    valid = (quarter == valid_q).to_numpy(dtype=bool)
    test = (quarter == test_q).to_numpy(dtype=bool) if test_q is not None else np.zeros(len(quarter), bool)
    later = ~(train | valid | test)
    # Leads old enough to be final but in a quarter that is not over at the cutoff: no fold judges on a
    # part-quarter, but the served model learns from them (they are the newest final outcomes).
    created = pd.to_datetime(labelled.frame[schema.created_at], errors="coerce")
    newest = later & (created <= labelled.as_of - pd.Timedelta(days=schema.outcome_window_days)).to_numpy(bool)
    note = "" if with_test else "no test quarter (backtest): valid = latest fully mature quarter"
    return _assemble(
        labelled,
        schema,
        QUARTERLY,
        train,
        valid,
        test,
        later & ~newest,
        note=note,
        newest=newest,
        valid_quarter=str(valid_q),
        test_quarter=str(test_q) if test_q is not None else None,
    )


def _time_rank(created: pd.Series) -> np.ndarray:
    order = np.argsort(created.to_numpy(), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def _ordered_split(
    labelled: Labelled, schema: LeadSchema, created: pd.Series, cutoff: pd.Timestamp, *, with_test: bool, note: str
) -> Split:
    old = (created <= cutoff).to_numpy(dtype=bool)
    rank = _time_rank(created)
    n_old = int(old.sum())
    # Old leads come first in time order, so ranks below n_old are exactly the fully mature ones.
    n_test = round(n_old * TEST_SHARE) if with_test else 0
    n_valid = round(n_old * VALID_SHARE)
    train = old & (rank < n_old - n_test - n_valid)
    valid = old & (rank >= n_old - n_test - n_valid) & (rank < n_old - n_test)
    test = old & (rank >= n_old - n_test)
    return _assemble(labelled, schema, TIME_ORDERED, train, valid, test, ~old, note=note)


def _rolling_split(
    labelled: Labelled, schema: LeadSchema, created: pd.Series, cutoff: pd.Timestamp, *, note: str
) -> Split:
    """Expanding-window folds: the newest ROLLING_SHARE of mature leads in ROLLING_FOLDS time blocks."""
    old = (created <= cutoff).to_numpy(dtype=bool)
    rank = _time_rank(created)
    n_old = int(old.sum())
    first_scored = n_old - round(n_old * ROLLING_SHARE)
    edges = np.linspace(first_scored, n_old, ROLLING_FOLDS + 1).round().astype(int)
    folds = []
    for k in range(ROLLING_FOLDS):
        start, stop = edges[k], edges[k + 1]
        n_select = max(1, round(start * SELECT_SHARE))
        folds.append(
            (
                old & (rank < start - n_select),
                old & (rank >= start - n_select) & (rank < start),
                old & (rank >= start) & (rank < stop),
            )
        )
    train, valid, _ = folds[0]
    test = old & (rank >= first_scored)
    return _assemble(labelled, schema, ROLLING_ORIGIN, train, valid, test, ~old, note=note, folds=folds)


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
        part[idx[n_test : n_test + n_valid]] = 1
    note = "no created-at column: stratified random split, no maturity check (every labelled lead used)"
    return _assemble(
        labelled, schema, STRATIFIED_RANDOM, part == 0, part == 1, part == 2, np.zeros(len(y), bool), note=note
    )


def _assemble(
    labelled: Labelled,
    schema: LeadSchema,
    method: str,
    train: np.ndarray,
    valid: np.ndarray,
    test: np.ndarray,
    later: np.ndarray,
    *,
    note: str = "",
    valid_quarter: str | None = None,
    test_quarter: str | None = None,
    newest: np.ndarray | None = None,
    folds: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
) -> Split:
    frame, y = labelled.frame, labelled.y
    left = dict(labelled.left_out)
    if later.any():
        left[LEFT_PARTIAL_QUARTER] = int(later.sum())
    used = ~later
    date_col = _date_column(frame, schema)
    # Positions are into the used leads, kept in time order so "newest slice" means what it says.
    rows = np.flatnonzero(used)
    if date_col is not None:
        created = pd.to_datetime(frame[date_col].iloc[rows], errors="coerce").to_numpy()
        rows = rows[np.argsort(created, kind="stable")]
    pool, pool_y = frame.iloc[rows], y[rows]  # one copy of the used leads, in time order
    where = np.full(len(frame), -1, dtype=np.int64)
    where[rows] = np.arange(len(pool))

    def pos(mask: np.ndarray) -> np.ndarray:
        return np.sort(where[mask & used])

    parts = folds or [(train, valid, test)]
    built = tuple(
        Fold(
            fit=pos(t | v), select=pos(v), score=pos(s), label=test_quarter or _label(frame, date_col, s, k, len(parts))
        )
        for k, (t, v, s) in enumerate(parts)
    )
    newest = np.zeros(len(frame), bool) if newest is None else newest
    deploy_select = pos((test if test.any() else valid) | newest)
    test_pos = np.concatenate([f.score for f in built])
    report = SplitReport(
        method=method,
        as_of=None if labelled.as_of is None else labelled.as_of.isoformat(),
        outcome_window_days=schema.outcome_window_days,
        n_rows=labelled.n_rows,
        left_out=left,
        n_train=int(train.sum()),
        n_valid=int(valid.sum()),
        n_test=int(test.sum()),
        positives_train=int(y[train].sum()),
        positives_valid=int(y[valid].sum()),
        positives_test=int(y[test].sum()),
        train_window=_window(frame, date_col, train),
        valid_window=_window(frame, date_col, valid),
        test_window=_window(frame, date_col, test),
        valid_quarter=valid_quarter,
        test_quarter=test_quarter,
        note=note,
        as_of_source=labelled.as_of_source,
        folds=len(built),
        n_deploy=len(pool),
        positives_deploy=int(pool_y.sum()),
    )
    return Split(
        frame[train],
        y[train],
        frame[valid],
        y[valid],
        pool.iloc[test_pos],
        pool_y[test_pos],
        report,
        frame=pool,
        y=pool_y,
        folds=built,
        deploy_select=deploy_select,
    )


def _label(frame: pd.DataFrame, column: str | None, mask: np.ndarray, k: int, n: int) -> str:
    window = _window(frame, column, mask)
    if window is None:
        return "holdout" if n == 1 else f"fold {k + 1}"
    return f"{window[0]}..{window[1]}"


def _date_column(frame: pd.DataFrame, schema: LeadSchema) -> str | None:
    return schema.created_at if schema.created_at and schema.created_at in frame.columns else None


def _window(frame: pd.DataFrame, column: str | None, mask: np.ndarray) -> tuple[str, str] | None:
    if column is None or not mask.any():
        return None
    when = pd.to_datetime(frame[column][mask], errors="coerce")
    return (f"{when.min():%Y-%m-%d}", f"{when.max():%Y-%m-%d}")
