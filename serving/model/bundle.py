"""The model bundle: everything serving needs, pickle-free.

A bundle folder holds LightGBM's text model (`model.txt`, when the model has trees) and one JSON file
(`bundle.json`) with the schema, the encoder's category levels, the calibration map, the factor map,
the explanation baseline, the training metadata and, from format 2, the logistic model's terms and
the blend weight. Loading it runs no code from the file. From this version on it also holds the trees
flattened for the numba kernels (`forest.npz`, plain arrays read without pickle), written from
`model.txt` when the bundle is saved and checksummed like it, so a server starts without flattening
~400 trees; the text model stays the source of truth (see `serving.model.forest.layout`: arrays written
by another version of the code are ignored and the text is flattened again, as for older bundles).

The served model is one of three families, all in log-odds over the encoder's matrix:
- `lightgbm`: trees only (tree_weight 1; the only family in format 1 bundles);
- `logistic`: the regularised logistic model only (tree_weight 0, no model.txt);
- `blend`: raw = w * trees + (1 - w) * logistic, 0 < w < 1. Shapley values are linear in the model,
  so the blend's exact explanation is the same weighted sum of TreeSHAP and the linear terms.

    >>> bundle = Bundle.load("models/lead-conversion/3")     # doctest: +SKIP
    >>> bundle.metadata["as_of"]                              # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from features.calibration import Calibrator
from features.encoding import LeadEncoder
from features.errors import ModelNotFoundError
from features.schema import LeadSchema, schema_from_dict
from serving.model.forest import Forest
from serving.model.lightgbm_text import parse_model
from serving.model.linear import LinearModel

if TYPE_CHECKING:
    import lightgbm as lgb

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
MODEL_FILE = "model.txt"
FOREST_FILE = "forest.npz"
META_FILE = "bundle.json"
FAMILIES = ("lightgbm", "logistic", "blend")
PROBE_TIMEOUT_S = 120.0


T = TypeVar("T")


def family_of(tree_weight: float) -> str:
    """`lightgbm` for weight 1, `logistic` for 0, `blend` in between."""
    return "lightgbm" if tree_weight == 1.0 else "logistic" if tree_weight == 0.0 else "blend"


def part(component: T | None) -> T:
    """A model part the family needs (trees when tree_weight > 0, the logistic model when < 1); loading
    checks that it is there, so a missing one is a bug, said plainly."""
    if component is None:
        raise ValueError("this bundle's family needs a model part it does not have")
    return component


def expected_raw(
    booster: lgb.Booster | None, linear: LinearModel | None, tree_weight: float, X_sample: np.ndarray | None = None
) -> float:
    """The explanation baseline (`Bundle.baseline_raw`): the served model's expected value in log-odds.

    TreeSHAP's expected value is pred_contrib's last column, the same for every row, so one encoded
    row of `X_sample` is enough; the linear model carries its own. Blends weigh the two.
    """
    _check_parts(booster, linear, tree_weight)
    value = 0.0
    if tree_weight > 0.0:
        if X_sample is None or len(X_sample) == 0:
            raise ValueError("expected_raw needs at least one encoded row to read TreeSHAP's expected value")
        tree = float(part(booster).predict(np.asarray(X_sample, dtype=np.float64)[:1], pred_contrib=True)[0, -1])
        value += tree if tree_weight == 1.0 else tree_weight * tree
    if tree_weight < 1.0:
        expected = part(linear).expected_value
        value += expected if tree_weight == 0.0 else (1.0 - tree_weight) * expected
    return float(value)


def _weight(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"tree_weight must be a number from 0 to 1, got {value!r}")
    return float(value)


def _check_parts(
    booster: lgb.Booster | None, linear: LinearModel | None, tree_weight: float, *, has_text: bool = False
) -> None:
    _weight(tree_weight)
    if tree_weight > 0.0 and booster is None and not has_text:
        raise ValueError(f"tree_weight {tree_weight:g} needs a LightGBM booster")
    if tree_weight < 1.0 and linear is None:
        raise ValueError(f"tree_weight {tree_weight:g} needs a linear model")


class Bundle:
    """The served model (trees, logistic or their blend) with everything needed to score and explain it.

    The trees are a LightGBM booster (training) or the text of `model.txt` (a loaded bundle), parsed
    by LightGBM only when `booster` is first used: the server explains with the numba forest built
    from the text, and never pays for importing LightGBM, scikit-learn and SciPy.
    """

    def __init__(
        self,
        *,
        booster: lgb.Booster | None = None,
        schema: LeadSchema,
        encoder: LeadEncoder,
        calibrator: Calibrator,
        baseline_raw: float,
        metadata: dict[str, Any] | None = None,
        linear: LinearModel | None = None,
        tree_weight: float = 1.0,
        model_text: str | None = None,
    ) -> None:
        self._booster = booster
        self.model_text = model_text
        self._trees: dict[str, Any] | None = None
        self._forest: Forest | None = None
        self.schema = schema
        self.encoder = encoder
        self.calibrator = calibrator
        self.baseline_raw = baseline_raw
        self.metadata: dict[str, Any] = {} if metadata is None else metadata
        self.linear = linear
        self.tree_weight = _weight(tree_weight)
        _check_parts(self._booster, self.linear, self.tree_weight, has_text=model_text is not None)
        if self.linear is not None and self.linear.feature_names != self.encoder.feature_names:
            raise ValueError("the linear model's features do not match the encoder's")

    @property
    def booster(self) -> lgb.Booster | None:
        """LightGBM's booster, parsed from `model_text` on first use."""
        if self._booster is None and self.model_text is not None:
            import lightgbm as lgb

            self._booster = lgb.Booster(model_str=self.model_text)
        return self._booster

    @property
    def has_trees(self) -> bool:
        return self._booster is not None or self.model_text is not None

    def tree_dump(self) -> dict[str, Any]:
        """The trees in `Booster.dump_model()`'s shape, read from `model_text` without LightGBM when
        the bundle was loaded from a folder (see serving.model.lightgbm_text)."""
        if self._trees is None:
            self._trees = (
                parse_model(self.model_text) if self.model_text is not None else part(self._booster).dump_model()
            )
        return self._trees

    def forest(self) -> Forest:
        """The trees flattened for the numba kernels: the bundle's stored arrays when this code wrote
        them, else flattened from the text model (raises ValueError for models it cannot replay)."""
        if self._forest is None:
            self._forest = Forest.from_dump(self.tree_dump())
        return self._forest

    @property
    def family(self) -> str:
        return family_of(self.tree_weight)

    # -- reference implementations (the scorer has faster paths for trees) ------------------
    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        """Log-odds of the served model for an encoded matrix."""
        w = self.tree_weight
        if w == 1.0:
            return part(self.booster).predict(X, raw_score=True)
        if w == 0.0:
            return part(self.linear).raw(X)
        return w * part(self.booster).predict(X, raw_score=True) + (1.0 - w) * part(self.linear).raw(X)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Exact Shapley values per feature plus the expected value column (pred_contrib's layout)."""
        w = self.tree_weight
        if w == 1.0:
            return part(self.booster).predict(X, pred_contrib=True)
        if w == 0.0:
            return part(self.linear).contributions(X)
        return w * part(self.booster).predict(X, pred_contrib=True) + (1.0 - w) * part(self.linear).contributions(X)

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", "lead-conversion"))

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", "local"))

    def to_json(self, files: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "schema": self.schema.to_dict(),
            "encoder": self.encoder.to_dict(),
            "calibration": self.calibrator.to_dict(),
            "factor_map": self.schema.factor_map,
            "baseline": {"raw": self.baseline_raw, "probability": float(self.calibrator(self.baseline_raw))},
            "blend": {"tree_weight": self.tree_weight, "family": self.family},
            "linear": None if self.linear is None else self.linear.to_dict(),
            "metadata": self.metadata,
            "files": files or {},
        }

    def save(self, folder: str | Path) -> Path:
        """Write to a temp folder beside the target and rename it in, so no half-written bundle exists."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        # the pid in the name: see training.recovery
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.{os.getpid()}.", dir=folder.parent))
        try:
            files = {}
            if self.model_text is not None:
                (tmp / MODEL_FILE).write_bytes(self.model_text.encode("utf-8"))
            elif self._booster is not None:
                self._booster.save_model(str(tmp / MODEL_FILE))
            if self.has_trees:
                files[MODEL_FILE] = file_digest(tmp / MODEL_FILE)
                if _write_forest(tmp / FOREST_FILE, (tmp / MODEL_FILE).read_bytes().decode("utf-8")):
                    files[FOREST_FILE] = file_digest(tmp / FOREST_FILE)
            (tmp / META_FILE).write_text(json.dumps(self.to_json(files), indent=2, default=str))
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, probe: bool = False) -> Bundle:
        """Read a bundle; every damage is a ModelNotFoundError naming the file, never a crash.

        `model.txt` is checked against the SHA-256 that `bundle.json` records before LightGBM's parser
        reads it (the parser segfaults on a truncated file). With `probe=True` (the server), a bundle
        that records no checksum (written before they existed, or stripped) is parsed in a child
        process first, so a file nobody vouches for cannot take the server down.
        """
        folder = Path(folder)
        try:
            return cls._load(folder, probe=probe)
        except ModelNotFoundError:
            raise
        except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ModelNotFoundError(
                f"bundle at {folder} is damaged: {type(exc).__name__}: {_first_line(exc)}"
            ) from None

    @classmethod
    def _load(cls, folder: Path, *, probe: bool) -> Bundle:
        model_path, meta_path = folder / MODEL_FILE, folder / META_FILE
        if not meta_path.is_file():
            raise ModelNotFoundError(f"no model bundle at {folder} (expected {META_FILE})")
        try:
            state = json.loads(meta_path.read_bytes())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelNotFoundError(
                f"bundle at {folder} is damaged: {META_FILE} is not valid JSON ({_first_line(exc)})"
            ) from None
        if not isinstance(state, dict):
            raise ModelNotFoundError(f"bundle at {folder} is damaged: {META_FILE} is not a JSON object")
        version = state.get("format_version")
        if version not in READABLE_FORMATS:
            raise ModelNotFoundError(
                f"bundle at {folder} has format {version!r}, this version reads {', '.join(map(str, READABLE_FORMATS))}"
            )
        blend = (state.get("blend") or {}) if version >= 2 else {}
        schema = schema_from_dict(state["schema"], source=str(meta_path))
        encoder = LeadEncoder.from_dict(schema, state["encoder"])
        try:
            tree_weight = _weight(blend.get("tree_weight", 1.0))
            linear_state = state.get("linear") if version >= 2 else None
            linear = None if linear_state is None else LinearModel.from_dict(linear_state, encoder.feature_names)
            if tree_weight < 1.0 and linear is None:
                raise ValueError(f"tree_weight {tree_weight:g} needs a linear model and there is none")
        except ValueError as exc:
            raise ModelNotFoundError(f"bundle at {folder} is not usable: {exc}") from None
        if tree_weight > 0.0 and not model_path.is_file():
            raise ModelNotFoundError(f"no model bundle at {folder} (expected {MODEL_FILE} and {META_FILE})")
        model_text, trees, forest = None, None, None
        if model_path.is_file():
            recorded = state.get("files") or {}
            verify_files(folder, recorded)
            if probe and MODEL_FILE not in recorded:
                probe_model_file(model_path)  # no checksum to trust: let a child process take any crash
            model_text = model_path.read_bytes().decode("utf-8")
            if MODEL_FILE in recorded and FOREST_FILE in recorded:  # both as saved: the text parsed then
                forest = _read_forest(folder / FOREST_FILE)
            if forest is None:
                trees = parse_model(model_text)  # a damaged file is refused here, not on the first request
        bundle = cls(
            model_text=model_text,
            schema=schema,
            encoder=encoder,
            calibrator=Calibrator.from_dict(state["calibration"]),
            baseline_raw=float(state["baseline"]["raw"]),
            metadata=dict(state.get("metadata", {})),
            linear=linear,
            tree_weight=tree_weight,
        )
        bundle._trees, bundle._forest = trees, forest
        return bundle


def _write_forest(path: Path, model_text: str) -> bool:
    """Store the flattened trees beside the text they come from; False (nothing written) for a model
    the forest cannot replay, which is served by LightGBM anyway."""
    try:
        arrays = Forest.from_model_text(model_text).to_arrays()
    except ValueError:
        return False
    # compressed: 2.2 MB, not 7, for 400 trees, read as fast (less to hash); its zip entries carry no
    # time, so the same model gives the same bytes and checksum
    with path.open("wb") as handle:
        np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]  # numpy types **kwds loosely
    return True


def _read_forest(path: Path) -> Forest | None:
    """The stored forest, or None when another version of the code wrote it."""
    with np.load(path, allow_pickle=False) as stored:
        return Forest.from_arrays({name: stored[name] for name in stored.files})


def file_digest(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of a file, as `bundle.json` records them."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def verify_files(folder: Path, recorded: dict[str, Any]) -> None:
    """Refuse a bundle whose files differ from what `bundle.json` recorded (truncated, edited, swapped).

    Bundles written before checksums were recorded have none; the server's child-process probe covers them.
    """
    for name, expected in recorded.items():
        path = folder / name
        if not isinstance(expected, dict) or Path(name).name != name:
            raise ModelNotFoundError(f"bundle at {folder} is damaged: bad file record for {name!r}")
        if not path.is_file():
            raise ModelNotFoundError(f"bundle at {folder} is damaged: {name} is missing")
        found = file_digest(path)
        if found["bytes"] != expected.get("bytes"):
            raise ModelNotFoundError(
                f"bundle at {folder} is damaged: {name} has {found['bytes']:,} bytes, "
                f"{META_FILE} recorded {expected.get('bytes')!r}"
            )
        if found["sha256"] != expected.get("sha256"):
            raise ModelNotFoundError(
                f"bundle at {folder} is damaged: {name} does not match the SHA-256 recorded in {META_FILE}"
            )


def probe_model_file(path: Path, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Parse a LightGBM model file in a child process: a crash there is an error here, not a dead server."""
    code = "import sys, lightgbm; lightgbm.Booster(model_file=sys.argv[1])"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            capture_output=True,
            timeout=timeout_s,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ModelNotFoundError(f"{path.name} at {path.parent} took over {timeout_s:g} s to parse") from None
    if done.returncode != 0:
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit code {done.returncode}"
        last = (done.stderr.decode(errors="replace").strip().splitlines() or [""])[-1][:200]
        raise ModelNotFoundError(
            f"bundle at {path.parent} is damaged: LightGBM could not parse {path.name} "
            f"({how}{': ' + last if last else ''})"
        )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
