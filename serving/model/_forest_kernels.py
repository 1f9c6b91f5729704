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


BLOCK = 512  # leads explained together in `contributions`: each leaf's table is read once per block


@njit(cache=True, nogil=True, inline="always")
def _leaf_shares(u, k, s0, value, slot_zero, quad_x, quad_w, g, shares):
    """shares[s] for s < k: a leaf's exact TreeSHAP share of its path slot s for a lead satisfying the
    slots in the bit mask u (Gauss-Legendre, k // 2 + 1 points); the one definition the tables and the
    leaves without a table both use. g is scratch of quad_x.shape[1]."""
    n = k // 2 + 1
    for p in range(n):
        g[p] = quad_w[k, p]
    scale = value
    for s in range(k):
        z = slot_zero[s0 + s]
        sat = (u >> s) & 1
        scale *= 1.0 if sat else z
        for p in range(n):
            xp = quad_x[k, p]
            g[p] *= xp + z * (1.0 - xp) if sat else 1.0 - xp
    off = 0.0
    for p in range(n):
        off += g[p] / (1.0 - quad_x[k, p])
    off *= -scale
    for s in range(k):
        if (u >> s) & 1:
            z = slot_zero[s0 + s]
            acc = 0.0
            for p in range(n):
                xp = quad_x[k, p]
                acc += g[p] / (xp + z * (1.0 - xp))
            shares[s] = scale * (1.0 - z) * acc
        else:
            shares[s] = off


@njit(cache=True, nogil=True)
def build_tables(leaf_k, leaf_slot_start, leaf_value, slot_zero, leaf_table, table, quad_x, quad_w):
    """Fill table[leaf_table[leaf] + u * k + s]: the leaf's share of its slot s's feature for a lead
    that satisfies exactly the path slots in the bit mask u (see serving.model.forest)."""
    g = np.empty(quad_x.shape[1])
    for leaf in range(leaf_k.shape[0]):
        t0 = leaf_table[leaf]
        k = leaf_k[leaf]
        if t0 < 0 or k == 0:
            continue
        s0 = leaf_slot_start[leaf]
        for u in range(1 << k):
            row = t0 + u * k
            _leaf_shares(u, k, s0, leaf_value[leaf], slot_zero, quad_x, quad_w, g, table[row : row + k])


