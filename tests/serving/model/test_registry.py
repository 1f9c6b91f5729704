"""Loading from the MLflow registry: alias and version URIs, local export first, else the artifacts."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from features.errors import ModelNotFoundError
from serving.model.registry import RegisteredVersion, load_bundle, resolve

NAME = "lead-conversion"


@pytest.fixture(scope="module")
def registry(bundle_dir: Path, make_mlflow_store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local MLflow store with version 1 registered (bundle folder among its artifacts) as champion."""
    import mlflow
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("registry")
    uri = make_mlflow_store(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        experiment = MlflowClient().create_experiment("serving-test", artifact_location=str(folder / "mlruns"))
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_artifacts(str(bundle_dir), artifact_path="model/artifacts/bundle")
            source = mlflow.get_artifact_uri("model")
        client = MlflowClient()
        client.create_registered_model(NAME)
        version = client.create_model_version(NAME, source=source, run_id=run.info.run_id)
        client.set_registered_model_alias(NAME, "champion", version.version)
        try:
            yield folder
        finally:
            mlflow.set_tracking_uri(None)


def test_alias_resolves_to_a_version_number(registry: Path) -> None:
    assert resolve(f"models:/{NAME}@champion") == RegisteredVersion(NAME, "1")
    assert resolve(f"models:/{NAME}/4") == RegisteredVersion(NAME, "4")


def test_champion_is_downloaded_when_there_is_no_local_export(registry: Path) -> None:
    bundle = load_bundle(f"models:/{NAME}@champion")
    assert bundle.version == "7" and bundle.booster.num_trees() > 0  # the bundle's own metadata wins


def test_local_export_is_preferred(registry: Path, bundle_dir: Path, tmp_path: Path) -> None:
    local = tmp_path / "models" / NAME / "1"
    shutil.copytree(bundle_dir, local)
    meta = json.loads((local / "bundle.json").read_text())
    meta["metadata"]["as_of"] = "from-local-export"
    (local / "bundle.json").write_text(json.dumps(meta))
    bundle = load_bundle(f"models:/{NAME}@champion", models_dir=tmp_path / "models")
    assert bundle.metadata["as_of"] == "from-local-export"


def test_unknown_alias_is_a_one_line_error(registry: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="alias 'staging'") as caught:
        load_bundle(f"models:/{NAME}@staging")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("uri", ["models:/", "models:/a/b/c", "models:/name@", "models:/name/v1"])
def test_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises(ModelNotFoundError, match="models:/NAME@ALIAS"):
        resolve(uri)


def test_a_folder_path_loads_directly(bundle_dir: Path) -> None:
    assert load_bundle(bundle_dir).version == "7"
