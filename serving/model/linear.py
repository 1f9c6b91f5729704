"""A regularised logistic model as additive terms over the encoder's matrix, with exact explanations.

The model reads the same float matrix LightGBM reads (`LeadEncoder.transform`): categorical codes
0..L-1 (NaN for missing or unseen), booleans 0/1, numbers, datetimes as days, NaN = missing. Every
feature column j has one term, so the log-odds are

    raw(x) = intercept + sum_j term_j(x_j)

- categorical: a weight per code, and one for missing or unseen;
- numeric, integer, boolean, datetime: x clipped to [lo, hi] (training 1st / 99th percentiles),
  optionally a signed log1p (heavy right tails), standardised with (center, scale), times `coef`;
  a missing value contributes `missing_weight` (imputed at the center, plus a missing indicator).
  A term may extrapolate: beyond its `edges` (the values training saw) x moves on from the clip
  bound one for one, up to its `reach`; so on every value training saw the term is exactly what was
  fitted, and only values past anything in training follow the fitted slope further.

Each term also stores `mean`, its average over the training leads. For an additive model the exact
(interventional) Shapley value of feature j over that background is term_j(x_j) - mean_j, and the
expected value is intercept + sum_j mean_j, so the contributions add up to the raw score exactly.
The state is plain JSON; serving needs numpy only.

    >>> model = LinearModel.from_dict(state)          # doctest: +SKIP
    >>> model.contributions(X)                         # (n, n_features + 1), like pred_contrib
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CATEGORICAL, NUMERIC = "categorical", "numeric"


@dataclass(frozen=True)
class CategoricalTerm:
    """A weight per category code (0..len(weights)-1) and one for missing or unseen."""

    name: str
    weights: tuple[float, ...]
    missing_weight: float
    mean: float = 0.0
    kind: str = field(default=CATEGORICAL, init=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "weights": list(self.weights),
            "missing_weight": self.missing_weight,
            "mean": self.mean,
        }


@dataclass(frozen=True)
class NumericTerm:
    """coef * (t(clip(x, lo, hi)) - center) / scale, t = signed log1p when `log`; missing -> missing_weight.

    With `edges` (lo_edge, hi_edge) and `reach` (lo_reach, hi_reach), x beyond an edge adds its distance
    past it (up to the reach) to the clipped value (`standardise`). Without them (None) there is none."""

    name: str
    lo: float
    hi: float
    center: float
    scale: float
    coef: float
    missing_weight: float
    log: bool = False
    mean: float = 0.0
    edges: tuple[float, float] | None = None
    reach: tuple[float, float] | None = None
    kind: str = field(default=NUMERIC, init=False)

    @property
    def extrapolation(self) -> tuple[float, float, float, float]:
        """(lo_reach, lo_edge, hi_edge, hi_reach); all at the clip bounds when the term does not extrapolate."""
        if self.edges is None or self.reach is None:
            return (self.lo, self.lo, self.hi, self.hi)
        return (self.reach[0], self.edges[0], self.edges[1], self.reach[1])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "lo": self.lo,
            "hi": self.hi,
            "log": self.log,
            "center": self.center,
            "scale": self.scale,
            "coef": self.coef,
            "missing_weight": self.missing_weight,
            "mean": self.mean,
        }
        if self.edges is not None and self.reach is not None:
            out["edges"], out["reach"] = list(self.edges), list(self.reach)
        return out


Term = CategoricalTerm | NumericTerm


def standardise(
    values: np.ndarray,
    lo: np.ndarray | float,
    hi: np.ndarray | float,
    log: np.ndarray | bool,
    center: np.ndarray | float,
    scale: np.ndarray | float,
    extrapolation: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
    *,
    log_columns: np.ndarray | None = None,
) -> np.ndarray:
    """The numeric terms' transform: clip, signed log1p where `log`, standardise. NaN stays NaN.

    With `extrapolation` (lo_reach, lo_edge, hi_edge, hi_reach) a value past an edge adds its distance
    past it, up to the reach, to the clipped value (`NumericTerm.extrapolation`; the terms without any
    have all four at lo / hi, which adds 0). One definition, used by the model and by training's design
    matrix, so the two agree exactly. `log_columns` (np.flatnonzero(log), when the caller keeps it)
    spares two numpy calls per call, which on one lead is a good part of the cost.
    """
    if extrapolation is None:
        t = np.minimum(np.maximum(values, lo), hi)  # np.clip's semantics (NaN stays NaN), a little faster
    else:
        lo_reach, lo_edge, hi_edge, hi_reach = extrapolation
        reached = np.minimum(np.maximum(values, lo_reach), hi_reach)
        # within the edges: clipped at lo / hi; past an edge: the bound plus the distance past the edge
        t = reached - np.minimum(np.maximum(reached, lo_edge), hi_edge) + np.minimum(np.maximum(reached, lo), hi)
    if log_columns is None and np.ndim(log) == 0:
        if log:
            t = np.sign(t) * np.log1p(np.abs(t))
        return (t - center) / scale
    cols = np.flatnonzero(log) if log_columns is None else log_columns
    if len(cols):  # only the logged columns: log1p of every cell was most of a million-lead transform
        part = t[..., cols]
        t[..., cols] = np.sign(part) * np.log1p(np.abs(part))
    return (t - center) / scale


@dataclass(frozen=True)
class LinearModel:
    """intercept + one additive term per encoded feature column, in the encoder's column order."""

    intercept: float
    terms: tuple[Term, ...]
    # Per-column arrays built once from `terms`, so scoring one lead is a handful of numpy calls.
    _cat_cols: np.ndarray = field(init=False, repr=False, compare=False)
    _cat_offset: np.ndarray = field(init=False, repr=False, compare=False)
    _cat_levels: np.ndarray = field(init=False, repr=False, compare=False)
    _cat_table: np.ndarray = field(init=False, repr=False, compare=False)
    _num_cols: np.ndarray = field(init=False, repr=False, compare=False)
    _num: dict[str, np.ndarray] = field(init=False, repr=False, compare=False)
    _extrapolation: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = field(
        init=False, repr=False, compare=False
    )
    _num_log_columns: np.ndarray = field(init=False, repr=False, compare=False)
    _mean: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        terms = tuple(self.terms)
        object.__setattr__(self, "terms", terms)
        object.__setattr__(self, "intercept", float(self.intercept))
        cats = [j for j, t in enumerate(terms) if isinstance(t, CategoricalTerm)]
        nums = [j for j, t in enumerate(terms) if isinstance(t, NumericTerm)]
        if len(cats) + len(nums) != len(terms):
            raise ValueError("every term must be a CategoricalTerm or a NumericTerm")
        cat_terms = [t for t in terms if isinstance(t, CategoricalTerm)]  # in the order of `cats`
        levels = np.array([len(t.weights) for t in cat_terms], dtype=np.intp)
        table = [np.append(np.asarray(t.weights, dtype=np.float64), t.missing_weight) for t in cat_terms]
        set_ = object.__setattr__
        set_(self, "_cat_cols", np.array(cats, dtype=np.intp))
        set_(self, "_cat_levels", levels)
        set_(self, "_cat_offset", np.concatenate([[0], np.cumsum(levels + 1)[:-1]]).astype(np.intp))
        set_(self, "_cat_table", np.concatenate(table) if table else np.zeros(0))
        set_(self, "_num_cols", np.array(nums, dtype=np.intp))
        set_(
            self,
            "_num",
            {
                key: np.array([getattr(terms[j], key) for j in nums], dtype=bool if key == "log" else np.float64)
                for key in ("lo", "hi", "log", "center", "scale", "coef", "missing_weight")
            },
        )
        num_terms = [t for t in terms if isinstance(t, NumericTerm)]  # in the order of `nums`
        reach = np.array([t.extrapolation for t in num_terms], dtype=np.float64).reshape(len(nums), 4)
        extrapolating = any(t.edges is not None for t in num_terms)  # none: one clip, as in older bundles
        set_(self, "_extrapolation", (reach[:, 0], reach[:, 1], reach[:, 2], reach[:, 3]) if extrapolating else None)
        set_(self, "_num_log_columns", np.flatnonzero(self._num["log"]))
        set_(self, "_mean", np.array([t.mean for t in terms], dtype=np.float64))

    # -- description ---------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return [t.name for t in self.terms]

    @property
    def n_features(self) -> int:
        return len(self.terms)

    @property
    def expected_value(self) -> float:
        """The average raw score over the training leads: intercept + sum of the terms' means."""
        return float(self.intercept + self._mean.sum())

    # -- the model's numbers -------------------------------------------------------------
    def term_values(self, X: np.ndarray) -> np.ndarray:
        """(n, n_features): term_j(x_ij), the lead's log-odds from each feature column."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.terms):
            raise ValueError(f"expected a matrix with {len(self.terms)} feature columns, got shape {X.shape}")
        out = np.empty(X.shape, dtype=np.float64)
        if len(self._cat_cols):
            codes = X[:, self._cat_cols]
            known = (codes >= 0) & (codes < self._cat_levels)  # False for NaN: missing and unseen alike
            index = np.where(known, codes, self._cat_levels).astype(np.intp)
            out[:, self._cat_cols] = self._cat_table[index + self._cat_offset]
        if len(self._num_cols):
            p = self._num
            values = X[:, self._num_cols]
            z = standardise(
                values,
                p["lo"],
                p["hi"],
                p["log"],
                p["center"],
                p["scale"],
                self._extrapolation,
                log_columns=self._num_log_columns,
            )
            out[:, self._num_cols] = np.where(np.isnan(values), p["missing_weight"], p["coef"] * z)
        return out

    def raw(self, X: np.ndarray) -> np.ndarray:
        """(n,) log-odds."""
        return self.raw_from_terms(self.term_values(X))

    def raw_from_terms(self, terms: np.ndarray) -> np.ndarray:
        return self.intercept + terms.sum(axis=1)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(n, n_features + 1): exact Shapley values term_j - mean_j, then the expected value."""
        return self.contributions_from_terms(self.term_values(X))

    @property
    def kernel_arrays(self) -> tuple[Any, ...]:
        """The model as `serving.model._score_kernels` reads it: intercept, the terms' means, the expected
        value, cat_cols, cat_levels, cat_offset, cat_table, num_cols, num (rows lo, hi, log, center, scale,
        coef, missing_weight), extrapolation (rows lo_reach, lo_edge, hi_edge, hi_reach; none when no
        term extrapolates)."""
        p = self._num
        keys = ("lo", "hi", "log", "center", "scale", "coef", "missing_weight")
        num = np.array([p[key] for key in keys], dtype=np.float64).reshape(len(keys), len(self._num_cols))
        reach = self._extrapolation
        extrapolation = np.array(reach) if reach is not None else np.zeros((0, len(self._num_cols)))
        cats = (self._cat_cols, self._cat_levels, self._cat_offset, self._cat_table)
        return (self.intercept, self._mean, self.expected_value, *cats, self._num_cols, num, extrapolation)

    def contributions_from_terms(self, terms: np.ndarray) -> np.ndarray:
        out = np.empty((len(terms), terms.shape[1] + 1), dtype=np.float64)
        np.subtract(terms, self._mean, out=out[:, :-1])
        out[:, -1] = self.expected_value
        return out

    # -- state ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"intercept": self.intercept, "terms": [t.to_dict() for t in self.terms]}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any], feature_names: Sequence[str] | None = None) -> LinearModel:
        """Rebuild from `to_dict()`; ValueError naming the first thing that is wrong."""
        if not isinstance(state, Mapping):
            raise ValueError(f"linear model state must be an object, got {type(state).__name__}")
        intercept = _number(state.get("intercept"), "linear.intercept")
        items = state.get("terms")
        if not isinstance(items, list) or not items:
            raise ValueError("linear.terms must be a non-empty list")
        terms = tuple(_term(item, f"linear.terms[{j}]") for j, item in enumerate(items))
        if feature_names is not None and [t.name for t in terms] != list(feature_names):
            raise ValueError(
                f"linear model features {[t.name for t in terms]} do not match the encoder's {list(feature_names)}"
            )
        return cls(intercept=intercept, terms=terms)