@njit(cache=True, nogil=True)
def contributions(
    X,
    out,
    raw,
    feature,
    threshold,
    categorical,
    missing,
    default_left,
    cat_start,
    cat_words,
    cat_bits,
    tree_node_start,
    tree_edge_start,
    tree_leaf_start,
    edge_node,
    edge_left,
    edge_slot,
    edge_depth,
    edge_dest,
    leaf_k,
    leaf_slot_start,
    leaf_value,
    slot_feature,
    slot_zero,
    leaf_table,
    table,
    quad_x,
    quad_w,
    expected_value,
    tree_bits,
):
    """TreeSHAP for a block of up to BLOCK leads at a time, one tree at a time.

    Per tree: every lead's decision at every node; then the edges in preorder give each leaf's mask
    u of the path slots the lead satisfies (a slot's bit is cleared on the first edge the lead does not
    follow); then each leaf adds its table row for u, or, for a leaf without a table (more than K
    path features), computes the quadrature of `build_tables` for the block's leads. All scratch is
    [row, lead] so the inner loops run over the block's leads (the decisions and masks as vector code).
    """
    B = BLOCK
    n_rows, n_features = X.shape
    n_trees = tree_node_start.shape[0] - 1
    max_nodes = 1
    max_leaves = 1
    for t in range(n_trees):
        max_nodes = max(max_nodes, tree_node_start[t + 1] - tree_node_start[t])
        max_leaves = max(max_leaves, tree_leaf_start[t + 1] - tree_leaf_start[t])
    max_k = quad_x.shape[0]
    n_points = quad_x.shape[1]
    left = np.zeros((max_nodes, B), dtype=np.int64)
    masks = np.empty((max_nodes + 2, B), dtype=np.int64)  # one row per depth
    U = np.zeros((max_leaves + 1, B), dtype=np.int64)  # the last row takes the edges into internal nodes
    rows = np.zeros(B, dtype=np.uint64)  # unsigned: no negative-index wrap-around in the look-up loop
    ok = np.empty((max_k, B))
    run = np.empty((n_points, B))
    scale = np.empty(B)
    acc = np.empty(B)
    XT = np.zeros((n_features, B))
    sums = np.empty((n_features, B))
    score = np.empty(B)
    decided = np.zeros(B, dtype=np.int64)
    with_bits = tree_bits.shape[1] > 0
    masks[0, :] = -1
    for r0 in range(0, n_rows, B):
        width = min(B, n_rows - r0)
        for b in range(width):
            for f in range(n_features):
                XT[f, b] = X[r0 + b, f]
        sums[:, :] = 0.0
        score[:] = 0.0
        for t in range(n_trees):
            n0 = tree_node_start[t]
            for m in range(n0, tree_node_start[t + 1]):  # decisions, numeric ones by missing type
                xs = XT[feature[m]]
                lm = left[m - n0]
                if categorical[m]:
                    for b in range(width):
                        code = _category_code(xs[b])
                        word = code >> 5
                        bits = cat_bits[cat_start[m] + word] if code >= 0 and word < cat_words[m] else 0
                        lm[b] = (bits >> (code & 31)) & 1
                    continue
                kind = missing[m]
                th = threshold[m]
                dl = default_left[m] == 1
                if kind == 2:
                    for b in range(width):
                        value = xs[b]
                        lm[b] = dl if value != value else value <= th
                elif kind == 1:
                    for b in range(width):
                        value = xs[b]
                        v = 0.0 if value != value else value
                        lm[b] = dl if -_ZERO <= v <= _ZERO else v <= th
                else:
                    for b in range(width):
                        value = xs[b]
                        lm[b] = (0.0 if value != value else value) <= th
            if with_bits:  # the decisions as one word per lead, for the what-ifs (see what_if_raw)
                decided[:] = 0
                for m in range(n0, tree_node_start[t + 1]):
                    lm = left[m - n0]
                    shift = m - n0
                    for b in range(width):
                        decided[b] |= lm[b] << shift
                for b in range(width):
                    tree_bits[r0 + b, t] = decided[b]
            for e in range(tree_edge_start[t], tree_edge_start[t + 1]):  # satisfied-slot masks
                went = left[edge_node[e] - n0]
                want = np.int64(edge_left[e])
                s = edge_slot[e]
                above = masks[edge_depth[e]]
                below = masks[edge_depth[e] + 1]
                dest = U[edge_dest[e]]
                for b in range(width):
                    mk = above[b] & ~((went[b] ^ want) << s)
                    below[b] = mk
                    dest[b] = mk
            l0 = tree_leaf_start[t]
            for leaf in range(l0, tree_leaf_start[t + 1]):
                k = leaf_k[leaf]
                low = (np.int64(1) << k) - 1
                ul = U[leaf - l0]
                value = leaf_value[leaf]
                for b in range(width):  # the leaf the lead reaches satisfies all its path: its raw score
                    score[b] += value if ul[b] & low == low else 0.0
                if k == 0:
                    continue
                s0 = leaf_slot_start[leaf]
                t0 = leaf_table[leaf]
                if t0 >= 0:
                    for b in range(width):
                        rows[b] = np.uint64(t0 + (ul[b] & low) * k)
                    for s in range(k):
                        into = sums[slot_feature[s0 + s]]
                        us = np.uint64(s)
                        for b in range(width):
                            into[b] += table[rows[b] + us]
                    continue
                n = k // 2 + 1  # no table: the quadrature, for the block's leads at once
                for p in range(n):
                    w = quad_w[k, p]
                    for b in range(width):
                        run[p, b] = w
                v = leaf_value[leaf]
                for b in range(width):
                    scale[b] = v
                for s in range(k):
                    z = slot_zero[s0 + s]
                    sat = ok[s]
                    for b in range(width):
                        sat[b] = (ul[b] >> s) & 1
                        scale[b] *= 1.0 if sat[b] else z
                    for p in range(n):
                        xp = quad_x[k, p]
                        q = 1.0 - xp
                        h = xp + z * q
                        rp = run[p]
                        for b in range(width):
                            rp[b] *= h if sat[b] else q
                for s in range(k):
                    z = slot_zero[s0 + s]
                    sat = ok[s]
                    for b in range(width):
                        acc[b] = 0.0
                    for p in range(n):
                        xp = quad_x[k, p]
                        ih = 1.0 / (xp + z * (1.0 - xp))
                        iq = 1.0 / (1.0 - xp)
                        rp = run[p]
                        for b in range(width):
                            acc[b] += rp[b] * (ih if sat[b] else iq)
                    c_in = 1.0 - z
                    into = sums[slot_feature[s0 + s]]
                    for b in range(width):
                        into[b] += scale[b] * acc[b] * (c_in if sat[b] else -1.0)
        for b in range(width):
            for f in range(n_features):
                out[r0 + b, f] = sums[f, b]
            out[r0 + b, n_features] = expected_value
            raw[r0 + b] = score[b]


