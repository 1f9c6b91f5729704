"""The test-quarter figures mean what their names say."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss as sk_log_loss

from features.grades import assign_grades
from training.metrics import (
    auc_by_group,
    brier,
    evaluate,
    expected_calibration_error,
    grade_table,
    lift_and_capture,
    log_loss,
    roc_auc,
)

FLOORS = {"A": 0.25, "B": 0.12, "C": 0.05, "D": 0.0}


def test_calibrated_probabilities_have_small_ece_and_shifted_ones_do_not() -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(1, 9, 200_000)
    y = (rng.random(p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.005
    assert expected_calibration_error(y, np.clip(p + 0.05, 0, 1)) == pytest.approx(0.05, abs=0.005)


def test_lift_and_capture_in_the_top_decile() -> None:
    y = np.r_[np.ones(10), np.zeros(90)]  # 10% convert
    p = np.r_[np.linspace(0.9, 0.8, 5), np.linspace(0.1, 0.05, 5), np.linspace(0.7, 0.2, 90)]
    lift, capture = lift_and_capture(y, p, 0.10)  # top 10 leads hold 5 of the 10 conversions
    assert capture == pytest.approx(0.5) and lift == pytest.approx(5.0)


def test_grades_follow_the_schema_floors() -> None:
    p = np.array([0.3, 0.25, 0.2, 0.12, 0.1, 0.05, 0.01])
    assert assign_grades(p, FLOORS).tolist() == ["A", "A", "B", "B", "C", "C", "D"]
    rows = {r["grade"]: r for r in grade_table(np.array([1, 0, 1, 0, 0, 0, 0]), p, FLOORS)}
    assert rows["A"]["n"] == 2 and rows["A"]["conversion_rate"] == 0.5
    assert rows["D"]["n"] == 1 and rows["D"]["conversion_rate"] == 0.0


def test_log_loss_and_brier_are_their_textbook_formulas() -> None:
    """They come from scikit-learn now; this pins what they mean (the formulas the project used to write out)."""
    rng = np.random.default_rng(4)
    p = np.r_[rng.random(498), 0.0, 1.0]  # two certain predictions: clipped to 1e-6, so the loss stays finite
    y = (rng.random(500) < p).astype(int)
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    assert log_loss(y, p) == pytest.approx(-np.mean(y * np.log(clipped) + (1 - y) * np.log1p(-clipped)), rel=1e-12)
    assert brier(y, p) == pytest.approx(np.mean((p - y) ** 2), rel=1e-12)
    assert brier(np.zeros(3), np.array([0.1, 0.2, 0.3])) == pytest.approx((0.01 + 0.04 + 0.09) / 3)


def test_log_loss_matches_sklearn_and_auc_is_undefined_for_one_class() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(500)
    y = (rng.random(500) < p).astype(int)
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y, p), rel=1e-9)
    assert math.isnan(roc_auc(np.zeros(10), rng.random(10)))


def test_auc_per_source_skips_groups_with_too_few_conversions() -> None:
    rng = np.random.default_rng(2)
    p = rng.random(2000)
    y = (rng.random(2000) < p).astype(int)
    groups = np.where(np.arange(2000) < 1990, "web_form", "tiny")
    table = auc_by_group(y, p, groups)
    assert table["web_form"]["roc_auc"] > 0.7 and math.isnan(table["tiny"]["roc_auc"])


def test_evaluate_flattens_for_mlflow() -> None:
    rng = np.random.default_rng(3)
    p = rng.beta(1, 9, 5000)
    y = (rng.random(5000) < p).astype(int)
    scalars = evaluate(y, p, grades=FLOORS, groups=np.repeat(["a", "b"], 2500)).scalars()
    for key in (
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
        "ece",
        "lift_top10",
        "capture_top20",
        "grade_A_rate",
        "grade_D_n",
        "auc_source_a",
    ):
        assert math.isfinite(scalars[key]), key
