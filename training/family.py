"""Which model family to serve, and how to fit it on all the leads it should learn from.

Three families compete on the newest data (the `select` slice of a fold): LightGBM, the regularised
logistic model (`training.linear`), and their blend in log-odds, raw = w * trees + (1 - w) * linear.
The blend weight w runs over BLEND_WEIGHTS (0 is the logistic model, 1 LightGBM); each candidate is
judged by validation log loss after a two-parameter Platt map, so a family is not chosen for being
miscalibrated in a way the calibration step would fix anyway.

What the newest data chose is a `Recipe`: LightGBM's rounds (from early stopping, scaled to the number
of leads the final fit sees), the logistic model's C and the blend weight. `fit_calibrated` then fits
the recipe on *every* lead it may learn from (the served model must have seen the newest, most
informative leads) and calibrates without leakage: the calibration map is fitted on out-of-fold raw
scores of the newest slice, from two models each fitted on everything except one half of it
(cross-fitting). On large data, where one more fit costs more than it teaches, the map is fitted on
the chooser's own out-of-sample scores of that slice instead.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.calibration import Calibrator
from features.encoding import LeadEncoder
from features.schema import LeadSchema
from serving.model.linear import LinearModel
from training.calibrate import fit_calibrator, level_with_evidence
from training.evidence import best_with_evidence, platt_losses, trusted_auc, window_auc
from training.levels import fold_start, own_levels, period_codes, start_score, unexplained_levels
from training.linear import DEFAULT_C, LinearFit, fit_linear_details, select_C_and_fit
from training.model import DEFAULT_PARAMS, EARLY_STOPPING_ROUNDS, MAX_ROUNDS, size_params
from training.shape import ShapeChoice, TreeFit, choose_shape, shaped_params, worth_trying

_logger = logging.getLogger(__name__)

LIGHTGBM, LOGISTIC, BLEND = "lightgbm", "logistic", "blend"
BLEND_WEIGHTS = tuple(round(w, 2) for w in np.linspace(0.0, 1.0, 11))
CROSS_FIT_MAX_ROWS = 300_000  # above this, one more fit costs more than cross-fitting the calibration teaches
MAX_ROUND_SCALE = 1.5  # a refit on more leads gets proportionally more rounds, at most this many times
MIN_ROUNDS = 10
BLEND_PRIOR = 0.5  # the weight kept unless the validation leads clearly prefer another
# The weight served when the newest slice is no evidence (a model of the older leads ranks it below
# training.evidence.DRIFT_AUC): the logistic model alone. Under such drift the trees' splits and
# interactions belong to a regime the newest leads have left, and they are flat beyond the values
# training saw, where the linear terms keep following a moving rate or index. On the bank exports
# (the only real ones where the guard fires) this moved the next period's ROC AUC from 0.758 to 0.766
# (additional) and 0.734 to 0.738 (full).
DRIFT_TREE_WEIGHT = 0.0
# ... and served with its own probabilities, no map fitted on that slice: the logistic model's maximum-
# likelihood fit on every lead is calibrated on them, while a map fitted on a slice unlike the past
# bends every score toward that slice (bank: a Platt map's slope of 1.18 took the next period's log
# loss from 0.495 to 0.509; bank-full 0.707 to 0.716).
OWN_PROBABILITIES = Calibrator("identity")
DRIFT_CALIBRATION = "none: the newest slice drifted, the logistic model's own probabilities"
LEARNING_BUDGET = 10.0  # prior rounds x learning rate: LightGBM's own defaults (100 rounds at 0.1)


def family_of(tree_weight: float) -> str:
    return LIGHTGBM if tree_weight >= 1.0 else LOGISTIC if tree_weight <= 0.0 else BLEND


@dataclass(frozen=True)
class Recipe:
    """What the newest data chose; `rounds_for(n)` scales LightGBM's rounds to a fit on n leads."""

    rounds: int
    n_rows_chosen: int
    C: float
    tree_weight: float
    params: dict[str, Any]
    losses: dict[str, float] = field(default_factory=dict)  # validation log loss per candidate
    half_life_days: float | None = None  # recency weighting: a lead this much older than the newest counts half
    valid_auc: float = math.nan  # how well the chosen family, fitted on the older leads, ranked the newest slice
    prior_auc: float = math.nan  # how well LightGBM at its prior rounds, fitted on the older leads, ranked it
    drifting: bool = False  # that ranking was below DRIFT_AUC: the slice chose nothing (training.evidence)
    shape: ShapeChoice | None = None  # the explanation-shaped trees tried on the same slice (training.shape)
    # what the slice said of quarter levels (training.levels): True / False when the older leads' check fired
    # and the slice judged them, None when there was nothing to judge (the refit's own check then decides)
    levels: bool | None = None
    # each C's per-lead Platt loss on this slice (None: C kept its default), for later folds to pool
    C_losses: dict[float, np.ndarray] | None = field(default=None, repr=False, compare=False)

    @property
    def family(self) -> str:
        return family_of(self.tree_weight)

    def rounds_for(self, n_rows: int) -> int:
        scale = min(MAX_ROUND_SCALE, max(1.0, n_rows / max(self.n_rows_chosen, 1)))
        return max(MIN_ROUNDS, int(math.ceil(self.rounds * scale)))


