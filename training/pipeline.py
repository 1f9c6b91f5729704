"""`leadscore train`: one quarterly retraining, from a lead file to a registered (maybe promoted) model.

    >>> result = train("data/leads.parquet", as_of="2026-07-01")    # doctest: +SKIP
    >>> print(result.summary())                                       # doctest: +SKIP

The order matters: everything that can fail on the data (reading, labelling at as-of, the time
split, class counts) runs before MLflow is touched, so a failed run moves no alias and leaves no
bundle. Then, inside one MLflow run: metrics for the model, the logistic baseline and the current
champion on the same test quarter; charts, model card and data profile; registration as
`challenger`; export of the bundle; and only last, promotion to `champion` when the decision allows.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.datasets import schema_for
from features.encoding import LeadEncoder
from features.errors import DataError, LeadscoreError, TrainingError
from features.loading import read_leads
from features.periods import outcome_label, quarter_periods
from features.progress import Steps
from features.schema import LeadSchema
from serving.model import registry
from serving.model.bundle import Bundle
from training import recovery, tracking
from training.baseline import fit_baseline
from training.evidence import DRIFT_AUC
from training.family import (
    CROSS_FIT_MAX_ROWS,
    Calibrated,
    Components,
    Recipe,
    calibration_map,
    choose_recipe,
    fit_calibrated,
    fit_components,
)
from training.levels import describe_levels
from training.linear import log_loss_from_raw
from training.metrics import Evaluation, evaluate
from training.model import make_bundle, raw_scores
from training.model_card import factor_importance
from training.promotion import MODES, Decision, PromotionSettings, decide
from training.record import bundle_metadata, run_metrics, run_params, write_artifacts
from training.shape import ShapeChoice
from training.splits import Split, SplitReport, label_at, time_split
from training.unchanged import TAG as UNCHANGED_TAG
from training.unchanged import Unchanged, inputs_fingerprint, unchanged_champion

_logger = logging.getLogger(__name__)

MIN_TRAIN_POSITIVES = 50
MIN_EVAL_POSITIVES = 10
DRIFT_SAMPLE = 200_000  # reference leads for PSI: ten bins per feature need far fewer than a million


@dataclass
class TrainResult:
    """What one training run produced and decided."""

    run_id: str
    version: str
    promoted: bool
    decision: str
    bundle_dir: Path
    tracking_uri: str
    report: SplitReport
    evaluations: dict[str, Evaluation | None]
    champion_before: str | None
    best_iteration: int
    calibration: str
    seconds: float
    timings: dict[str, float]
    family: str = "lightgbm"
    tree_weight: float = 1.0
    folds: list[dict[str, Any]] = field(default_factory=list)
    calibration_source: str = ""
    valid_auc: float = float("nan")  # the prior model's ranking of the newest slice (training.evidence)
    drifting: bool = False
    repairs: list[str] = field(default_factory=list)
    cpu_timings: dict[str, float] = field(default_factory=dict)  # CPU seconds per stage (all threads)
    tree_shape: str = ""  # the explanation-shape trade-off (training.shape), when shaped trees were tried
    quarter_levels: dict[str, float] | None = None  # quarter -> level against the newest (training.levels)

    def summary(self) -> str:
        """The few lines a person reads after `leadscore train`."""
        r = self.report
        left = "; ".join(f"{n:,} {why}" for why, n in r.left_out.items()) or "none"
        family = {
            "lightgbm": f"LightGBM, {self.best_iteration} trees",
            "logistic": "regularised logistic model",
            "blend": f"blend in log-odds: {self.tree_weight:.0%} LightGBM ({self.best_iteration} trees), "
            f"{1 - self.tree_weight:.0%} logistic",
        }[self.family]
        lines = [f"repaired: {line}" for line in self.repairs]
        lines.append(
            f"trained lead-conversion version {self.version} as of {_day(r.as_of)} in {self.seconds:.0f}s "
            f"({family}; {self.calibration} calibration)"
        )
        if r.as_of_source:
            lines.append(f"  as of: {_day(r.as_of)}, {r.as_of_source}")
        lines += [
            f"  label: {outcome_label(r.outcome_window_days)} (the schema's outcome_window_days)",
            f"  rows: {r.n_rows:,} read, {r.n_used:,} used, {r.n_left_out:,} left out ({left})",
            (
                f"  split ({r.method}): train {_span(r.train_window)} {r.n_train:,} leads, valid "
                f"{r.valid_quarter or _span(r.valid_window)} {r.n_valid:,}, test "
                f"{r.test_quarter or _span(r.test_window)} {r.n_test:,} ({r.positives_test:,} converted)"
            ),
        ]
        if len(self.folds) > 1:
            aucs = np.array([f["roc_auc"] for f in self.folds], dtype=float)
            losses = np.array([f["log_loss"] for f in self.folds], dtype=float)
            lines.append(
                f"  rolling origin, {len(self.folds)} folds: ROC AUC {np.nanmean(aucs):.4f} "
                f"± {np.nanstd(aucs):.4f}, log loss {np.nanmean(losses):.4f} ± {np.nanstd(losses):.4f} "
                "(mean ± spread across folds)"
            )
        lines.append(f"  served model: refitted on all {r.n_used:,} used leads; calibration {self.calibration_source}")
        if self.tree_shape:
            lines.append(f"  trees: {self.tree_shape}")
        if self.quarter_levels:
            newest = list(self.quarter_levels)[-1]
            lines.append(
                "  quarter levels: the features leave the quarters' conversion rates unexplained, so each quarter "
                f"of creation has its own level (log-odds against {newest}, the one served): "
                f"{describe_levels(self.quarter_levels)}"
            )
        if r.note:
            lines.append(f"  note: {r.note}")
        if self.drifting:
            lines.append(
                f"  drift: a model of the older leads ranks the newest slice at ROC AUC {self.valid_auc:.2f} "
                f"(0.5 is chance, below {DRIFT_AUC} is drift): the past says little about the newest leads, so that "
                "slice chose nothing; training serves the logistic model (it follows values beyond the past's) "
                "at its default settings, with its own probabilities; watch the next quarter"
            )
        lines.append(f"  {'test leads':<16}{'ROC AUC':>9}{'PR AUC':>9}{'log loss':>10}{'ECE':>8}{'lift@10%':>10}")
        for name, ev in self.evaluations.items():
            if ev is None:
                continue
            label = f"champion v{self.champion_before}" if name == "champion" else name
            lines.append(
                f"  {label:<16}{ev.roc_auc:>9.4f}{ev.pr_auc:>9.4f}{ev.log_loss:>10.4f}{ev.ece:>8.4f}"
                f"{ev.lift['top10']:>10.2f}"
            )
        verdict = "promoted to champion" if self.promoted else "registered as challenger"
        lines += [
            f"  decision: {verdict} ({self.decision})",
            f"  bundle: {self.bundle_dir}",
            f"  MLflow: experiment {tracking.EXPERIMENT}, run {self.run_id} ({self.tracking_uri})",
        ]
        return "\n".join(lines)


def train(
    data_path: str | Path,
    schema_path: str | Path | None = None,
    as_of: str | pd.Timestamp | None = None,
    promote: str = "auto",
    models_dir: str | Path = "models",
    tracking_uri: str | None = None,
    *,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    settings: PromotionSettings | None = None,
    export_date: str | pd.Timestamp | None = None,
    half_life_days: float | None = None,
) -> TrainResult:
    """Train, evaluate, track, register and (per `promote`) promote one model. See the module doc."""
    clock = _Clock()
    clock.begin("read the data")
    if promote not in MODES:
        raise TrainingError(f"promote must be one of {', '.join(MODES)}, got {promote!r}", field="promote")
    settings = settings or PromotionSettings.from_env()
    data_path = Path(data_path)
    schema = schema_for(data_path, schema_path)
    frame = load_history(data_path, schema)
    clock.lap("load")
    clock.begin("split by time")
    # no name for the labelled copy: the split keeps what it needs, so one frame less is held from here on
    split = time_split(
        label_at(frame, schema, _parse_as_of(as_of), export_date=_parse_as_of(export_date, "export_date")),
        schema,
        seed=seed,
    )
    check_split(split, frame, schema)
    clock.lap("split")
    if half_life_days is not None and not half_life_days > 0:
        raise TrainingError(
            f"half-life must be a positive number of days, got {half_life_days!r}", field="half_life_days"
        )
    candidate = fit_and_evaluate(split, schema, params=params, seed=seed, clock=clock, half_life_days=half_life_days)
    data_sha = file_sha256(data_path)
    inputs = inputs_fingerprint(
        data_sha=data_sha,
        schema=schema,
        as_of=as_of,
        export_date=export_date,
        half_life_days=half_life_days,
        params=params,
        seed=seed,
    )

    uri = tracking.resolve_tracking_uri(tracking_uri)
    with tracking.use_tracking(uri) as client, tracking.scratch_dir("train") as scratch:
        scratch_path = Path(scratch)
        experiment_id = tracking.ensure_experiment(client, uri)
        repairs = recovery.recover(client, experiment_id, Path(models_dir))  # before the champion is read
        clock.begin("score the champion on the same test leads")
        champion_before, decision = _challenge_champion(
            client, candidate, split, schema, promote, settings, scratch_path / "champion"
        )
        clock.lap("champion")
        with tracking.start_run(
            client, uri, f"train as of {_day(split.report.as_of)}", tags=recovery.run_tags()
        ) as run_id:
            bundle = candidate.bundle
            bundle.metadata = bundle_metadata(
                version=tracking.next_version(client),
                run_id=run_id,
                report=split.report,
                model_eval=candidate.model_evaluation,
                candidate=candidate,
                bundle=bundle,
                data_sha=data_sha,
            )
            clock.begin("write charts, model card and drift")
            drift = _drift_table(frame, split, schema)
            importance = factor_importance(bundle, split.test, seed=seed)
            artifacts = scratch_path / "artifacts"
            write_artifacts(
                artifacts,
                bundle=bundle,
                split=split,
                scored=candidate.scored,
                evaluations=candidate.evaluations,
                importance=importance,
                drift=drift,
                frame=frame,
                decision=decision,
                data_name=data_path.name,
                data_sha=data_sha,
            )
            clock.lap("reports")
            clock.begin("register in MLflow")
            tracking.log_params(
                run_params(
                    split.report, candidate, bundle, schema, data_path, data_sha, promote, settings, champion_before
                )
            )
            tracking.log_metrics(run_metrics(candidate.evaluations, drift, candidate.folds, candidate.recipe.shape))
            tracking.log_artifacts(artifacts)
            tracking.log_training_data(frame, path=data_path, digest=data_sha, target=schema.target_column)
            tracking.set_tags({"leadscore.decision": decision.reason, "leadscore.promoted": decision.promote})
            version, bundle_dir = _register_and_export(
                client,
                bundle,
                run_id,
                decision,
                split.report,
                staging=scratch_path / "bundle",
                models_dir=Path(models_dir),
                inputs=inputs,
            )
            clock.lap("mlflow")
            tracking.log_metrics(
                {
                    "promoted": float(decision.promote),
                    "train_seconds": clock.total,
                    **{f"seconds_{k}": v for k, v in clock.marks.items()},
                }
            )

        result = TrainResult(
            run_id=run_id,
            version=version,
            promoted=decision.promote,
            decision=decision.reason,
            bundle_dir=bundle_dir,
            tracking_uri=uri,
            report=split.report,
            evaluations=candidate.evaluations,
            champion_before=champion_before,
            best_iteration=candidate.deployed.components.rounds,
            calibration=bundle.calibrator.method,
            family=candidate.recipe.family,
            tree_weight=candidate.recipe.tree_weight,
            folds=candidate.folds,
            calibration_source=candidate.deployed.method,
            valid_auc=candidate.recipe.prior_auc,
            drifting=candidate.recipe.drifting,
            tree_shape=candidate.recipe.shape.describe() if candidate.recipe.shape else "",
            quarter_levels=candidate.deployed.components.levels,
            seconds=clock.total,
            timings=dict(clock.marks),
            cpu_timings=dict(clock.cpu_marks),
            repairs=repairs,
        )
        tracking.describe_run(client, run_id, result.summary())
    return result


def train_command(
    *,
    data: str | Path,
    schema: str | Path | None = None,
    as_of: str | None = None,
    promote: str = "auto",
    models_dir: str | Path = "models",
    export_date: str | None = None,
    half_life_days: float | None = None,
    force: bool = False,
) -> int:
    """`leadscore train`: run `train` and print its summary; errors become one line (exit 2) in the CLI.
    Inputs equal to the champion's (data, schema, parameters) train nothing unless `force`."""
    if not force:
        same = _unchanged(data, schema, as_of=as_of, export_date=export_date, half_life_days=half_life_days)
        if same is not None:
            print(same.summary(data))
            return 0
    result = train(data, schema, as_of, promote, models_dir, export_date=export_date, half_life_days=half_life_days)
    print(result.summary())
    return 0


