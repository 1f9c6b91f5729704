"""Trees shaped for explanation: kept only within the tolerance, and what they save is counted right."""

from __future__ import annotations

from dataclasses import replace

import lightgbm as lgb
import numpy as np
import pytest

from features.synthetic import bundled_schema, generate
from features.target import labels
from training.family import choose_recipe
from training.model import DEFAULT_PARAMS, LARGE_DATA_ROWS
from training.shape import (
    EXPLAIN_SHAPE,
    SHAPE_TOLERANCE,
    TreeFit,
    choose_shape,
    leaf_path_cost,
    shaped_params,
    worth_trying,
)


def _booster(num_leaves: int, rounds: int, seed: int = 0) -> lgb.Booster:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2000, 5))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(size=2000) > 0).astype(int)
    params = {"objective": "binary", "num_leaves": num_leaves, "min_data_in_leaf": 20, "verbosity": -1, "seed": seed}
    return lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=rounds)


def _paths_by_hand(booster: lgb.Booster) -> int:
    """Distinct features per leaf path, walked up from each leaf through LightGBM's own table."""
    table = booster.trees_to_dataframe().set_index("node_index")
    total = 0
    for _, row in table[table["left_child"].isna()].iterrows():
        features, parent = set(), row["parent_index"]
        while isinstance(parent, str):
            features.add(table.loc[parent, "split_feature"])
            parent = table.loc[parent, "parent_index"]
        total += len(features)
    return total


def test_the_leaf_path_cost_counts_distinct_features_on_every_leaf_path() -> None:
    big, small = _booster(31, 20), _booster(7, 20)
    assert leaf_path_cost(big) == _paths_by_hand(big)
    assert leaf_path_cost(small) == _paths_by_hand(small)
    assert leaf_path_cost(small) < leaf_path_cost(big)


def _fit(booster: lgb.Booster, raw: np.ndarray) -> TreeFit:
    return TreeFit(params={}, booster=booster, rounds=booster.current_iteration(), valid_raw=raw)


def test_the_shaped_trees_are_kept_only_within_the_tolerance() -> None:
    rng = np.random.default_rng(1)
    signal = rng.normal(size=20_000)
    y = (signal + rng.logistic(size=20_000) > 1.5).astype(int)
    default = _fit(_booster(31, 20), signal)
    close = _fit(_booster(7, 20), signal + rng.normal(scale=0.02, size=len(y)))  # ranks as well, to noise
    worse = _fit(_booster(7, 20), signal + rng.normal(scale=0.5, size=len(y)))  # loses ~0.02 ROC AUC

    kept, choice = choose_shape(default, close, y)
    assert kept is close and choice.shaped
    assert abs(choice.auc[1] - choice.auc[0]) <= SHAPE_TOLERANCE
    assert choice.leaf_path_cost == (leaf_path_cost(default.booster), leaf_path_cost(close.booster))
    assert choice.cost_ratio > 1 and "shaped for explanation" in choice.describe()

    pricier = _fit(_booster(63, 20), close.valid_raw)  # as good, but more leaves to walk
    kept, choice = choose_shape(default, pricier, y)
    assert kept is default and not choice.shaped and "more to explain" in choice.describe()

    kept, choice = choose_shape(default, worse, y)
    assert kept is default and not choice.shaped
    assert choice.auc[1] < choice.auc[0] - SHAPE_TOLERANCE
    assert choice.describe().startswith("default shape")
    assert choice.record()["shaped"] == 0.0 and choice.record()["shaped_valid_roc_auc"] == choice.auc[1]


def test_the_shape_never_takes_a_smaller_step_than_the_default() -> None:
    assert shaped_params({**DEFAULT_PARAMS, "learning_rate": 0.05})["learning_rate"] == EXPLAIN_SHAPE["learning_rate"]
    assert shaped_params({**DEFAULT_PARAMS, "learning_rate": 0.3})["learning_rate"] == 0.3
    assert shaped_params(DEFAULT_PARAMS)["num_leaves"] == EXPLAIN_SHAPE["num_leaves"]