@dataclass
class Components:
    """One fitted model of the recipe's family: encoder, trees and/or linear part, and the weight."""

    encoder: LeadEncoder
    booster: lgb.Booster | None
    linear: LinearModel | None
    tree_weight: float
    rounds: int = 0
    valid_raw: np.ndarray | None = None  # a chooser's log-odds of the slice it chose on (out of sample)
    levels: dict[str, float] | None = None  # quarter -> its level against the newest (training.levels)

    def raw(self, frame: pd.DataFrame) -> np.ndarray:
        return self.raw_matrix(self.encoder.transform(frame))

    def raw_at_own_level(self, frame: pd.DataFrame) -> np.ndarray:
        """`raw` at each lead's own period's level rather than the newest's (for calibrating on older leads)."""
        return self.raw(frame) + own_levels(frame, self.encoder.schema, self.levels)

    def raw_of_valid(self, valid: pd.DataFrame) -> np.ndarray:
        """`raw(valid)` for the slice a chooser chose on, kept from choosing rather than predicted again."""
        if self.valid_raw is not None and len(self.valid_raw) == len(valid):
            return self.valid_raw
        return self.raw(valid)

    def raw_matrix(self, X: np.ndarray) -> np.ndarray:
        out = np.zeros(len(X))
        if self.booster is not None and self.tree_weight > 0:
            out += self.tree_weight * self.booster.predict(X, raw_score=True)
        if self.linear is not None and self.tree_weight < 1:
            out += (1.0 - self.tree_weight) * self.linear.raw(X)
        return out


def train_booster(
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None,
    encoder: LeadEncoder,
    *,
    rounds: int,
    valid: tuple[np.ndarray, np.ndarray] | None = None,
    min_rounds: int = 0,
    offsets: np.ndarray | None = None,
) -> lgb.Booster:
    """LightGBM in this process: `rounds` rounds; with `valid`, early-stopped there (never before
    `min_rounds`), keeping the rounds after the best and setting `best_iteration` when it stopped.

    `offsets` (log-odds per lead, 0 at the newest period: `training.levels`) make each lead start from
    its period's level; the valid leads, newer, start from the newest one, and so does the result."""
    start = None if offsets is None else start_score(y, weights, offsets)
    dtrain = lgb.Dataset(
        X,
        label=y,
        weight=weights,
        init_score=None if start is None or offsets is None else start + offsets,
        feature_name=encoder.feature_names,
        categorical_feature=encoder.categorical_indices,
        free_raw_data=True,
    )
    if valid is None:
        booster = lgb.train(params, dtrain, num_boost_round=rounds)
    else:
        dvalid = lgb.Dataset(
            valid[0],
            label=valid[1],
            init_score=None if start is None else np.full(len(valid[1]), start),
            reference=dtrain,
        )
        booster = lgb.train(
            params,
            dtrain,
            num_boost_round=rounds,
            valid_sets=[dvalid],
            valid_names=["valid"],
            callbacks=[_early_stopping_after(min_rounds, EARLY_STOPPING_ROUNDS)],
            keep_training_booster=True,
        )  # keep the rounds after the best: the prior may need them
    return booster if start is None else fold_start(booster, start)


