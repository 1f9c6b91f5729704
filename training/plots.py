"""The charts logged with every training run and backtest: PNG files, no display needed.

Figures are built with matplotlib's object API (`Figure`, Agg canvas) rather than pyplot, so nothing
touches a global backend or window state and the functions are safe in servers and tests. Each
`*_chart` function takes scored sets {name: (y, p)} and writes one PNG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from training.metrics import ECE_BINS, calibration_table

Scored = Mapping[str, tuple[np.ndarray, np.ndarray]]
_MAX_POINTS = 2000


def roc_chart(scored: Scored, path: Path) -> Path:
    fig, ax = _figure()
    for name, (y, p) in scored.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(*_thin(fpr, tpr), label=name)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve (test quarter)")
    return _save(fig, ax, path)


def pr_chart(scored: Scored, path: Path) -> Path:
    fig, ax = _figure()
    base = None
    for name, (y, p) in scored.items():
        precision, recall, _ = precision_recall_curve(y, p)
        ax.plot(*_thin(recall, precision), label=name)
        base = float(np.mean(y))
    if base is not None:
        ax.axhline(base, linestyle=":", color="grey", label=f"base rate {base:.1%}")
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall curve (test quarter)")
    return _save(fig, ax, path)


def calibration_chart(scored: Scored, path: Path, bins: int = ECE_BINS) -> Path:
    fig, ax = _figure()
    top = 0.0
    for name, (y, p) in scored.items():
        table = calibration_table(y, p, bins)
        table = table[table["n"] > 0]
        ax.plot(table["mean_probability"], table["conversion_rate"], marker="o", label=name)
        top = max(top, float(table["mean_probability"].max()), float(table["conversion_rate"].max()))
    top = min(1.0, top * 1.05 + 0.01)
    ax.plot([0, top], [0, top], linestyle=":", color="grey", label="perfect")
    ax.set(
        xlabel="Predicted probability (bin mean)",
        ylabel="Observed conversion rate",
        title=f"Calibration ({bins} equal-width bins)",
        xlim=(0, top),
        ylim=(0, top),
    )
    return _save(fig, ax, path)


def lift_chart(scored: Scored, path: Path) -> Path:
    """Cumulative lift by share of leads contacted, best-scored first."""
    fig, ax = _figure()
    for name, (y, p) in scored.items():
        y = np.asarray(y, dtype=np.float64)
        order = np.argsort(-np.asarray(p, dtype=np.float64), kind="stable")
        hits = np.cumsum(y[order])
        share = np.arange(1, len(y) + 1) / len(y)
        lift = (hits / np.arange(1, len(y) + 1)) / max(y.mean(), 1e-12)
        ax.plot(*_thin(share, lift), label=name)
    ax.axhline(1.0, linestyle=":", color="grey", label="random")
    ax.set(
        xlabel="Share of leads, highest score first", ylabel="Cumulative lift", title="Lift (test quarter)", xlim=(0, 1)
    )
    return _save(fig, ax, path)


def importance_chart(importance: pd.DataFrame, path: Path) -> Path:
    """Horizontal bars of mean |SHAP| per quality factor (log-odds)."""
    fig, ax = _figure()
    ordered = importance.sort_values("mean_abs_impact")
    ax.barh(ordered["label"], ordered["mean_abs_impact"], color="#4C72B0")
    ax.set(xlabel="Mean |impact| on the raw score (log-odds)", title="Global factor importance")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def backtest_chart(
    table: pd.DataFrame, path: Path, metrics: Sequence[str] = ("roc_auc", "log_loss", "ece", "lift_top10")
) -> Path:
    """One panel per metric, one line per model (retrained / frozen / prior), quarters on the x axis."""
    fig = Figure(figsize=(11, 7))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2).ravel()
    for ax, metric in zip(axes, metrics, strict=False):
        for model, part in table.groupby("model", sort=False):
            ax.plot(part["quarter"].astype(str), part[metric], marker="o", label=model)
        ax.set_title(metric)
        ax.tick_params(axis="x", rotation=45)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Backtest: quarterly retraining vs a frozen model vs the prior rate")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def _figure() -> tuple[Figure, Any]:
    fig = Figure(figsize=(6, 5))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig: Figure, ax: Any, path: Path) -> Path:
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most a few thousand points per curve: a million-lead test set makes huge PNG paths otherwise."""
    if len(x) <= _MAX_POINTS:
        return x, y
    idx = np.unique(np.linspace(0, len(x) - 1, _MAX_POINTS).astype(np.int64))
    return x[idx], y[idx]
