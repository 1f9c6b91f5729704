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
from dataclasses import dataclass
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
                                 f"(train one with `leadscore train`): {_first_line(exc)}") from None
    return ModelRef(name, str(found.version))


def load_bundle(model: str | Path | None = None, *, models_dir: Path = MODELS_DIR) -> Bundle:
    """Load a bundle from a folder or the registry, preferring the local export of a registered version."""
    model = DEFAULT_MODEL if model is None else model
    if not is_registry_uri(model):
        return Bundle.load(Path(model))
    ref = resolve(str(model))
    local = models_dir / ref.name / ref.version
    if (local / META_FILE).is_file():
        bundle = Bundle.load(local)
    else:
        with _downloaded(ref) as folder:
            bundle = Bundle.load(folder)
    bundle.metadata.setdefault("name", ref.name)
    bundle.metadata["version"] = str(bundle.metadata.get("version") or ref.version)
    return bundle


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
            raise ModelNotFoundError(f"cannot download {ref.uri}: {_first_line(exc)}") from None
        found = sorted(root.rglob(META_FILE), key=lambda p: len(p.parts))
        if not found:
            raise ModelNotFoundError(f"{ref.uri} has no {META_FILE} among its artifacts (not a leadscore model)")
        yield found[0].parent
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
