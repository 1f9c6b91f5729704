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

import argparse
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.datasets import schema_for
from features.errors import DataError, LeadscoreError, TrainingError
from features.loading import read_leads
from features.schema import LeadSchema
from serving.bundle import Bundle
from training import plots, tracking
from training.baseline import fit_baseline
from training.metrics import Evaluation, evaluate
from training.model import FittedModel, fit_lightgbm, make_bundle, raw_scores
from training.promotion import MODES, Decision, PromotionSettings, decide
from training.report import data_profile, factor_importance, model_card
from training.splits import Split, SplitReport, label_at, time_split

_logger = logging.getLogger(__name__)

MIN_TRAIN_POSITIVES = 50
MIN_EVAL_POSITIVES = 10
SOURCE_COLUMN = "lead_source"
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

    def summary(self) -> str:
        """The few lines a person reads after `leadscore train`."""
        r = self.report
        left = "; ".join(f"{n:,} {why}" for why, n in r.left_out.items()) or "none"
        lines = [
            (f"trained lead-conversion version {self.version} as of {_day(r.as_of)} in {self.seconds:.0f}s "
             f"({self.best_iteration} trees, {self.calibration} calibration)"),
            f"  rows: {r.n_rows:,} read, {r.n_used:,} used, {r.n_left_out:,} left out ({left})",
            (f"  split ({r.method}): train {_span(r.train_window)} {r.n_train:,} leads, calibration "
             f"{r.valid_quarter or _span(r.valid_window)} {r.n_valid:,}, test "
             f"{r.test_quarter or _span(r.test_window)} {r.n_test:,} ({r.positives_test:,} converted)"),
        ]
        if r.note:
            lines.append(f"  note: {r.note}")
        lines.append(f"  {'test quarter':<16}{'ROC AUC':>9}{'PR AUC':>9}{'log loss':>10}{'ECE':>8}{'lift@10%':>10}")
        for name, ev in self.evaluations.items():
            if ev is None:
                continue
            label = f"champion v{self.champion_before}" if name == "champion" else name
            lines.append(f"  {label:<16}{ev.roc_auc:>9.4f}{ev.pr_auc:>9.4f}{ev.log_loss:>10.4f}{ev.ece:>8.4f}"
                         f"{ev.lift['top10']:>10.2f}")
        verdict = "promoted to champion" if self.promoted else "registered as challenger"
        lines += [f"  decision: {verdict} ({self.decision})",
                  f"  bundle: {self.bundle_dir}",
                  f"  MLflow: experiment {tracking.EXPERIMENT}, run {self.run_id} ({self.tracking_uri})"]
        return "\n".join(lines)


