"""LightGBM's trees as flat arrays: raw scores and exact TreeSHAP values, compiled with numba.

Why: `booster.predict` carries ~100 µs of call overhead, so re-scoring a few what-if variants of one
lead through it costs more than the rest of the request; and `pred_contrib` (TreeSHAP) costs ~3 ms
per lead for a 300-tree model on the 2-core box. Here raw scores take ~8 µs per lead and the same
path-dependent TreeSHAP values (tested equal to `pred_contrib` to 1e-9) in about 45% of LightGBM's
time for one lead and 20% for a batch (eight leads at a time), with the GIL released so two requests
explain on two cores at once.

How: for a leaf with unique path features F (k of them), feature j has a zero fraction z_j (the share
of training leads following the path's edges on j) and a one fraction o_j (1 when this lead follows
all of them). The leaf's share of feature i's SHAP value is

    v * (o_i - z_i) * sum over S in F - {i} of |S|!(k-|S|-1)!/k! * prod_{j in S} o_j * prod_{j not in S, i} z_j

Only satisfied features (o_j = 1) can be in S, and the Shapley weight is a Beta integral, so the sum
is the integral over [0, 1] of (1-x)^(k-a) * prod_{j satisfied, j != i} (x + z_j (1 - x)), a
polynomial of degree k - 1 that a k // 2 + 1 point Gauss-Legendre rule integrates exactly.

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
from pathlib import Path
from typing import Any

import numpy as np

_logger = logging.getLogger(__name__)

ZERO_THRESHOLD = 1e-35  # LightGBM's kZeroThreshold
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2
_MISSING_CODES = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}
LAYOUT_KEY = "_layout"  # in `Forest.to_arrays`: which code wrote the arrays (see `layout`)
PARALLEL_MIN_ROWS = 2_000
PIECES_PER_THREAD = 4
PIECE_MIN_ROWS = 256
THREADS = os.cpu_count() or 1  # rows are explained on every core by default
BLOCK_MIN_ROWS = 8  # from here on leads are explained eight at a time (one vector of float64)


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
    # One entry per leaf path with at least one split, sorted by its number of unique features:
    path_value: np.ndarray  # float64[P]
    slot_start: np.ndarray  # int32[P + 1] into slot arrays (the unique features on the path)
    slot_feature: np.ndarray  # int32[S]
    numeric_nodes: np.ndarray  # int32: the internal nodes with a numeric split
    categorical_nodes: np.ndarray  # int32: the internal nodes with a categorical split
    slot_zero: np.ndarray  # float64[S]: share of training leads following the path's edges on it
    slot_cond: np.ndarray  # int32[S + 1] into cond arrays (the path's nodes that split on the slot's feature)
    cond_slot: np.ndarray  # int32[C]: the slot each cond belongs to
    cond_node: np.ndarray  # int32[C]
    cond_left: np.ndarray  # uint8[C]: 1 when the path goes left at that node
    slot_inv: np.ndarray  # float64[S * N]: 1 / (x + z (1 - x)) at the slot's leaf's N quadrature points
    quad_x: np.ndarray  # float64[K + 1, N]: Gauss-Legendre points on [0, 1] per path length k
    quad_w: np.ndarray  # float64[K + 1, N]
    quad_inv: np.ndarray  # float64[K + 1, N]: 1 / (1 - x)
    quad_pow: np.ndarray  # float64[K + 1, N, K + 1]: (1 - x) ** e
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
        X = _as_matrix(X, self.n_features)
        out = np.zeros((len(X), self.n_features + 1), dtype=np.float64)
        _in_row_blocks(self._contrib_into, X, out, threads=threads if len(X) >= min_rows else 1)
        return out

    def _contrib_into(self, X: np.ndarray, out: np.ndarray) -> None:
        kernels = _kernels()
        if len(X) < BLOCK_MIN_ROWS:
            kernels[2](
                X,
                out,
                self.node_feature,
                self.node_threshold,
                self.node_categorical,
                self.node_missing,
                self.node_default_left,
                self.node_cat_start,
                self.node_cat_words,
                self.cat_bits,
                self.numeric_nodes,
                self.categorical_nodes,
                self.path_value,
                self.slot_start,
                self.slot_feature,
                self.slot_zero,
                self.cond_slot,
                self.cond_node,
                self.cond_left,
                self.quad_x,
                self.quad_w,
                self.quad_pow,
                self.expected_value,
            )
            return
        kernels[1](
            X,
            out,
            self.node_feature,
            self.node_threshold,
            self.node_categorical,
            self.node_missing,
            self.node_default_left,
            self.node_cat_start,
            self.node_cat_words,
            self.cat_bits,
            self.path_value,
            self.slot_start,
            self.slot_feature,
            self.slot_zero,
            self.slot_cond,
            self.cond_node,
            self.cond_left,
            self.slot_inv,
            self.quad_x,
            self.quad_w,
            self.quad_inv,
            self.expected_value,
        )

    def warm_up(self) -> None:
        """Compile (or load the cached machine code) now, not on the first request."""
        one = np.full((1, self.n_features), np.nan)
        self.raw(one)
        self.contributions(one)
        self.contributions(np.full((BLOCK_MIN_ROWS, self.n_features), np.nan))


def numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _in_row_blocks(kernel: Any, X: np.ndarray, out: np.ndarray, *, threads: int) -> None:
    """kernel(X_part, out_part) over `threads` contiguous row ranges at once (the kernels release the GIL)."""
    pieces = min(PIECES_PER_THREAD * threads, len(X) // PIECE_MIN_ROWS)  # small pieces: a slow core does less
    if threads <= 1 or pieces < 2:
        kernel(X, out)
        return
    bounds = np.linspace(0, len(X), pieces + 1).astype(int)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda i: kernel(X[bounds[i] : bounds[i + 1]], out[bounds[i] : bounds[i + 1]]), range(pieces)))


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
        self.leaf_paths: list[list[tuple[int, int, float, int]]] = []  # (feature, node, zero fraction, left)
        self.tree_root: list[int] = []
        self.expected = 0.0

    def build(self, trees: list[dict[str, Any]]) -> Forest:
        for tree in trees:
            root = tree["tree_structure"]
            if "leaf_value" in root:  # a constant tree: no splits, all of it is expected value
                self.tree_root.append(~self._leaf(root["leaf_value"], []))
                self.expected += float(root["leaf_value"])
                continue
            total = float(root["internal_count"])
            self.expected += self._expected(root, total)
            self.tree_root.append(self._node(root, []))
        return self._arrays()

    def _expected(self, node: dict[str, Any], total: float) -> float:
        if "leaf_value" in node:
            return (float(node["leaf_count"]) / total) * float(node["leaf_value"])
        return self._expected(node["left_child"], total) + self._expected(node["right_child"], total)

    def _leaf(self, value: float, path: list[tuple[int, int, float, int]]) -> int:
        self.leaf_value.append(float(value))
        self.leaf_paths.append(list(path))
        return len(self.leaf_value) - 1

    def _node(self, node: dict[str, Any], path: list[tuple[int, int, float, int]]) -> int:
        if "leaf_value" in node:
            return ~self._leaf(node["leaf_value"], path)
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
        for side, key in ((1, "left_child"), (0, "right_child")):
            child = node[key]
            child_count = float(child["leaf_count"] if "leaf_value" in child else child["internal_count"])
            step = (feature, index, child_count / count, side)
            self.children[index][0 if side else 1] = self._node(child, path + [step])
        return index

    def _arrays(self) -> Forest:
        paths = sorted(
            (p for p in zip(self.leaf_value, self.leaf_paths, strict=True) if p[1]),
            key=lambda item: len({step[0] for step in item[1]}),
        )
        path_value: list[float] = []
        slot_start: list[int] = [0]
        slot_feature: list[int] = []
        slot_zero: list[float] = []
        slot_cond: list[int] = [0]
        cond_slot: list[int] = []
        cond_node: list[int] = []
        cond_left: list[int] = []
        max_k = 1
        for value, path in paths:
            zero: dict[int, float] = {}
            conds: dict[int, list[tuple[int, int]]] = {}
            for feature, node, fraction, left in path:
                zero[feature] = zero.get(feature, 1.0) * fraction
                conds.setdefault(feature, []).append((node, left))
            for feature, fraction in zero.items():
                slot = len(slot_feature)
                slot_feature.append(feature)
                slot_zero.append(fraction)
                for node, left in conds[feature]:
                    cond_slot.append(slot)
                    cond_node.append(node)
                    cond_left.append(left)
                slot_cond.append(len(cond_node))
            path_value.append(value)
            slot_start.append(len(slot_feature))
            max_k = max(max_k, len(zero))
        nodes = np.array(self.nodes, dtype=np.float64).reshape(-1, 7)
        kids = np.array(self.children, dtype=np.int32).reshape(-1, 2)
        categorical = nodes[:, 2].astype(np.uint8)
        quadrature = _quadrature(max_k)
        k_of_slot = np.repeat(np.diff(slot_start), np.diff(slot_start)).astype(np.intp)
        x = quadrature["quad_x"][k_of_slot]  # (S, N): unused points stay at 0.5, harmless
        slot_inv = 1.0 / (x + np.array(slot_zero)[:, None] * (1.0 - x))
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
            path_value=np.array(path_value, dtype=np.float64),
            slot_start=np.array(slot_start, dtype=np.int32),
            slot_feature=np.array(slot_feature, dtype=np.int32),
            slot_zero=np.array(slot_zero, dtype=np.float64),
            numeric_nodes=np.flatnonzero(categorical == 0).astype(np.int32),
            categorical_nodes=np.flatnonzero(categorical == 1).astype(np.int32),
            slot_cond=np.array(slot_cond, dtype=np.int32),
            cond_slot=np.array(cond_slot, dtype=np.int32),
            cond_node=np.array(cond_node, dtype=np.int32),
            cond_left=np.array(cond_left, dtype=np.uint8),
            slot_inv=np.ascontiguousarray(slot_inv).reshape(-1),
            **quadrature,
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
    powers = (1.0 - xs)[:, :, None] ** np.arange(max_k + 1)[None, None, :]
    return {"quad_x": xs, "quad_w": ws, "quad_inv": 1.0 / (1.0 - xs), "quad_pow": np.ascontiguousarray(powers)}


_KERNELS: tuple[Any, Any, Any] | None = None


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


def _kernels() -> tuple[Any, Any, Any]:
    """Compile on first use (cached on disk by numba, in `compiled_cache_dir()`), so importing this
    module stays cheap."""
    global _KERNELS
    if _KERNELS is None:
        import numba

        folder = str(compiled_cache_dir())
        os.environ["NUMBA_CACHE_DIR"] = folder  # numba's compiler re-reads its settings from the environment
        config: Any = numba.config  # numba types its settings module loosely
        config.CACHE_DIR = folder
        _register_numba_implementations()
        from serving.model import _forest_kernels

        _KERNELS = (_forest_kernels.raw_scores, _forest_kernels.contributions, _forest_kernels.contributions_rows)
    return _KERNELS


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
