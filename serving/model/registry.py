"""The leadscore model flavour: save, log and load a bundle, as MLflow's own flavour modules do, and
find the bundle behind a model reference (a folder, `models:/name@alias` or `models:/name/version`).

Why a module of its own: this is the only place serving talks to MLflow (training's runs and aliases
are training/tracking.py's), and MLflow is a slow import, so it is imported inside the functions that
need it, only when a `models:/` URI is given.

    >>> folder = save_model(bundle, "models/lead-conversion/3")       # doctest: +SKIP
    >>> info = log_model(folder)                                     # doctest: +SKIP (inside an MLflow run)
    >>> load_bundle("models:/lead-conversion@champion").version      # doctest: +SKIP
    '3'
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from features.errors import LeadscoreError, ModelNotFoundError
from serving.model.bundle import META_FILE, Bundle

_logger = logging.getLogger(__name__)

DEFAULT_MODEL = "models:/lead-conversion@champion"
BUNDLE_ARTIFACT = "bundle"  # the key serving/model/pyfunc_model.py reads from context.artifacts
MODEL_ARTIFACT = "model"
MODELS_DIR = Path("models")
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class RegisteredVersion:
    """A registered model version, resolved to a number (aliases move; versions do not)."""

    name: str
    version: str
    run_id: str | None = field(default=None, compare=False)  # the registry's record of the version's run

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


# -- save and log ---------------------------------------------------------------------------------


def save_model(bundle: Bundle, path: str | Path) -> Path:
    """Write the pickle-free bundle folder (atomically: a half-written bundle never exists)."""
    return bundle.save(path)


def log_model(bundle_dir: Path, *, name: str = MODEL_ARTIFACT) -> Any:
    """Log the bundle folder in the active run as a pyfunc "from code" (serving/model/pyfunc_model.py), so
    `mlflow models serve` and `spark_udf` work on it; returns MLflow's ModelInfo."""
    import mlflow

    pyfunc_logger = logging.getLogger("mlflow.pyfunc")
    old_level = pyfunc_logger.level
    pyfunc_logger.setLevel(logging.ERROR)  # "cannot infer a signature": the input is a free-form frame on purpose
    try:
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(_pyfunc_code_path()),
            artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
            pip_requirements=pip_requirements(),
        )
    finally:
        pyfunc_logger.setLevel(old_level)


def _pyfunc_code_path() -> Path:
    """serving/model/pyfunc_model.py, located without importing it (importing it registers the model)."""
    spec = importlib.util.find_spec("serving.model.pyfunc_model")
    if spec is None or spec.origin is None:
        raise RuntimeError("serving/model/pyfunc_model.py is missing from the installed package")
    return Path(spec.origin)


def pip_requirements() -> list[str]:
    """Pinned to what trained the model; MLflow would otherwise load the model to guess them (slow)."""
    import lightgbm
    import mlflow
    import numpy
    import pandas
    import pyarrow
    import yaml

    return [
        f"mlflow=={mlflow.__version__}",
        f"lightgbm=={lightgbm.__version__}",
        f"pandas=={pandas.__version__}",
        f"numpy=={numpy.__version__}",
        f"pyarrow=={pyarrow.__version__}",
        f"pyyaml=={yaml.__version__}",
    ]


# -- load ------------------------------------------------------------------------------------------


def is_registry_uri(model: str | Path) -> bool:
    return isinstance(model, str) and model.startswith("models:/")


def resolve(uri: str) -> RegisteredVersion:
    """`models:/name@alias` or `models:/name/N` to a concrete version, via MLflow's registry."""
    match = _URI.match(uri)
    if not match:
        raise ModelNotFoundError(f"model URI {uri!r} is not models:/NAME@ALIAS or models:/NAME/VERSION")
    name, alias, version = match["name"], match["alias"], match["version"]
    if version is not None:
        return RegisteredVersion(name, version)
    found_here = _alias_in_local_store(name, alias)
    if found_here is not None:
        return found_here
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        found = MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise ModelNotFoundError(
            f"no model version of '{name}' has the alias '{alias}' "
            f"(train one with `leadscore train`): {_first_line(exc)}"
        ) from exc
    return RegisteredVersion(name, str(found.version), found.run_id)


def _alias_in_local_store(name: str, alias: str) -> RegisteredVersion | None:
    """The alias read straight from MLflow's default local store (a SQLite file), or None to ask MLflow.

    Why: importing MLflow and its SQL store takes longer than the rest of the server's start, only to
    read one row. This reads that row, read-only, when the store is a plain SQLite file that nothing
    else redirects (no registry URI, no workspaces, no file store, MLflow not already imported and
    configured in this process). Anything else, including an alias not found or any error, returns
    None, so MLflow's client answers (and words the errors) exactly as before.
    """
    path = _local_sqlite_store()
    if path is None or alias.lower() == "latest":  # MLflow computes "latest" itself
        return None
    import sqlite3

    query = (
        "SELECT a.version, v.run_id FROM registered_model_aliases a JOIN model_versions v "
        "ON v.workspace = a.workspace AND v.name = a.name AND v.version = a.version "
        "WHERE a.workspace = 'default' AND a.name = ? AND a.alias = ? AND v.current_stage != 'Deleted_Internal'"
    )
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=0.0)) as db:
            rows = db.execute(query, (name, alias)).fetchall()
    except sqlite3.Error:
        return None
    if len(rows) != 1:
        return None
    version, run_id = rows[0]
    return RegisteredVersion(name, str(int(version)), None if run_id is None else str(run_id))


