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
    baseline + sum of impacts = raw score. `contributions` may carry pred_contrib's bias column.

    Each sum is taken feature by feature in model column order, the same additions for every lead,
    so a lead's impacts are the same numbers whatever else is in its batch (a matrix product's order
    of additions depends on the batch's shape: one lead and a batch differed in the last bit). A few
    leads are summed in plain Python (numpy's per-call cost would be most of it), more column by column."""
    slots = factor_slots(matrix)
    n_features, width = matrix.shape[0], slots.shape[1]
    if len(contributions) <= _FEW:
        out = []
        for row in contributions[:, :n_features].tolist():
            row.append(0.0)  # the padding slot
            sums = []
            for columns in slots.tolist():
                total = row[columns[0]]
                for j in columns[1:]:
                    total += row[j]
                sums.append(total)
            out.append(sums)
        return np.array(out, dtype=np.float64).reshape(len(contributions), len(slots))
    padded = np.zeros((len(contributions), n_features + 1))  # the last column: 0.0 where a factor has fewer
    padded[:, :n_features] = contributions[:, :n_features]
    gathered = padded[:, slots]  # (leads, factors, most features of any factor)
    out_ = gathered[:, :, 0].copy()
    for s in range(1, width):
        out_ += gathered[:, :, s]
    return out_


_FEW = 8
_SLOTS: dict[bytes, np.ndarray] = {}


def factor_slots(matrix: np.ndarray) -> np.ndarray:
    """The order `factor_impacts` sums in, (n_factors, width): each factor's feature columns in order,
    padded with n_features (read as 0.0)."""
    key = matrix.tobytes() + bytes(str(matrix.shape), "ascii")
    found = _SLOTS.get(key)
    if found is None:
        columns = [np.flatnonzero(matrix[:, k]).tolist() for k in range(matrix.shape[1])]
        width = max(1, *(len(c) for c in columns))
        found = np.array([c + [matrix.shape[0]] * (width - len(c)) for c in columns], dtype=np.intp)
        _SLOTS[key] = found
    return found
