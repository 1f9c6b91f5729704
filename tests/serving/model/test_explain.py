"""Explanations keep their promises: exact additivity, the right factor named, what-ifs re-scored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.factors import FACTORS
from features.synthetic import QUALITY_FACTORS
from serving.model import explain as ex


def test_baseline_plus_factor_impacts_is_the_raw_score_for_every_lead(scorer, fresh) -> None:
    leads = fresh.leads
    explained = scorer.explain(leads, chunk_rows=1_000)
    impacts = explained[[f"impact_{f}" for f in FACTORS]].to_numpy()
    raw = scorer.bundle.booster.predict(scorer.bundle.encoder.transform(leads), raw_score=True)
    assert len(explained) == len(leads) >= 4_000
    np.testing.assert_allclose(scorer.bundle.baseline_raw + impacts.sum(axis=1), raw, rtol=0, atol=1e-9)
    np.testing.assert_allclose(explained["raw_score"], raw, rtol=0, atol=1e-9)


def test_real_time_response_adds_up_too(scorer, lead_records) -> None:
    for result in scorer.score(lead_records[:100]):
        total = result["log_odds"]["baseline"] + sum(f["impact"] for f in result["factors"])
        assert total == pytest.approx(result["log_odds"]["raw_score"], abs=1e-9)
        assert result["probability"] == pytest.approx(float(scorer.probability(result["log_odds"]["raw_score"])))


def test_top_lowering_factor_names_the_clearly_weakest_true_factor(scorer, fresh) -> None:
    """Where the generator made one factor the weakest by a clear margin, the model says so (>= 90%)."""
    truth = fresh.truth[[f"true_{f}" for f in QUALITY_FACTORS]].to_numpy()
    ordered = np.sort(truth, axis=1)
    clear = (ordered[:, 0] < -1.0) & (ordered[:, 1] - ordered[:, 0] >= 1.0)
    weakest = np.asarray(QUALITY_FACTORS)[truth.argmin(axis=1)][clear]
    named = scorer.explain(fresh.leads[clear])["top_lowering_factor"].to_numpy(dtype=object, na_value=None)
    assert clear.sum() >= 200
    assert (named == weakest).mean() >= 0.90


def test_lowering_factors_are_negative_largest_first_with_reasons(scorer, lead_records) -> None:
    for result in scorer.score(lead_records[:50]):
        lowering = result["lowering_factors"]
        impacts = [f["impact"] for f in lowering]
        assert impacts == sorted(impacts) and all(i < 0 for i in impacts)
        assert {f["key"] for f in lowering} == {f["key"] for f in result["factors"] if f["impact"] < -1e-12}
        for factor in lowering:
            assert factor["features"], factor
            assert all(f["impact"] < 0 and f["reason"] for f in factor["features"])
            raw = result["log_odds"]["raw_score"]
            expected = 100 * (scorer.probability(raw - factor["impact"]) - scorer.probability(raw))
            assert factor["cost_points"] == pytest.approx(float(expected), abs=1e-9)


def test_missing_phone_is_explained_with_the_schema_reason(scorer) -> None:
    lead = {"lead_id": "X", "phone_present": False, "email_present": True, "email_type": "corporate"}
    [result] = scorer.score([lead])
    reasons = {f["name"]: f["reason"] for lf in result["lowering_factors"] for f in lf["features"]}
    assert reasons.get("phone_present") == "No phone number on record"


def test_what_ifs_raise_the_probability_and_match_a_rescore(scorer, lead_records) -> None:
    seen = 0
    for record, result in zip(lead_records[:60], scorer.score(lead_records[:60]), strict=True):
        gains = [w["probability"] for w in result["what_if"]]
        assert gains == sorted(gains, reverse=True) and len(gains) <= ex.MAX_WHAT_IF
        for change in result["what_if"]:
            assert change["probability"] > result["probability"]
            [after] = scorer.score([{**record, change["feature"]: change["to"]}])
            assert after["probability"] == pytest.approx(change["probability"], abs=1e-12)
            seen += 1
    assert seen > 0


def test_what_if_probabilities_are_exactly_those_of_the_changed_lead(scorer, lead_records) -> None:
    """A batch's what-ifs skip walking the trees (only the changed feature's decisions are redone);
    the probability shown is still exactly what scoring the changed lead gives."""
    results = scorer.score(lead_records[:40], what_if=20)
    changes = [
        ({**record, c["feature"]: c["to"]}, c)
        for record, r in zip(lead_records[:40], results, strict=True)
        for c in r["what_if"]
    ]
    assert len(changes) > 20
    rescored = scorer.score([lead for lead, _ in changes])
    assert [r["probability"] for r in rescored] == [c["probability"] for _, c in changes]


def _mixed_leads(lead_records: list[dict]) -> list[dict]:
    """Real-looking leads and odd ones: an unseen category, an empty lead, numbers as text, a numeric id."""
    odd = [
        {**lead_records[0], "industry": "space mining"},
        {},
        {"lead_id": 7, "phone_present": "yes", "pricing_page_views": "3", "seniority": None},
        {**lead_records[1], "lead_id": None, "demo_requested": True, "webinar_attended": True},
    ]
    return [*lead_records[:30], *odd, *lead_records[30:45]]


def test_a_batch_answers_exactly_what_one_by_one_calls_answer(scorer, lead_records) -> None:
    """Numbers are computed for a whole batch at once (block kernels, one calibration call, sorted
    arrays); a lead's answer must not depend on what else was in its request, to the last bit."""
    leads = _mixed_leads(lead_records)
    one_by_one = [scorer.score([lead])[0] for lead in leads]
    assert scorer.score(leads) == one_by_one
    assert scorer.score(leads[::-1]) == one_by_one[::-1]
    assert [r["lead_id"] for r in one_by_one[30:34]] == [lead_records[0]["lead_id"], None, "7", None]


