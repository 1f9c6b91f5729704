"""The champion/challenger rule, and its one setting."""

from __future__ import annotations

import pytest

from features.errors import TrainingError
from training.promotion import DEFAULT_TOLERANCE, PromotionSettings, decide


def test_first_model_becomes_champion() -> None:
    assert decide("auto", 0.3, None).promote


def test_within_tolerance_promotes_and_beyond_keeps_the_champion() -> None:
    assert decide("auto", 0.2015, 0.2000, tolerance=0.002).promote
    kept = decide("auto", 0.2030, 0.2000, tolerance=0.002, pr_auc=(0.51, 0.55))
    assert not kept.promote and "champion kept" in kept.reason and "PR AUC 0.5100 vs champion 0.5500" in kept.reason


def test_never_and_force_ignore_the_figures() -> None:
    assert not decide("never", 0.1, 0.5).promote
    assert decide("force", 0.9, 0.1).promote


def test_unscorable_champion_is_kept_under_auto() -> None:
    decision = decide("auto", 0.2, None, champion_note="champion version 3 could not be scored")
    assert not decision.promote and "--promote force" in decision.reason


def test_tolerance_comes_from_the_environment_and_bad_values_are_refused() -> None:
    assert PromotionSettings.from_env({}).tolerance == DEFAULT_TOLERANCE
    assert PromotionSettings.from_env({"LEADSCORE_PROMOTE_TOLERANCE": "0.01"}).tolerance == 0.01
    for bad in ("-1", "abc", "nan"):
        with pytest.raises(TrainingError, match="LEADSCORE_PROMOTE_TOLERANCE"):
            PromotionSettings.from_env({"LEADSCORE_PROMOTE_TOLERANCE": bad})
    with pytest.raises(TrainingError, match="promote must be one of"):
        decide("sometimes", 0.1, 0.1)
