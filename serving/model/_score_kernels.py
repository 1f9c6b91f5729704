"""The numba kernel behind `Scorer.score`'s numbers after the trees (imported lazily, like _forest_kernels).

Why: on one lead the logistic model's terms, the blend, the factor sums and the sorts were some forty
numpy calls on one-row arrays, more CPU than the trees' TreeSHAP. Here they are one call, each lead
computed by the same scalar loop whatever else is in its batch, so a lead's answer does not depend on
its batch by construction (one lead and a chunk of 1,024 run this very code).

The logistic terms are `serving.model.linear`'s definition (`standardise`) in scalar form: the same
operations in the same order, except that log1p is the C library's, where numpy may use its own SIMD
version, and the terms are summed in column order (numpy sums pairwise). So `Scorer.score` can differ
from `LinearModel.raw` in the last bit (~1e-16 in log-odds), never from itself.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

MODE_LINEAR, MODE_TREES, MODE_BLEND = 0, 1, 2


@njit(cache=True, nogil=True, inline="always")
def _clip(value, low, high):
    """np.minimum(np.maximum(value, low), high) for a value that is not NaN."""
    value = value if value >= low else low
    return value if value <= high else high


@njit(cache=True, nogil=True)
def _linear_terms(
    x,
    out,
    cat_cols,
    cat_levels,
    cat_offset,
    cat_table,
    num_cols,
    num,
    extrapolation,
):
    """out[j] = term_j(x[j]) (`LinearModel.term_values` for one lead). num rows: lo, hi, log, center,
    scale, coef, missing_weight; extrapolation rows: lo_reach, lo_edge, hi_edge, hi_reach (none: empty)."""
    for i in range(cat_cols.shape[0]):
        code = x[cat_cols[i]]
        known = code >= 0.0 and code < cat_levels[i]  # False for NaN: missing and unseen alike
        index = np.int64(code) if known else cat_levels[i]
        out[cat_cols[i]] = cat_table[cat_offset[i] + index]
    reaching = extrapolation.shape[0] > 0
    for i in range(num_cols.shape[0]):
        value = x[num_cols[i]]
        if value != value:
            out[num_cols[i]] = num[6, i]
            continue
        lo, hi = num[0, i], num[1, i]
        if reaching:
            reached = _clip(value, extrapolation[0, i], extrapolation[3, i])
            t = reached - _clip(reached, extrapolation[1, i], extrapolation[2, i]) + _clip(reached, lo, hi)
        else:
            t = _clip(value, lo, hi)
        if num[2, i] != 0.0:
            t = np.sign(t) * math.log1p(abs(t))
        out[num_cols[i]] = num[5, i] * ((t - num[3, i]) / num[4, i])


@njit(cache=True, nogil=True, inline="always")
def _stable_order(values, n, order):
    """order[:n] = the indices of values[:n] by value, ties in index order (np.argsort(kind="stable"))."""
    for i in range(n):
        j = i
        while j > 0 and values[i] < values[order[j - 1]]:
            order[j] = order[j - 1]
            j -= 1
        order[j] = i


@njit(cache=True, nogil=True)
def score_numbers(
    X,
    mode,
    weight,
    trees_raw,
    trees_contrib,
    trees_what_if,
    intercept,
    mean,
    linear_expected,
    cat_cols,
    cat_levels,
    cat_offset,
    cat_table,
    num_cols,
    num,
    extrapolation,
    candidate_columns,
    candidate_codes,
    factor_slots,
    raw,
    contrib,
    impacts,
    calibrate,
    factor_order,
    feature_order,
    same,
):
    """Per lead r: raw score, contributions (features + expected value), factor impacts, the what-ifs'
    raw scores and the sorts the answer needs, from the trees' numbers (mode 1 or 2) and the logistic
    model (mode 0 or 2, blended as weight * trees + (1 - weight) * logistic).

    calibrate gets what one calibration call maps: raw (n), then raw - impact (n x factors), then the
    what-ifs' raw scores (n x candidates). A what-if changes one column, so the logistic model's part
    is the lead's terms with that column's term swapped for the candidate value's.
    Factor impacts are `features.factors.factor_impacts`' sums: each factor's columns in order
    (`factor_slots`, padded with n_features, read as 0.0)."""
    n, n_features = X.shape
    n_factors, width = factor_slots.shape
    n_candidates = candidate_columns.shape[0]
    terms = np.zeros(n_features)
    row = np.zeros(n_features + 1)
    with_linear = mode != MODE_TREES
    candidate_terms = np.zeros(n_candidates)
    if with_linear:  # each candidate value's own term (a term depends on its column only)
        alone = np.full(n_features, np.nan)
        for c in range(n_candidates):
            alone[candidate_columns[c]] = candidate_codes[c]
            _linear_terms(alone, terms, cat_cols, cat_levels, cat_offset, cat_table, num_cols, num, extrapolation)
            candidate_terms[c] = terms[candidate_columns[c]]
            alone[candidate_columns[c]] = np.nan
    for r in range(n):
        x = X[r]
        if with_linear:
            _linear_terms(x, terms, cat_cols, cat_levels, cat_offset, cat_table, num_cols, num, extrapolation)
            total = 0.0
            for j in range(n_features):
                total += terms[j]
            linear_raw = intercept + total
        else:
            linear_raw = 0.0
        if mode == MODE_TREES:
            raw[r] = trees_raw[r]
            for j in range(n_features + 1):
                contrib[r, j] = trees_contrib[r, j]
        elif mode == MODE_LINEAR:
            raw[r] = linear_raw
            for j in range(n_features):
                contrib[r, j] = terms[j] - mean[j]
            contrib[r, n_features] = linear_expected
        else:
            raw[r] = weight * trees_raw[r] + (1.0 - weight) * linear_raw
            for j in range(n_features):
                contrib[r, j] = weight * trees_contrib[r, j] + (1.0 - weight) * (terms[j] - mean[j])
            contrib[r, n_features] = weight * trees_contrib[r, n_features] + (1.0 - weight) * linear_expected
        for j in range(n_features):
            row[j] = contrib[r, j]
        row[n_features] = 0.0
        calibrate[r] = raw[r]
        for k in range(n_factors):
            total = row[factor_slots[k, 0]]
            for s in range(1, width):
                total += row[factor_slots[k, s]]
            impacts[r, k] = total
            calibrate[n + r * n_factors + k] = raw[r] - total
        base = n + n * n_factors + r * n_candidates
        for c in range(n_candidates):
            column = candidate_columns[c]
            if with_linear:
                total = 0.0
                for j in range(n_features):
                    total += candidate_terms[c] if j == column else terms[j]
                linear_what_if = intercept + total
            else:
                linear_what_if = 0.0
            if mode == MODE_TREES:
                calibrate[base + c] = trees_what_if[r, c]
            elif mode == MODE_LINEAR:
                calibrate[base + c] = linear_what_if
            else:
                calibrate[base + c] = weight * trees_what_if[r, c] + (1.0 - weight) * linear_what_if
            same[r, c] = x[column] == candidate_codes[c]
        _stable_order(impacts[r], n_factors, factor_order[r])
        _stable_order(row, n_features, feature_order[r])
