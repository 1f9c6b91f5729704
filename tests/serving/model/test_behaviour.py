"""Behavioural promises of the model as served: invariance and direction (Made-With-ML style)."""

from __future__ import annotations

import pytest

from features.synthetic import bundled_schema

SCHEMA = bundled_schema()
MONOTONE = [s for s in SCHEMA.features if s.monotone]


def test_changing_only_the_lead_id_never_changes_the_score(scorer, lead_records) -> None:
    renamed = [{**r, "lead_id": f"other-{i}"} for i, r in enumerate(lead_records[:100])]
    for a, b in zip(scorer.score(lead_records[:100]), scorer.score(renamed), strict=True):
        assert (a["probability"], a["factors"]) == (b["probability"], b["factors"])


@pytest.mark.parametrize("spec", MONOTONE, ids=[s.name for s in MONOTONE])
def test_improving_a_monotone_feature_never_lowers_the_probability(scorer, lead_records, spec) -> None:
    """E.g. a lead that gains a phone number, or visits the site more, never scores lower."""
    for record in lead_records[:60]:
        worse, better = _pair(spec, record.get(spec.name))
        [low], [high] = scorer.score([{**record, spec.name: worse}]), scorer.score([{**record, spec.name: better}])
        assert high["probability"] >= low["probability"] - 1e-12, (record, worse, better)


def _pair(spec, value):
    """Two values of the feature, the second better in the monotone direction."""
    if spec.type == "boolean":
        lo, hi = False, True
    else:
        base = 0 if value is None else int(value)
        lo, hi = base, base + 5
    return (lo, hi) if spec.monotone > 0 else (hi, lo)


def test_same_lead_twice_scores_the_same(scorer, lead_records) -> None:
    first, second = scorer.score(lead_records[:2] * 2)[:2], scorer.score(lead_records[:2])
    assert first == second
