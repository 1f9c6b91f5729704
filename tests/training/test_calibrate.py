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


def test_an_isotonic_map_keeps_order_beyond_its_end_knots() -> None:
    """Leads scored beyond the calibration slice's range keep their order: the map continues in log-odds
    with its average slope (first to last knot) instead of staying flat at the end knots."""
    iso = Calibrator("isotonic", x=(-3.0, -1.0, 0.0, 2.0), y=(0.02, 0.05, 0.2, 0.4))
    logit = lambda p: np.log(p) - np.log1p(-p)  # noqa: E731
    slope = (logit(0.4) - logit(0.02)) / 5.0
    assert iso.tail_slope == pytest.approx(slope) and 0.5 < slope < 1.0
    p = iso(np.array([-5.0, -4.0, -3.0, 2.0, 3.0, 4.0]))
    assert np.all(np.diff(p) > 0)
    assert logit(p[0]) == pytest.approx(logit(0.02) - 2 * slope)
    assert logit(p[4]) == pytest.approx(logit(0.4) + slope)
    assert iso(np.array([-1.0, -0.5]))[1] == pytest.approx(0.125)  # inside: the knots' straight lines, as before
    assert iso(np.array([1e6]))[0] == pytest.approx(1 - 1e-6) and iso(np.array([-1e6]))[0] == pytest.approx(1e-6)


def test_a_flat_isotonic_map_stays_flat_beyond_its_knots() -> None:
    flat = Calibrator("isotonic", x=(-1.0, 1.0), y=(0.1, 0.1))
    assert flat.tail_slope == 0.0
    assert np.allclose(flat(np.array([-9.0, 0.0, 9.0])), 0.1)


def test_a_served_bundle_and_training_read_the_same_tails() -> None:
    """One definition: the map a bundle loads from its JSON gives the same probabilities past its knots."""
    iso = Calibrator("isotonic", x=(-2.0, 0.5, 1.0), y=(0.02, 0.3, 0.4))
    again = Calibrator.from_dict(iso.to_dict())
    raw = np.linspace(-8, 8, 33)
    assert np.array_equal(again(raw), iso(raw))


def test_an_isotonic_tail_is_never_steeper_than_the_models_own_log_odds() -> None:
    """End knots at clipped probabilities make the average slope steep (here 3.7 log-odds per unit):
    beyond the knots the map follows the raw score's own slope, 1, so a lead scored 2 units past the top
    knot gains 2 in log-odds, not 7.4."""
    steep = Calibrator("isotonic", x=(-2.0, 0.0, 3.0), y=(1e-4, 0.1, 0.9999))
    logit = lambda p: np.log(p) - np.log1p(-p)  # noqa: E731
    assert (logit(0.9999) - logit(1e-4)) / 5.0 > 3.0
    assert steep.tail_slope == 1.0
    p = steep(np.array([-4.0, 5.0]))
    assert logit(p[0]) == pytest.approx(logit(1e-4) - 2.0)
    assert logit(p[1]) == pytest.approx(logit(0.9999) + 2.0, abs=1e-3)  # clipped at 1 - 1e-6, just
    assert steep(np.array([1.5]))[0] == pytest.approx((0.1 + 0.9999) / 2)  # inside the knots: as before
