"""The analyst's one import: the lead history, the champion model and its metrics, as DataFrames.

Everything here delegates: data loading to `features`, scoring and explanations to
`serving.model.scorer.Scorer`, metrics to the MLflow run behind a registered model's alias. Nothing is
computed twice, so a notebook sees exactly what the API and the reports see.

    >>> from serving.reports import analyst
    >>> history = analyst.add_quarter(analyst.load_history())   # data/leads.parquet with schema dtypes
    >>> scorer = analyst.load_scorer()                          # models:/lead-conversion@champion
    >>> explained = analyst.explain(history, scorer, keep=["lead_source", "quarter"])
    >>> explained.groupby("lead_source")["impact_contactability"].mean()
    >>> analyst.champion_metrics()["model_roc_auc"]             # the champion's test-quarter metrics

Defaults: the data is `LEADSCORE_DATA` or `data/leads.parquet`; the MLflow store is
`MLFLOW_TRACKING_URI` or `sqlite:///mlflow.db` in the working folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.datasets import default_data_path, load_history_with_schema, schema_for
from features.errors import ModelNotFoundError
from features.lead_checks import check_frame
from features.periods import quarters
from features.schema import LeadSchema
from serving.model import registry

if TYPE_CHECKING:
    from serving.model.scorer import Scorer

MODEL_NAME = "lead-conversion"
CHUNK_ROWS = 100_000


def load_history(path: str | Path | None = None, schema: str | Path | LeadSchema | None = None) -> pd.DataFrame:
    """The lead history with the schema's dtypes (booleans, nullable integers, strings, timestamps)."""
    frame, _ = load_history_with_schema(path, schema)
    return frame


def history_schema(path: str | Path | None = None, schema: str | Path | LeadSchema | None = None) -> LeadSchema:
    """The schema that goes with a history: the one given, the one beside the data, or the bundled one."""
    return schema_for(path if path is not None else default_data_path(), schema)


def add_quarter(frame: pd.DataFrame, schema: LeadSchema | None = None, column: str = "quarter") -> pd.DataFrame:
    """A copy with each lead's creation quarter ('2026Q3'), the unit every report compares."""
    return frame.assign(**{column: quarters(frame, schema or history_schema()).to_numpy()})


def load_scorer(model: str | Path | None = None) -> Scorer:
    """The scorer for an alias or version URI (`models:/lead-conversion@challenger`) or a bundle folder.

    None means the champion.
    """
    from serving.model.scorer import Scorer

    return Scorer.load(model)


def explain(
    frame: pd.DataFrame,
    scorer: Scorer | None = None,
    *,
    chunk_rows: int = CHUNK_ROWS,
    progress: bool = True,
    keep: Sequence[str] = (),
) -> pd.DataFrame:
    """Probability, score, grade, per-factor impact and top lowering factor for every lead, in order.

    Chunked with a progress bar (exact TreeSHAP costs about a millisecond per lead). `keep` copies
    columns of `frame` (e.g. lead_source, quarter) into the result for grouping. A value the API would
    refuse (a negative company size, infinity, `True` as a number) is refused here too (DataError).

    A Dask dataframe gives a lazy Dask dataframe, explained on the current `distributed.Client`'s
    workers (`serving.reports.distributed.explain_frame`, each partition checked the same way);
    `.compute()` or `.to_parquet()` runs it.
    """
    scorer = scorer if scorer is not None else load_scorer()
    if _is_dask(frame):
        from serving.reports.distributed import explain_frame

        return explain_frame(frame, scorer, chunk_rows=chunk_rows, keep=keep)
    check_frame(frame, scorer.schema, source="frame")
    explained = scorer.explain(frame, chunk_rows=chunk_rows, progress=progress)
    for column in keep:
        explained[column] = frame[column].to_numpy()
    return explained


def _is_dask(frame: Any) -> bool:
    return type(frame).__module__.startswith(("dask.", "dask_expr"))


def tracking_uri() -> str:
    """Where metrics are read from: `MLFLOW_TRACKING_URI`, else MLflow's default `sqlite:///mlflow.db` here."""
    return registry.tracking_uri()


def model_version(alias: str = "champion", name: str = MODEL_NAME) -> dict[str, Any]:
    """Which registered version an alias points to, and the MLflow run that trained it."""
    version = registry.version_by_alias(name, alias)
    return {"name": name, "alias": alias, "version": version.version, "run_id": version.run_id}


HOLDOUT_ARTIFACT = "test_predictions.csv"


def champion_metrics(alias: str = "champion", name: str = MODEL_NAME) -> dict[str, float]:
    """The metrics logged by the run behind `name@alias` (test-quarter AUC, log loss, lift, ...)."""
    return registry.run_metrics(_run_id(name, alias))


def holdout_predictions(alias: str = "champion", name: str = MODEL_NAME) -> pd.DataFrame:
    """The test leads of the run behind `name@alias`, with their outcome and each model's out-of-sample
    probability (`model`: the recipe fitted on the leads before them; the served model was then refitted
    on them too, so scoring them again with it would flatter it)."""
    path = registry.run_artifact(_run_id(name, alias), HOLDOUT_ARTIFACT)
    return pd.read_csv(path, dtype={"lead_id": "string"})


def compare_metrics(aliases: Sequence[str] = ("champion", "challenger"), name: str = MODEL_NAME) -> pd.DataFrame:
    """Metrics side by side, one column per alias that exists (champion vs challenger)."""
    columns = {}
    for alias in aliases:
        try:
            columns[f"{alias} (v{model_version(alias, name)['version']})"] = champion_metrics(alias, name)
        except ModelNotFoundError:
            continue
    return pd.DataFrame(columns).sort_index()


def _run_id(name: str, alias: str) -> str:
    run_id = registry.version_by_alias(name, alias).run_id
    if not run_id:
        raise ModelNotFoundError(f"model {name}@{alias} records no training run", field="alias")
    return run_id
