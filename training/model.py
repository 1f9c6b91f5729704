"""Fit the LightGBM model on encoded leads and wrap it, calibrated, into a bundle."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.encoding import LeadEncoder
from features.schema import LeadSchema
from serving.model.bundle import Bundle, expected_raw

if TYPE_CHECKING:
    from training.family import Calibrated

_logger = logging.getLogger(__name__)

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "cat_smooth": 10.0,
    "max_cat_to_onehot": 8,
    "max_bin": 255,
    "verbosity": -1,
}
MAX_ROUNDS = 1500
SMALL_DATA_ROWS = 100_000
LARGE_DATA_ROWS = 300_000
HUGE_DATA_ROWS = 600_000
EARLY_STOPPING_ROUNDS = 50


@dataclass
class FittedModel:
    booster: lgb.Booster
    encoder: LeadEncoder
    best_iteration: int
    params: dict[str, Any] = field(default_factory=dict)


def fit_lightgbm(
    train: pd.DataFrame,
    y_train: np.ndarray,
    valid: pd.DataFrame,
    y_valid: np.ndarray,
    schema: LeadSchema,
    *,
    params: dict[str, Any] | None = None,
    seed: int = 0,
) -> FittedModel:
    """Encode with a freshly fitted encoder, train with early stopping on `valid`, monotone where known."""
    encoder = LeadEncoder(schema).fit(train)
    params = {**DEFAULT_PARAMS, **size_params(len(train)), **(params or {}), "seed": seed}
    if any(encoder.monotone_constraints):
        params["monotone_constraints"] = encoder.monotone_constraints
        # "advanced" lets a few leads break the constraint (measured by the serving tests); this does not.
        params.setdefault("monotone_constraints_method", "intermediate")
    dtrain = lgb.Dataset(
        encoder.transform(train),
        label=y_train,
        feature_name=encoder.feature_names,
        categorical_feature=encoder.categorical_indices,
        free_raw_data=True,
    )
    dvalid = lgb.Dataset(encoder.transform(valid), label=y_valid, reference=dtrain)
    booster = lgb.train(
        params,
        dtrain,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[dvalid],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )
    best = booster.best_iteration or booster.current_iteration()
    if best < booster.current_iteration():
        booster = booster.model_from_string(booster.model_to_string(num_iteration=best))
    _logger.info("LightGBM stopped at %d rounds", best)
    return FittedModel(booster=booster, encoder=encoder, best_iteration=best, params=params)


def size_params(n_rows: int) -> dict[str, Any]:
    """Settings that depend on how many leads train the model.

    Below SMALL_DATA_ROWS one thread is faster than two (OpenMP overhead, and no fight with other
    work for the cores). From LARGE_DATA_ROWS the learning rate doubles: with that much data the
    bigger steps cost no measurable AUC (0.8905 vs 0.8909 on a million synthetic leads) and halve the
    rounds. From HUGE_DATA_ROWS it is 0.15: on a million synthetic leads (750,000 in the evaluation
    fit) ROC AUC 0.8906 vs 0.8909 and log loss 0.2027 vs 0.2025 on the test quarter, for 19% less CPU
    and 14% less wall time (bench/train_full.py, README "Training at full size"): issue 13 holds
    million-lead training to 1.5x the 48 s it took before the refit and the family choice existed.
    The evaluation fit's size decides; the refit keeps the recipe's rate (training.family).
    """
    if n_rows < SMALL_DATA_ROWS:
        return {"num_threads": 1}
    if n_rows >= HUGE_DATA_ROWS:
        return {"num_threads": 0, "learning_rate": 0.15}
    if n_rows >= LARGE_DATA_ROWS:
        return {"num_threads": 0, "learning_rate": 0.1}
    return {"num_threads": 0}


def raw_scores(model: FittedModel | Bundle, frame: pd.DataFrame) -> np.ndarray:
    """Log-odds for a DataFrame of leads, from a bundle (any family) or a bare LightGBM fit."""
    X = model.encoder.transform(frame)
    if isinstance(model, Bundle):
        return model.raw_scores(X)
    return model.booster.predict(X, raw_score=True)


def make_bundle(
    calibrated: Calibrated, schema: LeadSchema, metadata: dict[str, Any], *, background: pd.DataFrame
) -> Bundle:
    """The served bundle: the calibrated model plus its explanation baseline (the blended expected value:
    TreeSHAP's for the trees, the mean term sum for the logistic part)."""
    parts = calibrated.components
    weight = parts.tree_weight
    baseline = expected_raw(parts.booster, parts.linear, weight, parts.encoder.transform(background.iloc[:1]))
    return Bundle(
        booster=parts.booster,
        schema=schema,
        encoder=parts.encoder,
        calibrator=calibrated.calibrator,
        baseline_raw=baseline,
        metadata=dict(metadata),
        linear=parts.linear,
        tree_weight=weight,
    )
