"""Period levels: a base rate that moves over time is the period's, not the features'.

When the conversion rate of a whole period jumps (a market turns, a new tracking rule, the last two
quarters converting at three times the rate), every feature that happens to be more common in that
period looks better than it is: on the drift scenario (issue 13) a product launched in the same two
quarters as the jump got 2.3 log-odds over the others where the truth says 0.8, and the served model
ranked the next quarter at ROC AUC 0.836 against the truth's 0.872. So the models are fitted with
one level per calendar quarter of creation (period fixed effects): the logistic model carries a
one-hot column per quarter (regularised like every other column), and LightGBM starts each lead from
its quarter's level (an init score) so its trees explain differences *within* quarters. A feature's
effect is then learned from leads of the same quarter, which a level shift cannot confound.

Only when the features leave the quarters' levels unexplained: a model of the features alone
(the logistic model at its prior C) must miss some quarter's conversions by more than chance, a
chi-square test of its per-quarter residuals at LEVEL_P (`unexplained_levels`). Where the features
explain the levels, one level per quarter would take away what they teach: on the full bank export
(interest rates and months that move with its 4% -> 17% base rate; chi-square 0.1 on 4 degrees of
freedom) levels cost 0.019 ROC AUC on the next period. The drift scenario's is 584 on 6. Above
300,000 leads (`training.family.CROSS_FIT_MAX_ROWS`) no levels are checked: at that size the test
fires on misses too small to matter, and the extra fits cost more than they taught (a million
synthetic leads: +29% CPU, test figures 0.8911 / 0.2025 -> 0.8907 / 0.2028).

Served scores are at the newest quarter's level (its offset is 0); the calibration map sets the
level the probabilities are read at, as before.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.stats import chi2

from features.periods import quarter_label, quarter_periods
from features.schema import LeadSchema


def period_codes(frame: pd.DataFrame, schema: LeadSchema) -> tuple[np.ndarray, list[str]] | None:
    """Each lead's quarter of creation as 0, 1, ... in time order, and the quarters' names; None without
    dates or with one quarter (then there is no level to separate, and models are fitted as before)."""
    if not schema.created_at or schema.created_at not in frame.columns:
        return None
    quarter = quarter_periods(frame[schema.created_at])
    if quarter.isna().any():
        return None
    codes, uniques = pd.factorize(quarter, sort=True)
    return (codes.astype(np.int64), [quarter_label(q) for q in uniques]) if len(uniques) > 1 else None


LEVEL_P = 0.01  # per-quarter misses of the features-only model this unlikely by chance call for levels


def unexplained_levels(y: np.ndarray, raw: np.ndarray, codes: np.ndarray) -> bool:
    """Whether a features-only model's log-odds `raw` miss the quarters' conversions by more than chance:
    the sum over quarters of ((converted - expected) / its standard deviation)^2, against chi-square."""
    p = 1.0 / (1.0 + np.exp(-np.asarray(raw, dtype=float)))
    y = np.asarray(y, dtype=float)
    n = int(codes.max()) + 1
    missed = np.bincount(codes, weights=y - p, minlength=n)
    spread = np.bincount(codes, weights=p * (1 - p), minlength=n)
    seen = spread > 0
    statistic = float(np.sum(missed[seen] ** 2 / spread[seen]))
    return bool(chi2.sf(statistic, max(int(seen.sum()) - 1, 1)) < LEVEL_P)


def own_levels(frame: pd.DataFrame, schema: LeadSchema, levels: dict[str, float] | None) -> np.ndarray:
    """Each lead's period offset (0 for the newest period, and for any period the fit did not see).

    A calibration map fitted on older leads' scores needs them at their own period's level: the scores
    are at the newest one, and the older leads' outcomes are not."""
    out = np.zeros(len(frame))
    if not levels or not schema.created_at or schema.created_at not in frame.columns:
        return out
    names = quarter_periods(frame[schema.created_at]).map(lambda q: quarter_label(q) if pd.notna(q) else "")
    return names.map(lambda q: levels.get(q, 0.0)).to_numpy(dtype=float)


def describe_levels(levels: dict[str, float] | None) -> str:
    """Each quarter's level in log-odds against the newest one (the level the served model scores at)."""
    return ", ".join(f"{quarter} {level:+.2f}" for quarter, level in (levels or {}).items())


def start_score(y: np.ndarray, weights: np.ndarray | None, offsets: np.ndarray) -> float:
    """The log-odds every lead starts from before its period's offset: the (weighted) base rate's, as
    LightGBM's own start would be, less the mean offset."""
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    rate = float(np.clip(np.average(y, weights=w), 1e-6, 1 - 1e-6))
    return float(np.log(rate / (1 - rate)) - np.average(offsets, weights=w))


def fold_start(booster: lgb.Booster, start: float) -> lgb.Booster:
    """Add `start` to every leaf of the first tree, so the booster alone scores in log-odds at the newest
    period's level (LightGBM folds its own start into the first tree the same way)."""
    tree = booster.dump_model(num_iteration=1)["tree_info"][0]
    for leaf in _leaves(tree["tree_structure"]):
        booster.set_leaf_output(0, leaf["leaf_index"], leaf["leaf_value"] + start)
    return booster


def _leaves(node: dict) -> list[dict]:
    if "leaf_index" in node:
        return [node]
    if "leaf_value" in node and "split_index" not in node:  # a tree with one leaf
        return [{**node, "leaf_index": 0}]
    return _leaves(node["left_child"]) + _leaves(node["right_child"])