@njit(cache=True, nogil=True, inline="always")
def _goes_left(value, m, threshold, categorical, missing, default_left, cat_start, cat_words, cat_bits):
    """Node m's decision for one lead, as `_numeric_left` and `_category_code` decide it, written with
    selects instead of branches: whether a value is missing is the lead's, not the node's, so a branch
    on it mispredicts (a loop over all 3,300 nodes of the demo model took 2.5-3x longer with branches,
    and `contributions_rows` for one lead ~1.7x longer)."""
    if categorical[m]:
        known = value >= 0.0
        code = np.int64(value) if known else np.int64(0)
        word = code >> 5
        ok = known & (word < cat_words[m])
        return ok & (((cat_bits[cat_start[m] + (word if ok else 0)] >> (code & 31)) & 1) == 1)
    nan = value != value
    v = 0.0 if nan else value
    kind = missing[m]
    default = default_left[m] == 1
    th = threshold[m]  # loaded before the select: a load inside it compiles to a branch
    zero = (kind == 1) & (v >= -_ZERO) & (v <= _ZERO)
    use_default = (nan & (kind == 2)) | zero
    return default if use_default else v <= th


@njit(cache=True, nogil=True)
def _decide_all(x, nodes, out, feature, threshold, categorical, missing, default_left, cat_start, cat_words, cat_bits):
    """out[m] = 1 when the lead goes left at node m, for the nodes listed (numeric and categorical apart,
    so the branch on the node's kind stays predictable)."""
    for i in range(nodes.shape[0]):
        m = nodes[i]
        value = x[feature[m]]
        out[m] = _goes_left(value, m, threshold, categorical, missing, default_left, cat_start, cat_words, cat_bits)


