"""What one training run records: bundle metadata, MLflow parameters and metrics, and the artifacts.

Pure apart from `write_artifacts`, which writes files into a folder the caller then logs in one go.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.loading import spreadsheet_safe
from features.periods import outcome_label
from features.schema import LeadSchema
from serving.model.bundle import Bundle
from training import plots, tracking
from training.levels import describe_levels
from training.metrics import Evaluation
from training.model_card import data_profile, model_card
from training.promotion import Decision, PromotionSettings
from training.shape import ShapeChoice
from training.splits import Split, SplitReport

if TYPE_CHECKING:
    from training.pipeline import TrainedCandidate


def bundle_metadata(
    *,
    version: str,
    run_id: str,
    report: SplitReport,
    model_eval: Evaluation,
    candidate: TrainedCandidate,
    bundle: Bundle,
    data_sha: str,
) -> dict[str, Any]:
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
        "best_iteration": candidate.deployed.components.rounds,
        "family": candidate.recipe.family,
        "tree_weight": candidate.recipe.tree_weight,
        "quarter_levels": candidate.deployed.components.levels,
        "label": outcome_label(report.outcome_window_days),
        "outcome_window_days": report.outcome_window_days,
        "n_deployed": report.n_used,
        "as_of_source": report.as_of_source,
        "calibration_source": candidate.deployed.method,
        "evaluation": {"method": report.method, "folds": candidate.folds},
        "calibration": bundle.calibrator.method,
        "schema_fingerprint": bundle.schema.fingerprint(),
        "data_fingerprint": data_sha,
        **shape_metadata(candidate.recipe.shape),
    }


def shape_metadata(shape: ShapeChoice | None) -> dict[str, Any]:
    """The tree-shape trade-off as the bundle (and so the model card) keeps it."""
    return {} if shape is None else {"tree_shape": {**shape.record(), "note": shape.describe()}}


def run_params(
    report: SplitReport,
    candidate: TrainedCandidate,
    bundle: Bundle,
    schema: LeadSchema,
    data_path: Path,
    data_sha: str,
    promote: str,
    settings: PromotionSettings,
    champion_before: str | None,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "as_of": report.as_of,
        "data_file": data_path.name,
        "data_fingerprint": data_sha,
        "schema_name": schema.name,
        "schema_fingerprint": schema.fingerprint(),
        "split_method": report.method,
        "split_note": report.note or None,
        "data_window_start": report.data_window["start"],
        "data_window_end": report.data_window["end"],
        "train_window": _span(report.train_window),
        "valid_quarter": report.valid_quarter,
        "test_quarter": report.test_quarter,
        "outcome_window_days": report.outcome_window_days,
        "n_rows": report.n_rows,
        "n_train": report.n_train,
        "n_valid": report.n_valid,
        "n_test": report.n_test,
        "n_left_out": report.n_left_out,
        "positives_train": report.positives_train,
        "positives_valid": report.positives_valid,
        "positives_test": report.positives_test,
        "best_iteration": candidate.deployed.components.rounds,
        "calibration_method": bundle.calibrator.method,
        "as_of_source": report.as_of_source,
        "label": outcome_label(report.outcome_window_days),
        "family": candidate.recipe.family,
        "tree_weight": candidate.recipe.tree_weight,
        "logistic_C": candidate.recipe.C,
        "quarter_levels": describe_levels(candidate.deployed.components.levels) or "none",
        "rounds_early_stopping": candidate.recipe.rounds,
        "rounds_evaluated_model": candidate.evaluated_rounds,
        "newest_slice_roc_auc": candidate.recipe.valid_auc,
        "newest_slice_prior_roc_auc": candidate.recipe.prior_auc,
        "newest_slice_drifting": candidate.recipe.drifting,
        "tree_shape": _shape_name(candidate.recipe.shape),
        "quarter_levels_decided_by": _levels_decided_by(candidate),
        "n_deployed": report.n_used,
        "calibration_source": candidate.deployed.method,
        "evaluation_folds": len(candidate.folds),
        "baseline": "logistic regression (one-hot categoricals, median-imputed standardised numerics)",
        "promote_mode": promote,
        "promote_tolerance": settings.tolerance,
        "champion_version_before": champion_before,
    }
    params.update({f"left_out.{why}": n for why, n in report.left_out.items()})
    params.update({f"lgb.{k}": v for k, v in candidate.recipe.params.items()})
    return params


def _shape_name(shape: ShapeChoice | None) -> str:
    if shape is None:
        return "default (shaped trees not tried)"
    return "shaped for explanation" if shape.shaped else "default (shaped trees outside the tolerance)"


def run_metrics(
    evaluations: dict[str, Evaluation | None],
    drift: pd.DataFrame | None,
    folds: list[dict[str, Any]] | None = None,
    shape: ShapeChoice | None = None,
) -> dict[str, float]:
    out: dict[str, float] = {}
    if shape is not None:
        out.update({f"shape_{k}": float(v) for k, v in shape.record().items()})
    for k, fold in enumerate(folds or []):
        out.update({f"fold{k + 1}_roc_auc": fold["roc_auc"], f"fold{k + 1}_log_loss": fold["log_loss"]})
    if folds and len(folds) > 1:
        for metric in ("roc_auc", "log_loss"):
            values = np.array([f[metric] for f in folds], dtype=float)
            out[f"folds_{metric}_mean"] = float(np.nanmean(values))
            out[f"folds_{metric}_std"] = float(np.nanstd(values))
    for name, ev in evaluations.items():
        if ev is not None:
            out.update({f"{name}_{k}": v for k, v in ev.scalars().items()})
    if drift is not None and len(drift):
        out["drift_psi_max"] = float(drift["psi"].max())
        out.update({f"drift_psi_{row.feature}": float(row.psi) for row in drift.itertuples(index=False)})
    return out


def write_artifacts(
    folder: Path,
    *,
    bundle: Bundle,
    split: Split,
    scored: dict[str, np.ndarray],
    evaluations: dict[str, Evaluation | None],
    importance: pd.DataFrame,
    drift: pd.DataFrame | None,
    frame: pd.DataFrame,
    decision: Decision,
    data_name: str,
    data_sha: str,
) -> None:
    """Charts, model card, data profile and tables, written to `folder` for one log_artifacts call."""
    charts = folder / "charts"
    charts.mkdir(parents=True, exist_ok=True)
    curves = {name: (split.y_test, p) for name, p in scored.items()}
    plots.roc_chart(curves, charts / "roc.png")
    plots.pr_chart(curves, charts / "pr.png")
    plots.calibration_chart(curves, charts / "calibration.png")
    plots.lift_chart(curves, charts / "lift.png")
    plots.importance_chart(importance, charts / "factor_importance.png")
    spreadsheet_safe(importance).to_csv(folder / "factor_importance.csv", index=False)
    holdout = pd.DataFrame(
        {
            "lead_id": split.test[bundle.schema.id_column].astype("string").to_numpy(),
            "converted": split.y_test,
            **scored,
        }
    )
    spreadsheet_safe(holdout).to_csv(folder / "test_predictions.csv", index=False)
    profile = data_profile(frame, bundle.schema)
    spreadsheet_safe(profile).to_csv(folder / "data_profile.csv", index=False)
    (folder / "data_profile.json").write_text(profile.to_json(orient="records", indent=2))
    (folder / "split_report.json").write_text(json.dumps(split.report.to_dict(), indent=2, default=str))
    (folder / "evaluation.json").write_text(
        json.dumps(_finite({k: v.to_dict() for k, v in evaluations.items() if v is not None}), indent=2, default=str)
    )
    if drift is not None:
        spreadsheet_safe(drift).to_csv(folder / "drift_psi.csv", index=False)
    (folder / "model_card.md").write_text(
        model_card(
            bundle=bundle,
            report=split.report,
            evaluations=evaluations,
            importance=importance,
            decision=decision.reason,
            data_name=data_name,
            data_fingerprint=data_sha,
            drift=drift,
        )
    )


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


def _levels_decided_by(candidate: TrainedCandidate) -> str:
    """Who decided whether the served model has quarter levels (training.levels; `quarter_levels` says which)."""
    judged = {True: "the newest slice asked for them", False: "the newest slice did not ask for them"}
    if candidate.recipe.levels is not None:
        return judged[candidate.recipe.levels]
    return "none: drifting newest slice" if candidate.recipe.drifting else "the refit's own check"
