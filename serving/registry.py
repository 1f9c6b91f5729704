"""Find the bundle behind a model reference: a folder, `models:/name@alias` or `models:/name/version`.

Why a module of its own: the registry is the only place serving talks to MLflow, and MLflow is a slow
import, so it is imported here, inside the functions, only when a `models:/` URI is given.

    >>> resolve("models:/lead-conversion@champion")     # doctest: +SKIP
    ModelRef(name='lead-conversion', version='3', uri='models:/lead-conversion/3')
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from features.errors import ModelNotFoundError
from serving.bundle import META_FILE, Bundle

_logger = logging.getLogger(__name__)

DEFAULT_MODEL = "models:/lead-conversion@champion"
MODELS_DIR = Path("models")
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelRef:
    """A registered model version, resolved to a number (aliases move; versions do not)."""

    name: str
    version: str
    run_id: str | None = field(default=None, compare=False)  # the registry's record of the version's run

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def is_registry_uri(model: str | Path) -> bool:
    return isinstance(model, str) and model.startswith("models:/")


def resolve(uri: str) -> ModelRef:
    """`models:/name@alias` or `models:/name/N` to a concrete version, via MLflow's registry."""
    match = _URI.match(uri)
    if not match:
        raise ModelNotFoundError(f"model URI {uri!r} is not models:/NAME@ALIAS or models:/NAME/VERSION")
    name, alias, version = match["name"], match["alias"], match["version"]
    if version is not None:
        return ModelRef(name, version)
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        found = MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise ModelNotFoundError(f"no model version of '{name}' has the alias '{alias}' "
                                 f"(train one with `leadscore train`): {_first_line(exc)}") from exc
    return ModelRef(name, str(found.version), found.run_id)


def load_bundle(model: str | Path | None = None, *, models_dir: Path = MODELS_DIR) -> Bundle:
    """Load a bundle from a folder or the registry, preferring the local export of a registered version."""
    model = DEFAULT_MODEL if model is None else model
    if not is_registry_uri(model):
        return Bundle.load(Path(model))
    ref = resolve(str(model))
    local = models_dir / ref.name / ref.version
    bundle = Bundle.load(local) if (local / META_FILE).is_file() else None
    if bundle is not None and not _same_run(bundle, ref):
        _logger.warning("%s was exported from another run than %s in this registry; loading the registry's",
                        local, ref.uri)
        bundle = None
    if bundle is None:
        with _downloaded(ref) as folder:
            bundle = Bundle.load(folder)
    bundle.metadata.setdefault("name", ref.name)
    bundle.metadata["version"] = str(bundle.metadata.get("version") or ref.version)
    return bundle


def _same_run(bundle: Bundle, ref: ModelRef) -> bool:
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
def _downloaded(ref: ModelRef) -> Iterator[Path]:
    """The version's artifacts in a temporary folder (removed after loading: the bundle is in memory)."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    tmp = Path(tempfile.mkdtemp(prefix="leadscore-model-"))
    try:
        try:
            root = Path(mlflow.artifacts.download_artifacts(artifact_uri=ref.uri, dst_path=str(tmp)))
        except MlflowException as exc:
            raise ModelNotFoundError(f"cannot download {ref.uri}: {_first_line(exc)}") from exc
        found = sorted(root.rglob(META_FILE), key=lambda p: len(p.parts))
        if not found:
            raise ModelNotFoundError(f"{ref.uri} has no {META_FILE} among its artifacts (not a leadscore model)")
        yield found[0].parent
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
