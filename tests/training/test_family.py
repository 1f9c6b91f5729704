"""The recipe a training run chose, fitted again on every mature lead (training.family)."""

from __future__ import annotations

from features.encoding import LeadEncoder
from features.synthetic import bundled_schema, generate
from features.target import labels
from training.family import Recipe, fit_components, lightgbm_params


def test_the_refit_learns_at_the_rate_its_rounds_were_counted_at(monkeypatch) -> None:
    """An export whose evaluation fit is below LARGE_DATA_ROWS and whose refit is above it: the refit
    must keep the recipe's learning rate, or the scaled rounds would learn twice as far."""
    import training.family as family  # the module whose size_params the refit reads

    schema = bundled_schema()
    leads = generate(quarters=4, leads_per_quarter=500, seed=3).leads
    y = labels(leads, schema)
    params = lightgbm_params(schema, LeadEncoder(schema).fit(leads), len(leads), None, seed=0)
    assert params["learning_rate"] == 0.05
    recipe = Recipe(rounds=20, n_rows_chosen=len(leads), C=1.0, tree_weight=1.0, params=params)
    monkeypatch.setattr(family, "size_params", lambda n_rows: {"num_threads": 0, "learning_rate": 0.1})
    booster = fit_components(leads, y, schema, recipe).booster
    assert booster is not None
    assert float(booster.params["learning_rate"]) == 0.05


def test_the_learning_rate_steps_up_with_the_evaluation_fit_size() -> None:
    """The rates the README's full-size figures were measured with; one thread only for small data."""
    from training.model import HUGE_DATA_ROWS, LARGE_DATA_ROWS, SMALL_DATA_ROWS, size_params

    assert size_params(SMALL_DATA_ROWS - 1) == {"num_threads": 1}
    assert size_params(LARGE_DATA_ROWS - 1) == {"num_threads": 0}
    assert size_params(LARGE_DATA_ROWS)["learning_rate"] == 0.1
    assert size_params(HUGE_DATA_ROWS - 1)["learning_rate"] == 0.1
    assert size_params(HUGE_DATA_ROWS)["learning_rate"] == 0.15
