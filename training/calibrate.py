"""Fit the calibration map on held-out leads, so "30%" means three in ten convert."""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from features.calibration import Calibrator
from training.threads import one_blas_thread

MIN_ISOTONIC_POSITIVES = 200


def fit_isotonic(raw: np.ndarray, y: np.ndarray) -> Calibrator:
    """Centred isotonic regression: one knot per pooled block, at the block's mean raw score.

    Plain isotonic regression is flat across each block, so leads the model ranks differently get the
    same probability and ROC AUC drops. Interpolating between block centres keeps the calibration and
    is strictly increasing, so the model's ranking survives (Oron and Flournoy, 2017).
    """
    raw = np.asarray(raw, dtype=np.float64)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-4, y_max=1 - 1e-4).fit(raw, y)
    order = np.argsort(raw, kind="stable")
    x_sorted = raw[order]
    fitted = iso.predict(x_sorted)
    starts = np.flatnonzero(np.r_[True, np.diff(fitted) != 0])
    counts = np.diff(np.r_[starts, len(fitted)])
    centres = np.add.reduceat(x_sorted, starts) / counts
    values = fitted[starts]
    if len(centres) < 2:
        return Calibrator(
            "isotonic", x=(float(x_sorted[0]), float(x_sorted[-1]) + 1e-9), y=(float(values[0]), float(values[0]))
        )
    return Calibrator("isotonic", x=tuple(centres.tolist()), y=tuple(values.tolist()))


def fit_platt(raw: np.ndarray, y: np.ndarray) -> Calibrator:
    with one_blas_thread():
        lr = LogisticRegression(C=1e6).fit(raw.reshape(-1, 1), y)
    return Calibrator("platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))


def fit_calibrator(raw: np.ndarray, y: np.ndarray, *, seed: int = 0) -> Calibrator:
    """Choose isotonic or Platt by log loss on a held-out half, then refit the winner on all of it.

    Isotonic needs enough positives to be smooth; below that Platt's two parameters are safer.
    """
    raw = np.asarray(raw, dtype=np.float64)
    y = np.asarray(y, dtype=np.int8)
    if y.sum() < MIN_ISOTONIC_POSITIVES:
        return fit_platt(raw, y)
    rng = np.random.default_rng(seed)
    half = rng.random(len(y)) < 0.5
    scores = {}
    for name, fit in (("isotonic", fit_isotonic), ("platt", fit_platt)):
        cal = fit(raw[half], y[half])
        scores[name] = log_loss(y[~half], cal(raw[~half]), labels=[0, 1])
    best = min(scores, key=scores.__getitem__)
    return fit_isotonic(raw, y) if best == "isotonic" else fit_platt(raw, y)