def _local_sqlite_store() -> Path | None:
    """The SQLite file MLflow's registry would use, when that is certain without importing MLflow."""
    if "mlflow" in sys.modules:  # imported here already: set_tracking_uri and friends may apply
        return None
    if any(os.environ.get(v) for v in ("MLFLOW_REGISTRY_URI", "MLFLOW_ENABLE_WORKSPACES", "MLFLOW_WORKSPACE")):
        return None
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        if _mlruns_has_experiments():  # then MLflow keeps its file store as the default
            return None
        uri = "sqlite:///mlflow.db"
    if not uri.startswith("sqlite:///") or any(c in uri for c in "?%#"):
        return None
    path = Path(uri[len("sqlite:///") :]).absolute()
    return path if path.is_file() else None


def _mlruns_has_experiments() -> bool:
    """MLflow's own test (`_has_existing_mlruns_data`): ./mlruns holds a numbered folder with meta.yaml.
    Its SQLite default keeps artifacts in ./mlruns too, in folders named by run id."""
    try:
        return any(
            p.name.isdigit() and os.path.lexists(p / "meta.yaml") for p in Path("mlruns").iterdir() if p.is_dir()
        )
    except OSError:
        return False


def load_bundle(model: str | Path | None = None, *, models_dir: Path = MODELS_DIR, probe: bool = False) -> Bundle:
    """Load a bundle from a folder or the registry, preferring the local export of a registered version.

    Every failure (a damaged file, a locked or unreachable tracking store) is a ModelNotFoundError with
    one readable line, so the CLI exits 2 and the server keeps serving what it has. `probe` parses the
    trees in a child process first (see `Bundle.load`).
    """
    model = DEFAULT_MODEL if model is None else model
    try:
        return _load_bundle(model, models_dir=models_dir, probe=probe)
    except LeadscoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything from MLflow, SQLAlchemy or the file system
        raise ModelNotFoundError(f"could not load {model}: {type(exc).__name__}: {_first_line(exc)}") from None


def _load_bundle(model: str | Path, *, models_dir: Path, probe: bool) -> Bundle:
    if not is_registry_uri(model):
        return Bundle.load(Path(model), probe=probe)
    ref = resolve(str(model))
    bundle = None
    for folder in _export_folders(models_dir):
        local = folder / ref.name / ref.version
        if not (local / META_FILE).is_file():
            continue
        bundle = Bundle.load(local, probe=probe)
        if _same_run(bundle, ref):
            break
        _logger.warning(
            "%s was exported from another run than %s in this registry; loading the registry's", local, ref.uri
        )
        bundle = None
    if bundle is None:
        with _downloaded(ref) as folder:
            bundle = Bundle.load(folder, probe=probe)
    bundle.metadata.setdefault("name", ref.name)
    bundle.metadata["version"] = str(bundle.metadata.get("version") or ref.version)
    return bundle


def _export_folders(models_dir: Path) -> list[Path]:
    """Where `leadscore train` exports registered versions: `models_dir` (./models), then the models
    folder beside a local SQLite store, so a server started from another folder than its store's still
    loads the export instead of importing MLflow to download the artifacts (1.5-2 s more to start)."""
    folders = [models_dir]
    store = _local_sqlite_store()
    if store is not None and (store.parent / MODELS_DIR).absolute() != models_dir.absolute():
        folders.append(store.parent / MODELS_DIR)
    return folders


def _same_run(bundle: Bundle, ref: RegisteredVersion) -> bool:
    """False when a local export records another training run than the registry's version: a stale
    ./models folder (another store, an earlier registry) must not be served under this version number."""
    exported = bundle.metadata.get("run_id")
    if not exported:
        return True  # nothing to compare with: trust the export, as before
    registered = ref.run_id
    if registered is None:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        try:
            registered = MlflowClient().get_model_version(ref.name, ref.version).run_id
        except MlflowException:
            return True
    return registered is None or registered == exported


@contextmanager
def _downloaded(ref: RegisteredVersion) -> Iterator[Path]:
    """The version's artifacts in a temporary folder (removed after loading: the bundle is in memory)."""
    tmp = Path(tempfile.mkdtemp(prefix="leadscore-model-"))
    try:
        yield download_bundle(ref.uri, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download_bundle(uri: str, dst: str | Path, *, tracking_uri: str | None = None) -> Path:
    """Fetch a registered version's artifacts into `dst`; returns the folder that holds bundle.json."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        root = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst), tracking_uri=tracking_uri))
    except MlflowException as exc:
        raise ModelNotFoundError(f"cannot download {uri}: {_first_line(exc)}") from exc
    found = sorted(root.rglob(META_FILE), key=lambda p: len(p.parts))
    if not found:
        raise ModelNotFoundError(f"{uri} has no {META_FILE} among its artifacts (not a leadscore model)")
    return found[0].parent


# -- what the registry records about a version (the analyst API reads these) -----------------------


def tracking_uri() -> str:
    """Where runs and models are read from: `MLFLOW_TRACKING_URI`, else MLflow's default `sqlite:///mlflow.db`."""
    import mlflow

    return mlflow.get_tracking_uri()


def version_by_alias(name: str, alias: str) -> RegisteredVersion:
    """The version an alias points to, with its run; one clear error when there is none."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        found = MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise ModelNotFoundError(
            f"no model {name}@{alias} in {tracking_uri()}: run `leadscore train` first", field="alias"
        ) from exc
    return RegisteredVersion(name, str(found.version), found.run_id)


def run_metrics(run_id: str) -> dict[str, float]:
    """The metrics a training run logged."""
    from mlflow import MlflowClient

    return dict(MlflowClient().get_run(run_id).data.metrics)


def run_artifact(run_id: str, artifact_path: str) -> Path:
    """One file a run logged, downloaded to a local path."""
    import mlflow.artifacts

    return Path(
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, tracking_uri=tracking_uri())
    )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
