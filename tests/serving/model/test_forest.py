"""The compiled trees give LightGBM's own numbers: raw scores and TreeSHAP values, to 1e-9."""

from __future__ import annotations

import dataclasses

import lightgbm as lgb
import numpy as np
import pytest

from features.errors import LeadscoreError
from serving.model.forest import MAX_PATH_FEATURES, TABLE_ENV, Forest, table_budget_bytes, table_plan


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
    columns, codes = np.array([0, 3, 5]), np.array([1.0, np.nan, 0.0])  # with what-ifs (decisions handed on)
    in_threads = forest.raw_contributions_what_if(X, columns, codes, threads=2, min_rows=100)
    for got, expected in zip(in_threads, forest.raw_contributions_what_if(X, columns, codes, threads=1), strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "params",
    [
        {"zero_as_missing": True},  # missing type Zero
        {"use_missing": False},  # missing type None
        {"num_leaves": 63, "max_cat_to_onehot": 64, "min_data_in_leaf": 5},  # deep trees, wide category sets
        {"monotone_constraints": [1, 0, -1, 0], "monotone_constraints_method": "advanced"},  # monotone splits
    ],
)
def test_other_tree_shapes_match_lightgbm(params: dict, monkeypatch) -> None:
    booster, Xt = _shaped_model(params)
    expected = booster.predict(Xt, pred_contrib=True)
    for budget_mb in ("64", "0.02", "0"):  # tables for every leaf, for the short paths only, for none
        monkeypatch.setenv(TABLE_ENV, budget_mb)
        forest = Forest.from_model_text(booster.model_to_string())
        np.testing.assert_allclose(forest.raw(Xt), booster.predict(Xt, raw_score=True), rtol=0, atol=1e-9)
        raw = forest.raw(Xt)
        for rows in (slice(None), slice(0, 1), slice(3, 8), slice(250, 257)):  # blocks, one lead, a few, a block of 7
            found, contrib = forest.raw_and_contributions(Xt[rows])
            np.testing.assert_allclose(contrib, expected[rows], rtol=0, atol=1e-9)
            np.testing.assert_array_equal(found, raw[rows])  # the raw score TreeSHAP finds is the very same number
        with_table = forest.tables[0] >= 0
        assert with_table.all() if budget_mb == "64" else not with_table.all()
        assert with_table.any() if budget_mb == "0.02" else True  # short paths by table, long by quadrature
    assert not with_table.any()  # budget 0: every leaf by quadrature
    _same_forest(forest, Forest.from_booster(booster))


def _shaped_model(params: dict) -> tuple[lgb.Booster, np.ndarray]:
    """A small model on 4 features (1 categorical, 15% missing) and awkward leads to explain with it."""
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
    Xt = _awkward(X[:400], seed=2)
    Xt[::50, 0], Xt[1::50, 3] = np.inf, -np.inf  # beyond every threshold, as LightGBM's text model has them
    return booster, Xt


@pytest.mark.parametrize(
    "params",
    [
        {"zero_as_missing": True},
        {"use_missing": False},
        {"num_leaves": 63, "max_cat_to_onehot": 64, "min_data_in_leaf": 5},  # 62 nodes: the most one word holds
        {"num_leaves": 90, "min_data_in_leaf": 5},  # more nodes than one word holds: the changed rows re-scored
    ],
)
def test_what_if_raw_scores_equal_scoring_the_changed_rows(params: dict) -> None:
    """A what-if re-scores only what one changed feature moves; the numbers are those of the changed lead."""
    booster, Xt = _shaped_model(params)
    forest = Forest.from_model_text(booster.model_to_string())
    columns = np.array([0, 0, 1, 1, 1, 2, 2, 3, 3])
    codes = np.array([np.nan, 0.0, 7.0, 3.0, np.nan, 0.0, 4.0, -np.inf, 0.5])  # missing, zero, categories, beyond
    for rows in (slice(None), slice(0, 1), slice(3, 8), slice(250, 257)):  # blocks, one lead, a few, a block of 7
        X = Xt[rows]
        changed = np.repeat(X, len(columns), axis=0)
        changed.reshape(len(X), len(columns), -1)[:, np.arange(len(columns)), columns] = codes
        expected = forest.raw(changed).reshape(len(X), len(columns))
        np.testing.assert_array_equal(forest.what_if_raw(X, columns, codes), expected)
    np.testing.assert_allclose(expected.ravel(), booster.predict(changed, raw_score=True), rtol=0, atol=1e-9)
    assert (forest.leaf_paths is not None) == (params.get("num_leaves", 15) <= 64)


def test_tables_fill_the_budget_with_the_shortest_paths(scorer, monkeypatch) -> None:
    forest = Forest.from_booster(scorer.bundle.booster)
    k = forest.leaf_k
    budget = 2 << 20
    leaf_table, size = table_plan(k, budget)
    with_table = leaf_table >= 0
    assert 0 < size * 8 <= budget
    cap = k[with_table].max()
    assert (with_table == ((k > 0) & (k <= cap))).all()  # every path up to K features, none longer
    assert (k.astype(np.int64) << k)[(k > 0) & (k <= cap + 1)].sum() * 8 > budget  # K + 1 would not fit
    starts = leaf_table[with_table]
    np.testing.assert_array_equal(np.diff(starts), (k.astype(np.int64) << k)[with_table][:-1])  # packed, no overlap
    monkeypatch.setenv(TABLE_ENV, "lots")
    with pytest.raises(LeadscoreError, match=f"{TABLE_ENV} must be a number of megabytes, got 'lots'"):
        table_budget_bytes()
    monkeypatch.setenv(TABLE_ENV, "-1")
    with pytest.raises(LeadscoreError, match=f"{TABLE_ENV} must be >= 0"):
        table_budget_bytes()


def test_stumps_match_lightgbm() -> None:
    """One split per tree: every leaf has one path feature (the smallest table, two rows of one value)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, 3))
    y = (X[:, 0] + 0.3 * rng.normal(size=2000) > 0).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_leaves": 2, "min_data_in_leaf": 20},
        lgb.Dataset(X, y),
        num_boost_round=30,
    )
    forest = Forest.from_model_text(booster.model_to_string())
    assert set(forest.leaf_k.tolist()) == {1}
    Xt = _awkward(X[:300], seed=4)
    np.testing.assert_allclose(forest.contributions(Xt), booster.predict(Xt, pred_contrib=True), rtol=0, atol=1e-9)
    np.testing.assert_allclose(forest.contributions(Xt[:1]), booster.predict(Xt[:1], pred_contrib=True), atol=1e-9)


def test_a_path_with_too_many_features_is_refused() -> None:
    """A lead's satisfied path features are bits of one 64-bit word: longer paths are refused in one line."""
    node: dict = {"leaf_value": 0.0, "leaf_count": 1}
    for feature in reversed(range(MAX_PATH_FEATURES + 1)):  # a chain: feature i splits, the right side goes on
        node = {
            "split_feature": feature,
            "threshold": 0.5,
            "decision_type": "<=",
            "default_left": True,
            "missing_type": "NaN",
            "internal_count": 2 + feature,
            "left_child": {"leaf_value": 1.0, "leaf_count": 1},
            "right_child": node,
        }
    dump = {"max_feature_idx": MAX_PATH_FEATURES, "tree_info": [{"tree_structure": node}]}
    with pytest.raises(ValueError, match=f"more than {MAX_PATH_FEATURES} distinct features"):
        Forest.from_dump(dump)


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