def _term(item: Any, where: str) -> Term:
    if not isinstance(item, Mapping):
        raise ValueError(f"{where} must be an object")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}.name must be a non-empty string")
    kind = item.get("kind")
    if kind == CATEGORICAL:
        weights = item.get("weights")
        if not isinstance(weights, list):
            raise ValueError(f"{where}.weights ({name}) must be a list of numbers")
        values = tuple(_number(w, f"{where}.weights[{i}]") for i, w in enumerate(weights))
        return CategoricalTerm(
            name=name,
            weights=values,
            missing_weight=_number(item.get("missing_weight"), f"{where}.missing_weight"),
            mean=_number(item.get("mean"), f"{where}.mean"),
        )
    if kind == NUMERIC:
        fields = {
            key: _number(item.get(key), f"{where}.{key}")
            for key in ("lo", "hi", "center", "scale", "coef", "missing_weight", "mean")
        }
        if not fields["lo"] <= fields["hi"]:
            raise ValueError(f"{where} ({name}): lo {fields['lo']} is above hi {fields['hi']}")
        if not fields["scale"] > 0:
            raise ValueError(f"{where}.scale ({name}) must be positive, got {fields['scale']}")
        log = item.get("log", False)
        if not isinstance(log, bool):
            raise ValueError(f"{where}.log ({name}) must be true or false")
        edges, reach = _pair(item.get("edges"), f"{where}.edges"), _pair(item.get("reach"), f"{where}.reach")
        if (edges is None) != (reach is None):
            raise ValueError(f"{where} ({name}): edges and reach come together")
        if edges is not None and reach is not None and not reach[0] <= edges[0] <= edges[1] <= reach[1]:
            raise ValueError(f"{where} ({name}): reach {list(reach)} must hold edges {list(edges)}")
        return NumericTerm(name=name, log=log, edges=edges, reach=reach, **fields)
    raise ValueError(f"{where}.kind ({name}) must be {CATEGORICAL!r} or {NUMERIC!r}, got {kind!r}")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _pair(value: Any, where: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError(f"{where} must be a list of two numbers, got {value!r}")
    return (_number(value[0], f"{where}[0]"), _number(value[1], f"{where}[1]"))