# Every LightGBM fit of the recipe goes through this one function; `training.distributed` swaps in
# lightgbm.dask for the length of a `train --engine dask` run, everything else staying the same.
BOOSTER_TRAINER: ContextVar[Callable[..., lgb.Booster]] = ContextVar("booster_trainer", default=train_booster)


def lightgbm_params(
    schema: LeadSchema, encoder: LeadEncoder, n_rows: int, params: dict[str, Any] | None, seed: int
) -> dict[str, Any]:
    out = {**DEFAULT_PARAMS, **size_params(n_rows), **(params or {}), "seed": seed}
    if any(encoder.monotone_constraints):
        out["monotone_constraints"] = encoder.monotone_constraints
        # "advanced" lets a few leads break the constraint (measured by the serving tests); this does not.
        out.setdefault("monotone_constraints_method", "intermediate")
    return out


def choose_recipe(
    train: pd.DataFrame,
    y_train: np.ndarray,
    valid: pd.DataFrame,
    y_valid: np.ndarray,
    schema: LeadSchema,
    *,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    families: tuple[str, ...] = (LIGHTGBM, LOGISTIC, BLEND),
    half_life_days: float | None = None,
    earlier_shapes: tuple[ShapeChoice, ...] = (),
    earlier_C: tuple[dict[float, np.ndarray], ...] = (),
) -> tuple[Recipe, Components]:
    """Early-stop LightGBM, choose C and the blend weight on `valid`; returns the recipe and the fitted
    chooser (trained on `train` only, so its scores on `valid` are out of sample). `earlier_shapes`: the
    earlier rolling-origin folds' shape choices, judged together with this slice (`training.shape`)."""
    encoder = LeadEncoder(schema).fit(train)
    X_train, X_valid = encoder.transform(train), encoder.transform(valid)
    lgb_params = lightgbm_params(schema, encoder, len(train), params, seed)
    weights = recency_weights(train, schema, half_life_days)
    found = _quarters(train, schema)
    prior_fit, periods, levels = (
        _level_check(found, X_train, y_train, encoder, weights, seed, valid=(X_valid, y_valid))
        if found is not None
        else (None, None, None)
    )
    offsets = _offsets(prior_fit, periods)
    trees, prior_auc = _fit_trees(lgb_params, X_train, y_train, weights, encoder, X_valid, y_valid, **offsets)
    # A slice the prior model cannot rank is no evidence: every setting keeps its prior (training.evidence).
    trusted = trusted_auc(prior_auc)
    shape = None
    # fewer, smaller trees cost less to explain: kept when the valid slice cannot tell them apart (training.shape)
    if trusted and (LIGHTGBM in families or BLEND in families) and worth_trying(lgb_params, params, len(train)):
        shaped, _ = _fit_trees(
            shaped_params(lgb_params), X_train, y_train, weights, encoder, X_valid, y_valid, **offsets
        )
        trees, shape = choose_shape(trees, shaped, y_valid, earlier_shapes)
    lgb_params, booster, rounds, raw_trees = trees.params, trees.booster, trees.rounds, trees.valid_raw

    linear, C, raw_linear, c_losses = None, DEFAULT_C, np.zeros(len(valid)), None
    if LOGISTIC in families or BLEND in families:
        if trusted:
            found_C = select_C_and_fit(
                X_train,
                y_train,
                X_valid,
                y_valid,
                encoder,
                sample_weight=weights,
                seed=seed,
                periods=periods,
                earlier=earlier_C,
            )
            C, linear, c_losses = found_C.C, found_C.model, found_C.per_lead
        else:
            fit = prior_fit or fit_linear_details(X_train, y_train, encoder, C=C, sample_weight=weights, seed=seed)
            linear = fit.model
        raw_linear = linear.raw(X_valid)
    allowed = [w for w in BLEND_WEIGHTS if family_of(w) in families]
    # heavier tree weights first: on equal loss the trees win
    per_lead = {w: platt_losses(w * raw_trees + (1 - w) * raw_linear, y_valid) for w in sorted(allowed, reverse=True)}
    losses = {f"w={w:.1f}": float(per_lead[w].mean()) for w in allowed}
    if trusted:
        tree_weight = best_with_evidence(per_lead, BLEND_PRIOR)
    else:
        tree_weight = min(allowed, key=lambda w: abs(w - DRIFT_TREE_WEIGHT))
        _logger.info("family: the valid slice is ranked below the drift threshold; the logistic model at its priors")
    valid_raw = tree_weight * raw_trees + (1 - tree_weight) * raw_linear
    valid_auc = window_auc(valid_raw, y_valid)
    _logger.info("family: %s (tree weight %.1f, %d rounds, C=%g)", family_of(tree_weight), tree_weight, rounds, C)
    recipe = Recipe(
        rounds=rounds,
        n_rows_chosen=len(train),
        C=C,
        tree_weight=float(tree_weight),
        params=lgb_params,
        losses=losses,
        half_life_days=half_life_days,
        valid_auc=valid_auc,
        prior_auc=prior_auc,
        drifting=not trusted,
        shape=shape,
        levels=levels,
        C_losses=c_losses,
    )
    chooser = Components(
        encoder=encoder,
        booster=booster if tree_weight > 0 else None,
        linear=linear if tree_weight < 1 else None,
        tree_weight=float(tree_weight),
        rounds=rounds,
        valid_raw=valid_raw,
    )
    return recipe, chooser


