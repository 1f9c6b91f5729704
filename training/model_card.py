"""What a person reads about a trained model: factor importance, data profile and the model card.

Pure functions: they take data and figures and return tables or text; the pipeline writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from features.factors import FACTOR_LABELS, FACTORS, factor_impacts, factor_matrix
from features.periods import outcome_label
from features.schema import LeadSchema
from serving.model.bundle import Bundle
from training.levels import describe_levels
from training.metrics import ECE_BINS, Evaluation
from training.splits import SplitReport

IMPORTANCE_SAMPLE = 1_000  # TreeSHAP costs ~2 ms per lead on ~250 trees; 1,000 leads pin the mean |impact|
PROFILE_SAMPLE = 200_000

KNOWN_LIMITS = (
    (
        "Trained on leads whose outcome was known at as-of; the newest quarters are never in training, so "
        "the model lags the market by about one outcome window plus one quarter."
    ),
    (
        "Probabilities are calibrated on the quarter before the test quarter; a shift in lead mix since then "
        "(see the drift table) can move calibration."
    ),
    "Category levels never seen in training are scored as missing, not as errors.",
    (
        "The champion is compared on this run's test quarter; a champion trained on later data may have "
        "seen those leads, which favours it."
    ),
    (
        "Scores describe conversion likelihood, not the value of a deal; they do not say why a lead "
        "converted, only which recorded factors move the estimate."
    ),
)


def factor_importance(
    bundle: Bundle, frame: pd.DataFrame, *, sample: int = IMPORTANCE_SAMPLE, seed: int = 0
) -> pd.DataFrame:
    """Mean |impact| per quality factor (sum of its features' exact Shapley values), on a sample.

    The served model's own explanations: TreeSHAP for trees, the linear terms for the logistic model,
    their weighted sum for a blend.
    """
    if len(frame) > sample:
        frame = frame.sample(sample, random_state=seed)
    names = bundle.encoder.feature_names
    factor_of = [bundle.schema.factor_map[name] for name in names]
    matrix = factor_matrix(factor_of)
    impacts = factor_impacts(bundle.contributions(bundle.encoder.transform(frame)), matrix)
    rows = []
    for k, factor in enumerate(FACTORS):
        if not matrix[:, k].any():
            continue
        rows.append(
            {
                "factor": factor,
                "label": FACTOR_LABELS[factor],
                "mean_abs_impact": float(np.abs(impacts[:, k]).mean()),
                "features": ", ".join(n for n, f in zip(names, factor_of, strict=True) if f == factor),
            }
        )
    table = pd.DataFrame(rows)
    total = table["mean_abs_impact"].sum()
    table["share"] = table["mean_abs_impact"] / total if total > 0 else 0.0
    return table.sort_values("mean_abs_impact", ascending=False).reset_index(drop=True)


def data_profile(
    frame: pd.DataFrame, schema: LeadSchema, *, sample: int = PROFILE_SAMPLE, seed: int = 0
) -> pd.DataFrame:
    """Per column: role, dtype, missing share and distinct values (distinct counted on a sample)."""
    roles = {schema.id_column: "id", schema.target_column: "target"}
    roles.update({c: "date" for c in (schema.created_at, schema.converted_at) if c})
    roles.update({f.name: f"feature ({f.type}, {f.factor})" for f in schema.features})
    roles.update(dict.fromkeys(schema.context, "context"))
    roles.update(dict.fromkeys(schema.excluded, "excluded"))
    part = frame.sample(sample, random_state=seed) if len(frame) > sample else frame
    rows = []
    for column in frame.columns:
        rows.append(
            {
                "column": column,
                "role": roles.get(column, "unused"),
                "dtype": str(frame[column].dtype),
                "missing_share": float(frame[column].isna().mean()) if len(frame) else 0.0,
                "distinct": int(part[column].nunique(dropna=True)),
            }
        )
    return pd.DataFrame(rows)


def model_card(
    *,
    bundle: Bundle,
    report: SplitReport,
    evaluations: Mapping[str, Evaluation | None],
    importance: pd.DataFrame,
    decision: str,
    data_name: str,
    data_fingerprint: str,
    drift: pd.DataFrame | None = None,
) -> str:
    """The Markdown page a reviewer reads before trusting the model."""
    meta = bundle.metadata
    model = evaluations["model"]
    if model is None:
        raise ValueError("a model card needs the model's evaluation")
    lines = [
        f"# Model card: {meta.get('name', 'lead-conversion')} version {meta.get('version', '?')}",
        "",
        (
            f"Predicts the probability of: {outcome_label(bundle.schema.outcome_window_days)}; calibrated "
            f"({bundle.calibrator.method}), with each score explained by quality factors. Family: "
            f"{bundle.family} (tree weight {bundle.tree_weight:.1f}); refitted on all {report.n_used:,} used leads "
            "after the evaluation below."
        ),
        "",
        "## Training",
        (
            f"- as-of: {report.as_of or 'n/a'}; trained at {meta.get('trained_at', '?')}; "
            f"MLflow run `{meta.get('run_id')}`"
        ),
        (
            f"- data: `{data_name}` (sha256 `{data_fingerprint[:16]}`), window {report.data_window['start']} to "
            f"{report.data_window['end']}"
        ),
        (
            f"- split: {report.method}; train {_window(report.train_window)} ({report.n_train:,} leads, "
            f"{report.positives_train:,} converted), "
            f"calibration {report.valid_quarter or _window(report.valid_window)} "
            f"({report.n_valid:,}), test {report.test_quarter or _window(report.test_window)} ({report.n_test:,})"
        ),
        f"- left out: {report.n_left_out:,} of {report.n_rows:,} rows"
        + ("".join(f"; {n:,} {why}" for why, n in report.left_out.items()) if report.left_out else ""),
        f"- schema `{bundle.schema.name}` fingerprint `{bundle.schema.fingerprint()}`; "
        f"{len(bundle.schema.features)} features; excluded: "
        + (", ".join(f"{k} ({v})" for k, v in bundle.schema.excluded.items()) or "none"),
    ]
    if report.note:
        lines.append(f"- note: {report.note}")
    if isinstance(meta.get("tree_shape"), dict):
        lines.append(f"- trees: {meta['tree_shape']['note']}")
    if meta.get("quarter_levels"):
        lines.append(
            f"- quarter levels (log-odds against {list(meta['quarter_levels'])[-1]}, the level served): "
            + describe_levels(meta["quarter_levels"])
        )
    lines += [
        "",
        "## Test-quarter metrics",
        "",
        _metrics_table(evaluations),
        "",
        (
            f"ECE uses {ECE_BINS} equal-width probability bins. Lift and capture: conversion rate in the "
            "top 10% / 20% of leads relative to all leads, and the share of conversions found there."
        ),
        "",
        f"Promotion decision: {decision}",
        "",
        "## Grades (the shared qualification definition)",
        "",
        "| grade | probability floor | leads | share | conversion rate | mean predicted |",
        "|---|---|---|---|---|---|",
    ]
    for row in model.grades:
        lines.append(
            f"| {row['grade']} | {row['floor']:.0%} | {row['n']:,} | {row['share']:.1%} | "
            f"{_pct(row['conversion_rate'])} | {_pct(row['mean_probability'])} |"
        )
    if model.by_source:
        lines += ["", "## ROC AUC by lead source", "", "| source | leads | converted | ROC AUC |", "|---|---|---|---|"]
        for source, row in model.by_source.items():
            lines.append(f"| {source} | {row['n']:,} | {row['positives']:,} | {_num(row['roc_auc'])} |")
    lines += [
        "",
        "## Global factor importance (mean |impact|, log-odds)",
        "",
        "| factor | mean abs impact | share |",
        "|---|---|---|",
    ]
    for row in importance.itertuples(index=False):
        lines.append(f"| {row.label} | {row.mean_abs_impact:.3f} | {row.share:.0%} |")
    if drift is not None and len(drift):
        top = drift.head(5)
        lines += [
            "",
            "## Drift since training (PSI, latest quarter vs training window)",
            "",
            "| feature | PSI | largest change |",
            "|---|---|---|",
        ]
        for row in top.itertuples(index=False):
            lines.append(f"| {row.feature} | {row.psi:.3f} | {getattr(row, 'largest_change', '')} |")
    lines += ["", "## Known limits", ""] + [f"- {text}" for text in KNOWN_LIMITS]
    return "\n".join(lines) + "\n"


def _metrics_table(all_evaluations: Mapping[str, Evaluation | None]) -> str:
    evaluations = {n: e for n, e in all_evaluations.items() if e is not None}
    names = list(evaluations)
    rows = [("ROC AUC", "roc_auc"), ("PR AUC", "pr_auc"), ("log loss", "log_loss"), ("Brier", "brier"), ("ECE", "ece")]
    out = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, attr in rows:
        out.append(f"| {label} | " + " | ".join(_num(getattr(evaluations[n], attr)) for n in names) + " |")
    for key in ("top10", "top20"):
        out.append(f"| lift {key} | " + " | ".join(_num(evaluations[n].lift[key], 2) for n in names) + " |")
        out.append(f"| capture {key} | " + " | ".join(_pct(evaluations[n].capture[key]) for n in names) + " |")
    return "\n".join(out)


def _window(window: tuple[str, str] | None) -> str:
    return f"{window[0]} to {window[1]}" if window else "n/a"


def _num(value: Any, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def _pct(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.1%}"