@njit(cache=True, nogil=True)
def contributions_rows(
    X,
    out,
    raw,
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
    edge_node,
    edge_left,
    edge_slot,
    edge_depth,
    edge_leaf,
    leaf_k,
    leaf_slot_start,
    leaf_value,
    slot_feature,
    slot_zero,
    leaf_table,
    table,
    quad_x,
    quad_w,
    expected_value,
    tree_node_start,
    tree_bits,
):
    """The same for one lead at a time (a request's lead): no block to fill, scalar loops; the edges
    of all trees in one pass (edge_leaf is the global leaf, or the last entry of `mask_of` for an
    edge into an internal node)."""
    n_features = X.shape[1]
    n_leaves = leaf_k.shape[0]
    left_at = np.zeros(feature.shape[0], dtype=np.uint8)
    masks = np.empty(feature.shape[0] + 2, dtype=np.int64)
    mask_of = np.zeros(n_leaves + 1, dtype=np.int64)
    g = np.empty(quad_x.shape[1])
    shares = np.empty(64)  # one leaf's shares; paths have at most 62 slots (the int64 masks)
    masks[0] = -1
    for r in range(X.shape[0]):
        x = X[r]
        for nodes in (numeric_nodes, categorical_nodes):  # apart: the branch on a node's kind stays predictable
            _decide_all(
                x,
                nodes,
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
        for t in range(tree_bits.shape[1]):  # the decisions as one word per tree, for the what-ifs
            n0 = tree_node_start[t]
            bits = np.int64(0)
            for m in range(n0, tree_node_start[t + 1]):
                bits |= np.int64(left_at[m]) << (m - n0)
            tree_bits[r, t] = bits
        for e in range(edge_node.shape[0]):
            d = edge_depth[e]
            mk = masks[d] & ~(np.int64(left_at[edge_node[e]] ^ edge_left[e]) << edge_slot[e])
            masks[d + 1] = mk
            mask_of[edge_leaf[e]] = mk
        score = 0.0
        for leaf in range(n_leaves):
            k = leaf_k[leaf]
            s0 = leaf_slot_start[leaf]
            low = (np.int64(1) << k) - 1
            u = mask_of[leaf] & low
            score += leaf_value[leaf] if u == low else 0.0
            t0 = leaf_table[leaf]
            if t0 >= 0:
                row = t0 + u * k
                for s in range(k):
                    out[r, slot_feature[s0 + s]] += table[row + s]
                continue
            _leaf_shares(u, k, s0, leaf_value[leaf], slot_zero, quad_x, quad_w, g, shares)
            for s in range(k):
                out[r, slot_feature[s0 + s]] += shares[s]
        out[r, n_features] = expected_value
        raw[r] = score


@njit(cache=True, nogil=True)
def what_if_raw(tree_bits, change_mask, change_bits, out, tree_leaf_start, leaf_care, leaf_want, leaf_value):
    """out[r, c]: lead r's raw score after change c (one feature column set to one value).

    tree_bits[r, t] holds lead r's decisions at tree t's nodes (bit m - the tree's first node), written
    by the TreeSHAP kernels, which decide every node anyway. A leaf is reached when the decisions on its
    path match (leaf_care: its path's nodes, leaf_want: its left turns), so no walk and no mispredicted
    branch. Change c alters only the decisions of the nodes on its column: change_mask[c, t] are those
    nodes of tree t, change_bits[c, t] their decisions for the new value. Where no node on the lead's
    own path decides otherwise, that path still matches: the lead keeps its leaf, no scan (a fifth
    less time for the demo model's what-ifs in a block). The sums run over the trees in order from
    0.0, as in `raw_scores`: each value equals `raw_scores` of the changed row."""
    n_changes = change_mask.shape[0]
    acc = np.empty(n_changes)
    for r in range(tree_bits.shape[0]):
        acc[:] = 0.0
        for t in range(tree_bits.shape[1]):
            bits = tree_bits[r, t]
            l0, l1 = tree_leaf_start[t], tree_leaf_start[t + 1]
            reached = _reached(bits, l0, l1, leaf_care, leaf_want)
            own, path = leaf_value[reached], leaf_care[reached]
            for c in range(n_changes):
                moved = (bits & ~change_mask[c, t]) | change_bits[c, t]
                if (moved ^ bits) & path == 0:  # no decision on the lead's path changed: still its leaf
                    acc[c] += own
                    continue
                acc[c] += leaf_value[_reached(moved, l0, l1, leaf_care, leaf_want)]
        for c in range(n_changes):
            out[r, c] = acc[c]


@njit(cache=True, nogil=True, inline="always")
def _reached(bits, l0, l1, leaf_care, leaf_want):
    """The leaf among l0..l1-1 whose path the decisions in `bits` follow. Exactly one does, so the sum of
    the matching indices is it: an integer sum the compiler vectorises (a select per leaf, each waiting
    on the one before, took 16 µs per lead for the demo model's what-ifs, this 12)."""
    found = 0
    for leaf in range(l0, l1):
        found += leaf if bits & leaf_care[leaf] == leaf_want[leaf] else 0
    return found
