"""The MLflow pyfunc face of a model bundle, so MLflow's own tools can serve a registered version.

    mlflow models serve -m models:/lead-conversion@champion --env-manager local

Logged as "models from code": MLflow keeps this file's source (not a pickle) with the model and runs
it when loading, which is why it ends with `set_model(...)`. `load_context` reads the pickle-free
bundle folder (bundle.json, and model.txt when the model has trees) from the model's artifacts. The
`leadscore` package must be importable where the model is loaded.

Input: a DataFrame of leads with the lead schema's columns (absent columns and unseen category
levels are treated as missing). Output: one row per lead with the id (when given), the calibrated
probability of conversion and the grade A-D.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

from features.grades import assign_grades
from serving.model.registry import BUNDLE_ARTIFACT


class LeadConversionModel(PythonModel):
    """Thin on purpose: the same encoder, model (trees, logistic or blend) and calibration map the bundle
    holds, nothing else."""

    def load_context(self, context: Any) -> None:
        from serving.model.bundle import Bundle

        self.bundle = Bundle.load(context.artifacts[BUNDLE_ARTIFACT])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Score leads. (A DataFrame hint tells MLflow to pass the frame as is: no schema inference.)"""
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        bundle = self.bundle
        schema = bundle.schema
        if len(frame):
            raw = bundle.raw_scores(bundle.encoder.transform(frame))
            probability = np.asarray(bundle.calibrator(raw), dtype=np.float64)
        else:
            probability = np.empty(0, dtype=np.float64)
        grade = assign_grades(probability, schema.grades)
        out = pd.DataFrame({"probability": probability, "grade": grade})
        if schema.id_column in frame.columns:
            out.insert(0, schema.id_column, frame[schema.id_column].astype("string").to_numpy())
        return out


set_model(LeadConversionModel())
