"""Settings move away from their defaults only when the validation leads clearly ask for it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from features.synthetic import bundled_schema, generate
from features.target import labels
from training.evidence import DRIFT_AUC, best_with_evidence, platt_losses, simplest_within_se, trusted_window
from training.family import BLEND_PRIOR, DRIFT_TREE_WEIGHT, choose_recipe, default_rounds, fit_calibrated
from training.linear import C_GRID, DEFAULT_C


def test_platt_losses_are_the_log_loss_of_the_fitted_map_and_ignore_scale() -> None:
    rng = np.random.default_rng(1)
    raw = rng.normal(size=2000)
    y = (rng.random(2000) < 1 / (1 + np.exp(-(0.3 + 1.5 * raw)))).astype(float)
    losses = platt_losses(raw, y)
    p = LogisticRegression(C=1e6).fit(raw.reshape(-1, 1), y).predict_proba(raw.reshape(-1, 1))[:, 1]
    assert losses.shape == (2000,)
    assert losses.mean() == pytest.approx(log_loss(y, p), rel=1e-6)
    assert platt_losses(10 * raw - 4, y).mean() == pytest.approx(losses.mean(), rel=1e-4)


def test_the_prior_stays_on_noise_and_moves_on_a_clear_gain() -> None:
    rng = np.random.default_rng(2)
    base = rng.exponential(0.3, size=1000)
    noise = rng.normal(0, 0.05, size=1000)
    noise -= noise.mean() + 0.001  # better on average by 0.001, with a standard error of 0.0016
    noisy = {"prior": base, "other": base + noise}
    assert best_with_evidence(noisy, "prior") == "prior"
    clear = {"prior": base, "other": base - 0.05 + rng.normal(0, 0.01, size=1000)}
    assert best_with_evidence(clear, "prior") == "other"
    # the prior need not be a candidate; ties go to the first candidate
    assert best_with_evidence({"a": base, "b": base.copy()}, "c") == "a"


def test_the_simplest_candidate_within_one_standard_error_of_the_best() -> None:
    rng = np.random.default_rng(3)
    base = rng.exponential(0.3, size=1000)
    noise = rng.normal(0, 0.05, size=1000)
    noise -= noise.mean() + 0.001  # lower on average by 0.001, with a standard error of 0.0016
    assert simplest_within_se({"simple": base, "rich": base + noise}) == "simple"
    clear = base - 0.05 + rng.normal(0, 0.01, size=1000)
    wobble = rng.normal(0, 0.01, size=1000)
    middle = clear + wobble - wobble.mean() + 0.0002  # above the best by 0.0002, standard error 0.0003
    assert simplest_within_se({"simple": base, "middle": middle, "rich": clear}) == "middle"
    assert simplest_within_se({"simple": base, "rich": clear}) == "rich"


def test_a_validation_slice_without_signal_leaves_every_setting_at_its_default() -> None:
    schema = bundled_schema()
    leads = generate(quarters=4, leads_per_quarter=1500, seed=5).leads
    leads = leads.sort_values(schema.created_at, kind="stable").reset_index(drop=True)
    y = labels(leads, schema)
    n = 4500
    shuffled = np.random.default_rng(0).permutation(y[n:])
    recipe, _ = choose_recipe(leads.iloc[:n], y[:n], leads.iloc[n:], shuffled, schema)
    assert recipe.rounds == default_rounds(recipe.params)
    assert recipe.C == DEFAULT_C
    assert recipe.tree_weight == (DRIFT_TREE_WEIGHT if recipe.drifting else BLEND_PRIOR)


def test_a_window_the_prior_model_ranks_backwards_chooses_nothing() -> None:
    """Under drift the newest slice can be ranked worse than chance by any model of the older leads
    (the bank export: ROC AUC 0.40); its per-lead losses still clear two standard errors for some
    setting by chance, so such a window is no evidence: every setting keeps its prior, and the family
    is the logistic model, which follows values beyond the past's."""
    schema = bundled_schema()
    leads = generate(quarters=4, leads_per_quarter=1500, seed=5).leads
    leads = leads.sort_values(schema.created_at, kind="stable").reset_index(drop=True)
    y = labels(leads, schema)
    n = 4500
    backwards = 1 - y[n:]  # a window whose outcomes run against everything the past taught
    recipe, chooser = choose_recipe(leads.iloc[:n], y[:n], leads.iloc[n:], backwards, schema)
    assert recipe.prior_auc < DRIFT_AUC and recipe.drifting
    assert (recipe.rounds, recipe.C, recipe.tree_weight) == (default_rounds(recipe.params), DEFAULT_C, 0.0)
    assert recipe.family == "logistic" and chooser.booster is None and chooser.linear is not None
    trusted, _ = choose_recipe(leads.iloc[:n], y[:n], leads.iloc[n:], y[n:], schema)
    assert not trusted.drifting and trusted.prior_auc >= DRIFT_AUC and trusted.tree_weight > 0
    assert trusted_window(np.arange(10.0), np.r_[np.zeros(5), np.ones(5)])
    assert not trusted_window(np.arange(10.0), np.r_[np.ones(5), np.zeros(5)])


def test_a_drifting_model_serves_its_own_probabilities() -> None:
    """Under drift no map is fitted on the newest slice (it would bend every score toward a slice unlike
    the past): the logistic model's maximum-likelihood probabilities are served, level and all."""
    schema = bundled_schema()
    leads = generate(quarters=4, leads_per_quarter=1500, seed=5).leads
    leads = leads.sort_values(schema.created_at, kind="stable").reset_index(drop=True)
    y = labels(leads, schema)
    n = 4500
    y[n:] = 1 - y[n:]
    recipe, _ = choose_recipe(leads.iloc[:n], y[:n], leads.iloc[n:], y[n:], schema)
    fitted = fit_calibrated(leads, y, np.arange(n, len(leads)), schema, recipe)
    assert fitted.calibrator.method == "identity"
    assert fitted.components.booster is None and fitted.components.linear is not None
    raw = fitted.components.raw(leads)
    p = fitted.calibrator(raw)
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-raw)), rtol=1e-9)
    assert p.mean() == pytest.approx(y.mean(), abs=0.01)


def test_the_logistic_C_is_judged_over_the_earlier_rolling_origin_slices_too() -> None:
    """choose_recipe pools the earlier folds' per-lead losses by C with its own slice's, and hands its
    own on (`Recipe.C_losses`) for the folds after it."""
    schema = bundled_schema()
    leads = generate(quarters=4, leads_per_quarter=1500, seed=5).leads
    leads = leads.sort_values(schema.created_at, kind="stable").reset_index(drop=True)
    y = labels(leads, schema)
    n = 4500
    alone, _ = choose_recipe(leads.iloc[:n], y[:n], leads.iloc[n:], y[n:], schema, families=("logistic",))
    assert alone.C_losses is not None and set(alone.C_losses) == set(C_GRID)
    assert all(len(v) == len(leads) - n for v in alone.C_losses.values())
    rng = np.random.default_rng(0)
    weakest = max(C_GRID)
    # earlier slices, 20,000 leads in all, on which the weakest regularisation is clearly best
    earlier = tuple(
        {C: rng.exponential(0.3, size=10_000) + (0.0 if weakest == C else 0.05) for C in C_GRID} for _ in range(2)
    )
    assert weakest != alone.C
    pooled, _ = choose_recipe(
        leads.iloc[:n], y[:n], leads.iloc[n:], y[n:], schema, families=("logistic",), earlier_C=earlier
    )
    assert weakest == pooled.C
