"""`leadscore backtest`: replay quarterly retraining over the history, to show what retraining buys.

For each quarter Q in range, a model is trained as of Q's first day exactly as `train` would (only
outcomes known then; calibrated on the latest fully mature quarter) and scores Q's leads, whose
outcomes are all known by the data's end. It is compared with

- frozen: the model trained as of the first quarter in range and never retrained;
- prior: the conversion rate known at Q's start, the same probability for every lead.

Nothing is registered and no alias moves. The table and chart go to `--out` and to MLflow as one
parent run with a child run per quarter.

    >>> result = backtest("data/leads.parquet", start="2025Q1")    # doctest: +SKIP
    >>> print(result.summary())                                      # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.datasets import schema_for
from features.errors import TrainingError
from features.loading import spreadsheet_safe
from features.periods import parse_quarter, quarter_periods
from features.progress import Steps
from features.schema import LeadSchema
from serving.model.bundle import Bundle
from training import plots, tracking
from training.family import choose_recipe, fit_calibrated
from training.metrics import Evaluation, evaluate
from training.model import make_bundle, raw_scores
from training.pipeline import MIN_EVAL_POSITIVES, MIN_TRAIN_POSITIVES, load_history
from training.splits import Labelled, label_at, time_split

_logger = logging.getLogger(__name__)

DEFAULT_OUT = "reports/backtest"

MODELS = ("retrained", "frozen", "prior")
TABLE_METRICS = ("roc_auc", "log_loss", "ece", "lift_top10", "pr_auc", "brier")
CSV_NAME = "backtest.csv"
CHART_NAME = "backtest.png"


@dataclass
class Fitted:
    """A model trained as of one date, with the prior rate known then."""

    bundle: Bundle
    as_of: pd.Timestamp
    prior: float
    n_train: int
    n_valid: int


@dataclass
class BacktestResult:
    table: pd.DataFrame  # one row per quarter and model
    skipped: dict[str, str]
    csv_path: Path
    chart_path: Path
    run_id: str | None = None
    child_run_ids: list[str] = field(default_factory=list)

    def wide(self, metrics: tuple[str, ...] = ("roc_auc", "log_loss", "ece", "lift_top10")) -> pd.DataFrame:
        """Quarters as rows, (metric, model) as columns: the table people read."""
        wide = self.table.pivot(index="quarter", columns="model", values=list(metrics))
        return wide.reindex(columns=[(m, model) for m in metrics for model in MODELS])

    def summary(self) -> str:
        wide = self.wide()
        head = f"{'quarter':<9}" + "".join(f"{m:>24}" for m in ("ROC AUC", "log loss", "ECE", "lift@10%"))
        sub = f"{'':<9}" + "".join(f"{'retr':>8}{'frozen':>8}{'prior':>8}" for _ in range(4))
        lines = ["backtest: retrained each quarter vs frozen at the first quarter vs the prior rate", head, sub]
        for quarter, row in wide.iterrows():
            lines.append(f"{quarter:<9}" + "".join(f"{row[c]:>8.3f}" for c in wide.columns))
        for quarter, reason in self.skipped.items():
            lines.append(f"skipped {quarter}: {reason}")
        lines.append(f"table: {self.csv_path}  chart: {self.chart_path}")
        if self.run_id:
            lines.append(
                f"MLflow: experiment {tracking.EXPERIMENT}, parent run {self.run_id} "
                f"({len(self.child_run_ids)} quarter runs)"
            )
        return "\n".join(lines)


def backtest(
    data_path: str | Path,
    start: str | None = None,
    end: str | None = None,
    *,
    schema_path: str | Path | None = None,
    out: str | Path = DEFAULT_OUT,
    tracking_uri: str | None = None,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    track: bool = True,
) -> BacktestResult:
    """Replay retraining quarter by quarter; see the module docstring."""
    data_path = Path(data_path)
    schema = schema_for(data_path, schema_path)
    if not schema.created_at:
        raise TrainingError(
            "backtest needs lead creation times: name the created_at column in the schema's roles",
            field="roles.created_at",
        )
    frame = load_history(data_path, schema)
    known = label_at(frame, schema)  # outcomes as known at the data's end
    quarters = _quarter_range(frame, schema, known, start, end)

    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    frozen: Fitted | None = None
    known_quarter = quarter_periods(known.frame[schema.created_at]).to_numpy()
    cutoff = known.as_of - pd.Timedelta(days=schema.outcome_window_days)
    steps = Steps("backtest", [str(q) for q in quarters])
    for quarter in quarters:
        label = str(quarter)
        steps.start(label)
        if quarter.end_time > cutoff:
            skipped[label] = f"outcomes of its leads are not all known by the data's end ({known.as_of:%Y-%m-%d})"
            continue
        mask = known_quarter == quarter
        if not mask.any():
            skipped[label] = "no leads"
            continue
        try:
            fitted = fit_as_of(frame, schema, quarter.start_time, params=params, seed=seed)
        except TrainingError as exc:
            skipped[label] = str(exc)
            continue
        frozen = frozen or fitted
        leads, y = known.frame[mask], known.y[mask]
        scored = {
            "retrained": fitted.bundle.calibrator(raw_scores(fitted.bundle, leads)),
            "frozen": frozen.bundle.calibrator(raw_scores(frozen.bundle, leads)),
            "prior": np.full(len(y), fitted.prior),
        }
        for model, p in scored.items():
            rows.append(_row(label, model, fitted, evaluate(y, p, grades=schema.grades)))
        _logger.info("backtest %s: %d leads scored", label, len(y))
    if not rows:
        reasons = "; ".join(f"{q}: {why}" for q, why in skipped.items()) or "empty range"
        raise TrainingError(f"no quarter could be backtested ({reasons})", field="quarter")

    table = pd.DataFrame(rows)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, chart_path = out / CSV_NAME, out / CHART_NAME
    spreadsheet_safe(table).to_csv(csv_path, index=False)
    plots.backtest_chart(table, chart_path)
    result = BacktestResult(table=table, skipped=skipped, csv_path=csv_path, chart_path=chart_path)
    if track:
        _log_to_mlflow(result, data_path, tracking.resolve_tracking_uri(tracking_uri))
    return result


def backtest_command(
    *,
    data: str | Path,
    schema: str | Path | None = None,
    start: str | None = None,
    end: str | None = None,
    out: str | Path = DEFAULT_OUT,
) -> int:
    """`leadscore backtest`: print the per-quarter table; the CSV and chart go to `out`."""
    result = backtest(data, start, end, schema_path=schema, out=out)
    print(result.summary())
    return 0


def fit_as_of(
    frame: pd.DataFrame, schema: LeadSchema, as_of: pd.Timestamp, *, params: dict[str, Any] | None = None, seed: int = 0
) -> Fitted:
    """Fit, choose the family and calibrate in memory on what was known at `as_of`, exactly as `train`
    refits the served model (no test quarter is held out)."""
    split = time_split(label_at(frame, schema, as_of), schema, with_test=False, seed=seed)
    for part, y, needed in (
        ("train", split.y_train, MIN_TRAIN_POSITIVES),
        ("calibration", split.y_valid, MIN_EVAL_POSITIVES),
    ):
        pos = int(y.sum())
        if pos < needed or len(y) - pos < needed:
            raise TrainingError(
                f"too little mature data at {as_of:%Y-%m-%d}: the {part} set has {pos:,} "
                f"converted of {len(y):,}, need at least {needed} of each class"
            )
    fold = split.folds[0]
    pool, y = split.frame, split.y
    learn = np.setdiff1d(fold.fit, fold.select, assume_unique=True)
    recipe, chooser = choose_recipe(
        pool.iloc[learn], y[learn], pool.iloc[fold.select], y[fold.select], schema, params=params, seed=seed
    )
    calibrated = fit_calibrated(
        pool.iloc[fold.fit],
        y[fold.fit],
        np.searchsorted(fold.fit, fold.select),
        schema,
        recipe,
        seed=seed,
        chooser=chooser,
    )
    bundle = make_bundle(calibrated, schema, metadata={"as_of": as_of.isoformat()}, background=pool)
    prior = float(np.concatenate([split.y_train, split.y_valid]).mean())
    return Fitted(bundle=bundle, as_of=as_of, prior=prior, n_train=len(split.y_train), n_valid=len(split.y_valid))


def _quarter_range(
    frame: pd.DataFrame, schema: LeadSchema, known: Labelled, start: str | None, end: str | None
) -> pd.PeriodIndex:
    """From `start` (default: the first quarter with two fully mature quarters before it) to `end`
    (default: the last quarter whose outcomes are all known)."""
    present = sorted(quarter_periods(frame[schema.created_at]).dropna().unique())
    window = pd.Timedelta(days=schema.outcome_window_days)
    if start is not None:
        first = parse_quarter(start)
    else:
        trainable = [q for q in present if sum(p.end_time <= q.start_time - window for p in present) >= 2]
        first = trainable[0] if trainable else present[-1]
    if end is not None:
        last = parse_quarter(end)
    else:
        mature = [q for q in present if q.end_time <= known.as_of - window]
        last = mature[-1] if mature else present[-1]
    if last < first:
        raise TrainingError(f"backtest range is empty: {first} is after {last}", field="quarter")
    return pd.period_range(first, last, freq="Q")


def _row(quarter: str, model: str, fitted: Fitted, ev: Evaluation) -> dict[str, Any]:
    scalars = ev.scalars()
    return {
        "quarter": quarter,
        "model": model,
        "as_of": f"{fitted.as_of:%Y-%m-%d}",
        "n_train": fitted.n_train,
        "n": ev.n,
        "positives": ev.positives,
        **{m: scalars.get(m, np.nan) for m in TABLE_METRICS},
    }


def _log_to_mlflow(result: BacktestResult, data_path: Path, uri: str) -> None:
    """One parent run (table, chart, averages) and one nested run per quarter."""
    table = result.table
    quarters = list(dict.fromkeys(table["quarter"]))
    with (
        tracking.use_tracking(uri) as client,
        tracking.start_run(
            client, uri, f"backtest {quarters[0]}..{quarters[-1]}", tags={"leadscore.kind": "backtest"}
        ) as parent_id,
    ):
        result.run_id = parent_id
        tracking.log_params(
            {
                "data_file": data_path.name,
                "first_quarter": quarters[0],
                "last_quarter": quarters[-1],
                "quarters": len(quarters),
                "skipped": "; ".join(f"{q}: {r}" for q, r in result.skipped.items()) or None,
            }
        )
        means = table.groupby("model")[list(TABLE_METRICS)].mean()
        tracking.log_metrics(
            {f"mean_{model}_{metric}": means.loc[model, metric] for model in means.index for metric in TABLE_METRICS}
        )
        for quarter in quarters:
            part = table[table["quarter"] == quarter].set_index("model")
            with tracking.start_run(
                client, uri, f"backtest {quarter}", nested=True, tags={"leadscore.kind": "backtest-quarter"}
            ) as child_id:
                result.child_run_ids.append(child_id)
                first = part.iloc[0]
                tracking.log_params(
                    {
                        "quarter": quarter,
                        "as_of": first["as_of"],
                        "n_train": first["n_train"],
                        "n_scored": first["n"],
                        "positives": first["positives"],
                    }
                )
                tracking.log_metrics(
                    {f"{model}_{metric}": part.loc[model, metric] for model in part.index for metric in TABLE_METRICS}
                )
        tracking.log_artifact(result.csv_path)
        tracking.log_artifact(result.chart_path)
