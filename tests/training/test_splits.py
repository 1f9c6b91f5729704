"""Only mature outcomes are labelled, and the test quarter is never seen in training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.errors import TrainingError
from features.schema import LeadSchema
from features.synthetic import bundled_schema
from training.splits import (
    LEFT_AFTER_AS_OF,
    LEFT_BAD_TARGET,
    LEFT_IMMATURE,
    LEFT_PARTIAL_QUARTER,
    QUARTERLY,
    ROLLING_ORIGIN,
    STRATIFIED_RANDOM,
    TIME_ORDERED,
    label_at,
    time_split,
)


@pytest.fixture(scope="module")
def schema() -> LeadSchema:
    return bundled_schema()


def _leads(rows: list[tuple[str, str, int, str | None]]) -> pd.DataFrame:
    """(lead_id, created_at, converted, converted_at) rows with the bundled schema's role columns."""
    frame = pd.DataFrame(rows, columns=["lead_id", "created_at", "converted", "converted_at"])
    frame["created_at"] = pd.to_datetime(frame["created_at"])
    frame["converted_at"] = pd.to_datetime(frame["converted_at"])
    return frame


def test_outcome_known_at_as_of_decides_the_label(schema: LeadSchema) -> None:
    frame = _leads(
        [
            ("old-negative", "2026-01-10", 0, None),  # older than 90 days, never converted: 0
            ("young-converted", "2026-06-20", 1, "2026-06-25"),  # converted before as-of: 1
            ("young-open", "2026-06-20", 0, None),  # still open: left out
            ("converted-later", "2026-06-01", 1, "2026-07-15"),  # young, converts after as-of: left out
            ("old-converted-later", "2026-01-10", 1, "2026-07-15"),  # old at as-of, converted after: 0 then
            ("future", "2026-07-05", 1, "2026-07-06"),  # created after as-of: invisible
            ("bad-target", "2026-01-10", 7, None),
        ]
    )
    labelled = label_at(frame, schema, "2026-07-01")
    got = dict(zip(labelled.frame["lead_id"], labelled.y.tolist(), strict=True))
    assert got == {"old-negative": 0, "young-converted": 1, "old-converted-later": 0}
    assert labelled.left_out == {LEFT_BAD_TARGET: 1, LEFT_AFTER_AS_OF: 1, LEFT_IMMATURE: 2}


def test_as_of_before_any_lead_is_refused(schema: LeadSchema) -> None:
    frame = _leads([("a", "2026-01-10", 0, None)])
    with pytest.raises(TrainingError, match="before the first lead"):
        label_at(frame, schema, "2025-01-01")


def test_quarterly_split_tests_on_latest_fully_mature_quarter(train_history, schema: LeadSchema) -> None:
    leads = train_history.leads
    split = time_split(label_at(leads, schema), schema)
    report = split.report
    assert report.method == QUARTERLY
    # Export ends 2026-10-01: 2026Q3 is immature, 2026Q2 ended more than 90 days before the data's end.
    assert (report.test_quarter, report.valid_quarter) == ("2026Q2", "2026Q1")
    quarter = {
        name: part["created_at"].dt.to_period("Q").astype(str)
        for name, part in (("train", split.train), ("valid", split.valid), ("test", split.test))
    }
    assert set(quarter["test"]) == {"2026Q2"} and set(quarter["valid"]) == {"2026Q1"}
    assert quarter["train"].max() == "2025Q4"
    assert (
        split.train["created_at"].max()
        < split.valid["created_at"].min()
        <= split.valid["created_at"].max()
        < split.test["created_at"].min()
    )
    assert not set(split.train["lead_id"]) & set(split.test["lead_id"])
    # Every lead is either used or counted as left out, with a reason.
    assert report.n_used + report.n_left_out == len(leads)
    assert report.left_out[LEFT_PARTIAL_QUARTER] > 0 and report.left_out[LEFT_IMMATURE] > 0


def test_backtest_split_keeps_no_test_quarter(train_history, schema: LeadSchema) -> None:
    split = time_split(label_at(train_history.leads, schema, "2025-07-01"), schema, with_test=False)
    assert split.report.valid_quarter == "2025Q1" and split.test.empty
    assert split.train["created_at"].max() < pd.Timestamp("2025-01-01")


def test_short_history_falls_back_to_time_order(schema: LeadSchema) -> None:
    rng = np.random.default_rng(0)
    n = 4000  # about 2,000 conversions: not small data, so one time-ordered holdout
    created = pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.uniform(0, 150, n), unit="D")
    frame = pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in range(n)],
            "created_at": created,
            "converted": rng.integers(0, 2, n),
            "converted_at": pd.NaT,
        }
    )
    split = time_split(label_at(frame, schema, "2026-10-01"), schema)
    assert split.report.method == TIME_ORDERED and "creation time" in split.report.note
    assert split.train["created_at"].max() <= split.valid["created_at"].min()
    assert split.valid["created_at"].max() <= split.test["created_at"].min()


def test_small_data_is_judged_by_rolling_origin_folds(schema: LeadSchema) -> None:
    rng = np.random.default_rng(1)
    n = 3000  # about 300 conversions over a year
    created = pd.Timestamp("2025-06-01") + pd.to_timedelta(rng.uniform(0, 365, n), unit="D")
    frame = pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in range(n)],
            "created_at": created,
            "converted": (rng.random(n) < 0.1).astype(int),
            "converted_at": pd.NaT,
        }
    )
    split = time_split(label_at(frame, schema, "2026-10-01"), schema)
    assert split.report.method == ROLLING_ORIGIN and len(split.folds) == 4 and "rolling-origin" in split.report.note
    when = pd.to_datetime(split.frame["created_at"])
    for fold in split.folds:  # each block is scored by a model that learned only from earlier leads
        assert when.iloc[fold.fit].max() <= when.iloc[fold.score].min()
        assert set(fold.select) <= set(fold.fit) and not set(fold.fit) & set(fold.score)
    assert len(split.test) == sum(len(f.score) for f in split.folds)


def test_no_created_at_means_stratified_random_and_says_so() -> None:
    raw = bundled_schema().to_dict()
    raw["roles"].pop("created_at")
    raw["roles"].pop("converted_at")
    from features.schema import schema_from_dict

    schema = schema_from_dict(raw)
    y = np.r_[np.ones(200, dtype=int), np.zeros(1800, dtype=int)]
    frame = pd.DataFrame({"lead_id": [f"L{i}" for i in range(2000)], "converted": y})
    split = time_split(label_at(frame, schema), schema)
    report = split.report
    assert report.method == STRATIFIED_RANDOM and "no created-at" in report.note
    assert report.n_used == 2000
    for part in (split.y_train, split.y_valid, split.y_test):
        assert part.mean() == pytest.approx(0.1, abs=0.01)
