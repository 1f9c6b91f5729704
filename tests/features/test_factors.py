"""Factor impacts: each factor's features added up, the same numbers whatever the batch."""

from __future__ import annotations

import numpy as np

from features.factors import FACTORS, factor_impacts, factor_matrix


def test_impacts_are_each_factors_features_added_in_column_order_for_any_batch() -> None:
    rng = np.random.default_rng(0)
    factors = [FACTORS[i] for i in rng.integers(0, len(FACTORS) - 1, 24)]  # "other" has no features here
    matrix = factor_matrix(factors)
    contributions = rng.normal(size=(300, 25)) * 10.0 ** rng.integers(-8, 3, size=(300, 25))  # with a bias column
    expected = np.zeros((300, len(FACTORS)))
    for j, factor in enumerate(factors):
        expected[:, FACTORS.index(factor)] += contributions[:, j]
    impacts = factor_impacts(contributions, matrix)
    np.testing.assert_array_equal(impacts, expected)
    for rows in (slice(0, 1), slice(5, 12), slice(40, 48), slice(100, 300)):  # one lead, a few, more
        np.testing.assert_array_equal(factor_impacts(contributions[rows], matrix), expected[rows])
    assert (impacts[:, FACTORS.index("other")] == 0.0).all()
    assert factor_impacts(contributions[:0], matrix).shape == (0, len(FACTORS))