def _unchanged(
    data: str | Path,
    schema_path: str | Path | None,
    *,
    as_of: str | None,
    export_date: str | None,
    half_life_days: float | None,
) -> Unchanged | None:
    data_path = Path(data)
    if not data_path.is_file():
        return None  # train() says what is wrong with the path
    schema = schema_for(data_path, schema_path)
    fingerprint = inputs_fingerprint(
        data_sha=file_sha256(data_path),
        schema=schema,
        as_of=as_of,
        export_date=export_date,
        half_life_days=half_life_days,
    )
    return unchanged_champion(fingerprint, tracking.resolve_tracking_uri(None))


# -- steps before MLflow ---------------------------------------------------------------------------


def load_history(data_path: Path, schema: LeadSchema) -> pd.DataFrame:
    """The lead file with schema dtypes; duplicate lead ids are refused (they would double-count), and so
    are cells that do not fit their type and creation dates in the future (strict reading)."""
    frame = read_leads(data_path, schema, strict=True)
    dupes = frame[schema.id_column].duplicated()
    if dupes.any():
        first = frame.loc[dupes, schema.id_column].iloc[0]
        raise DataError(
            f"{data_path.name}: {int(dupes.sum()):,} duplicate lead ids in '{schema.id_column}' (first: {first})",
            field=schema.id_column,
        )
    return frame


