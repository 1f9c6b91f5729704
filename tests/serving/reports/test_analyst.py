"""The analyst API: one import gives the history with its dtypes, explanations and the champion's metrics."""

from __future__ import annotations

import pandas as pd
import pytest

from features.errors import ModelNotFoundError
from features.synthetic import generate, write_history
from serving.reports import analyst


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "leads.parquet"
    write_history(generate(quarters=3, leads_per_quarter=300, seed=2), path)
    return path


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A local MLflow store where champion and challenger point at runs with known metrics."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("lead-conversion")
    client.create_registered_model(analyst.MODEL_NAME)
    for alias, auc in (("champion", 0.81), ("challenger", 0.83)):
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "roc_auc", auc)
        client.log_metric(run.info.run_id, "log_loss", 0.25)
        client.set_terminated(run.info.run_id)
        version = client.create_model_version(
            analyst.MODEL_NAME, f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        )
        client.set_registered_model_alias(analyst.MODEL_NAME, alias, version.version)
    return uri


class RecordingScorer:
    """Stands in for serving.model.scorer.Scorer: returns contract-shaped rows and records how it was called."""

    def __init__(self) -> None:
        from features.synthetic import bundled_schema

        self.calls: list[dict] = []
        self.schema = bundled_schema()  # explain checks values against it, as the API does

    def explain(self, frame: pd.DataFrame, chunk_rows: int = 100_000, progress: bool = False) -> pd.DataFrame:
        self.calls.append({"rows": len(frame), "chunk_rows": chunk_rows, "progress": progress})
        return pd.DataFrame({"lead_id": frame["lead_id"].to_numpy(), "probability": 0.1})


def test_history_loads_from_the_environment_with_schema_dtypes(data_path, monkeypatch):
    monkeypatch.setenv("LEADSCORE_DATA", str(data_path))
    history = analyst.load_history()
    assert len(history) == 900
    assert str(history["company_size"].dtype) == "Int64"
    assert str(history["phone_present"].dtype) == "boolean"
    assert pd.api.types.is_datetime64_any_dtype(history["created_at"])
    assert analyst.history_schema().name == "synthetic-crm"


def test_quarter_column_is_added_without_touching_the_input(data_path):
    history = analyst.load_history(data_path)
    with_q = analyst.add_quarter(history, analyst.history_schema(data_path))
    assert "quarter" not in history.columns
    assert sorted(with_q["quarter"].unique()) == ["2026Q1", "2026Q2", "2026Q3"]


def test_explain_delegates_to_the_scorer_with_a_progress_bar_and_keeps_context(data_path):
    history = analyst.load_history(data_path)
    scorer = RecordingScorer()
    explained = analyst.explain(history, scorer, chunk_rows=250, keep=["lead_source"])
    assert scorer.calls == [{"rows": 900, "chunk_rows": 250, "progress": True}]
    assert explained["lead_source"].tolist() == history["lead_source"].tolist()


def test_champion_metrics_come_from_the_run_behind_the_alias(registry, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry)
    assert analyst.champion_metrics()["roc_auc"] == pytest.approx(0.81)
    assert analyst.champion_metrics("challenger")["roc_auc"] == pytest.approx(0.83)
    assert analyst.model_version("challenger")["version"] == "2"


def test_compare_metrics_puts_champion_and_challenger_side_by_side(registry, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry)
    table = analyst.compare_metrics()
    assert list(table.columns) == ["champion (v1)", "challenger (v2)"]
    assert table.loc["roc_auc"].tolist() == pytest.approx([0.81, 0.83])


def test_a_missing_alias_is_one_clear_error(registry, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry)
    with pytest.raises(ModelNotFoundError, match="lead-conversion@retired.*leadscore train"):
        analyst.champion_metrics("retired")
