"""The calibrated level follows the newest leads only when their conversion rate clearly moved."""

from __future__ import annotations

import numpy as np
import pytest

from features.calibration import Calibrator
from training.calibrate import level_with_evidence, shifted


def _newest_and_rest(rate_newest: float, rate_rest: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    raw = rng.normal(-2.0, 1.0, size=2000)
    y_newest = (rng.random(2000) < rate_newest).astype(float)
    y_rest = (rng.random(8000) < rate_rest).astype(float)
    return raw, y_newest, y_rest


def test_a_level_within_noise_of_the_history_is_the_historys() -> None:
    raw, y_newest, y_rest = _newest_and_rest(0.10, 0.10)
    y_newest[: int(0.012 * len(y_newest))] = 1.0  # the slice's rate a little above the rest's, within 2 SE
    slice_map = Calibrator("platt", a=1.0, b=np.log(y_newest.mean() / (1 - y_newest.mean())) + 2.0)
    levelled = level_with_evidence(slice_map, raw, y_newest, y_rest)
    pooled = np.r_[y_newest, y_rest].mean()
    assert levelled(raw).mean() == pytest.approx(pooled, rel=1e-3)
    assert levelled.a == slice_map.a  # only the level moves: the ranking and the slope stay


def test_a_clearly_moved_level_follows_the_newest_leads() -> None:
    raw, y_newest, y_rest = _newest_and_rest(0.30, 0.10)  # the base rate tripled
    slice_map = Calibrator("platt", a=1.0, b=0.5)
    assert level_with_evidence(slice_map, raw, y_newest, y_rest) == slice_map


def test_shifting_an_isotonic_map_keeps_its_order() -> None:
    iso = Calibrator("isotonic", x=(-3.0, -1.0, 0.0, 2.0), y=(0.01, 0.05, 0.2, 0.6))
    moved = shifted(iso, -0.5)
    assert moved.x == iso.x
    assert np.all(np.diff(moved.y) > 0) and np.all(np.array(moved.y) < np.array(iso.y))
