"""The numba kernels behind serving.model.forest (imported lazily: importing compiles or loads the cache).

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
def raw_scores(
    X,
    out,
    feature,
    threshold,
    categorical,
    missing,
    default_left,
    left,
    right,
    cat_start,
    cat_words,
    cat_bits,
    tree_root,
    leaf_value,
):
    for r in range(X.shape[0]):
        total = 0.0
        for t in range(tree_root.shape[0]):
            node = tree_root[t]
            while node >= 0:
                value = X[r, feature[node]]
                if categorical[node]:
                    code = _category_code(value)
                    word = code >> 5
                    go = (
                        code >= 0
                        and word < cat_words[node]
                        and (cat_bits[cat_start[node] + word] >> (code & 31)) & 1 == 1
                    )
                else:
                    go = _numeric_left(value, missing[node], default_left[node], threshold[node])
                node = left[node] if go else right[node]
            total += leaf_value[~node]
        out[r] = total


BLOCK = 8  # leads explained together: one AVX-512 vector (two AVX2 ones) of float64 per step


@njit(cache=True, nogil=True)
def _decide_block(
    XT, width, left, feature, threshold, categorical, missing, default_left, cat_start, cat_words, cat_bits
):
    """left[m * BLOCK + b] = 1 when lead b goes left at node m. XT[f * BLOCK + b] is the block transposed,
    so the numeric nodes' loop over the block's leads runs as vector code."""
    for m in range(feature.shape[0]):
        f = feature[m] * BLOCK
        o = m * BLOCK
        if categorical[m]:
            for b in range(width):
                code = _category_code(XT[f + b])
                word = code >> 5
                go = code >= 0 and word < cat_words[m] and (cat_bits[cat_start[m] + word] >> (code & 31)) & 1 == 1
                left[o + b] = 1 if go else 0
            continue
        kind = missing[m]
        t = threshold[m]
        dl = default_left[m] == 1
        for b in range(width):
            value = XT[f + b]
            nan = value != value
            if kind == 2:
                go = dl if nan else value <= t
            else:
                v = 0.0 if nan else value
                go = dl if (kind == 1 and -_ZERO <= v <= _ZERO) else v <= t
            left[o + b] = 1 if go else 0


@njit(cache=True, nogil=True)
def contributions(
    X,
    out,
    feature,
    threshold,
    categorical,
    missing,
    default_left,
    cat_start,
    cat_words,
    cat_bits,
    path_value,
    slot_start,
    slot_feature,
    slot_zero,
    slot_cond,
    cond_node,
    cond_left,
    slot_inv,
    quad_x,
    quad_w,
    quad_inv,
    expected_value,
):
    """Path-dependent TreeSHAP, one leaf path at a time for a block of leads at once.

    For a leaf with k path features, lead-specific factor g_j(x) = x + z_j (1 - x) when the lead
    satisfies feature j's conditions on the path, else (1 - x), and G = prod_j g_j, feature i gets

        value * prod_{j unsatisfied} z_j * c_i * integral over [0, 1] of G(x) / g_i(x)

    with c_i = 1 - z_i if satisfied, else -1. G / g_i is a polynomial of degree k - 1, integrated
    exactly by the k // 2 + 1 point Gauss-Legendre rule quad_x[k], quad_w[k]; the divisions are
    products with the stored inverses slot_inv (1 / (x + z (1 - x)) per slot and point) and
    quad_inv (1 / (1 - x)). Every step is a select or a product over the block's leads, no branch;
    scratch arrays are flat ([row * BLOCK + lead]). Against one lead at a time with a forward and a
    backward product per path (the previous kernel) this halves the time per lead.
    """
    n_rows, n_features = X.shape
    n_points = quad_x.shape[1]
    max_k = quad_x.shape[0]
    left = np.zeros(feature.shape[0] * BLOCK, dtype=np.uint8)
    ok = np.empty(max_k * BLOCK, dtype=np.uint8)
    run = np.empty(n_points * BLOCK)
    acc = np.empty(BLOCK)
    scale = np.empty(BLOCK)
    XT = np.zeros(n_features * BLOCK)
    sums = np.empty(n_features * BLOCK)
    for r0 in range(0, n_rows, BLOCK):
        width = min(BLOCK, n_rows - r0)
        for b in range(width):
            for f in range(n_features):
                XT[f * BLOCK + b] = X[r0 + b, f]
        _decide_block(
            XT, width, left, feature, threshold, categorical, missing, default_left, cat_start, cat_words, cat_bits
        )
        sums[:] = 0.0
        for leaf in range(path_value.shape[0]):
            s0 = slot_start[leaf]
            k = slot_start[leaf + 1] - s0
            n = k // 2 + 1
            for p in range(n):
                w = quad_w[k, p]
                for b in range(width):
                    run[p * BLOCK + b] = w
            v = path_value[leaf]
            for b in range(width):
                scale[b] = v
            for s in range(k):  # forward: which features the leads satisfy, and G at the points
                slot = s0 + s
                o = s * BLOCK
                for b in range(width):
                    ok[o + b] = 1
                for c in range(slot_cond[slot], slot_cond[slot + 1]):
                    node = cond_node[c] * BLOCK
                    want = cond_left[c]
                    for b in range(width):
                        ok[o + b] &= left[node + b] == want
                z = slot_zero[slot]
                for b in range(width):
                    scale[b] *= 1.0 if ok[o + b] else z
                for p in range(n):
                    xp = quad_x[k, p]
                    q = 1.0 - xp
                    h = xp + z * q
                    for b in range(width):
                        run[p * BLOCK + b] *= h if ok[o + b] else q
            for s in range(k):  # backward: G / g_i for each path feature
                slot = s0 + s
                o = s * BLOCK
                inv0 = slot * n_points
                for b in range(width):
                    acc[b] = 0.0
                for p in range(n):
                    ih = slot_inv[inv0 + p]
                    iq = quad_inv[k, p]
                    for b in range(width):
                        acc[b] += run[p * BLOCK + b] * (ih if ok[o + b] else iq)
                c_in = 1.0 - slot_zero[slot]
                f = slot_feature[slot] * BLOCK
                for b in range(width):
                    sums[f + b] += scale[b] * acc[b] * (c_in if ok[o + b] else -1.0)
        for b in range(width):
            for f in range(n_features):
                out[r0 + b, f] = sums[f * BLOCK + b]
            out[r0 + b, n_features] = expected_value


@njit(cache=True, nogil=True)
def _decide_all(x, nodes, out, feature, threshold, categorical, missing, default_left, cat_start, cat_words, cat_bits):
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
def contributions_rows(
    X,
    out,
    feature,
    threshold,
    categorical,
    missing,
    default_left,
    cat_start,
    cat_words,
    cat_bits,
    numeric_nodes,
    categorical_nodes,
    path_value,
    slot_start,
    slot_feature,
    slot_zero,
    cond_slot,
    cond_node,
    cond_left,
    quad_x,
    quad_w,
    quad_pow,
    expected_value,
):
    """Path-dependent TreeSHAP for one lead at a time (a request's lead), one leaf path at a time, with
    the Shapley sums as exact quadratures. For eight leads or more `contributions` is twice as fast.

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
        _decide_all(
            x,
            numeric_nodes,
            left_at,
            feature,
            threshold,
            categorical,
            missing,
            default_left,
            cat_start,
            cat_words,
            cat_bits,
        )
        _decide_all(
            x,
            categorical_nodes,
            left_at,
            feature,
            threshold,
            categorical,
            missing,
            default_left,
            cat_start,
            cat_words,
            cat_bits,
        )
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
