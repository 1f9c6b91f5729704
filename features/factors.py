"""The quality-factor vocabulary: the words sales and marketing share to say why a lead is weak."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

Factor = Literal["icp_fit", "readiness", "contactability", "timeline", "authority", "product_fit", "other"]
"""A quality factor key: the type a schema's `factor:` must have."""

FACTORS: tuple[str, ...] = get_args(Factor)

FACTOR_LABELS: dict[str, str] = {
    "icp_fit": "Ideal-customer fit",
    "readiness": "Buying readiness",
    "contactability": "Contact data",
    "timeline": "Decision timeline",
    "authority": "Decision authority",
    "product_fit": "Product fit",
    "other": "Other",
}

if tuple(FACTOR_LABELS) != FACTORS:  # pragma: no cover - a programming error, caught at import
    raise RuntimeError("FACTOR_LABELS must label every Factor, in the same order")


def factor_matrix(factor_of_feature: Sequence[str]) -> np.ndarray:
    """(n_features, n_factors) 0/1 matrix, given each feature's factor in model column order."""
    matrix = np.zeros((len(factor_of_feature), len(FACTORS)), dtype=np.float64)
    for j, factor in enumerate(factor_of_feature):
        matrix[j, FACTORS.index(factor)] = 1.0
    return matrix


def factor_impacts(contributions: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Per-lead factor impacts in log-odds: the sum of each factor's feature contributions, so
    baseline + sum of impacts = raw score. `contributions` may carry pred_contrib's bias column."""
    return contributions[:, : matrix.shape[0]] @ matrix