def test_unknown_category_is_scored_as_missing_and_reported(scorer, lead_records) -> None:
    record = dict(lead_records[0])
    [odd] = scorer.score([{**record, "industry": "space mining"}])
    [blank] = scorer.score([{**record, "industry": None}])
    assert odd["probability"] == blank["probability"]
    assert odd["warnings"] == [
        {"field": "industry", "problem": "value 'space mining' was not seen in training; scored as missing"}
    ]
    assert blank["warnings"] == []


def test_explain_contract_columns_and_order(scorer, fresh) -> None:
    leads = fresh.leads.iloc[:500].sample(frac=1.0, random_state=0)
    explained = scorer.explain(leads, chunk_rows=128)
    expected = [
        "lead_id",
        "probability",
        "score",
        "grade",
        "raw_score",
        *[f"impact_{f}" for f in FACTORS],
        "top_lowering_factor",
        "top_lowering_reason",
    ]
    assert list(explained.columns) == expected
    assert explained["lead_id"].tolist() == leads["lead_id"].tolist()
    assert explained["score"].between(1, 99).all()
    assert set(explained["grade"]) <= set(scorer.schema.grades)
    np.testing.assert_allclose(explained["probability"], scorer.predict_proba(leads), rtol=0, atol=1e-12)
    lowered = explained["top_lowering_factor"].notna()
    assert explained.loc[lowered, "top_lowering_reason"].notna().all()


def test_batch_and_real_time_paths_agree(scorer, fresh, lead_records) -> None:
    explained = scorer.explain(fresh.leads.iloc[:100])
    scored = scorer.score(lead_records[:100])
    np.testing.assert_allclose(explained["probability"], [r["probability"] for r in scored], rtol=0, atol=1e-12)
    assert explained["grade"].tolist() == [r["grade"] for r in scored]
    top = explained["top_lowering_factor"].to_numpy(dtype=object, na_value=None)
    assert list(top) == [r["lowering_factors"][0]["key"] if r["lowering_factors"] else None for r in scored]


def test_lightgbm_engine_gives_the_same_answers(bundle_dir, scorer, lead_records) -> None:
    from serving.model.scorer import Scorer

    slow = Scorer.load(bundle_dir, engine="lightgbm")
    for fast_result, slow_result in zip(scorer.score(lead_records[:20]), slow.score(lead_records[:20]), strict=True):
        assert fast_result["probability"] == pytest.approx(slow_result["probability"], abs=1e-12)
        for a, b in zip(fast_result["factors"], slow_result["factors"], strict=True):
            assert a["impact"] == pytest.approx(b["impact"], abs=1e-9)


def test_empty_inputs(scorer, fresh) -> None:
    assert scorer.score([]) == []
    assert len(scorer.explain(fresh.leads.iloc[:0])) == 0
    assert isinstance(scorer.explain(fresh.leads.iloc[:0]), pd.DataFrame)
