"""The MLflow edge: runs, the model registry and aliases. Every MLflow side effect lives here.

Defaults need no setup: the tracking store is `MLFLOW_TRACKING_URI`, else MLflow's local SQLite
store `sqlite:///mlflow.db` in the working folder, with artifacts in `mlruns/` beside the database.
The registered model is a pyfunc logged "from code" (serving/model/pyfunc_model.py) whose artifacts hold
the pickle-free bundle folder, so serving can download it and read JSON, never a pickle.

    >>> with use_tracking(resolve_tracking_uri()) as client:         # doctest: +SKIP
    ...     champion = alias_version(client, CHAMPION)
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from serving.model import registry

_logger = logging.getLogger(__name__)

EXPERIMENT = "lead-conversion"
MODEL_NAME = "lead-conversion"
CHAMPION = "champion"
CHALLENGER = "challenger"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
_PROGRESS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
# Earlier MLflow 3 UIs open an experiment on the tab its kind says (runs, not the GenAI overview).
# MLflow 3.17's UI follows its sidebar's GenAI / Model training switch instead (checked in Chromium),
# so the README gives the address with ?workflowType=machine_learning; the tag still names the kind.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The URI given, else `MLFLOW_TRACKING_URI`, else the local SQLite store."""
    return uri or os.environ.get(TRACKING_ENV) or DEFAULT_TRACKING_URI


@contextmanager
def use_tracking(uri: str, *, quiet: bool = True) -> Iterator[Any]:
    """Point MLflow's fluent API at `uri` for the block and yield a client; restore everything after.

    MLflow keeps the tracking URI in a global and mirrors it into the environment, so both are put
    back: calling `train()` from a notebook must not redirect the notebook's own MLflow calls.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.tracking._tracking_service import utils as tracking_utils

    old_global, old_env = tracking_utils._tracking_uri, os.environ.get(TRACKING_ENV)
    old_bar = os.environ.get(_PROGRESS_ENV)
    mlflow_logger = logging.getLogger("mlflow")
    old_level = mlflow_logger.level
    if quiet:
        mlflow_logger.setLevel(logging.WARNING)
        os.environ[_PROGRESS_ENV] = "false"
    mlflow.set_tracking_uri(uri)
    try:
        yield MlflowClient(tracking_uri=uri, registry_uri=uri)
    finally:
        mlflow.set_tracking_uri(old_global)
        if old_env is not None:
            os.environ[TRACKING_ENV] = old_env
        _restore_env(_PROGRESS_ENV, old_bar)
        mlflow_logger.setLevel(old_level)


def _restore_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


def ensure_experiment(client: Any, uri: str, name: str = EXPERIMENT) -> str:
    """The experiment's id, creating it with artifacts beside a SQLite database when it is new."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        if found.tags.get(EXPERIMENT_KIND_TAG) is None:
            client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return found.experiment_id
    return client.create_experiment(
        name, artifact_location=_artifact_location(uri), tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
    )


SCHEMA_SAMPLE = 10_000  # leads MLflow reads to type the dataset's columns (the profile counts every lead)


def log_training_data(frame: Any, *, path: Path, digest: str, target: str) -> None:
    """The training file as the run's dataset input (source, digest, column schema), so the MLflow UI
    shows which export a model learned from. The digest is the first 36 hex digits of the file's SHA-256
    (the run's `data_fingerprint` param has all 64; MLflow stores at most 36)."""
    import warnings

    import mlflow

    with warnings.catch_warnings():  # MLflow's hints on local paths and integer columns: not the user's concern
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(
            frame,
            source=str(path.absolute()),
            name=path.name,
            digest=digest[:36],
            targets=target if target in frame.columns else None,
        )
        if len(frame) > SCHEMA_SAMPLE:  # MLflow types columns by scanning every value: 26 s on a million leads
            sample = frame.sample(n=SCHEMA_SAMPLE, random_state=0)
            dataset.__dict__["schema"] = mlflow.models.infer_signature(sample).inputs  # its cached_property
        mlflow.log_input(dataset, context="training")


