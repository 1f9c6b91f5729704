"""How good a probability is, measured the ways sales and marketing care about. Pure functions.

- ranking: ROC AUC, PR AUC (average precision), lift and capture in the top 10% and 20%;
- probability quality: log loss, Brier score, expected calibration error (ECE);
- the shared qualification: conversion rate and count per grade A-D;
- fairness across channels: ROC AUC per lead source.

ECE uses `ECE_BINS` = 10 equal-width bins on [0, 1]: the absolute gap between the mean predicted
probability and the observed conversion rate in each bin, weighted by the bin's share of leads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.metrics import log_loss as sk_log_loss

from features.grades import assign_grades

ECE_BINS = 10
TOP_SHARES = (0.10, 0.20)
MIN_GROUP_POSITIVES = 5
_EPS = 1e-6


@dataclass
class Evaluation:
    """Every test-set figure for one model; `scalars()` flattens it for MLflow."""

    n: int
    positives: int
    base_rate: float
    roc_auc: float
    pr_auc: float
    log_loss: float
    brier: float
    ece: float
    lift: dict[str, float]
    capture: dict[str, float]
    grades: list[dict[str, Any]]
    by_source: dict[str, dict[str, float]] = field(default_factory=dict)

    def scalars(self) -> dict[str, float]:
        out: dict[str, float] = {
            "n": self.n,
            "positives": self.positives,
            "base_rate": self.base_rate,
            "roc_auc": self.roc_auc,
            "pr_auc": self.pr_auc,
            "log_loss": self.log_loss,
            "brier": self.brier,
            "ece": self.ece,
        }
        for key, value in self.lift.items():
            out[f"lift_{key}"] = value
        for key, value in self.capture.items():
            out[f"capture_{key}"] = value
        for row in self.grades:
            out[f"grade_{row['grade']}_n"] = row["n"]
            out[f"grade_{row['grade']}_rate"] = row["conversion_rate"]
        for source, row in self.by_source.items():
            out[f"auc_source_{_key(source)}"] = row["roc_auc"]
        return {k: float(v) for k, v in out.items() if v is not None and not _isnan(v)}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """NaN when only one class is present (AUC is undefined, not 0.5)."""
    y = np.asarray(y)
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else math.nan


def pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    y = np.asarray(y)
    return float(average_precision_score(y, p)) if y.sum() > 0 else math.nan


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """scikit-learn's log loss, probabilities clipped to [1e-6, 1 - 1e-6] so one confident miss stays finite."""
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return float(sk_log_loss(np.asarray(y), p, labels=[0, 1]))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """scikit-learn's Brier score (defined for one class too: leads of a single outcome still have an error)."""
    return float(brier_score_loss(np.asarray(y), np.asarray(p, dtype=np.float64), pos_label=1))


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> pd.DataFrame:
    """Per equal-width probability bin: leads, mean predicted probability and observed rate."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    n = np.bincount(idx, minlength=bins)
    sum_p = np.bincount(idx, weights=p, minlength=bins)
    sum_y = np.bincount(idx, weights=y, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        table = pd.DataFrame(
            {
                "lower": np.arange(bins) / bins,
                "upper": np.arange(1, bins + 1) / bins,
                "n": n,
                "mean_probability": sum_p / n,
                "conversion_rate": sum_y / n,
            }
        )
    return table


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    table = calibration_table(y, p, bins)
    filled = table[table["n"] > 0]
    gaps = (filled["mean_probability"] - filled["conversion_rate"]).abs()
    return float((gaps * filled["n"]).sum() / max(int(filled["n"].sum()), 1))


def lift_and_capture(y: np.ndarray, p: np.ndarray, share: float) -> tuple[float, float]:
    """Conversion rate in the top `share` of leads over the overall rate, and the share of conversions there."""
    y = np.asarray(y, dtype=np.float64)
    total = y.sum()
    if len(y) == 0 or total == 0:
        return math.nan, math.nan
    k = max(math.ceil(share * len(y)), 1)
    top = np.argsort(-np.asarray(p, dtype=np.float64), kind="stable")[:k]
    hits = y[top].sum()
    return float((hits / k) / (total / len(y))), float(hits / total)


def grade_table(y: np.ndarray, p: np.ndarray, floors: Mapping[str, float]) -> list[dict[str, Any]]:
    """Per grade: leads, share, observed conversion rate and mean predicted probability."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    grades = assign_grades(p, floors)
    rows = []
    for name, floor in floors.items():
        mask = grades == name
        n = int(mask.sum())
        rows.append(
            {
                "grade": name,
                "floor": float(floor),
                "n": n,
                "share": n / max(len(y), 1),
                "conversion_rate": float(y[mask].mean()) if n else math.nan,
                "mean_probability": float(p[mask].mean()) if n else math.nan,
            }
        )
    return rows


def auc_by_group(
    y: np.ndarray, p: np.ndarray, groups: pd.Series | np.ndarray, *, min_positives: int = MIN_GROUP_POSITIVES
) -> dict[str, dict[str, float]]:
    """ROC AUC per group (e.g. lead source); groups with too few conversions get NaN, not noise."""
    y = np.asarray(y)
    p = np.asarray(p, dtype=np.float64)
    keys = pd.Series(groups).astype("string").fillna("(missing)").to_numpy()
    out: dict[str, dict[str, float]] = {}
    for key in sorted(set(keys)):
        mask = keys == key
        pos = int(y[mask].sum())
        enough = pos >= min_positives and mask.sum() - pos >= min_positives
        out[str(key)] = {
            "n": int(mask.sum()),
            "positives": pos,
            "roc_auc": roc_auc(y[mask], p[mask]) if enough else math.nan,
        }
    return out


def evaluate(
    y: np.ndarray, p: np.ndarray, *, grades: Mapping[str, float], groups: pd.Series | np.ndarray | None = None
) -> Evaluation:
    """All figures for predicted probabilities `p` against outcomes `y`."""
    y = np.asarray(y, dtype=np.int8)
    p = np.asarray(p, dtype=np.float64)
    lift: dict[str, float] = {}
    capture: dict[str, float] = {}
    for share in TOP_SHARES:
        key = f"top{round(share * 100)}"
        lift[key], capture[key] = lift_and_capture(y, p, share)
    return Evaluation(
        n=len(y),
        positives=int(y.sum()),
        base_rate=float(y.mean()) if len(y) else math.nan,
        roc_auc=roc_auc(y, p),
        pr_auc=pr_auc(y, p),
        log_loss=log_loss(y, p),
        brier=brier(y, p),
        ece=expected_calibration_error(y, p),
        lift=lift,
        capture=capture,
        grades=grade_table(y, p, grades),
        by_source=auc_by_group(y, p, groups) if groups is not None else {},
    )


def _key(text: str) -> str:
    """A metric-name-safe spelling of a group value."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))[:60] or "_"


def _isnan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
