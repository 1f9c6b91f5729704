"""Fixtures shared across packages: a synthetic history on disk, a fast MLflow store, one trained champion.

- `train_history` / `history_path`: 12 quarters x 4,000 synthetic leads (seed 11) with known truth,
  written once per session as Parquet with its schema beside it.
- `mlflow_store`: an empty MLflow SQLite store for one test. MLflow's schema migrations take several
  seconds, so the database is migrated once per session and copied; the test runs in its tmp folder
  with MLFLOW_TRACKING_URI pointing at the copy.
- `trained_model`: `leadscore train` run once per session on that history: registered version 1, alias
  champion (and challenger), bundle exported. Read-only: tests that change the registry use
  `registry_copy`, which copies the trained store for one test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# LightGBM's OpenMP threads sleep instead of spinning when idle; on a shared two-core machine running
# tests in parallel, spinning threads slow training ten-fold. Must be set before LightGBM loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session", autouse=True)
def prediction_log_outside_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every app a test builds logs its scores; by default to a SQLite file in a session folder, not
    predictions.db in the checkout. Tests of the log itself point each app at its own database."""
    if "LEADSCORE_DATABASE_URL" not in os.environ:
        os.environ["LEADSCORE_DATABASE_URL"] = f"sqlite:///{tmp_path_factory.mktemp('predlog') / 'predictions.db'}"


HISTORY = {"quarters": 12, "leads_per_quarter": 4000, "seed": 11}


@dataclass(frozen=True)
class TrainedModel:
    """A registered champion made by the real training pipeline, and where everything lives."""

    tracking_uri: str
    bundle_dir: Path
    version: str
    data_path: Path
    schema_path: Path
    history: Any  # features.synthetic.SyntheticHistory
    result: Any  # training.pipeline.TrainResult
    models_dir: Path


@pytest.fixture(scope="session")
def train_history_size() -> dict[str, int]:
    """How `train_history` was generated (the keyword arguments of features.synthetic.generate)."""
    return dict(HISTORY)


@pytest.fixture(scope="session")
def train_history() -> Any:
    """The synthetic history (leads + truth) the training tests and `trained_model` use."""
    from features.synthetic import generate

    return generate(**HISTORY)


@pytest.fixture(scope="session")
def train_history_files(tmp_path_factory: pytest.TempPathFactory, train_history: Any) -> dict[str, Path]:
    from features.synthetic import write_history

    return write_history(train_history, tmp_path_factory.mktemp("history") / "leads.parquet")


@pytest.fixture(scope="session")
def history_path(train_history_files: dict[str, Path]) -> Path:
    return train_history_files["leads"]


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, fully migrated MLflow database, made once per session."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def copy_store(template: Path, folder: Path) -> str:
    """Copy a migrated MLflow database into `folder`; returns its tracking URI."""
    target = folder / "mlflow.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


@pytest.fixture(scope="session")
def make_mlflow_store(mlflow_template: Path) -> Callable[[Path], str]:
    """`make_mlflow_store(folder)` -> tracking URI of a fresh store there (for module-scoped fixtures)."""
    return lambda folder: copy_store(mlflow_template, folder)


@pytest.fixture()
def mlflow_store(mlflow_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh MLflow store for this test: cwd is tmp_path and MLFLOW_TRACKING_URI points at the copy."""
    uri = copy_store(mlflow_template, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("LEADSCORE_PROMOTE_TOLERANCE", raising=False)
    return uri


@pytest.fixture(scope="session")
def trained_model(
    tmp_path_factory: pytest.TempPathFactory,
    mlflow_template: Path,
    train_history_files: dict[str, Path],
    train_history: Any,
) -> TrainedModel:
    """Train once per session with the real pipeline: version 1, champion, bundle in models_dir."""
    from training.pipeline import train
    from training.promotion import PromotionSettings

    folder = tmp_path_factory.mktemp("trained")
    uri = copy_store(mlflow_template, folder)
    models_dir = folder / "models"
    result = train(train_history_files["leads"], models_dir=models_dir, tracking_uri=uri, settings=PromotionSettings())
    return TrainedModel(
        tracking_uri=uri,
        bundle_dir=result.bundle_dir,
        version=result.version,
        data_path=train_history_files["leads"],
        schema_path=train_history_files["schema"],
        history=train_history,
        result=result,
        models_dir=models_dir,
    )


@pytest.fixture()
def registry_copy(trained_model: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The trained store (champion = version 1) copied for one test that may change it; cwd = tmp_path."""
    db = Path(trained_model.tracking_uri[len("sqlite:///") :])
    uri = copy_store(db, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("LEADSCORE_PROMOTE_TOLERANCE", raising=False)
    return uri


@pytest.fixture(scope="session")
def dask_client() -> Any:
    """A real Dask LocalCluster with 2 worker processes (one thread each), started once per session."""
    from serving.reports.distributed import connect

    with connect(workers=2) as client:
        yield client
