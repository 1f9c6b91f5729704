"""The numba kernels behind serving.forest (imported lazily: importing compiles or loads the cache).

Decisions replay LightGBM's Tree::NumericalDecision and Tree::CategoricalDecision exactly.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_ZERO = 1e-35


@njit(cache=True, nogil=True, inline="always")
def _numeric_left(value, kind, default_left, threshold):
    """Tree::NumericalDecision. Scalars only: passing arrays to a helper costs refcounting per call."""
    if kind == 2:
        if np.isnan(value):
            return default_left == 1
        return value <= threshold
    if np.isnan(value):
        value = 0.0
    if kind == 1 and -_ZERO <= value <= _ZERO:
        return default_left == 1
    return value <= threshold


@njit(cache=True, nogil=True, inline="always")
def _category_code(value):
    """Tree::CategoricalDecision sends NaN and negatives right; -1 stands for that."""
    if not value >= 0.0:
        return -1
    return np.int64(value)


@njit(cache=True, nogil=True)
def raw_scores(X, out, feature, threshold, categorical, missing, default_left, left, right, cat_start, cat_words,
               cat_bits, tree_root, leaf_value):
    for r in range(X.shape[0]):
        total = 0.0
        for t in range(tree_root.shape[0]):
            node = tree_root[t]
            while node >= 0:
                value = X[r, feature[node]]
                if categorical[node]:
                    code = _category_code(value)
                    word = code >> 5
                    go = (code >= 0 and word < cat_words[node]
                          and (cat_bits[cat_start[node] + word] >> (code & 31)) & 1 == 1)
                else:
                    go = _numeric_left(value, missing[node], default_left[node], threshold[node])
                node = left[node] if go else right[node]
            total += leaf_value[~node]
        out[r] = total


@njit(cache=True, nogil=True)
def _decide_all(x, nodes, out, feature, threshold, categorical, missing, default_left, cat_start, cat_words,
                cat_bits):
    """out[m] = 1 when the lead goes left at node m, for the nodes listed (numeric and categorical apart,
    so the branch on the node's kind stays predictable)."""
    for i in range(nodes.shape[0]):
        m = nodes[i]
        value = x[feature[m]]
        if categorical[m]:
            code = _category_code(value)
            word = code >> 5
            go = code >= 0 and word < cat_words[m] and (cat_bits[cat_start[m] + word] >> (code & 31)) & 1 == 1
        else:
            go = _numeric_left(value, missing[m], default_left[m], threshold[m])
        out[m] = 1 if go else 0


@njit(cache=True, nogil=True)
def contributions(X, out, feature, threshold, categorical, missing, default_left, cat_start, cat_words, cat_bits,
                  numeric_nodes, categorical_nodes, path_value, slot_start, slot_feature, slot_zero, cond_slot,
                  cond_node, cond_left, quad_x, quad_w, quad_pow, expected_value):
    """Path-dependent TreeSHAP, one leaf path at a time, with the Shapley sums as exact quadratures.

    Paths are sorted by their number of features k so the loops' trip counts stay predictable;
    everything inside a path is branch-free (mispredicted branches, not arithmetic, were the cost).
    quad_x[k], quad_w[k]: Gauss-Legendre points and weights on [0, 1] for k path features (exact for
    the degree k - 1 integrands); quad_pow[k, p, e] = (1 - quad_x[k, p]) ** e.
    """
    n_features = X.shape[1]
    n_points = quad_x.shape[1]
    max_k = quad_x.shape[0]
    left_at = np.zeros(feature.shape[0], dtype=np.uint8)
    bad = np.empty(slot_zero.shape[0], dtype=np.uint8)
    factor = np.empty((max_k, n_points))
    before = np.empty((max_k, n_points))
    run = np.empty(n_points)
    after = np.empty(n_points)
    w_in = np.empty(n_points)
    for r in range(X.shape[0]):
        x = X[r]
        _decide_all(x, numeric_nodes, left_at, feature, threshold, categorical, missing, default_left, cat_start,
                    cat_words, cat_bits)
        _decide_all(x, categorical_nodes, left_at, feature, threshold, categorical, missing, default_left,
                    cat_start, cat_words, cat_bits)
        bad[:] = 0
        for c in range(cond_node.shape[0]):
            bad[cond_slot[c]] |= left_at[cond_node[c]] ^ cond_left[c]
        for leaf in range(path_value.shape[0]):
            s0 = slot_start[leaf]
            k = slot_start[leaf + 1] - s0
            n = k // 2 + 1
            a = 0
            z_out = 1.0
            for p in range(n):
                run[p] = 1.0
            for s in range(k):  # forward: products of h_j(x) = x + z_j (1 - x) over satisfied j before s
                ok = 1 - bad[s0 + s]
                z = slot_zero[s0 + s]
                for p in range(n):
                    xp = quad_x[k, p]
                    f = xp + z * (1.0 - xp) if ok else 1.0
                    factor[s, p] = f
                    before[s, p] = run[p]
                    run[p] *= f
                a += ok
                z_out *= 1.0 if ok else z
            v = path_value[leaf] * z_out
            off = 0.0
            e_off = k - 1 - a if a < k else 0
            for p in range(n):
                off += quad_w[k, p] * quad_pow[k, p, e_off] * run[p]
                w_in[p] = quad_w[k, p] * quad_pow[k, p, k - a]
                after[p] = 1.0
            off = -v * off if a < k else 0.0
            for s in range(k - 1, -1, -1):  # backward: the product over satisfied j other than s
                acc = 0.0
                for p in range(n):
                    acc += w_in[p] * before[s, p] * after[p]
                    after[p] *= factor[s, p]
                ok = bad[s0 + s] == 0
                out[r, slot_feature[s0 + s]] += v * (1.0 - slot_zero[s0 + s]) * acc if ok else off
        out[r, n_features] = expected_value
