"""The logistic-regression baseline: what a careful analyst would fit first, on the same features.

It reads the same encoded matrix as LightGBM (so both see exactly the same information), one-hot
encodes the categoricals (missing and unseen levels as one more level) and median-imputes
and standardises the rest, with a missing-value indicator. If the boosted model cannot beat this
on the same test quarter, its complexity is not paying for itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from features.encoding import LeadEncoder
from training.threads import one_blas_thread

MAX_ROWS = 200_000  # plenty for ~100 coefficients; keeps the baseline cheap on a million leads
MISSING_CODE = -1.0


@dataclass
class Baseline:
    encoder: LeadEncoder
    model: Pipeline

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(_prepare(self.encoder, frame))[:, 1]


def fit_baseline(train: pd.DataFrame, y_train: np.ndarray, encoder: LeadEncoder, *, seed: int = 0) -> Baseline:
    """Fit on (a sample of at most MAX_ROWS of) the training leads with the model's own encoder."""
    if len(train) > MAX_ROWS:
        keep = np.sort(np.random.default_rng(seed).choice(len(train), MAX_ROWS, replace=False))
        train, y_train = train.iloc[keep], np.asarray(y_train)[keep]
    cats = encoder.categorical_indices
    nums = [i for i in range(len(encoder.feature_names)) if i not in cats]
    columns = ColumnTransformer(
        [
            ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cats),
            (
                "numeric",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), StandardScaler()
                ),
                nums,
            ),
        ]
    )
    model = make_pipeline(columns, LogisticRegression(max_iter=500, C=1.0))
    with one_blas_thread():
        model.fit(_prepare(encoder, train), np.asarray(y_train))
    return Baseline(encoder=encoder, model=model)


def _prepare(encoder: LeadEncoder, frame: pd.DataFrame) -> np.ndarray:
    """The model's matrix, with missing categoricals as their own code so one-hot sees them."""
    matrix = encoder.transform(frame)
    cats = encoder.categorical_indices
    if cats:
        block = matrix[:, cats]
        block[np.isnan(block)] = MISSING_CODE
        matrix[:, cats] = block
    return matrix
