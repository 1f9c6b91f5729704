"""Fixtures for the hardening tests: a registry with two versions made by the training pipeline.

The load client and the fuzzer are shared with the benchmark (tests/support/http_load.py and
fuzz.py), so the suite and `make bench` check the same promises; the suite runs them short. Helpers the
tests import live in tests/support/hardening.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from support.hardening import Registry


@pytest.fixture(scope="session")
def registry(trained_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """The shared trained store copied, plus version 2: the same bundle registered again as a challenger.

    Registering goes through training's own MLflow edge (a pyfunc with the bundle as its artifact),
    as a retrain would, without paying for a second training.
    """
    import mlflow

    from serving.model.bundle import Bundle
    from training import tracking

    root = tmp_path_factory.mktemp("two-versions")
    shutil.copyfile(trained_model.tracking_uri[len("sqlite:///") :], root / "mlflow.db")
    shutil.copytree(trained_model.models_dir, root / "models")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with (
        tracking.use_tracking(uri) as client,
        tracking.scratch_dir("hardening") as scratch,
        mlflow.start_run(experiment_id=tracking.ensure_experiment(client, uri)) as run,
    ):
        bundle = Bundle.load(trained_model.bundle_dir)
        bundle.metadata.update(version=tracking.next_version(client), run_id=run.info.run_id)
        version = tracking.log_bundle_model(client, bundle.save(Path(scratch) / "bundle"), run.info.run_id)
        bundle.save(root / "models" / tracking.MODEL_NAME / version)
        tracking.set_alias(client, tracking.CHALLENGER, version)
    return Registry(
        uri=uri,
        root=root,
        models_dir=root / "models",
        data_path=trained_model.data_path,
        schema_path=trained_model.schema_path,
        versions=(trained_model.version, version),
    )


@pytest.fixture()
def in_registry(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """MLFLOW_TRACKING_URI at the two-version store and cwd beside it (so ./models is its export)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.uri)
    monkeypatch.chdir(registry.root)
    return registry
