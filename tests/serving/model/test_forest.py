"""The compiled trees give LightGBM's own numbers: raw scores and TreeSHAP values, to 1e-9."""

from __future__ import annotations

import dataclasses

import lightgbm as lgb
import numpy as np
import pytest

from serving.model.forest import Forest


def _awkward(X: np.ndarray, seed: int = 0) -> np.ndarray:
    """The leads plus copies with holes, zeros, negatives and never-seen category codes."""
    rng = np.random.default_rng(seed)
    holes, zeros, odd = X.copy(), X.copy(), X.copy()
    holes[rng.random(X.shape) < 0.2] = np.nan
    zeros[rng.random(X.shape) < 0.1] = 0.0
    odd[rng.random(X.shape) < 0.05] = -1.0
    odd[rng.random(X.shape) < 0.05] = 77.0
    return np.vstack([X, holes, zeros, odd])


def test_trained_bundle_matches_lightgbm(scorer, fresh) -> None:
    booster = scorer.bundle.booster
    X = _awkward(scorer.bundle.encoder.transform(fresh.leads.iloc[:250]))
    forest = Forest.from_model_text(booster.model_to_string())  # what a server builds, without LightGBM
    np.testing.assert_allclose(forest.raw(X), booster.predict(X, raw_score=True), rtol=0, atol=1e-9)
    expected = booster.predict(X, pred_contrib=True)
    np.testing.assert_allclose(forest.contributions(X), expected, rtol=0, atol=1e-9)  # eight leads at a time
    one_by_one = np.vstack([forest.contributions(X[i : i + 1]) for i in range(0, len(X), 97)])  # a request's lead
    np.testing.assert_allclose(one_by_one, expected[::97], rtol=0, atol=1e-9)
    assert forest.expected_value == pytest.approx(scorer.bundle.baseline_raw, abs=1e-12)


def test_parallel_rows_equal_serial(scorer, fresh) -> None:
    forest = Forest.from_booster(scorer.bundle.booster)
    X = scorer.bundle.encoder.transform(fresh.leads.iloc[:301])
    parallel = forest.contributions(X, threads=2, min_rows=100)
    np.testing.assert_array_equal(parallel, forest.contributions(X, threads=1))


@pytest.mark.parametrize(
    "params",
    [
        {"zero_as_missing": True},  # missing type Zero
        {"use_missing": False},  # missing type None
        {"num_leaves": 63, "max_cat_to_onehot": 64, "min_data_in_leaf": 5},  # deep trees, wide category sets
        {"monotone_constraints": [1, 0, -1, 0], "monotone_constraints_method": "advanced"},  # monotone splits
    ],
)
def test_other_tree_shapes_match_lightgbm(params: dict) -> None:
    rng = np.random.default_rng(1)
    n = 3000
    X = np.column_stack(
        [rng.normal(size=n), rng.integers(0, 40, n).astype(float), rng.poisson(1.0, n).astype(float), rng.random(n)]
    )
    X[rng.random(X.shape) < 0.15] = np.nan
    logit = np.nan_to_num(X[:, 0]) + (np.nan_to_num(X[:, 1]) % 7 == 0) - 0.5 * np.nan_to_num(X[:, 2])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    data = lgb.Dataset(X, y, categorical_feature=[1], free_raw_data=False)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_leaves": 15, "min_data_in_leaf": 20, **params},
        data,
        num_boost_round=40,
    )
    forest = Forest.from_model_text(booster.model_to_string())
    Xt = _awkward(X[:400], seed=2)
    Xt[::50, 0], Xt[1::50, 3] = np.inf, -np.inf  # beyond every threshold, as LightGBM's text model has them
    np.testing.assert_allclose(forest.raw(Xt), booster.predict(Xt, raw_score=True), rtol=0, atol=1e-9)
    np.testing.assert_allclose(forest.contributions(Xt), booster.predict(Xt, pred_contrib=True), rtol=0, atol=1e-9)
    _same_forest(forest, Forest.from_booster(booster))


def _same_forest(from_text: Forest, from_dump: Forest) -> None:
    """Reading model.txt ourselves gives the arrays LightGBM's dump_model gives, except that the dump
    writes an infinite threshold as 1e300 where the text (and LightGBM's own predictions) keep inf."""
    for field in dataclasses.fields(Forest):
        ours, theirs = getattr(from_text, field.name), getattr(from_dump, field.name)
        if field.name == "node_threshold":
            ours = np.where(np.isinf(ours), np.copysign(1e300, ours), ours)
        np.testing.assert_array_equal(ours, theirs, err_msg=field.name)


def test_a_damaged_text_model_is_refused_in_one_line(scorer) -> None:
    text = scorer.bundle.booster.model_to_string()
    cut = text[: text.index("leaf_value=", len(text) // 3)]  # a tree that stops half-way
    with pytest.raises(ValueError, match="damaged at tree"):
        Forest.from_model_text(cut)
    with pytest.raises(ValueError, match="not a LightGBM text model"):
        Forest.from_model_text("{}")


def test_refuses_a_matrix_of_the_wrong_width(scorer) -> None:
    forest = Forest.from_booster(scorer.bundle.booster)
    with pytest.raises(ValueError, match="columns"):
        forest.raw(np.zeros((1, 3)))