def train(data_path: str | Path, schema_path: str | Path | None = None, as_of: str | pd.Timestamp | None = None,
          promote: str = "auto", models_dir: str | Path = "models", tracking_uri: str | None = None, *,
          params: dict[str, Any] | None = None, seed: int = 0,
          settings: PromotionSettings | None = None) -> TrainResult:
    """Train, evaluate, track, register and (per `promote`) promote one model. See the module doc."""
    clock = _Clock()
    if promote not in MODES:
        raise TrainingError(f"promote must be one of {', '.join(MODES)}, got {promote!r}", field="promote")
    settings = settings or PromotionSettings.from_env()
    data_path = Path(data_path)
    schema = resolve_schema(data_path, schema_path)
    frame = load_history(data_path, schema)
    clock.lap("load")
    split = time_split(label_at(frame, schema, _parse_as_of(as_of)), schema, seed=seed)
    check_split(split)
    clock.lap("split")
    _logger.info("split %s: train %d, valid %d, test %d", split.report.method, split.report.n_train,
                 split.report.n_valid, split.report.n_test)

    fitted = fit_lightgbm(split.train, split.y_train, split.valid, split.y_valid, schema, params=params, seed=seed)
    clock.lap("lightgbm")
    bundle = make_bundle(fitted, split.valid, split.y_valid, schema, metadata={}, seed=seed)
    clock.lap("calibration")
    baseline = fit_baseline(split.train, split.y_train, fitted.encoder, seed=seed)
    clock.lap("baseline")
    groups = split.test[SOURCE_COLUMN] if SOURCE_COLUMN in split.test.columns else None
    scored = {"model": bundle.calibrator(raw_scores(bundle, split.test)),
              "baseline": baseline.predict_proba(split.test)}
    evaluations: dict[str, Evaluation | None] = {
        name: evaluate(split.y_test, p, grades=schema.grades, groups=groups) for name, p in scored.items()}
    data_sha = file_sha256(data_path)
    clock.lap("evaluation")

    uri = tracking.resolve_tracking_uri(tracking_uri)
    with tracking.use_tracking(uri) as client, tracking.scratch_dir("train") as scratch:
        scratch_path = Path(scratch)
        champion_before = tracking.alias_version(client, tracking.CHAMPION)
        champion_p, champion_note, champion_as_of = _score_champion(client, champion_before, split.test,
                                                                    scratch_path / "champion")
        if champion_p is not None:
            scored["champion"] = champion_p
            evaluations["champion"] = evaluate(split.y_test, champion_p, grades=schema.grades, groups=groups)
        clock.lap("champion")
        champion_eval = evaluations.get("champion")
        decision = decide(promote, evaluations["model"].log_loss, champion_eval.log_loss if champion_eval else None,
                          tolerance=settings.tolerance, champion_note=champion_note,
                          pr_auc=(evaluations["model"].pr_auc, champion_eval.pr_auc) if champion_eval else None)
        if champion_p is not None and _later(champion_as_of, split.report.as_of):
            decision = Decision(decision.promote, f"{decision.reason}; note: the champion was trained as of "
                                f"{_day(champion_as_of)}, after this run's as-of, and may have seen the test quarter")

        import mlflow

        experiment_id = tracking.ensure_experiment(client, uri)
        run_name = f"train as of {_day(split.report.as_of)}"
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
            run_id = run.info.run_id
            version = tracking.next_version(client)
            bundle.metadata = bundle_metadata(version=version, run_id=run_id, report=split.report,
                                              model_eval=evaluations["model"], fitted=fitted, bundle=bundle,
                                              data_sha=data_sha)
            importance = factor_importance(bundle, split.test, seed=seed)
            drift = _drift_table(frame, split, schema)
            artifacts = scratch_path / "artifacts"
            write_artifacts(artifacts, bundle=bundle, split=split, scored=scored, evaluations=evaluations,
                            importance=importance, drift=drift, frame=frame, decision=decision,
                            data_name=data_path.name, data_sha=data_sha)
            clock.lap("reports")
            tracking.log_params(run_params(split.report, fitted, bundle, schema, data_path, data_sha, promote,
                                           settings, champion_before))
            tracking.log_metrics(run_metrics(evaluations, drift))
            tracking.log_artifacts(artifacts)
            mlflow.set_tags({"leadscore.decision": decision.reason, "leadscore.promoted": str(decision.promote)})

            staged = bundle.save(scratch_path / "bundle")
            registered = tracking.log_bundle_model(client, staged, run_id)
            if registered != version:  # another training registered in between: keep the export truthful
                _logger.warning("registered as version %s, not %s as recorded in the logged bundle",
                                registered, version)
                bundle.metadata["version"] = registered
            bundle_dir = bundle.save(Path(models_dir) / tracking.MODEL_NAME / registered)
            tracking.tag_version(client, registered, {"decision": decision.reason, "as_of": split.report.as_of,
                                                      "test_quarter": split.report.test_quarter,
                                                      "log_loss": f"{evaluations['model'].log_loss:.5f}"})
            tracking.set_alias(client, tracking.CHALLENGER, registered)
            if decision.promote:
                tracking.set_alias(client, tracking.CHAMPION, registered)
            clock.lap("mlflow")
            tracking.log_metrics({"promoted": float(decision.promote), "train_seconds": clock.total,
                                  **{f"seconds_{k}": v for k, v in clock.marks.items()}})

    return TrainResult(run_id=run_id, version=registered, promoted=decision.promote, decision=decision.reason,
                       bundle_dir=bundle_dir, tracking_uri=uri, report=split.report, evaluations=evaluations,
                       champion_before=champion_before, best_iteration=fitted.best_iteration,
                       calibration=bundle.calibrator.method, seconds=clock.total, timings=dict(clock.marks))


def train_command(args: argparse.Namespace) -> int:
    """`leadscore train`: run `train` and print its summary; errors become one line (exit 2) in the CLI."""
    result = train(args.data, args.schema, args.as_of, args.promote, args.models_dir)
    print(result.summary())
    return 0