def check_split(split: Split, frame: pd.DataFrame | None = None, schema: LeadSchema | None = None) -> None:
    """Refuse to train a model nobody should trust: one class, or too few conversions to learn or judge.

    With the lead file and schema at hand, the refusal says which outcome window would leave enough.
    """
    r = split.report
    if len(split.y) == 0:
        reasons = "; ".join(f"{n:,} {why}" for why, n in r.left_out.items())
        raise TrainingError(
            f"no lead has a known outcome at as-of {_day(r.as_of)} ({reasons}){_window_hint(frame, schema, r)}",
            field="as_of",
        )
    positives = int(split.y.sum())
    if positives == 0 or positives == len(split.y):
        kind = "converted" if positives else "not converted"
        raise TrainingError(
            f"only one class: all {len(split.y):,} labelled leads are {kind}; "
            f"training needs both converted and not-converted leads{_window_hint(frame, schema, r)}",
            field="target",
        )
    for fold in split.folds:
        where = {
            "train": (split.y[fold.fit], MIN_TRAIN_POSITIVES, _positions_span(split, fold.fit, schema)),
            "valid": (split.y[fold.select], MIN_EVAL_POSITIVES, _positions_span(split, fold.select, schema)),
            "test": (split.y[fold.score], MIN_EVAL_POSITIVES, fold.label),
        }
        for part, (y, needed, span) in where.items():
            if part == "test" and not len(fold.score):
                continue
            pos, neg = int(y.sum()), int(len(y) - y.sum())
            if pos < needed or neg < needed:
                raise TrainingError(
                    f"too few leads to {'learn' if part == 'train' else 'judge'} from: the {part} "
                    f"set ({span}) has {pos:,} converted and {neg:,} not converted, need at least "
                    f"{needed} of each (use more history or a later --as-of"
                    f"{_window_hint(frame, schema, r)})",
                    field="target",
                )