def _fit_trees(
    params: dict[str, Any],
    X_train: np.ndarray,
    y_train: np.ndarray,
    weights: np.ndarray | None,
    encoder: LeadEncoder,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    **offsets: np.ndarray,
) -> tuple[TreeFit, float]:
    """LightGBM early-stopped on the valid slice, its rounds chosen with evidence, and the prior model's
    ROC AUC on the slice (below DRIFT_AUC the slice is no evidence: rounds keep their prior). `offsets`:
    each lead's quarter level (`training.levels`), when there are levels."""
    prior_rounds = default_rounds(params)
    booster = BOOSTER_TRAINER.get()(
        params,
        X_train,
        y_train,
        weights,
        encoder,
        rounds=max(MAX_ROUNDS, prior_rounds),
        valid=(X_valid, y_valid),
        min_rounds=prior_rounds,
        **offsets,
    )
    prior = min(prior_rounds, booster.current_iteration())
    prior_raw = booster.predict(X_valid, raw_score=True, num_iteration=prior)
    prior_auc = window_auc(prior_raw, y_valid)
    if trusted_auc(prior_auc):
        rounds, raw_trees = _rounds_with_evidence(booster, X_valid, y_valid, prior_rounds)
    else:
        rounds, raw_trees = prior, prior_raw
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=rounds))
    return TreeFit(params=params, booster=booster, rounds=rounds, valid_raw=raw_trees), prior_auc


def fit_components(
    frame: pd.DataFrame, y: np.ndarray, schema: LeadSchema, recipe: Recipe, *, seed: int = 0
) -> Components:
    """The recipe fitted on `frame`, with a fresh encoder (the newest leads may bring new levels)."""
    encoder = LeadEncoder(schema).fit(frame)
    X = encoder.transform(frame)
    weights = recency_weights(frame, schema, recipe.half_life_days)
    booster = None
    rounds = recipe.rounds_for(len(frame))
    # the logistic part first: where the features leave the quarters' levels unexplained, it has one level
    # per quarter, and LightGBM's leads start from them (training.levels)
    # under drift the logistic model serves its own probabilities at the history's level: no quarter levels
    # and none where the newest slice judged them and did not clearly ask for them
    found = None if recipe.drifting or recipe.levels is False else _quarters(frame, schema)
    fitted, periods, _ = (
        _level_check(found, X, y, encoder, weights, seed, C=recipe.C)
        if recipe.tree_weight < 1 or found is not None
        else (None, None, None)
    )
    if recipe.tree_weight > 0:
        # the recipe's own settings win: its rounds were counted at its learning rate, which size_params
        # would double for a refit that crosses LARGE_DATA_ROWS when the evaluation fit did not
        params = {**size_params(len(frame)), **recipe.params, "seed": seed}
        if any(encoder.monotone_constraints):
            params["monotone_constraints"] = encoder.monotone_constraints
        booster = BOOSTER_TRAINER.get()(params, X, y, weights, encoder, rounds=rounds, **_offsets(fitted, periods))
    linear = fitted.model if fitted is not None and recipe.tree_weight < 1 else None
    return Components(
        encoder=encoder,
        booster=booster,
        linear=linear,
        tree_weight=recipe.tree_weight,
        rounds=rounds if booster is not None else 0,
        levels=_by_quarter(found, fitted if periods is not None else None),
    )


