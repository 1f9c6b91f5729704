"""The model bundle: everything serving needs, pickle-free.

A bundle folder holds LightGBM's text model (`model.txt`) and one JSON file (`bundle.json`) with the
schema, the encoder's category levels, the calibration map, the factor map, the explanation
baseline and the training metadata. Loading it runs no code from the file.

    >>> bundle = Bundle.load("models/lead-conversion/3")     # doctest: +SKIP
    >>> bundle.metadata["as_of"]                              # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb

from features.calibration import Calibrator
from features.encoding import LeadEncoder
from features.errors import ModelNotFoundError
from features.schema import LeadSchema, schema_from_dict

FORMAT_VERSION = 1
MODEL_FILE = "model.txt"
META_FILE = "bundle.json"


@dataclass
class Bundle:
    booster: lgb.Booster
    schema: LeadSchema
    encoder: LeadEncoder
    calibrator: Calibrator
    baseline_raw: float
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", "lead-conversion"))

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", "local"))

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "schema": self.schema.to_dict(),
            "encoder": self.encoder.to_dict(),
            "calibration": self.calibrator.to_dict(),
            "factor_map": self.schema.factor_map,
            "baseline": {"raw": self.baseline_raw, "probability": float(self.calibrator(self.baseline_raw))},
            "metadata": self.metadata,
        }

    def save(self, folder: str | Path) -> Path:
        """Write to a temp folder beside the target and rename it in, so no half-written bundle exists."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            self.booster.save_model(str(tmp / MODEL_FILE))
            (tmp / META_FILE).write_text(json.dumps(self.to_json(), indent=2, default=str))
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Bundle:
        folder = Path(folder)
        model_path, meta_path = folder / MODEL_FILE, folder / META_FILE
        if not model_path.is_file() or not meta_path.is_file():
            raise ModelNotFoundError(f"no model bundle at {folder} (expected {MODEL_FILE} and {META_FILE})")
        state = json.loads(meta_path.read_text())
        if state.get("format_version") != FORMAT_VERSION:
            raise ModelNotFoundError(f"bundle at {folder} has format {state.get('format_version')!r}, "
                                     f"this version reads {FORMAT_VERSION}")
        schema = schema_from_dict(state["schema"], source=str(meta_path))
        return cls(
            booster=lgb.Booster(model_file=str(model_path)),
            schema=schema,
            encoder=LeadEncoder.from_dict(schema, state["encoder"]),
            calibrator=Calibrator.from_dict(state["calibration"]),
            baseline_raw=float(state["baseline"]["raw"]),
            metadata=dict(state.get("metadata", {})),
        )