def _positions_span(split: Split, positions: np.ndarray, schema: LeadSchema | None) -> str:
    """'2017-06-14..2017-11-04' for those leads, or their count when there are no dates."""
    column = schema.created_at if schema is not None else None
    if not len(positions) or not column or column not in split.frame.columns:
        return f"{len(positions):,} leads"
    when = pd.to_datetime(split.frame[column].iloc[positions], errors="coerce")
    return f"{when.min():%Y-%m-%d}..{when.max():%Y-%m-%d}"


def _window_hint(frame: pd.DataFrame | None, schema: LeadSchema | None, report: SplitReport) -> str:
    """'; an outcome window of 120 days would leave ...' when a shorter window would work, else ''."""
    if frame is None or schema is None or not (schema.created_at and schema.converted_at) or report.as_of is None:
        return ""
    from features.outcome_window import choose_window

    choice = choose_window(frame[schema.created_at], frame[schema.converted_at], as_of=report.as_of)
    if choice.days >= schema.outcome_window_days:
        return ""
    return f"; or set outcome_window_days: {choice.days} in the schema ({choice.note})"


@dataclass
class TrainedCandidate:
    """The served model (refitted on every used lead) and how its recipe scored where it was judged.

    `scored["model"]` holds, for every test lead, the probability from the model the same recipe
    fitted on the leads before it (the evaluated model), so the figures are honest for the refit.
    """

    deployed: Calibrated
    recipe: Recipe
    bundle: Bundle
    scored: dict[str, np.ndarray]
    evaluations: dict[str, Evaluation | None]
    groups: pd.Series | None
    folds: list[dict[str, Any]] = field(default_factory=list)
    evaluated_rounds: int = 0

    @property
    def fitted(self) -> Calibrated:  # the name older callers use
        return self.deployed

    @property
    def model_evaluation(self) -> Evaluation:
        """The served recipe's test-quarter figures (always computed; only the baseline's may be missing)."""
        found = self.evaluations["model"]
        if found is None:
            raise TrainingError("the model was not evaluated on the test leads", field="model")
        return found


