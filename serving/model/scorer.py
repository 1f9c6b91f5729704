"""The scorer: one loaded bundle, scoring and explaining leads for the API, batch jobs and notebooks.

Plain Python (no web framework), so notebooks and `leadscore score` use exactly what the API uses.
The model is the bundle's family: trees (the numba Forest, or LightGBM itself), the logistic model
(`serving.model.linear`, numpy) or their log-odds blend; everything below goes through `raw_scores` and
`contributions`, which combine the two by the bundle's tree weight. Two paths over the same encoder:
- `score(records)`: a few leads as dicts, the real-time path. No DataFrame: building a one-row
  DataFrame with categoricals costs milliseconds, `LeadEncoder.transform_records` microseconds.
- `explain(frame)`: millions of rows, chunked and vectorised, returning one row per lead.

    >>> scorer = Scorer.load()                                   # models:/lead-conversion@champion
    >>> scorer.score([{"lead_id": "L1", "industry": "software", "phone_present": False}])[0]["grade"]
    >>> scorer.explain(leads)[["lead_id", "probability", "top_lowering_factor"]]
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from features.factors import FACTORS, factor_impacts, factor_matrix
from features.grades import assign_grades
from features.progress import track
from serving.model import explain as ex
from serving.model.bundle import Bundle, part
from serving.model.forest import Forest, numba_available
from serving.model.response import ModelRef, ScoreResponse, lead_id_text

if TYPE_CHECKING:
    import pandas as pd  # the batch path's; imported where used, so the server starts without pandas

_logger = logging.getLogger(__name__)

ENGINES = ("auto", "forest", "lightgbm")
PROGRESS_ROWS = 10_000  # leads per progress step: ten seconds at most at a millisecond per lead


class Scorer:
    """Scores and explains leads with one bundle. Immutable after construction, so threads can share it."""

    def __init__(self, bundle: Bundle, *, engine: str = "auto") -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        self.bundle = bundle
        self.schema = bundle.schema
        self._tree_weight = bundle.tree_weight
        self._booster: Any = None  # LightGBM's, only when the trees are not explained by the Forest
        self._linear = bundle.linear if bundle.tree_weight < 1.0 else None
        self._forest: Forest | None = None
        if bundle.tree_weight > 0.0:  # the logistic model alone has no trees to flatten
            if engine == "forest" or (engine == "auto" and numba_available()):
                self._forest = bundle.forest()
                self._forest.warm_up()
            else:
                if engine == "auto":
                    _logger.warning("numba is not installed: explanations use LightGBM's slower pred_contrib")
                self._booster = bundle.booster
        self._matrix = factor_matrix([spec.factor for spec in self.schema.features])
        self._candidates = ex.what_if_candidates(self.schema, bundle.encoder)
        self._candidate_columns = np.array([c.column for c in self._candidates], dtype=np.intp)
        self._candidate_codes = np.array([c.code for c in self._candidates], dtype=np.float64)
        self._candidate_terms = self._linear_terms_of_candidates()
        self._feature_factor = np.array([FACTORS.index(s.factor) for s in self.schema.features])
        self._feature_rows = ex.feature_rows(self.schema)
        self._reason_present = np.array([s.reason_text(missing=False) for s in self.schema.features], dtype=object)
        self._reason_missing = np.array([s.reason_text(missing=True) for s in self.schema.features], dtype=object)
        self.baseline_probability = float(bundle.calibrator(bundle.baseline_raw))
        self._grade_floors = dict(self.schema.grades)
        self._numbers = _numbers_kernel() if numba_available() else None
        if self._numbers is not None:
            self._numbers_arguments = self._kernel_arguments()
            self.score([{}])  # load the kernel's cached machine code now, not on the first request

    def _kernel_arguments(self) -> tuple[Any, ...]:
        """What `_score_kernels.score_numbers` reads of the model, between the trees' numbers and its outputs."""
        from features.factors import factor_slots

        linear = self._linear
        if linear is None:
            none = np.zeros(0, dtype=np.intp)
            model: tuple[Any, ...] = (0.0, np.zeros(0), 0.0, none, none, none, np.zeros(0), none)
            model += (np.zeros((7, 0)), np.zeros((0, 0)))
        else:
            model = linear.kernel_arrays
        return (*model, self._candidate_columns, self._candidate_codes, factor_slots(self._matrix))

    def _linear_terms_of_candidates(self) -> np.ndarray:
        """The logistic model's term for each what-if candidate's value (a term depends on its own column only)."""
        if self._linear is None or not self._candidates:
            return np.zeros(len(self._candidates))
        rows = ex.what_if_rows(
            np.full((1, len(self.schema.features)), np.nan), self._candidate_columns, self._candidate_codes
        )
        return self._linear.term_values(rows)[np.arange(len(self._candidates)), self._candidate_columns]

    @classmethod
    def load(cls, model: str | Path | None = None, *, engine: str = "auto") -> Scorer:
        """From a bundle folder, `models:/name@alias` or `models:/name/N`; None means the champion."""
        from serving.model.registry import load_bundle

        return cls(load_bundle(model), engine=engine)

    # -- model description ---------------------------------------------------------------
    @property
    def engine(self) -> str:
        """How the trees are explained: `forest` (numba), `lightgbm`, or `linear` when there are none."""
        if self._tree_weight == 0.0:
            return "linear"
        return "forest" if self._forest is not None else "lightgbm"

    @property
    def model_info(self) -> ModelRef:
        meta = self.bundle.metadata
        return {
            "name": self.bundle.name,
            "version": self.bundle.version,
            "as_of": meta.get("as_of"),
            "family": self.bundle.family,
        }

    # -- the model's numbers -------------------------------------------------------------
    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        """Log-odds for an encoded matrix, equal to `Bundle.raw_scores` (LightGBM's raw_score for trees)."""
        w = self._tree_weight
        if w == 0.0:
            return part(self._linear).raw(X)
        trees = self._forest.raw(X) if self._forest is not None else part(self._booster).predict(X, raw_score=True)
        if w == 1.0:
            return trees
        return w * trees + (1.0 - w) * part(self._linear).raw(X)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Exact Shapley values per feature plus the baseline column (pred_contrib's layout): TreeSHAP
        for trees, term - mean for the logistic model, their weighted sum for a blend."""
        w = self._tree_weight
        if w == 0.0:
            return part(self._linear).contributions(X)
        if self._forest is not None:
            trees = self._forest.contributions(X)
        else:
            trees = part(self._booster).predict(X, pred_contrib=True)
        if w == 1.0:
            return trees
        return w * trees + (1.0 - w) * part(self._linear).contributions(X)

    def raw_and_contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`raw_scores(X)` and `contributions(X)` at once, the logistic model's terms computed once
        (on one lead they cost as much as its trees' raw scores) and the trees' raw scores found by
        TreeSHAP's pass; the same numbers as apart."""
        w = self._tree_weight
        if w == 0.0:
            return part(self._linear).raw(X), part(self._linear).contributions(X)
        if self._forest is not None:
            trees_raw, trees_contrib = self._forest.raw_and_contributions(X)
        else:
            booster = part(self._booster)
            trees_raw, trees_contrib = booster.predict(X, raw_score=True), booster.predict(X, pred_contrib=True)
        if w == 1.0:
            return trees_raw, trees_contrib
        linear = part(self._linear)
        terms = linear.term_values(X)
        linear_raw, linear_contrib = linear.raw_from_terms(terms), linear.contributions_from_terms(terms)
        return w * trees_raw + (1.0 - w) * linear_raw, w * trees_contrib + (1.0 - w) * linear_contrib

    def probability(self, raw: np.ndarray | float) -> np.ndarray:
        return self.bundle.calibrator(raw)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated P(convert) for every row of a DataFrame of leads."""
        return self.probability(self.raw_scores(self.bundle.encoder.transform(frame)))

    def scores_and_grades(self, probability: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The 1-99 score (probability in percent, rounded, clipped) and the schema's grade."""
        score = np.minimum(np.maximum(np.rint(probability * 100.0), 1), 99).astype(np.int64)  # np.clip, cheaper
        return score, assign_grades(probability, self.schema.grades)

    # -- the real-time path --------------------------------------------------------------
    def score(self, records: Sequence[Mapping[str, Any]], *, what_if: int = ex.MAX_WHAT_IF) -> list[ScoreResponse]:
        """The full API response for each lead (serving.model.response.ScoreResponse), in order.

        Every number is computed for the whole batch at once (one model pass, one kernel for the logistic
        model, blend, factor sums and sorts, one calibration call for the probabilities, the factors'
        costs and the what-ifs); the loop per lead only does scalar arithmetic and assembles dicts, the
        same for a lead alone and in a batch."""
        if not records:
            return []
        n, n_cand, n_fac = len(records), len(self._candidates), len(FACTORS)
        encoder = self.bundle.encoder
        X = encoder.transform_records(records)
        numbers = self._numbers_by_kernel(X) if self._numbers is not None else self._numbers_by_numpy(X)
        raw, contrib, impacts, p, factor_order, feature_order, same = numbers
        model, baseline, baseline_p = self.model_info, self.bundle.baseline_raw, self.baseline_probability
        id_column, features, candidates = self.schema.id_column, self._feature_rows, self._candidates
        floors = self._grade_floors
        cost_at, what_if_at = n, n + n * n_fac
        out: list[ScoreResponse] = []
        for i, (record, r_i, imp, con, f_order, j_order, sm) in enumerate(
            zip(records, raw, impacts, contrib, factor_order, feature_order, same, strict=True)
        ):
            p_i = p[i]
            rescored = p[what_if_at + i * n_cand : what_if_at + (i + 1) * n_cand]
            unseen = encoder.unseen(record)
            out.append(
                {
                    "lead_id": lead_id_text(record.get(id_column)),
                    "probability": p_i,
                    "score": min(max(round(p_i * 100.0), 1), 99),  # scores_and_grades' rule, for one number
                    "grade": assign_grades(p_i, floors),
                    "model": model,
                    "baseline_probability": baseline_p,
                    "log_odds": {"baseline": baseline, "raw_score": r_i},
                    "factors": ex.factors_list(imp),
                    "lowering_factors": ex.lowering_factors(
                        impacts=imp,
                        probability=p_i,
                        neutral=p[cost_at + i * n_fac : cost_at + (i + 1) * n_fac],
                        factor_order=f_order,
                        contributions=con,
                        feature_order=j_order,
                        record=record,
                        unseen=unseen,
                        features=features,
                    ),
                    "what_if": ex.what_if(
                        probability=p_i,
                        candidates=candidates,
                        record=record,
                        rescored=rescored,
                        same=sm,
                        limit=what_if,
                    ),
                    "warnings": [
                        {"field": name, "problem": f"value {value!r} was not seen in training; scored as missing"}
                        for name, value in unseen.items()
                    ],
                }
            )
        return out

    _Numbers = tuple[list[float], list[list[float]], list[list[float]], list[float], list[Any], list[Any], list[Any]]

    def _numbers_by_kernel(self, X: np.ndarray) -> _Numbers:
        """`score`'s numbers per lead as lists: raw, contributions, factor impacts, the probabilities of
        [raw, raw - impact per factor, what-if raw per candidate] for the whole batch (flat), the factors
        and the features in ascending order, and whether the lead already has each candidate's value."""
        n, n_cand, n_fac, n_features = len(X), len(self._candidates), len(FACTORS), X.shape[1]
        w = self._tree_weight
        if w > 0.0:
            trees_raw, trees_contrib, trees_what_if = self._trees_raw_contributions_what_if(X)
        else:
            trees_raw, trees_contrib, trees_what_if = np.zeros(0), np.zeros((0, 0)), np.zeros((0, 0))
        kernels = part(self._numbers)
        mode = kernels.MODE_LINEAR if w == 0.0 else kernels.MODE_TREES if w == 1.0 else kernels.MODE_BLEND
        raw, contrib = np.empty(n), np.empty((n, n_features + 1))
        impacts, calibrate = np.empty((n, n_fac)), np.empty(n * (1 + n_fac + n_cand))
        factor_order = np.empty((n, n_fac), dtype=np.int64)
        feature_order = np.empty((n, n_features), dtype=np.int64)
        same = np.empty((n, n_cand), dtype=np.bool_)
        kernels.score_numbers(
            X,
            mode,
            w,
            trees_raw,
            trees_contrib,
            trees_what_if,
            *self._numbers_arguments,
            raw,
            contrib,
            impacts,
            calibrate,
            factor_order,
            feature_order,
            same,
        )
        p = self.probability(calibrate).tolist()
        return (
            raw.tolist(),
            contrib.tolist(),
            impacts.tolist(),
            p,
            factor_order.tolist(),
            feature_order.tolist(),
            same.tolist(),
        )

    def _numbers_by_numpy(self, X: np.ndarray) -> _Numbers:
        """`_numbers_by_kernel`'s numbers with numpy (without numba)."""
        n_features = X.shape[1]
        raw, contrib, what_if_raw = self._raw_contributions_what_if(X)
        impacts = factor_impacts(contrib, self._matrix)
        p = self.probability(np.concatenate([raw, (raw[:, None] - impacts).ravel(), what_if_raw.ravel()]))
        return (
            raw.tolist(),
            contrib.tolist(),
            impacts.tolist(),
            p.tolist(),
            np.argsort(impacts, axis=1, kind="stable").tolist(),
            np.argsort(contrib[:, :n_features], axis=1, kind="stable").tolist(),
            (X[:, self._candidate_columns] == self._candidate_codes).tolist(),
        )

    def _trees_raw_contributions_what_if(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The trees' raw scores, contributions and (n_leads, n_candidates) raw scores after each change."""
        n, columns, codes = len(X), self._candidate_columns, self._candidate_codes
        if self._forest is not None:
            return self._forest.raw_contributions_what_if(X, columns, codes)
        booster = part(self._booster)
        rows = ex.what_if_rows(X, columns, codes)
        what_if = (booster.predict(rows, raw_score=True) if len(rows) else np.zeros(0)).reshape(n, -1)
        return booster.predict(X, raw_score=True), booster.predict(X, pred_contrib=True), what_if

    def _raw_contributions_what_if(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`raw_and_contributions(X)` and (n_leads, n_candidates) raw scores after each single change,
        the logistic model's terms computed once: a change alters one term, the others are the lead's."""
        w, n = self._tree_weight, len(X)
        columns = self._candidate_columns
        if w > 0.0:
            trees_raw, trees_contrib, trees_what_if = self._trees_raw_contributions_what_if(X)
        if w == 1.0:
            return trees_raw, trees_contrib, trees_what_if
        linear = part(self._linear)
        terms = linear.term_values(X)
        linear_raw, linear_contrib = linear.raw_from_terms(terms), linear.contributions_from_terms(terms)
        linear_what_if = linear.raw_from_terms(ex.what_if_rows(terms, columns, self._candidate_terms)).reshape(n, -1)
        if w == 0.0:
            return linear_raw, linear_contrib, linear_what_if
        raw = w * trees_raw + (1.0 - w) * linear_raw
        contrib = w * trees_contrib + (1.0 - w) * linear_contrib
        return raw, contrib, w * trees_what_if + (1.0 - w) * linear_what_if

    def _what_if_probabilities(self, X: np.ndarray) -> np.ndarray:
        """(n_leads, n_candidates) probabilities after each single change (bench/run.py times it)."""
        return self.probability(self._raw_contributions_what_if(X)[2])

    # -- the batch path ------------------------------------------------------------------
    def explain(self, frame: pd.DataFrame, chunk_rows: int = 100_000, progress: bool = False) -> pd.DataFrame:
        """One row per lead, same order: id, probability, score, grade, raw score, impacts, top reason."""
        import pandas as pd

        if progress:  # smaller steps so the bar moves every few seconds; the cost per chunk is negligible
            chunk_rows = min(chunk_rows, PROGRESS_ROWS)
        chunks = track(_chunks(frame, chunk_rows), len(frame), "explain", enabled=progress)
        parts = [self._explain_chunk(chunk) for chunk in chunks]
        if not parts:
            return self._explain_chunk(frame.iloc[:0])
        return pd.concat(parts, ignore_index=True)

    def _explain_chunk(self, chunk: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        X = self.bundle.encoder.transform(chunk)
        raw, contrib = self.raw_and_contributions(X)
        prob = self.probability(raw)
        score, grade = self.scores_and_grades(prob)
        impacts = factor_impacts(contrib, self._matrix)
        factor, reason = self._top_lowering(X, contrib, impacts)
        id_col = self.schema.id_column
        ids = (
            chunk[id_col].astype("string").to_numpy(dtype=object, na_value=None)
            if id_col in chunk.columns
            else np.full(len(chunk), None, dtype=object)
        )
        columns: dict[str, Any] = {
            "lead_id": pd.array(ids, dtype="string"),
            "probability": prob,
            "score": score,
            "grade": grade,
            "raw_score": raw,
        }
        for k, key in enumerate(FACTORS):
            columns[f"impact_{key}"] = impacts[:, k]
        columns["top_lowering_factor"] = pd.array(factor, dtype="string")  # one dtype even if all None
        columns["top_lowering_reason"] = pd.array(reason, dtype="string")
        return pd.DataFrame(columns)

    def _top_lowering(self, X: np.ndarray, contrib: np.ndarray, impacts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The most negative factor and the reason text of its most negative feature (None if none)."""
        n = len(X)
        k = np.argmin(impacts, axis=1) if n else np.zeros(0, dtype=int)
        lowered = impacts[np.arange(n), k] < 0
        in_factor = self._feature_factor[None, :] == k[:, None]
        masked = np.where(in_factor, contrib[:, : X.shape[1]], np.inf)
        j = np.argmin(masked, axis=1) if n else np.zeros(0, dtype=int)
        missing = np.isnan(X[np.arange(n), j])
        reason = np.where(missing, self._reason_missing[j], self._reason_present[j])
        factor = np.asarray(FACTORS, dtype=object)[k]
        none = np.full(n, None, dtype=object)
        return np.where(lowered, factor, none), np.where(lowered, reason, none)


def _numbers_kernel() -> Any:
    """The module of `score_numbers`, its machine code in numba's cache folder (set up with the forest's)."""
    from serving.model.forest import _kernels

    _kernels()
    from serving.model import _score_kernels

    return _score_kernels


def _chunks(frame: pd.DataFrame, rows: int) -> Iterator[pd.DataFrame]:
    rows = max(int(rows), 1)
    for start in range(0, len(frame), rows):
        yield frame.iloc[start : start + rows]
