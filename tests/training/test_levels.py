"""A base rate that moves over time belongs to its period, not to the features common in that period."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.encoding import LeadEncoder
from features.schema import LeadSchema
from features.synthetic import PRODUCT, bundled_schema, generate
from features.target import labels
from training.family import LOGISTIC, choose_recipe, fit_components, lightgbm_params, train_booster
from training.levels import own_levels, period_codes, start_score
from training.linear import fit_linear_details


@pytest.fixture(scope="module")
def schema() -> LeadSchema:
    return bundled_schema()


@pytest.fixture(scope="module")
def jump(schema: LeadSchema) -> tuple[pd.DataFrame, np.ndarray]:
    """Six quarters whose last two convert at three times the rate; a product launches in the same two."""
    leads = generate(quarters=6, leads_per_quarter=1500, seed=5, base_rate_shift=3.0).leads
    return leads, labels(leads, schema)


def _product_effect(fit, encoder: LeadEncoder) -> float:
    term = next(t for t in fit.model.terms if t.name == "product_interest")
    weights = dict(zip(encoder.levels_["product_interest"], term.weights, strict=True))
    return weights["ai_assistant"] - weights["analytics"]


def test_a_product_launched_with_a_rate_jump_is_not_credited_with_the_jump(jump, schema) -> None:
    leads, y = jump
    encoder = LeadEncoder(schema).fit(leads)
    X = encoder.transform(leads)
    codes, names = period_codes(leads, schema)
    truth = PRODUCT["ai_assistant"] - PRODUCT["analytics"]  # 0.4 log-odds
    pooled = fit_linear_details(X, y, encoder)
    levelled = fit_linear_details(X, y, encoder, periods=codes)
    assert _product_effect(pooled, encoder) > truth + 0.8  # the jump read as the product's doing
    assert _product_effect(levelled, encoder) == pytest.approx(truth, abs=0.3)
    assert names == sorted(names) and len(names) == 6
    assert levelled.period_offsets[-1] == 0.0 and len(levelled.period_offsets) == 6
    assert levelled.period_offsets[4] - levelled.period_offsets[:4].max() > 1.0  # the jump, in its quarter


def test_the_booster_starts_each_lead_at_its_period_level_and_serves_the_newest(jump, schema) -> None:
    """Exactly LightGBM fitted from each lead's start score, plus that start folded into its first tree."""
    leads, y = jump
    encoder = LeadEncoder(schema).fit(leads)
    X = encoder.transform(leads)
    codes, _ = period_codes(leads, schema)
    offsets = np.linspace(-1.0, 0.0, 6)[codes]
    params = lightgbm_params(schema, encoder, len(X), None, seed=0)
    ours = train_booster(params, X, y, None, encoder, rounds=20, offsets=offsets)
    start = start_score(y, None, offsets)
    data = lgb.Dataset(
        X,
        label=y,
        init_score=start + offsets,
        feature_name=encoder.feature_names,
        categorical_feature=encoder.categorical_indices,
    )
    plain = lgb.train(params, data, num_boost_round=20)
    np.testing.assert_allclose(
        ours.predict(X, raw_score=True), plain.predict(X, raw_score=True) + start, rtol=0, atol=1e-9
    )


def test_periods_need_dates_and_two_quarters(schema) -> None:
    leads = generate(quarters=2, leads_per_quarter=50, seed=1).leads
    codes, names = period_codes(leads, schema)
    assert names == ["2026Q2", "2026Q3"]
    assert codes.tolist() == sorted(codes.tolist())  # the generator's leads are in time order
    one = leads[leads[schema.created_at] >= pd.Timestamp("2026-07-01")]
    assert period_codes(one, schema) is None
    assert period_codes(leads.drop(columns=[schema.created_at]), schema) is None


def test_older_leads_are_read_at_their_own_level(schema) -> None:
    leads = generate(quarters=3, leads_per_quarter=20, seed=1).leads
    levels = {"2026Q1": -1.5, "2026Q2": -0.5, "2026Q3": 0.0}
    expected = leads[schema.created_at].dt.to_period("Q").astype(str).map(levels).to_numpy()
    np.testing.assert_array_equal(own_levels(leads, schema, levels), expected)
    partial = own_levels(leads, schema, {"2026Q1": -1.5})
    assert set(partial[expected != -1.5]) == {0.0}  # quarters the fit did not see read as the newest
    np.testing.assert_array_equal(own_levels(leads, schema, None), np.zeros(len(leads)))


def _unrecorded(seed: int, schema: LeadSchema) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Six steady quarters whose older conversions were mostly never recorded (as in an export that logs
    won deals only from some date on): the quarters' rates climb, for no reason the features carry."""
    leads = generate(quarters=6, leads_per_quarter=1500, seed=seed).leads
    y = labels(leads, schema).copy()
    codes, _ = period_codes(leads, schema)
    lost_share = np.array([0.9, 0.7, 0.5, 0.3, 0.0, 0.0])[codes]
    y[(np.random.default_rng(seed).random(len(y)) < lost_share)] = 0
    return leads, y, codes


def test_levels_the_newest_slice_does_not_ask_for_are_not_fitted(schema) -> None:
    """The older leads' check fires, but levels must also predict the newest slice better; here they
    cannot (the climb is in the labels, not in the leads), so neither the chooser nor the refit has them."""
    leads, y, codes = _unrecorded(5, schema)
    rates = np.bincount(codes, weights=y) / np.bincount(codes)
    assert rates[0] < 0.3 * rates[4]  # the climb the check sees
    older, newest = codes < 5, codes == 5
    recipe, chooser = choose_recipe(leads[older], y[older], leads[newest], y[newest], schema, families=(LOGISTIC,))
    assert recipe.levels is False
    final = fit_components(leads, y, schema, recipe)
    assert final.levels is None


def test_a_jump_only_in_the_newest_quarter_is_left_to_the_refits_check(jump, schema) -> None:
    """When the older leads show nothing to judge, the refit's own check decides (the jump is in its data)."""
    leads, y = jump
    codes, _ = period_codes(leads, schema)
    older, newest = codes < 4, codes == 4
    recipe, _ = choose_recipe(leads[older], y[older], leads[newest], y[newest], schema, families=(LOGISTIC,))
    assert recipe.levels is None
    final = fit_components(leads, y, schema, recipe)
    assert final.levels is not None and final.levels[max(final.levels)] == 0.0
    assert min(final.levels.values()) < -0.8  # the quarters before the jump sit well below the newest