def fit_and_evaluate(
    split: Split,
    schema: LeadSchema,
    *,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    clock: _Clock | None = None,
    half_life_days: float | None = None,
) -> TrainedCandidate:
    """Judge the recipe fold by fold on leads it never saw, then refit it on every used lead and calibrate."""
    clock = clock or _Clock()
    pool, y = split.frame, split.y
    model_p: list[np.ndarray] = []
    baseline_p: list[np.ndarray] = []
    folds: list[dict[str, Any]] = []
    chooser = recipe = evaluated = None
    shapes: list[ShapeChoice] = []  # each fold's explanation-shape verdict, judged together (training.shape)
    c_slices: list[dict[float, np.ndarray]] = []  # each trusted fold's per-lead loss by C, pooled (training.linear)
    test_raw = np.zeros(0)
    clock.begin("fit and evaluate")
    for fold in split.folds:
        if len(split.folds) > 1:
            clock.begin(f"fit and evaluate: fold {fold.label} ({len(folds) + 1} of {len(split.folds)})")
        learn = np.setdiff1d(fold.fit, fold.select, assume_unique=True)
        recipe, chooser = choose_recipe(
            pool.iloc[learn],
            y[learn],
            pool.iloc[fold.select],
            y[fold.select],
            schema,
            params=params,
            seed=seed,
            half_life_days=half_life_days,
            earlier_shapes=tuple(shapes),
            earlier_C=tuple(c_slices),
        )
        if recipe.shape is not None:
            shapes.append(recipe.shape)
        if recipe.C_losses is not None:
            c_slices.append(recipe.C_losses)
        if len(fold.fit) > CROSS_FIT_MAX_ROWS:  # large data: the chooser is the evaluated model, one fit less
            newest = pool.iloc[fold.select]
            calibrator = calibration_map(recipe, partial(chooser.raw_of_valid, newest), y[fold.select], seed=seed)
            evaluated = Calibrated(chooser, calibrator, "the valid slice", len(fold.select))
        else:
            evaluated = fit_calibrated(
                pool.iloc[fold.fit],
                y[fold.fit],
                np.searchsorted(fold.fit, fold.select),
                schema,
                recipe,
                seed=seed,
                chooser=chooser,
            )
        test = pool.iloc[fold.score]
        test_raw = evaluated.components.raw(test)
        p = evaluated.calibrator(test_raw)
        model_p.append(p)
        fit_frame = pool.iloc[fold.fit]
        encoder = LeadEncoder(schema).fit(fit_frame)
        baseline_p.append(fit_baseline(fit_frame, y[fold.fit], encoder, seed=seed).predict_proba(test))
        folds.append(_fold_record(fold.label, y[fold.score], p, recipe, len(fold.fit)))
    clock.lap("evaluation fits")
    clock.begin("refit on every used lead")
    assert recipe is not None and chooser is not None and evaluated is not None
    deployed = _deploy(split, schema, recipe, evaluated, seed=seed, scored=(split.folds[-1].score, test_raw))
    clock.lap("refit")
    bundle = make_bundle(deployed, schema, metadata={}, background=pool)
    groups = split.test[schema.source] if schema.source and schema.source in split.test.columns else None
    scored = {"model": np.concatenate(model_p), "baseline": np.concatenate(baseline_p)}
    evaluations: dict[str, Evaluation | None] = {
        name: evaluate(split.y_test, p, grades=schema.grades, groups=groups) for name, p in scored.items()
    }
    clock.lap("evaluation")
    return TrainedCandidate(
        deployed=deployed,
        recipe=recipe,
        bundle=bundle,
        scored=scored,
        evaluations=evaluations,
        groups=groups,
        folds=folds,
        evaluated_rounds=evaluated.components.rounds,
    )


