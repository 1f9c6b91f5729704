"""The backtest replays quarterly retraining, and retraining pays off after the planted drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.errors import TrainingError
from support.readme_examples import README, difference, examples
from training import tracking
from training.backtest import backtest
from training.cli import main

# The shared history has 12 quarters from 2023Q4; the generator flips the effect of IN/BR leads from
# quarter 6 (2025Q2) and launches a product from quarter 8 (2025Q4). A model trained as of a quarter's
# start has seen those changes two quarters later (the newest quarter is never mature yet).
AFTER_DRIFT = ("2026Q1", "2026Q2")


@pytest.fixture(scope="module")
def backtest_store(make_mlflow_store, tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_mlflow_store(tmp_path_factory.mktemp("backtest-store"))


@pytest.fixture(scope="module")
def backtest_result(history_path: Path, backtest_store: str, tmp_path_factory: pytest.TempPathFactory):
    """From 2025Q3 (the frozen model's quarter, trained before the drift) to the last mature quarter."""
    return backtest(history_path, start="2025Q3", out=tmp_path_factory.mktemp("backtest"), tracking_uri=backtest_store)


def test_retrained_beats_frozen_after_the_drift(backtest_result) -> None:
    table = backtest_result.table.set_index(["quarter", "model"])
    assert list(dict.fromkeys(backtest_result.table["quarter"])) == ["2025Q3", "2025Q4", "2026Q1", "2026Q2"]
    for quarter in AFTER_DRIFT:
        retrained, frozen = table.loc[(quarter, "retrained")], table.loc[(quarter, "frozen")]
        prior = table.loc[(quarter, "prior")]
        assert retrained["log_loss"] < frozen["log_loss"] < prior["log_loss"], quarter
        assert retrained["roc_auc"] > frozen["roc_auc"], quarter
    first = backtest_result.table[backtest_result.table["quarter"] == "2025Q3"].set_index("model")
    assert first.loc["retrained", "log_loss"] == first.loc["frozen", "log_loss"]  # the same model


def test_table_chart_and_mlflow_runs(backtest_result, backtest_store: str) -> None:
    from mlflow import MlflowClient

    assert backtest_result.csv_path.is_file() and backtest_result.chart_path.stat().st_size > 10_000
    client = MlflowClient(tracking_uri=backtest_store)
    parent = client.get_run(backtest_result.run_id)
    assert parent.data.params["first_quarter"] == "2025Q3"
    assert "mean_retrained_log_loss" in parent.data.metrics
    names = {item.path for item in client.list_artifacts(parent.info.run_id)}
    assert {"backtest.csv", "backtest.png"} <= names
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == 4
    assert {"retrained_roc_auc", "frozen_log_loss", "prior_ece"} <= set(children[0].data.metrics)
    assert tracking.alias_version(client, tracking.CHAMPION) is None, "the backtest registers nothing"


def test_the_readme_example_is_this_backtest(backtest_result, train_history_size) -> None:
    """README.md shows `leadscore backtest --from 2025Q3` on the shared history: this fixture's run."""
    example = examples(README.read_text(encoding="utf-8"))["backtest"]
    generate = "leadscore generate --quarters {quarters} --leads-per-quarter {leads_per_quarter} --seed {seed}"
    assert example.setup == (generate.format(**train_history_size),)
    assert example.run == ("leadscore backtest --from 2025Q3",)
    # The fixture wrote to its own folder; the command's default --out is reports/backtest.
    printed = backtest_result.summary().replace(str(backtest_result.csv_path.parent), "reports/backtest")
    problem = difference(example, printed)
    assert problem is None, problem


def test_quarters_without_enough_history_are_skipped_and_said(
    history_path: Path, tmp_path: Path, mlflow_store: str, capsys
) -> None:
    # As of 2024-01-01 only two days of leads (from 2023-10-01) are older than the 90-day window.
    code = main(
        ["backtest", "--data", str(history_path), "--from", "2024Q1", "--to", "2024Q2", "--out", str(tmp_path / "bt")]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "skipped 2024Q1: too little mature data at 2024-01-01" in out
    assert "\n2024Q2 " in out
    assert (tmp_path / "bt" / "backtest.csv").is_file()


def test_an_unusable_range_is_one_clear_error(history_path: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="no quarter could be backtested"):
        backtest(history_path, "2026Q3", "2026Q3", out=tmp_path, track=False)
    with pytest.raises(TrainingError, match="range is empty"):
        backtest(history_path, "2026Q1", "2025Q1", out=tmp_path, track=False)