def _quarters(frame: pd.DataFrame, schema: LeadSchema) -> tuple[np.ndarray, list[str]] | None:
    """The leads' quarters for the level check, up to CROSS_FIT_MAX_ROWS leads. Above that the check
    fires on misses too small to matter (on a million synthetic leads it fitted levels, which cost 29%
    more CPU in training and moved its test figures from 0.8911 / 0.2025 to 0.8907 / 0.2028)."""
    return period_codes(frame, schema) if len(frame) <= CROSS_FIT_MAX_ROWS else None


def _level_check(
    found: tuple[np.ndarray, list[str]] | None,
    X: np.ndarray,
    y: np.ndarray,
    encoder: LeadEncoder,
    weights: np.ndarray | None,
    seed: int,
    *,
    C: float = DEFAULT_C,
    valid: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[LinearFit | None, np.ndarray | None, bool | None]:
    """The logistic model at C, and the leads' quarter codes when the features leave the quarters'
    levels unexplained (that model then has one level per quarter): `training.levels`. Without
    quarters (`found` None) there is nothing to check.

    With `valid` (newer leads) levels are a setting like any other (training.evidence): kept only when
    that slice's per-lead loss clearly prefers the levelled model to the pooled one. The third value
    says what the slice decided (None: the check did not fire, so there was nothing to judge)."""
    pooled = fit_linear_details(X, y, encoder, C=C, sample_weight=weights, seed=seed)
    if found is None or not unexplained_levels(y, pooled.model.raw(X), found[0]):
        return pooled, None, None
    levelled = fit_linear_details(X, y, encoder, C=C, sample_weight=weights, seed=seed, periods=found[0])
    if valid is None:
        return levelled, found[0], None
    X_valid, y_valid = valid
    per_lead = {True: platt_losses(levelled.model.raw(X_valid), y_valid)}
    per_lead[False] = platt_losses(pooled.model.raw(X_valid), y_valid)
    if best_with_evidence(per_lead, False):
        return levelled, found[0], True
    _logger.info("levels: the quarters' rates are unexplained, but the newest slice does not ask for levels")
    return pooled, None, False


def _by_quarter(found: tuple[np.ndarray, list[str]] | None, fitted: LinearFit | None) -> dict[str, float] | None:
    """Quarter name -> level, for a fit with quarter levels (None otherwise)."""
    if found is None or fitted is None or fitted.period_offsets is None:
        return None
    return dict(zip(found[1], fitted.period_offsets.tolist(), strict=True))


def _offsets(levelled: LinearFit | None, periods: np.ndarray | None) -> dict[str, np.ndarray]:
    """The trainer's `offsets` keyword: each lead's period level from the logistic fit (none without periods)."""
    if levelled is None or periods is None or levelled.period_offsets is None:
        return {}
    return {"offsets": levelled.period_offsets[periods]}


def recency_weights(frame: pd.DataFrame, schema: LeadSchema, half_life_days: float | None) -> np.ndarray | None:
    """Weights that halve every `half_life_days` back from the newest lead (None: all leads count the same).

    Under drift (a region's effect turning, a new product) the newest leads say more about the next
    ones; the backtest measures whether that pays for the data it discounts.
    """
    if not half_life_days or not schema.created_at or schema.created_at not in frame.columns:
        return None
    created = pd.to_datetime(frame[schema.created_at], errors="coerce")
    age = (created.max() - created).dt.total_seconds().to_numpy() / 86_400.0
    weights = np.power(0.5, np.nan_to_num(age, nan=0.0) / half_life_days)
    return weights / weights.mean()


@dataclass
class Calibrated:
    """A fitted model, its calibration map, and how the map was fitted (for the run's record)."""

    components: Components
    calibrator: Calibrator
    method: str
    n_calibration: int


def fit_calibrated(
    frame: pd.DataFrame,
    y: np.ndarray,
    select: np.ndarray,
    schema: LeadSchema,
    recipe: Recipe,
    *,
    seed: int = 0,
    chooser: Components | None = None,
) -> Calibrated:
    """Fit the recipe on every row of `frame`; calibrate on out-of-fold scores of the `select` rows.

    With `chooser` (the model that chose the recipe on the `select` rows, so it never saw them) on large
    data, its scores are used instead of cross-fitting, which would cost two more fits.
    """
    y = np.asarray(y)
    final = fit_components(frame, y, schema, recipe, seed=seed)
    if recipe.drifting:
        return Calibrated(final, OWN_PROBABILITIES, DRIFT_CALIBRATION, 0)
    sel_frame, sel_y = frame.iloc[select], y[select]
    if chooser is not None and len(frame) > CROSS_FIT_MAX_ROWS:
        calibrator = calibration_map(recipe, lambda: chooser.raw_of_valid(sel_frame), sel_y, seed=seed)
        return Calibrated(final, calibrator, "newest slice, scored by the model that chose the family", len(select))
    oof = np.empty(len(select))
    halves = _halves(sel_y, seed)
    for half in (halves, ~halves):
        held = select[half]
        keep = np.ones(len(frame), dtype=bool)
        keep[held] = False
        model = fit_components(frame.iloc[np.flatnonzero(keep)], y[keep], schema, recipe, seed=seed)
        oof[half] = model.raw_at_own_level(frame.iloc[held])
    calibrator = fit_calibrator(oof, sel_y, seed=seed)
    rest = np.ones(len(frame), dtype=bool)
    rest[select] = False
    calibrator = level_with_evidence(calibrator, oof, sel_y, y[rest])
    return Calibrated(final, calibrator, "cross-fitted on the newest slice (2 folds)", len(select))


def calibration_map(recipe: Recipe, raw: Callable[[], np.ndarray], y: np.ndarray, *, seed: int = 0) -> Calibrator:
    """The map for a model of `recipe` whose log-odds of the newest slice are `raw()` (not computed under drift)."""
    return OWN_PROBABILITIES if recipe.drifting else fit_calibrator(raw(), y, seed=seed)


def _halves(y: np.ndarray, seed: int) -> np.ndarray:
    """A stratified random half, so both halves hold conversions."""
    rng = np.random.default_rng(seed)
    half = np.zeros(len(y), dtype=bool)
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        half[idx[: len(idx) // 2]] = True
    return half


def default_rounds(params: dict[str, Any]) -> int:
    """LightGBM's rounds when the validation leads give no clear reason for another number."""
    return max(MIN_ROUNDS, int(math.ceil(LEARNING_BUDGET / float(params.get("learning_rate", 0.1)))))


def _early_stopping_after(min_rounds: int, patience: int) -> Any:
    """LightGBM's early stopping, except that it never stops before `min_rounds`: the rounds the
    evidence rule compares against must exist."""
    best: dict[str, Any] = {"score": math.inf, "iteration": 0, "results": []}

    def callback(env: Any) -> None:
        results = env.evaluation_result_list
        score = float(results[0][2])
        if score < best["score"]:
            best.update(score=score, iteration=env.iteration, results=results)
        if env.iteration + 1 >= min_rounds and env.iteration - best["iteration"] >= patience:
            raise lgb.callback.EarlyStopException(best["iteration"], best["results"])

    callback.order = 30  # type: ignore[attr-defined]  # after LightGBM's evaluation logging
    return callback


def _rounds_with_evidence(
    booster: lgb.Booster, X_valid: np.ndarray, y_valid: np.ndarray, prior: int
) -> tuple[int, np.ndarray]:
    """Early stopping's best rounds if the validation leads clearly prefer them to the prior's, and the
    validation leads' log-odds at those rounds."""
    best = booster.best_iteration or booster.current_iteration()
    prior = min(prior, booster.current_iteration())
    raw = {r: booster.predict(X_valid, raw_score=True, num_iteration=r) for r in dict.fromkeys((best, prior))}
    if best == prior:
        return best, raw[best]
    chosen = best_with_evidence({r: platt_losses(raw[r], y_valid) for r in (best, prior)}, prior)
    return chosen, raw[chosen]
