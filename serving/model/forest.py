"""LightGBM's trees as flat arrays: raw scores and exact TreeSHAP values, compiled with numba.

Why: `booster.predict` carries ~100 µs of call overhead, so re-scoring a few what-if variants of one
lead through it costs more than the rest of the request; and `pred_contrib` (TreeSHAP) costs ~3 ms
per lead for a 400-tree model on the 2-core box. Here raw scores take ~8 µs per lead and the same
path-dependent TreeSHAP values (tested equal to `pred_contrib` to 1e-9) in about 3% of LightGBM's
CPU time for a batch and 30% for one lead, with the GIL released so two requests explain on two
cores at once.

How: for a leaf with unique path features F (k of them), feature j has a zero fraction z_j (the share
of training leads following the path's edges on j) and a one fraction o_j (1 when this lead follows
all of them). The leaf's share of feature i's SHAP value is

    v * (o_i - z_i) * sum over S in F - {i} of |S|!(k-|S|-1)!/k! * prod_{j in S} o_j * prod_{j not in S, i} z_j

Only satisfied features (o_j = 1) can be in S, and the Shapley weight is a Beta integral, so the sum
is the integral over [0, 1] of (1-x)^(k-a) * prod_{j satisfied, j != i} (x + z_j (1 - x)), a
polynomial of degree k - 1 that a k // 2 + 1 point Gauss-Legendre rule integrates exactly.

The leaf's shares depend on the lead only through the set U of its path features the lead satisfies
(FastTreeSHAP v2's observation), so `Forest.tables` computes them once per leaf for all 2**k subsets
(k * 2**k values) for the leaves with the shortest paths that fit the memory budget; a lead then
costs per leaf its mask U (from the tree's edges in preorder) and k look-ups. Leaves with longer
paths keep the quadrature per lead. For the default model (419 trees, 13k leaf paths of 5.5
features, at most 14) the 64 MiB budget takes every path of up to 9 features (98% of leaves, 57 MiB,
built in ~0.1 CPU-s on first use).

What-ifs (one feature set to one value, re-scored): TreeSHAP decides every node anyway, so its kernels
hand each lead's decisions on as one int64 word per tree; a leaf is reached when its path's bits match,
and a change only replaces the bits of its feature's nodes (`raw_contributions_what_if`). No changed
lead is walked, and the sums are the very ones `raw` makes.

    >>> forest = Forest.from_booster(booster)          # doctest: +SKIP
    >>> forest.contributions(X)                        # (n, n_features + 1), like pred_contrib
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from features.errors import LeadscoreError

_logger = logging.getLogger(__name__)

ZERO_THRESHOLD = 1e-35  # LightGBM's kZeroThreshold
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
_MISSING_CODES = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}
LAYOUT_KEY = "_layout"  # in `Forest.to_arrays`: which code wrote the arrays (see `layout`)
PARALLEL_MIN_ROWS = 2_000
PIECES_PER_THREAD = 4
PIECE_MIN_ROWS = 256
THREADS = os.cpu_count() or 1  # rows are explained on every core by default
BLOCK_MIN_ROWS = 8  # from here on leads are explained a block at a time
MAX_PATH_FEATURES = 62  # a lead's satisfied path features are bits of one int64
TABLE_ENV = "LEADSCORE_SHAP_TABLE_MB"
TABLE_MB = 64  # default memory for the per-leaf TreeSHAP tables


@dataclass(frozen=True)
class Forest:
    """A trained binary LightGBM model, flattened. Internal nodes and leaves are numbered globally."""

    n_features: int
    node_feature: np.ndarray  # int32[M]
    node_threshold: np.ndarray  # float64[M]
    node_categorical: np.ndarray  # uint8[M]
    node_missing: np.ndarray  # int8[M]
    node_default_left: np.ndarray  # uint8[M]
    node_left: np.ndarray  # int32[M]: >= 0 internal node, < 0 ~leaf
    node_right: np.ndarray  # int32[M]
    node_cat_start: np.ndarray  # int32[M] into cat_bits
    node_cat_words: np.ndarray  # int32[M]
    cat_bits: np.ndarray  # int64[...], 32 categories per word
    tree_root: np.ndarray  # int32[T]: >= 0 internal node, < 0 ~leaf (one-leaf tree)
    leaf_value: np.ndarray  # float64[L]
    numeric_nodes: np.ndarray  # int32: the internal nodes with a numeric split
    categorical_nodes: np.ndarray  # int32: the internal nodes with a categorical split
    # Nodes, leaves and edges are numbered tree after tree (each tree's nodes and edges in preorder):
    tree_node_start: np.ndarray  # int32[T + 1]
    tree_leaf_start: np.ndarray  # int32[T + 1]
    tree_edge_start: np.ndarray  # int32[T + 1]
    edge_node: np.ndarray  # int32[E]: the node the edge leaves (two edges per node: left, then right)
    edge_left: np.ndarray  # int64[E]: 1 for the left edge
    edge_slot: np.ndarray  # int64[E]: the slot of the node's feature on every path through the edge
    edge_depth: np.ndarray  # int32[E]: the node's depth
    edge_leaf: np.ndarray  # int32[E]: the leaf it enters, else L
    edge_dest: np.ndarray  # int32[E]: the same within its tree, else the most leaves of any tree
    # Per leaf, its path's unique features ("slots") in the order the path meets them:
    leaf_k: np.ndarray  # int32[L]: how many
    leaf_slot_start: np.ndarray  # int32[L + 1] into slot arrays
    slot_feature: np.ndarray  # int32[S]
    slot_zero: np.ndarray  # float64[S]: share of training leads following the path's edges on it
    quad_x: np.ndarray  # float64[K + 1, N]: Gauss-Legendre points on [0, 1] per path length k
    quad_w: np.ndarray  # float64[K + 1, N]
    expected_value: float

    @classmethod
    def from_booster(cls, booster: Any) -> Forest:
        """Flatten a binary-objective booster; refuses models this module cannot replay exactly."""
        return cls.from_dump(booster.dump_model())

    @classmethod
    def from_model_text(cls, text: str) -> Forest:
        """Flatten LightGBM's text model (`model.txt`) without importing LightGBM (see lightgbm_text)."""
        from serving.model.lightgbm_text import parse_model

        return cls.from_dump(parse_model(text))

    @classmethod
    def from_dump(cls, dump: dict[str, Any]) -> Forest:
        """Flatten `Booster.dump_model()`'s dictionary (or `parse_model`'s, the same shape)."""
        if dump.get("num_tree_per_iteration", 1) != 1:
            raise ValueError("only single-output (binary) models can be flattened")
        if any(t.get("tree_structure", {}).get("leaf_coeff") for t in dump["tree_info"]):
            raise ValueError("linear trees are not supported")
        return _Builder(int(dump["max_feature_idx"]) + 1).build(dump["tree_info"])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every field as an array, plus the layout they follow: what a bundle stores (`np.savez`) so a
        server can skip flattening the text model (~0.3 CPU-s for 400 trees)."""
        out = {f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out[LAYOUT_KEY] = np.array(layout() or "")
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Forest | None:
        """The forest `to_arrays` gave, or None when other code wrote them (the caller then flattens the
        text model, which stays the source of truth). A missing field raises KeyError."""
        if layout() is None or LAYOUT_KEY not in arrays or str(arrays[LAYOUT_KEY]) != layout():
            return None
        scalars: dict[str, Any] = {"n_features": int, "expected_value": float}
        names = [f.name for f in dataclasses.fields(cls)]
        values: dict[str, Any] = {name: scalars.get(name, np.asarray)(arrays[name]) for name in names}
        return cls(**values)

    @property
    def n_trees(self) -> int:
        return len(self.tree_root)

    def raw(self, X: np.ndarray, *, threads: int = THREADS, min_rows: int = PARALLEL_MIN_ROWS) -> np.ndarray:
        """Raw scores (log-odds), equal to `booster.predict(X, raw_score=True)`; from `min_rows` rows on,
        the rows are split over `threads` threads (each row's sum is the same either way)."""
        X = _as_matrix(X, self.n_features)
        out = np.zeros(len(X), dtype=np.float64)
        _in_row_blocks(self._raw_into, X, out, threads=threads if len(X) >= min_rows else 1)
        return out

    def _raw_into(self, X: np.ndarray, out: np.ndarray) -> None:
        _kernels()[0](
            X,
            out,
            self.node_feature,
            self.node_threshold,
            self.node_categorical,
            self.node_missing,
            self.node_default_left,
            self.node_left,
            self.node_right,
            self.node_cat_start,
            self.node_cat_words,
            self.cat_bits,
            self.tree_root,
            self.leaf_value,
        )

    def contributions(self, X: np.ndarray, *, threads: int = THREADS, min_rows: int = PARALLEL_MIN_ROWS) -> np.ndarray:
        """Per-feature SHAP values plus the expected value in the last column, like `pred_contrib`.

        From `min_rows` rows on, the rows are split over `threads` threads.
        """
        return self.raw_and_contributions(X, threads=threads, min_rows=min_rows)[1]

    def raw_and_contributions(
        self, X: np.ndarray, *, threads: int = THREADS, min_rows: int = PARALLEL_MIN_ROWS
    ) -> tuple[np.ndarray, np.ndarray]:
        """`raw(X)` and `contributions(X)` in one pass: the leaf a lead reaches is the one whose path
        it satisfies entirely, so TreeSHAP finds it anyway (the same sum, in the same order: equal)."""
        raw, contrib, _ = self.raw_contributions_what_if(
            X, np.zeros(0, dtype=np.int64), np.zeros(0), threads=threads, min_rows=min_rows
        )
        return raw, contrib

    def raw_contributions_what_if(
        self,
        X: np.ndarray,
        columns: np.ndarray,
        codes: np.ndarray,
        *,
        threads: int = THREADS,
        min_rows: int = PARALLEL_MIN_ROWS,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`raw_and_contributions(X)` and (n_leads, n_changes) raw scores of each lead with column
        `columns[c]` set to `codes[c]`, equal to `raw` of the changed rows.

        A what-if changes one feature, so only the decisions of that feature's nodes change; TreeSHAP
        decides every node anyway and hands its decisions on (one word per lead and tree), so the
        changed leads are never walked (see `_forest_kernels.what_if_raw`). With a tree of over 63
        nodes (one word cannot hold its decisions) the changed rows are scored by `raw` instead."""
        X = _as_matrix(X, self.n_features)
        n, n_changes = len(X), len(columns)
        paths = self.leaf_paths
        with_bits = n_changes > 0 and paths is not None
        raw = np.zeros(n, dtype=np.float64)
        out = np.zeros((n, self.n_features + 1), dtype=np.float64)
        tree_bits = np.empty((n, self.n_trees if with_bits else 0), dtype=np.int64)
        _in_row_blocks(self._contrib_into, X, out, raw, tree_bits, threads=threads if n >= min_rows else 1)
        what_if = np.empty((n, n_changes), dtype=np.float64)
        if paths is not None and with_bits and n:
            leaf_care, leaf_want = paths
            columns, codes = np.asarray(columns, dtype=np.int64), np.asarray(codes, dtype=np.float64)
            mask, bits = self._change_decisions(columns, codes)
            _kernels()[4](tree_bits, mask, bits, what_if, self.tree_leaf_start, leaf_care, leaf_want, self.leaf_value)
        elif n_changes and n:
            rows = np.repeat(X, n_changes, axis=0)
            rows.reshape(n, n_changes, -1)[:, np.arange(n_changes), columns] = codes
            what_if = self.raw(rows, threads=threads, min_rows=min_rows).reshape(n, n_changes)
        return raw, out, what_if

    def what_if_raw(self, X: np.ndarray, columns: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """(n_leads, n_changes): each lead's raw score with column `columns[c]` set to `codes[c]`
        (see `raw_contributions_what_if`)."""
        return self.raw_contributions_what_if(X, columns, codes)[2]

    def _contrib_into(self, X: np.ndarray, out: np.ndarray, raw: np.ndarray, tree_bits: np.ndarray) -> None:
        kernels = _kernels()
        leaf_table, table = self.tables
        if len(X) < BLOCK_MIN_ROWS:
            kernels[2](
                X,
                out,
                raw,
                *self._decision_arrays,
                self.numeric_nodes,
                self.categorical_nodes,
                self.edge_node,
                self.edge_left,
                self.edge_slot,
                self.edge_depth,
                self.edge_leaf,
                self.leaf_k,
                self.leaf_slot_start,
                self.leaf_value,
                self.slot_feature,
                self.slot_zero,
                leaf_table,
                table,
                self.quad_x,
                self.quad_w,
                self.expected_value,
                self.tree_node_start,
                tree_bits,
            )
            return
        kernels[1](
            X,
            out,
            raw,
            *self._decision_arrays,
            self.tree_node_start,
            self.tree_edge_start,
            self.tree_leaf_start,
            self.edge_node,
            self.edge_left,
            self.edge_slot,
            self.edge_depth,
            self.edge_dest,
            self.leaf_k,
            self.leaf_slot_start,
            self.leaf_value,
            self.slot_feature,
            self.slot_zero,
            leaf_table,
            table,
            self.quad_x,
            self.quad_w,
            self.expected_value,
            tree_bits,
        )

    @cached_property
    def _decision_arrays(self) -> tuple[np.ndarray, ...]:
        """What deciding a node reads, in the order every kernel that decides nodes takes it."""
        return (
            self.node_feature,
            self.node_threshold,
            self.node_categorical,
            self.node_missing,
            self.node_default_left,
            self.node_cat_start,
            self.node_cat_words,
            self.cat_bits,
        )

    @cached_property
    def leaf_paths(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Per leaf, its path as bits of its tree's nodes (bit = node - the tree's first node): the nodes
        on the path (care) and those where it turns left (want); None when a tree has over 63 nodes."""
        if np.diff(self.tree_node_start).max(initial=0) > MAX_PATH_FEATURES + 1:
            return None
        n_leaves = len(self.leaf_value)
        care, want = np.zeros(n_leaves + 1, dtype=np.int64), np.zeros(n_leaves + 1, dtype=np.int64)
        tree_of_edge = np.repeat(np.arange(self.n_trees), np.diff(self.tree_edge_start))
        local = (self.edge_node - self.tree_node_start[tree_of_edge]).tolist()
        depths = int(self.edge_depth.max(initial=0)) + 2
        path_care, path_want = [0] * depths, [0] * depths  # the path down to each depth, in preorder
        for bit, went_left, depth, leaf in zip(
            local, self.edge_left.tolist(), self.edge_depth.tolist(), self.edge_leaf.tolist(), strict=True
        ):
            path_care[depth + 1] = path_care[depth] | (1 << bit)
            path_want[depth + 1] = path_want[depth] | (went_left << bit)
            if leaf < n_leaves:
                care[leaf], want[leaf] = path_care[depth + 1], path_want[depth + 1]
        return care[:n_leaves], want[:n_leaves]

    def _change_decisions(self, columns: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask, bits), int64[n_changes, n_trees]: the nodes of each tree that split on the changed
        column, and their decisions for the new value (the kernels' own decision rule). Cached: the
        scorer asks for the same candidates on every call."""
        key = columns.tobytes() + codes.tobytes()
        found = self._change_cache.get(key)
        if found is not None:
            return found
        decide = _kernels()[5]
        mask = np.zeros((len(columns), self.n_trees), dtype=np.int64)
        bits = np.zeros((len(columns), self.n_trees), dtype=np.int64)
        tree_of_node = np.repeat(np.arange(self.n_trees), np.diff(self.tree_node_start))
        went_left = np.zeros(len(self.node_feature), dtype=np.uint8)
        for c, (column, code) in enumerate(zip(columns, codes, strict=True)):
            nodes = np.flatnonzero(self.node_feature == column).astype(np.int32)
            row = np.full(self.n_features, np.nan)
            row[column] = code
            decide(
                row,
                nodes,
                went_left,
                *self._decision_arrays,
            )
            for m in nodes.tolist():
                t = int(tree_of_node[m])
                bit = 1 << (m - int(self.tree_node_start[t]))
                mask[c, t] |= bit
                bits[c, t] |= bit if went_left[m] else 0
        if len(self._change_cache) >= 8:
            self._change_cache.clear()
        self._change_cache[key] = (mask, bits)
        return mask, bits

    @cached_property
    def _change_cache(self) -> dict[bytes, tuple[np.ndarray, np.ndarray]]:
        return {}

    @cached_property
    def tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Each leaf's TreeSHAP values for every subset of its path features a lead can satisfy:
        (leaf_table, table), leaf_table[leaf] the leaf's first entry or -1 (no table: computed per lead).

        Built on first use (LEADSCORE_SHAP_TABLE_MB, default 64 MiB: see `table_plan`)."""
        leaf_table, size = table_plan(self.leaf_k, table_budget_bytes())
        table = np.empty(size, dtype=np.float64)
        build = _kernels()[3]
        build(
            self.leaf_k,
            self.leaf_slot_start,
            self.leaf_value,
            self.slot_zero,
            leaf_table,
            table,
            self.quad_x,
            self.quad_w,
        )
        return leaf_table, table

    def warm_up(self) -> None:
        """Compile (or load the cached machine code) now, not on the first request."""
        one = np.full((1, self.n_features), np.nan)
        self.raw(one)
        self.contributions(one)
        self.contributions(np.full((BLOCK_MIN_ROWS, self.n_features), np.nan))
        for rows in (1, BLOCK_MIN_ROWS):  # the one-lead and the block kernels, with their decisions
            self.what_if_raw(np.full((rows, self.n_features), np.nan), np.zeros(1, dtype=np.int64), np.zeros(1))


def table_budget_bytes() -> int:
    """LEADSCORE_SHAP_TABLE_MB (a number >= 0), else TABLE_MB; 0 turns the tables off."""
    given = os.environ.get(TABLE_ENV, "").strip()
    try:
        mb = float(given) if given else float(TABLE_MB)
    except ValueError:
        raise LeadscoreError(f"{TABLE_ENV} must be a number of megabytes, got {given!r}", field=TABLE_ENV) from None
    if not mb >= 0:
        raise LeadscoreError(f"{TABLE_ENV} must be >= 0, got {given!r}", field=TABLE_ENV)
    return int(mb * (1 << 20))


def table_plan(leaf_k: np.ndarray, budget: int) -> tuple[np.ndarray, int]:
    """Tables for the leaves with at most K path features, K the largest that fits `budget` bytes
    (k * 2**k doubles per leaf): (first entry per leaf or -1, total entries)."""
    sizes = np.where(leaf_k > 0, leaf_k.astype(np.int64) << np.minimum(leaf_k, MAX_PATH_FEATURES), 0)
    cap = 0
    for k in range(1, int(leaf_k.max(initial=0)) + 1):
        if sizes[leaf_k <= k].sum() * 8 > budget:
            break
        cap = k
    chosen = np.where((leaf_k > 0) & (leaf_k <= cap), sizes, 0)
    starts = np.cumsum(chosen) - chosen
    return np.where(chosen > 0, starts, -1).astype(np.int64), int(chosen.sum())


def numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _in_row_blocks(kernel: Any, X: np.ndarray, *outs: np.ndarray, threads: int) -> None:
    """kernel(X_part, *out_parts) over `threads` contiguous row ranges at once (the kernels release the GIL)."""
    pieces = min(PIECES_PER_THREAD * threads, len(X) // PIECE_MIN_ROWS)  # small pieces: a slow core does less
    if threads <= 1 or pieces < 2:
        kernel(X, *outs)
        return
    bounds = np.linspace(0, len(X), pieces + 1).astype(int)
    with ThreadPoolExecutor(threads) as pool:
        list(
            pool.map(
                lambda i: kernel(X[bounds[i] : bounds[i + 1]], *(o[bounds[i] : bounds[i + 1]] for o in outs)),
                range(pieces),
            )
        )


def _as_matrix(X: np.ndarray, n_features: int) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"expected a matrix with {n_features} columns, got shape {X.shape}")
    return X


class _Builder:
    """Walks LightGBM's JSON dump once and collects the flat arrays."""

    def __init__(self, n_features: int) -> None:
        self.n_features = n_features
        self.nodes: list[tuple[int, float, int, int, int, int, int]] = []
        self.children: list[list[int]] = []
        self.cat_bits: list[int] = []
        self.leaf_value: list[float] = []
        self.leaf_slots: list[dict[int, float]] = []  # per leaf: feature -> zero fraction, in path order
        self.edges: list[list[int]] = []  # node, left, slot, depth, leaf (or -1)
        self.tree_root: list[int] = []
        self.tree_node_start: list[int] = [0]
        self.tree_leaf_start: list[int] = [0]
        self.tree_edge_start: list[int] = [0]
        self.expected = 0.0

    def build(self, trees: list[dict[str, Any]]) -> Forest:
        for tree in trees:
            root = tree["tree_structure"]
            if "leaf_value" in root:  # a constant tree: no splits, all of it is expected value
                self.tree_root.append(~self._leaf(root["leaf_value"], {}))
                self.expected += float(root["leaf_value"])
            else:
                total = float(root["internal_count"])
                self.expected += self._expected(root, total)
                self.tree_root.append(self._node(root, {}, 0))
            self.tree_node_start.append(len(self.nodes))
            self.tree_leaf_start.append(len(self.leaf_value))
            self.tree_edge_start.append(len(self.edges))
        return self._arrays()

    def _expected(self, node: dict[str, Any], total: float) -> float:
        if "leaf_value" in node:
            return (float(node["leaf_count"]) / total) * float(node["leaf_value"])
        return self._expected(node["left_child"], total) + self._expected(node["right_child"], total)

    def _leaf(self, value: float, slots: dict[int, float]) -> int:
        self.leaf_value.append(float(value))
        self.leaf_slots.append(slots)
        return len(self.leaf_value) - 1

    def _node(self, node: dict[str, Any], slots: dict[int, float], depth: int) -> int:
        """`slots`: the zero fraction of each feature on the path so far, in the order the path meets them."""
        if "leaf_value" in node:
            return ~self._leaf(node["leaf_value"], slots)
        index = len(self.nodes)
        feature = int(node["split_feature"])
        categorical = node["decision_type"] == "=="
        cat_start, cat_words, threshold = 0, 0, 0.0
        if categorical:
            cats = [int(c) for c in str(node["threshold"]).split("||") if c != ""]
            words = [0] * (max(cats) // 32 + 1)
            for c in cats:
                words[c // 32] |= 1 << (c % 32)
            cat_start, cat_words = len(self.cat_bits), len(words)
            self.cat_bits.extend(words)
        else:
            threshold = float(node["threshold"])
        missing = _MISSING_CODES[node.get("missing_type", "None")]
        self.nodes.append(
            (feature, threshold, int(categorical), missing, int(bool(node["default_left"])), cat_start, cat_words)
        )
        self.children.append([0, 0])
        count = float(node["internal_count"])
        slot = list(slots).index(feature) if feature in slots else len(slots)
        for side, key in ((1, "left_child"), (0, "right_child")):
            child = node[key]
            child_count = float(child["leaf_count"] if "leaf_value" in child else child["internal_count"])
            edge = [index, side, slot, depth, -1]
            self.edges.append(edge)
            below = {**slots, feature: slots.get(feature, 1.0) * (child_count / count)}
            target = self._node(child, below, depth + 1)
            self.children[index][0 if side else 1] = target
            if target < 0:
                edge[4] = ~target
        return index

    def _arrays(self) -> Forest:
        nodes = np.array(self.nodes, dtype=np.float64).reshape(-1, 7)
        kids = np.array(self.children, dtype=np.int32).reshape(-1, 2)
        edges = np.array(self.edges, dtype=np.int64).reshape(-1, 5)
        categorical = nodes[:, 2].astype(np.uint8)
        n_leaves = len(self.leaf_value)
        leaf_k = np.array([len(slots) for slots in self.leaf_slots], dtype=np.int32)
        if leaf_k.max(initial=0) > MAX_PATH_FEATURES:
            raise ValueError(f"a leaf path has more than {MAX_PATH_FEATURES} distinct features: not supported")
        tree_leaf_start = np.array(self.tree_leaf_start, dtype=np.int32)
        tree_of_edge = np.repeat(np.arange(len(self.tree_root)), np.diff(self.tree_edge_start))
        into_leaf = edges[:, 4] >= 0
        return Forest(
            n_features=self.n_features,
            node_feature=nodes[:, 0].astype(np.int32),
            node_threshold=nodes[:, 1].copy(),
            node_categorical=categorical,
            node_missing=nodes[:, 3].astype(np.int8),
            node_default_left=nodes[:, 4].astype(np.uint8),
            node_left=kids[:, 0].copy(),
            node_right=kids[:, 1].copy(),
            node_cat_start=nodes[:, 5].astype(np.int32),
            node_cat_words=nodes[:, 6].astype(np.int32),
            cat_bits=np.array(self.cat_bits or [0], dtype=np.int64),
            tree_root=np.array(self.tree_root, dtype=np.int32),
            leaf_value=np.array(self.leaf_value, dtype=np.float64),
            numeric_nodes=np.flatnonzero(categorical == 0).astype(np.int32),
            categorical_nodes=np.flatnonzero(categorical == 1).astype(np.int32),
            tree_node_start=np.array(self.tree_node_start, dtype=np.int32),
            tree_leaf_start=tree_leaf_start,
            tree_edge_start=np.array(self.tree_edge_start, dtype=np.int32),
            edge_node=edges[:, 0].astype(np.int32),
            edge_left=edges[:, 1].copy(),
            edge_slot=edges[:, 2].copy(),
            edge_depth=edges[:, 3].astype(np.int32),
            edge_leaf=np.where(into_leaf, edges[:, 4], n_leaves).astype(np.int32),
            edge_dest=np.where(
                into_leaf, edges[:, 4] - tree_leaf_start[tree_of_edge], np.diff(tree_leaf_start).max(initial=1)
            ).astype(np.int32),
            leaf_k=leaf_k,
            leaf_slot_start=np.concatenate([[0], np.cumsum(leaf_k)]).astype(np.int32),
            slot_feature=np.array([f for slots in self.leaf_slots for f in slots], dtype=np.int32),
            slot_zero=np.array([z for slots in self.leaf_slots for z in slots.values()], dtype=np.float64),
            **_quadrature(int(leaf_k.max(initial=1))),
            expected_value=float(self.expected),
        )


def _quadrature(max_k: int) -> dict[str, np.ndarray]:
    """Gauss-Legendre rules on [0, 1], k // 2 + 1 points for a leaf with k path features.

    The Shapley weight m!(k-m-1)!/k! is the Beta integral of x^m (1-x)^(k-m-1) over [0, 1], so each
    leaf's weighted coalition sum is the integral of a polynomial of degree k - 1, which this rule
    computes exactly.
    """
    n_points = max_k // 2 + 1
    xs = np.full((max_k + 1, n_points), 0.5)
    ws = np.zeros((max_k + 1, n_points))
    for k in range(1, max_k + 1):
        n = k // 2 + 1
        x, w = np.polynomial.legendre.leggauss(n)
        xs[k, :n], ws[k, :n] = (x + 1.0) / 2.0, w / 2.0
    return {"quad_x": xs, "quad_w": ws}


_KERNELS: tuple[Any, Any, Any, Any, Any, Any] | None = None


CACHE_ENV = "LEADSCORE_NUMBA_CACHE_DIR"


def compiled_cache_dir() -> Path:
    """Where numba keeps the compiled kernels: a folder only this user can write, never the package's.

    numba's cache index is a pickle, so whoever can write the cache can run code in the server. The
    folder is `LEADSCORE_NUMBA_CACHE_DIR`, else `NUMBA_CACHE_DIR`, else ~/.cache/leadscore/numba,
    created owner-only. One owned by someone else or writable by others is not used: the kernels are
    then compiled afresh (about 8 s) into a private temporary folder.
    """
    given = os.environ.get(CACHE_ENV) or os.environ.get("NUMBA_CACHE_DIR")
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "leadscore" / "numba"
    path = Path(given) if given else base
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = path.stat()
        if info.st_uid == os.getuid() and not info.st_mode & 0o022:
            return path
        _logger.warning(
            "not using the compiled-kernel cache %s: it must belong to this user and not be writable by others", path
        )
    except OSError as exc:
        _logger.warning("no compiled-kernel cache at %s (%s)", path, exc)
    return Path(tempfile.mkdtemp(prefix="leadscore-numba-"))


def _kernels() -> tuple[Any, Any, Any, Any, Any, Any]:
    """Compile on first use (cached on disk by numba, in `compiled_cache_dir()`), so importing this
    module stays cheap."""
    global _KERNELS
    if _KERNELS is None:
        use_compiled_cache()
        from serving.model import _forest_kernels

        _KERNELS = (
            _forest_kernels.raw_scores,
            _forest_kernels.contributions,
            _forest_kernels.contributions_rows,
            _forest_kernels.build_tables,
            _forest_kernels.what_if_raw,
            _forest_kernels._decide_all,
        )
    return _KERNELS


@functools.cache
def use_compiled_cache() -> None:
    """Point numba at `compiled_cache_dir()` and register its implementations: once per process, before
    any module of kernels (`@njit(cache=True)`) is imported, or numba caches beside the source."""
    import numba

    folder = str(compiled_cache_dir())
    os.environ["NUMBA_CACHE_DIR"] = folder  # numba's compiler re-reads its settings from the environment
    config: Any = numba.config  # numba types its settings module loosely
    config.CACHE_DIR = folder
    _register_numba_implementations()


_SCIPY_BLAS = "scipy.linalg.cython_blas"


def _register_numba_implementations() -> None:
    """What numba does once per process before it loads the first kernel, without SciPy's BLAS."""
    from numba.core.registry import cpu_target

    with _without_scipy_blas():
        cpu_target.target_context.refresh()  # imports numba's implementations, array math among them


@contextlib.contextmanager
def _without_scipy_blas() -> Iterator[None]:
    """While numba registers its implementations (once per process, before the first kernel loads).

    numba's array-math module imports SciPy's BLAS bindings at that moment only to choose how np.cov-like
    inner products compile (BLAS or a loop; np.dot itself still imports SciPy when first compiled), and
    importing scipy.linalg costs ~0.2 CPU-s, a tenth of a server's start. The kernels use no BLAS. Hidden
    only when not already imported, and only for this step (the server loads its kernels before it
    starts any thread); if numba stops doing this, hiding is a no-op.
    """
    if _SCIPY_BLAS in sys.modules:
        yield
        return
    sys.modules[_SCIPY_BLAS] = None  # type: ignore[assignment]  # None makes `import` raise ImportError
    try:
        yield
    finally:
        if _SCIPY_BLAS in sys.modules and sys.modules[_SCIPY_BLAS] is None:
            del sys.modules[_SCIPY_BLAS]


@functools.cache
def layout() -> str | None:
    """A fingerprint of the code that decides what `to_arrays` holds: this module (the fields, the
    builder, the quadrature) and the text parser. Stored arrays are used only by the very code that wrote
    them; any other version, older or newer, flattens model.txt again, so a changed builder never meets
    arrays it did not build. Without the source files to read, nothing is ever reused."""
    from serving.model import lightgbm_text

    digest = hashlib.sha256()
    try:
        for module in (__file__, lightgbm_text.__file__):
            digest.update(Path(module).read_bytes())
    except (OSError, TypeError):
        return None
    return digest.hexdigest()