def _deploy(
    split: Split,
    schema: LeadSchema,
    recipe: Recipe,
    evaluated: Calibrated,
    *,
    seed: int,
    scored: tuple[np.ndarray, np.ndarray],
) -> Calibrated:
    """Refit the evaluated recipe (family, C, blend weight; rounds scaled to the data) on every used lead,
    so what is served is what was judged, having learned from the newest leads too. The calibration
    map is cross-fitted on the newest slice; on large data the evaluated model's out-of-sample scores
    of that slice fit it instead (one fit instead of three), reusing its `scored` (positions, log-odds)
    of the test leads, which are most of that slice."""
    pool, y, select = split.frame, split.y, split.deploy_select
    if len(pool) > CROSS_FIT_MAX_ROWS:
        final = fit_components(pool, y, schema, recipe, seed=seed)
        raw = partial(_raw_at, evaluated.components, pool, select, scored)
        calibrator = calibration_map(recipe, raw, y[select], seed=seed)
        return Calibrated(final, calibrator, "on the newest slice, scored by the evaluated model", len(select))
    return fit_calibrated(pool, y, select, schema, recipe, seed=seed)


def _raw_at(
    components: Components, pool: pd.DataFrame, positions: np.ndarray, scored: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """`components.raw(pool.iloc[positions])`, taking the leads already `scored` (sorted positions, log-odds)
    from there: the same numbers, each lead's score depends on that lead only."""
    known, known_raw = scored
    out = np.empty(len(positions))
    at = np.clip(np.searchsorted(known, positions), 0, max(len(known) - 1, 0))
    hit = known[at] == positions if len(known) else np.zeros(len(positions), dtype=bool)
    out[hit] = known_raw[at[hit]]
    if not hit.all():
        out[~hit] = components.raw(pool.iloc[positions[~hit]])
    return out


def _fold_record(label: str, y: np.ndarray, p: np.ndarray, recipe: Recipe, n_fit: int) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    both = 0 < int(y.sum()) < len(y)
    return {
        "fold": label,
        "n_fit": n_fit,
        "n_scored": int(len(y)),
        "positives": int(y.sum()),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "log_loss": log_loss_from_raw(np.log(p) - np.log1p(-p), y),
        "family": recipe.family,
        "tree_weight": recipe.tree_weight,
        "rounds": recipe.rounds,
        "C": recipe.C,
    }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _parse_as_of(as_of: str | pd.Timestamp | None, name: str = "as_of") -> pd.Timestamp | None:
    if as_of is None or isinstance(as_of, pd.Timestamp):
        return as_of
    try:
        return pd.Timestamp(as_of)
    except (ValueError, TypeError):
        flag = name.replace("_", "-")
        raise TrainingError(f"{flag} {as_of!r} is not a date like 2026-07-01", field=name) from None


# -- champion and drift (optional pieces) --------------------------------------------------------------


def _challenge_champion(
    client: Any,
    candidate: TrainedCandidate,
    split: Split,
    schema: LeadSchema,
    promote: str,
    settings: PromotionSettings,
    folder: Path,
) -> tuple[str | None, Decision]:
    """Score the current champion on the same test leads (added to the candidate's figures) and decide."""
    champion_before = tracking.alias_version(client, tracking.CHAMPION)
    champion_p, note, champion_as_of = _score_champion(client, champion_before, split.test, folder)
    model = candidate.model_evaluation
    champion = None
    if champion_p is not None:
        champion = evaluate(split.y_test, champion_p, grades=schema.grades, groups=candidate.groups)
        candidate.scored["champion"] = champion_p
        candidate.evaluations["champion"] = champion
    decision = decide(
        promote,
        model.log_loss,
        champion.log_loss if champion else None,
        tolerance=settings.tolerance,
        champion_note=note,
        pr_auc=(model.pr_auc, champion.pr_auc) if champion else None,
    )
    if champion is not None and _later(champion_as_of, split.report.as_of):
        decision = Decision(
            decision.promote,
            f"{decision.reason}; note: the champion was trained as of "
            f"{_day(champion_as_of)}, after this run's as-of, and may have seen the test quarter",
        )
    return champion_before, decision


def _register_and_export(
    client: Any,
    bundle: Bundle,
    run_id: str,
    decision: Decision,
    report: SplitReport,
    *,
    staging: Path,
    models_dir: Path,
    inputs: str,
) -> tuple[str, Path]:
    """Register the bundle as a new version, export it, then move the aliases (last, so a failure moves none).

    The version is tagged `leadscore.started` when it is created and `leadscore.complete` after the last
    alias move, so a training killed in between is finished by the next one (training.recovery).
    """
    staged = registry.save_model(bundle, staging)
    version = tracking.log_bundle_model(client, staged, run_id, tags={recovery.STARTED_TAG: "true"})
    if version != bundle.metadata["version"]:  # another training registered in between: keep the export truthful
        _logger.warning(
            "registered as version %s, not %s as recorded in the logged bundle", version, bundle.metadata["version"]
        )
        bundle.metadata["version"] = version
    bundle_dir = registry.save_model(bundle, models_dir / tracking.MODEL_NAME / version)
    tracking.tag_version(
        client,
        version,
        {
            "decision": decision.reason,
            "as_of": report.as_of,
            "test_quarter": report.test_quarter,
            UNCHANGED_TAG: inputs,
            "log_loss": f"{bundle.metadata['metrics'].get('log_loss', math.nan):.5f}",
        },
    )
    tracking.set_alias(client, tracking.CHALLENGER, version)
    if decision.promote:
        tracking.set_alias(client, tracking.CHAMPION, version)
    tracking.tag_version(client, version, {recovery.COMPLETE_TAG: "true"})
    return version, bundle_dir


def _score_champion(
    client: Any, version: str | None, test: pd.DataFrame, folder: Path
) -> tuple[np.ndarray | None, str, str | None]:
    """The champion's probabilities on this run's test leads (or None and the reason), and its as-of."""
    if version is None:
        return None, "", None
    try:
        uri = f"models:/{tracking.MODEL_NAME}/{version}"
        champion = Bundle.load(registry.download_bundle(uri, folder, tracking_uri=client.tracking_uri))
        return champion.calibrator(raw_scores(champion, test)), "", champion.metadata.get("as_of")
    except (LeadscoreError, ValueError, KeyError, OSError) as exc:
        _logger.warning("could not score champion version %s: %s", version, exc)
        return None, f"champion version {version} could not be scored on this test quarter ({exc})", None


def _later(first: str | None, second: str | None) -> bool:
    return bool(first and second) and pd.Timestamp(first) > pd.Timestamp(second)


def _drift_table(frame: pd.DataFrame, split: Split, schema: LeadSchema) -> pd.DataFrame | None:
    """PSI per feature, training window vs the latest quarter seen at as-of, when features.drift exists."""
    try:
        from features.drift import psi_table
    except ImportError:
        return None
    if not schema.created_at or schema.created_at not in frame.columns or split.report.as_of is None:
        return None
    created = pd.to_datetime(frame[schema.created_at], errors="coerce")
    visible = created <= pd.Timestamp(split.report.as_of)
    quarter = quarter_periods(created)
    latest = quarter[visible].max()
    current = frame[(visible & (quarter == latest)).to_numpy(dtype=bool)]
    reference = split.train
    if len(reference) > DRIFT_SAMPLE:
        reference = reference.sample(DRIFT_SAMPLE, random_state=0)
    try:
        return psi_table(reference, current, schema)
    except Exception as exc:  # noqa: BLE001 - drift is a report, never a reason to fail a training run
        _logger.warning("drift table skipped: %s", exc)
        return None


STEPS = (
    "read the data",
    "split by time",
    "fit and evaluate",
    "refit on every used lead",
    "score the champion on the same test leads",
    "write charts, model card and drift",
    "register in MLflow",
)


class _Clock:
    """Seconds per stage, for the summary, the run's metrics and the benchmark; `begin` tells a person at
    a terminal which step is running (training has no row count to show).

    `cpu_marks` are the process's CPU seconds per stage (all threads): on a shared machine wall time
    stretches with other work, CPU time much less, so a before/after comparison reads them side by side."""

    def __init__(self) -> None:
        self.start = self._last = time.perf_counter()
        self._last_cpu = time.process_time()
        self.marks: dict[str, float] = {}
        self.cpu_marks: dict[str, float] = {}
        self._steps = Steps("train", STEPS)

    def begin(self, step: str) -> None:
        self._steps.start(step)

    def lap(self, name: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.marks[name] = now - self._last
        self.cpu_marks[name] = cpu - self._last_cpu
        self._last, self._last_cpu = now, cpu

    @property
    def total(self) -> float:
        return time.perf_counter() - self.start


def _day(iso: str | None) -> str:
    return iso[:10] if iso else "n/a"


def _span(window: tuple[str, str] | None) -> str:
    return f"{window[0]}..{window[1]}" if window else "n/a"