def test_the_shape_is_tried_below_large_data_and_unless_the_caller_set_it() -> None:
    assert worth_trying(DEFAULT_PARAMS, None, LARGE_DATA_ROWS - 1)
    assert not worth_trying(DEFAULT_PARAMS, None, LARGE_DATA_ROWS)  # the default steps at 0.1 there already
    assert not worth_trying(DEFAULT_PARAMS, {"num_leaves": 31}, 1_000)
    assert not worth_trying(shaped_params(DEFAULT_PARAMS), None, 1_000)  # nothing to compare


@pytest.fixture(scope="module")
def leads():
    schema = bundled_schema()
    frame = generate(quarters=4, leads_per_quarter=1500, seed=5).leads
    frame = frame.sort_values(schema.created_at, kind="stable").reset_index(drop=True)
    return schema, frame, labels(frame, schema)


def test_training_tries_the_shape_and_serves_what_it_kept(leads) -> None:
    schema, frame, y = leads
    n = 4500
    recipe, chooser = choose_recipe(frame.iloc[:n], y[:n], frame.iloc[n:], y[n:], schema)
    shape = recipe.shape
    assert shape is not None
    assert shape.leaf_path_cost[1] < shape.leaf_path_cost[0]  # smaller trees, shorter paths
    kept = EXPLAIN_SHAPE["num_leaves"] if shape.shaped else DEFAULT_PARAMS["num_leaves"]
    assert recipe.params["num_leaves"] == kept
    assert chooser.booster is not None and leaf_path_cost(chooser.booster) == shape.leaf_path_cost[int(shape.shaped)]
    within = shape.auc[1] >= shape.auc[0] - SHAPE_TOLERANCE and shape.log_loss[1] <= shape.log_loss[0] + SHAPE_TOLERANCE
    assert shape.shaped == within


def test_a_shape_the_caller_set_or_an_untrusted_slice_tries_nothing(leads) -> None:
    schema, frame, y = leads
    n = 4500
    recipe, _ = choose_recipe(frame.iloc[:n], y[:n], frame.iloc[n:], y[n:], schema, params={"num_leaves": 31})
    assert recipe.shape is None and recipe.params["num_leaves"] == 31
    backwards = 1 - y[n:]
    recipe, _ = choose_recipe(frame.iloc[:n], y[:n], frame.iloc[n:], backwards, schema)
    assert recipe.shape is None and recipe.params["num_leaves"] == DEFAULT_PARAMS["num_leaves"]


def test_earlier_rolling_origin_slices_are_judged_with_the_newest() -> None:
    """A last slice that cannot tell the shapes apart does not outvote earlier slices that could."""
    rng = np.random.default_rng(1)
    signal = rng.normal(size=4000)
    y = (signal + rng.logistic(size=4000) > 1.5).astype(int)
    default = _fit(_booster(31, 20), signal)
    close = _fit(_booster(7, 20), signal + rng.normal(scale=0.02, size=len(y)))
    _, alone = choose_shape(default, close, y)
    assert alone.shaped and alone.pooled is None and alone.n_valid == 4000
    worse = replace(alone, auc=(0.86, 0.85), log_loss=(0.25, 0.258), n_valid=12_000)  # an earlier, clearer slice
    kept, judged = choose_shape(default, close, y, earlier=(worse,))
    assert kept is default and not judged.shaped and judged.slices == 2
    own_gap = alone.auc[1] - alone.auc[0]
    assert judged.pooled[0] == pytest.approx(0.75 * -0.01 + 0.25 * own_gap)
    assert judged.auc == alone.auc  # the slice's own figures stay as measured
    assert "over the 2 rolling-origin slices so far" in judged.describe()
    assert judged.record()["slices"] == 2.0 and "slices" not in alone.record()