def describe_run(client: Any, run_id: str, text: str) -> None:
    """The run's description in the MLflow UI (its "Description" box): the training summary."""
    client.set_tag(run_id, "mlflow.note.content", f"```\n{text}\n```")


def _artifact_location(uri: str) -> str | None:
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite":
        return None  # a tracking server decides where artifacts go
    db = uri[len("sqlite:///") :]
    if not db or db == ":memory:":
        return None
    return (Path(db).absolute().parent / "mlruns").as_uri()


# -- registry --------------------------------------------------------------------------------------


def alias_version(client: Any, alias: str, name: str = MODEL_NAME) -> str | None:
    """The version an alias points to, or None when the model or the alias does not exist yet."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def next_version(client: Any, name: str = MODEL_NAME) -> str:
    """The version number the next registration will get (the bundle records it before it exists)."""
    versions = client.search_model_versions(f"name='{name}'")
    return str(max((int(v.version) for v in versions), default=0) + 1)


def log_bundle_model(
    client: Any, bundle_dir: Path, run_id: str, name: str = MODEL_NAME, tags: Mapping[str, str] | None = None
) -> str:
    """Log the bundle with the leadscore flavour (serving/model/registry.py), register it, return the version.

    Registration goes through the client rather than `mlflow.register_model`, which prints to stderr.
    """
    from mlflow.exceptions import MlflowException

    info = registry.log_model(bundle_dir)
    try:
        client.create_registered_model(
            name, description="P(lead converts), calibrated, explained by quality factors (leadscore)"
        )
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    version = client.create_model_version(
        name, source=info.model_uri, run_id=run_id, model_id=info.model_id, tags=dict(tags or {})
    )
    return str(version.version)


def set_alias(client: Any, alias: str, version: str, name: str = MODEL_NAME) -> None:
    client.set_registered_model_alias(name, alias, version)


def tag_version(client: Any, version: str, tags: Mapping[str, Any], name: str = MODEL_NAME) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value)[:5000])


# -- runs --------------------------------------------------------------------------------------------


@contextmanager
def start_run(
    client: Any, uri: str, run_name: str, *, nested: bool = False, tags: Mapping[str, str] | None = None
) -> Iterator[str]:
    """A run in the leadscore experiment (created when new) inside `use_tracking`; yields its id."""
    import mlflow

    experiment_id = ensure_experiment(client, uri)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, nested=nested, tags=dict(tags or {})) as run:
        yield run.info.run_id


def set_tags(tags: Mapping[str, Any]) -> None:
    import mlflow

    mlflow.set_tags({k: str(v) for k, v in tags.items()})


def log_artifact(path: Path) -> None:
    import mlflow

    mlflow.log_artifact(str(path))


def log_params(params: Mapping[str, Any]) -> None:
    """MLflow caps a parameter value at a few thousand characters and a batch at 100 entries."""
    import mlflow

    items = [(k, _short(v)) for k, v in params.items() if v is not None]
    for start in range(0, len(items), 100):
        mlflow.log_params(dict(items[start : start + 100]))


def log_metrics(metrics: Mapping[str, float], *, step: int | None = None) -> None:
    import math

    import mlflow

    clean = {
        _metric_key(k): float(v)
        for k, v in metrics.items()
        if v is not None and isinstance(v, int | float) and math.isfinite(float(v))
    }
    keys = list(clean)
    for start in range(0, len(keys), 500):
        mlflow.log_metrics({k: clean[k] for k in keys[start : start + 500]}, step=step)


def log_artifacts(folder: Path, artifact_path: str | None = None) -> None:
    import mlflow

    mlflow.log_artifacts(str(folder), artifact_path=artifact_path)


def scratch_dir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder named with this process id, so a later run can tell a killed run's leftovers."""
    return tempfile.TemporaryDirectory(prefix=f"leadscore-{prefix}-{os.getpid()}-")


def _short(value: Any, limit: int = 500) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _metric_key(key: str) -> str:
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in key)
