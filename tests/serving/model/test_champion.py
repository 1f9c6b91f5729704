"""The champion the real training pipeline registers (shared `trained_model` fixture), served as is."""

from __future__ import annotations

import numpy as np
import pytest

from features.factors import FACTORS
from features.synthetic import generate
from serving.model.scorer import Scorer


@pytest.fixture(scope="module")
def champion(trained_model) -> Scorer:
    return Scorer.load(trained_model.bundle_dir)


def test_champion_loads_from_the_registry_alias(trained_model, registry_copy) -> None:
    """No local export in the working folder: the version's artifacts are downloaded from MLflow."""
    scorer = Scorer.load("models:/lead-conversion@champion")
    assert scorer.bundle.version == str(trained_model.version)
    assert scorer.score([{"lead_id": "R1", "phone_present": False}])[0]["model"]["version"] == scorer.bundle.version


def test_champion_explanations_add_up(champion) -> None:
    leads = generate(quarters=2, leads_per_quarter=1000, seed=5).leads
    explained = champion.explain(leads)
    raw = champion.bundle.raw_scores(champion.bundle.encoder.transform(leads))  # whichever family training chose
    impacts = explained[[f"impact_{f}" for f in FACTORS]].to_numpy().sum(axis=1)
    np.testing.assert_allclose(champion.bundle.baseline_raw + impacts, raw, rtol=0, atol=1e-9)


def test_champion_never_scores_a_lead_lower_for_a_phone_number_or_a_demo(champion) -> None:
    leads = generate(quarters=2, leads_per_quarter=200, seed=6).leads
    for feature in ("phone_present", "demo_requested", "budget_confirmed", "decision_maker"):
        worse = champion.predict_proba(leads.assign(**{feature: False}))
        better = champion.predict_proba(leads.assign(**{feature: True}))
        assert (better >= worse - 1e-12).all(), feature