# -- steps before MLflow ---------------------------------------------------------------------------

def resolve_schema(data_path: Path, schema_path: str | Path | None) -> LeadSchema:
    """The schema given, else `<stem>.schema.yaml` beside the data, else the bundled synthetic one."""
    return schema_for(data_path, schema_path)


def load_history(data_path: Path, schema: LeadSchema) -> pd.DataFrame:
    """The lead file with schema dtypes; duplicate lead ids are refused (they would double-count)."""
    frame = read_leads(data_path, schema)
    dupes = frame[schema.id_column].duplicated()
    if dupes.any():
        first = frame.loc[dupes, schema.id_column].iloc[0]
        raise DataError(f"{data_path.name}: {int(dupes.sum()):,} duplicate lead ids in '{schema.id_column}' "
                        f"(first: {first})", field=schema.id_column)
    return frame


def check_split(split: Split) -> None:
    """Refuse to train a model nobody should trust: one class, or too few conversions to learn or judge."""
    r = split.report
    y_all = np.concatenate([split.y_train, split.y_valid, split.y_test])
    if len(y_all) == 0:
        reasons = "; ".join(f"{n:,} {why}" for why, n in r.left_out.items())
        raise TrainingError(f"no lead has a known outcome at as-of {_day(r.as_of)} ({reasons})", field="as_of")
    positives = int(y_all.sum())
    if positives == 0 or positives == len(y_all):
        kind = "converted" if positives else "not converted"
        raise TrainingError(f"only one class: all {len(y_all):,} labelled leads are {kind}; "
                            "training needs both converted and not-converted leads", field="target")
    where = {"train": (split.y_train, MIN_TRAIN_POSITIVES, _span(r.train_window)),
             "calibration": (split.y_valid, MIN_EVAL_POSITIVES, r.valid_quarter or _span(r.valid_window)),
             "test": (split.y_test, MIN_EVAL_POSITIVES, r.test_quarter or _span(r.test_window))}
    for part, (y, needed, span) in where.items():
        pos, neg = int(y.sum()), int(len(y) - y.sum())
        if pos < needed or neg < needed:
            raise TrainingError(f"too few leads to {'learn' if part == 'train' else 'judge'} from: the {part} "
                                f"set ({span}) has {pos:,} converted and {neg:,} not converted, need at least "
                                f"{needed} of each (use more history or a later --as-of)", field="target")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _parse_as_of(as_of: str | pd.Timestamp | None) -> pd.Timestamp | None:
    if as_of is None or isinstance(as_of, pd.Timestamp):
        return as_of
    try:
        return pd.Timestamp(as_of)
    except (ValueError, TypeError):
        raise TrainingError(f"as-of {as_of!r} is not a date like 2026-07-01", field="as_of") from None


# -- what gets recorded ------------------------------------------------------------------------------

def bundle_metadata(*, version: str, run_id: str, report: SplitReport, model_eval: Evaluation,
                    fitted: FittedModel, bundle: Bundle, data_sha: str) -> dict[str, Any]:
    """Bundle.metadata per the team contract, plus what a reader of the bundle alone needs."""
    return {
        "name": tracking.MODEL_NAME,
        "version": version,
        "as_of": report.as_of,
        "data_window": report.data_window,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": run_id,
        "metrics": model_eval.scalars(),
        "n_train": report.n_train,
        "n_valid": report.n_valid,
        "n_test": report.n_test,
        "test_quarter": report.test_quarter,
        "valid_quarter": report.valid_quarter,
        "split_method": report.method,
        "best_iteration": fitted.best_iteration,
        "calibration": bundle.calibrator.method,
        "schema_fingerprint": bundle.schema.fingerprint(),
        "data_fingerprint": data_sha,
    }


