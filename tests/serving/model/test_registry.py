"""Loading from the MLflow registry: alias and version URIs, local export first, else the artifacts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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


_RESOLVE_ALONE = """
import sys
from features.errors import ModelNotFoundError
from serving.model.registry import resolve
try:
    found = resolve(sys.argv[1])
    print(found.version, found.run_id, "mlflow" in sys.modules)
except ModelNotFoundError as exc:
    print("error:", exc, "mlflow" in sys.modules)
"""


def _in_a_fresh_process(script: str, uri: str, *, cwd: Path, tracking_uri: str = "sqlite:///mlflow.db") -> str:
    """The last line `script` prints for `uri` in a new interpreter (nothing imported yet, as at start-up)."""
    done = subprocess.run(
        [sys.executable, "-c", script, uri],
        cwd=cwd,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def test_a_server_resolves_the_champion_without_importing_mlflow(registry: Path) -> None:
    """The alias is read from the SQLite store directly (MLflow's import is slower than the rest of the
    start); it names the version and run MLflow's client names."""
    from mlflow import MlflowClient

    expected = MlflowClient().get_model_version_by_alias(NAME, "champion")
    assert _in_a_fresh_process(_RESOLVE_ALONE, f"models:/{NAME}@champion", cwd=registry) == f"1 {expected.run_id} False"


def test_an_alias_not_in_the_store_is_mlflows_own_error(registry: Path) -> None:
    line = _in_a_fresh_process(_RESOLVE_ALONE, f"models:/{NAME}@nobody", cwd=registry)
    with pytest.raises(ModelNotFoundError) as raised:
        resolve(f"models:/{NAME}@nobody")
    assert line == f"error: {raised.value} True"


@pytest.mark.parametrize("uri", ["models:/", "models:/a/b/c", "models:/name@", "models:/name/v1"])
def test_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises(ModelNotFoundError, match="models:/NAME@ALIAS"):
        resolve(uri)


def test_a_folder_path_loads_directly(bundle_dir: Path) -> None:
    assert load_bundle(bundle_dir).version == "7"


_LOAD_ALONE = """
import sys
from serving.model.registry import load_bundle
bundle = load_bundle(sys.argv[1])
print(bundle.metadata["as_of"], "mlflow" in sys.modules)
"""


def test_a_server_started_elsewhere_loads_the_export_beside_its_store(
    registry: Path, bundle_dir: Path, tmp_path: Path
) -> None:
    """`leadscore serve` run from another folder than the store's (MLFLOW_TRACKING_URI names the store)
    serves the version exported beside the store, without importing MLflow to download it."""
    local = registry / "models" / NAME / "1"
    shutil.copytree(bundle_dir, local)
    try:
        meta = json.loads((local / "bundle.json").read_text())
        meta["metadata"]["as_of"] = "from-the-store's-export"
        (local / "bundle.json").write_text(json.dumps(meta))
        line = _in_a_fresh_process(
            _LOAD_ALONE, f"models:/{NAME}@champion", cwd=tmp_path, tracking_uri=f"sqlite:///{registry / 'mlflow.db'}"
        )
    finally:
        shutil.rmtree(registry / "models")
    assert line == "from-the-store's-export False"