def run_params(report: SplitReport, fitted: FittedModel, bundle: Bundle, schema: LeadSchema, data_path: Path,
               data_sha: str, promote: str, settings: PromotionSettings,
               champion_before: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "as_of": report.as_of, "data_file": data_path.name, "data_fingerprint": data_sha,
        "schema_name": schema.name, "schema_fingerprint": schema.fingerprint(),
        "split_method": report.method, "split_note": report.note or None,
        "data_window_start": report.data_window["start"], "data_window_end": report.data_window["end"],
        "train_window": _span(report.train_window), "valid_quarter": report.valid_quarter,
        "test_quarter": report.test_quarter, "outcome_window_days": report.outcome_window_days,
        "n_rows": report.n_rows, "n_train": report.n_train, "n_valid": report.n_valid, "n_test": report.n_test,
        "n_left_out": report.n_left_out, "positives_train": report.positives_train,
        "positives_valid": report.positives_valid, "positives_test": report.positives_test,
        "best_iteration": fitted.best_iteration, "calibration_method": bundle.calibrator.method,
        "baseline": "logistic regression (one-hot categoricals, median-imputed standardised numerics)",
        "promote_mode": promote, "promote_tolerance": settings.tolerance,
        "champion_version_before": champion_before,
    }
    params.update({f"left_out.{why}": n for why, n in report.left_out.items()})
    params.update({f"lgb.{k}": v for k, v in fitted.params.items()})
    return params


def run_metrics(evaluations: dict[str, Evaluation | None], drift: pd.DataFrame | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, ev in evaluations.items():
        if ev is not None:
            out.update({f"{name}_{k}": v for k, v in ev.scalars().items()})
    if drift is not None and len(drift):
        out["drift_psi_max"] = float(drift["psi"].max())
        out.update({f"drift_psi_{row.feature}": float(row.psi) for row in drift.itertuples(index=False)})
    return out


def write_artifacts(folder: Path, *, bundle: Bundle, split: Split, scored: dict[str, np.ndarray],
                    evaluations: dict[str, Evaluation | None], importance: pd.DataFrame,
                    drift: pd.DataFrame | None, frame: pd.DataFrame, decision: Decision, data_name: str,
                    data_sha: str) -> None:
    """Charts, model card, data profile and tables, written to `folder` for one log_artifacts call."""
    charts = folder / "charts"
    charts.mkdir(parents=True, exist_ok=True)
    curves = {name: (split.y_test, p) for name, p in scored.items()}
    plots.roc_chart(curves, charts / "roc.png")
    plots.pr_chart(curves, charts / "pr.png")
    plots.calibration_chart(curves, charts / "calibration.png")
    plots.lift_chart(curves, charts / "lift.png")
    plots.importance_chart(importance, charts / "factor_importance.png")
    importance.to_csv(folder / "factor_importance.csv", index=False)
    profile = data_profile(frame, bundle.schema)
    profile.to_csv(folder / "data_profile.csv", index=False)
    (folder / "data_profile.json").write_text(profile.to_json(orient="records", indent=2))
    (folder / "split_report.json").write_text(json.dumps(split.report.to_dict(), indent=2, default=str))
    (folder / "evaluation.json").write_text(json.dumps(
        _finite({k: v.to_dict() for k, v in evaluations.items() if v is not None}), indent=2, default=str))
    if drift is not None:
        drift.to_csv(folder / "drift_psi.csv", index=False)
    (folder / "model_card.md").write_text(model_card(
        bundle=bundle, report=split.report, evaluations=evaluations, importance=importance,
        decision=decision.reason, data_name=data_name, data_fingerprint=data_sha, drift=drift))


# -- champion and drift (optional pieces) --------------------------------------------------------------

def _score_champion(client: Any, version: str | None, test: pd.DataFrame,
                    folder: Path) -> tuple[np.ndarray | None, str, str | None]:
    """The champion's probabilities on this run's test leads (or None and the reason), and its as-of."""
    if version is None:
        return None, "", None
    try:
        champion = Bundle.load(tracking.download_bundle(client, version, folder))
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
    quarter = created.dt.to_period("Q")
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


class _Clock:
    """Seconds per stage, for the summary, the run's metrics and the benchmark."""

    def __init__(self) -> None:
        self.start = self._last = time.perf_counter()
        self.marks: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.marks[name] = now - self._last
        self._last = now

    @property
    def total(self) -> float:
        return time.perf_counter() - self.start


def _day(iso: str | None) -> str:
    return iso[:10] if iso else "n/a"


def _span(window: tuple[str, str] | None) -> str:
    return f"{window[0]}..{window[1]}" if window else "n/a"


def _finite(value: Any) -> Any:
    """Strict JSON: NaN (an undefined metric) becomes null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
