"""The logistic model and the blend keep the bundle's promises: exact explanations, pickle-free round
trips, and a Scorer whose responses add up, whichever family is served."""

from __future__ import annotations

import json
import math
import shutil
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.encoding import LeadEncoder
from features.errors import ModelNotFoundError
from features.factors import FACTORS
from features.synthetic import bundled_schema, generate
from features.target import labels
from serving.model.bundle import META_FILE, MODEL_FILE, Bundle, expected_raw
from serving.model.linear import LinearModel, NumericTerm
from serving.model.scorer import Scorer

BLEND_WEIGHT = 0.6


@pytest.fixture(scope="module")
def leads() -> pd.DataFrame:
    return generate(quarters=4, leads_per_quarter=1500, seed=3).leads


@pytest.fixture(scope="module")
def encoder(leads: pd.DataFrame) -> LeadEncoder:
    return LeadEncoder(bundled_schema()).fit(leads)


@pytest.fixture(scope="module")
def X(leads: pd.DataFrame, encoder: LeadEncoder) -> np.ndarray:
    return encoder.transform(leads)


@pytest.fixture(scope="module")
def linear(leads: pd.DataFrame, encoder: LeadEncoder, X: np.ndarray) -> LinearModel:
    from training.linear import fit_linear

    return fit_linear(X, labels(leads, bundled_schema()), encoder, C=0.3)


@pytest.fixture(scope="module")
def trees(bundle_dir: Path) -> Bundle:
    """The session's LightGBM bundle (same schema, so the same encoder levels)."""
    return Bundle.load(bundle_dir)


def _bundle(trees: Bundle, linear: LinearModel, weight: float, leads: pd.DataFrame) -> Bundle:
    """A bundle served as `weight` x trees + (1 - weight) x logistic, calibrated on the given leads."""
    from training.calibrate import fit_calibrator

    X = trees.encoder.transform(leads)
    booster = trees.booster if weight > 0 else None
    baseline = expected_raw(booster, linear, weight, X)
    draft = Bundle(
        booster=booster,
        schema=trees.schema,
        encoder=trees.encoder,
        calibrator=trees.calibrator,
        baseline_raw=baseline,
        linear=linear,
        tree_weight=weight,
    )
    calibrator = fit_calibrator(draft.raw_scores(X), labels(leads, trees.schema))
    return Bundle(
        booster=booster,
        schema=trees.schema,
        encoder=trees.encoder,
        calibrator=calibrator,
        baseline_raw=baseline,
        metadata={"name": "lead-conversion", "version": f"w{weight:g}"},
        linear=linear,
        tree_weight=weight,
    )


@pytest.fixture(scope="module")
def saved(
    tmp_path_factory: pytest.TempPathFactory, trees: Bundle, linear: LinearModel, leads: pd.DataFrame
) -> dict[str, Path]:
    """A logistic-only and a blended bundle, saved and ready to load."""
    models = tmp_path_factory.mktemp("linear-models") / "lead-conversion"
    return {
        family: _bundle(trees, linear, weight, leads).save(models / family)
        for family, weight in (("logistic", 0.0), ("blend", BLEND_WEIGHT))
    }


# -- the linear model's explanations ----------------------------------------------------------------
def test_contributions_and_expected_value_add_up_to_the_raw_score(linear: LinearModel, X: np.ndarray) -> None:
    contrib = linear.contributions(X)
    assert contrib.shape == (len(X), X.shape[1] + 1)
    np.testing.assert_allclose(contrib[:, -1], linear.expected_value, rtol=0, atol=0)
    np.testing.assert_allclose(contrib.sum(axis=1), linear.raw(X), rtol=0, atol=1e-9)


def test_expected_value_is_the_average_raw_score_over_the_training_leads(linear: LinearModel, X: np.ndarray) -> None:
    """Each term's mean is its training average, so the Shapley values average to zero there."""
    assert linear.expected_value == pytest.approx(float(linear.raw(X).mean()), abs=1e-9)
    np.testing.assert_allclose(linear.contributions(X)[:, :-1].mean(axis=0), 0.0, atol=1e-9)


def test_contributions_are_exact_interventional_shapley_values(linear: LinearModel, X: np.ndarray) -> None:
    """Brute force over every coalition of five features (the others held at the lead's values), with
    the training leads as background: the same numbers as term_j(x_j) - mean_j."""
    players = [0, 1, 4, 7, 9]  # industry, company_size (log), web_visits, demo_requested, days_since_last_activity
    background = X
    n = len(players)
    for lead in X[[5, 123, 4000]]:

        def value(coalition: tuple[int, ...], lead: np.ndarray = lead) -> float:
            z = np.repeat(lead[None, :], len(background), axis=0)
            absent = [p for p in players if p not in coalition]
            z[:, absent] = background[:, absent]
            return float(linear.raw(z).mean())

        values = {S: value(S) for k in range(n + 1) for S in combinations(players, k)}
        expected = linear.contributions(lead[None, :])[0]
        for j in players:
            others = [p for p in players if p != j]
            phi = sum(
                math.factorial(k)
                * math.factorial(n - k - 1)
                / math.factorial(n)
                * (values[tuple(sorted(S + (j,)))] - values[S])
                for k in range(n)
                for S in combinations(others, k)
            )
            assert phi == pytest.approx(expected[j], abs=1e-9)


def test_unseen_or_out_of_range_categorical_codes_score_as_missing(linear: LinearModel, X: np.ndarray) -> None:
    lead = X[:1].copy()
    lead[0, 0] = np.nan
    reference = linear.raw(lead)
    for code in (99.0, -1.0):
        lead[0, 0] = code
        assert linear.raw(lead) == pytest.approx(reference, abs=0)


def test_state_round_trips_through_json(linear: LinearModel, X: np.ndarray) -> None:
    state = json.loads(json.dumps(linear.to_dict()))
    again = LinearModel.from_dict(state, linear.feature_names)
    assert again == linear
    np.testing.assert_array_equal(again.raw(X), linear.raw(X))
    np.testing.assert_array_equal(again.contributions(X), linear.contributions(X))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("terms"), "linear.terms"),
        (lambda s: s.update(intercept="1.0"), "linear.intercept"),
        (lambda s: s["terms"][0].update(weights="abc"), "weights"),
        (lambda s: s["terms"][0]["weights"].append(float("nan")), "weights[8]"),
        (lambda s: s["terms"][1].update(scale=0.0), "scale"),
        (lambda s: s["terms"][1].update(lo=5.0, hi=1.0), "lo 5.0 is above hi 1.0"),
        (lambda s: s["terms"][1].update(kind="spline"), "kind"),
        (lambda s: s["terms"][1].pop("coef"), "coef"),
        (lambda s: s["terms"].pop(), "do not match"),
        (lambda s: (s["terms"][1].update(edges=[0.0, 1.0]), s["terms"][1].pop("reach", None)), "come together"),
        (lambda s: s["terms"][1].update(edges=[0.0, 9.0], reach=[-1.0, 5.0]), "must hold edges"),
        (lambda s: s["terms"][1].update(edges=[0.0], reach=[-1.0, 5.0]), "edges must be a list of two numbers"),
    ],
)
def test_a_broken_state_is_refused_with_a_readable_message(linear: LinearModel, change, message: str) -> None:
    state = json.loads(json.dumps(linear.to_dict()))
    change(state)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        LinearModel.from_dict(state, linear.feature_names)


def test_a_big_batch_explains_each_lead_as_alone(linear: LinearModel, X: np.ndarray) -> None:
    """Batches and single leads take the same path to the same numbers (speed: bench/explain_speed.py,
    never timed in tests)."""
    big = np.tile(X, (17, 1))[:100_000]
    batch = linear.contributions(big)
    alone = np.vstack([linear.contributions(big[i : i + 1]) for i in range(0, len(big), 9_973)])
    np.testing.assert_array_equal(batch[::9_973], alone)
    np.testing.assert_allclose(batch.sum(axis=1), linear.raw(big), rtol=0, atol=1e-9)


# -- the blend ---------------------------------------------------------------------------------------
def test_blend_contributions_are_the_weighted_sum_and_add_up(
    trees: Bundle, linear: LinearModel, leads: pd.DataFrame
) -> None:
    assert linear.feature_names == trees.encoder.feature_names
    blend = _bundle(trees, linear, BLEND_WEIGHT, leads.iloc[:2000])
    X = trees.encoder.transform(leads.iloc[:500])
    expected = BLEND_WEIGHT * trees.booster.predict(X, pred_contrib=True) + (1 - BLEND_WEIGHT) * linear.contributions(X)
    contrib = blend.contributions(X)
    np.testing.assert_allclose(contrib, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(contrib.sum(axis=1), blend.raw_scores(X), rtol=0, atol=1e-9)
    np.testing.assert_allclose(contrib[:, -1], blend.baseline_raw, rtol=0, atol=1e-12)
    raw = BLEND_WEIGHT * trees.booster.predict(X, raw_score=True) + (1 - BLEND_WEIGHT) * linear.raw(X)
    np.testing.assert_allclose(blend.raw_scores(X), raw, rtol=0, atol=1e-12)
    assert blend.family == "blend"


def test_a_bundle_refuses_a_weight_without_its_model(trees: Bundle, linear: LinearModel) -> None:
    common = {"schema": trees.schema, "encoder": trees.encoder, "calibrator": trees.calibrator, "baseline_raw": 0.0}
    with pytest.raises(ValueError, match="needs a linear model"):
        Bundle(booster=trees.booster, tree_weight=0.5, **common)
    with pytest.raises(ValueError, match="needs a LightGBM booster"):
        Bundle(booster=None, linear=linear, tree_weight=0.5, **common)
    with pytest.raises(ValueError, match="from 0 to 1"):
        Bundle(booster=trees.booster, linear=linear, tree_weight=1.5, **common)


# -- saved bundles and the scorer --------------------------------------------------------------------
@pytest.mark.parametrize("family", ["logistic", "blend"])
def test_saved_bundle_loads_with_its_family(
    saved: dict[str, Path], family: str, linear: LinearModel, X: np.ndarray
) -> None:
    folder = saved[family]
    state = json.loads((folder / META_FILE).read_text())
    assert state["format_version"] == 2 and state["blend"]["family"] == family
    assert (folder / MODEL_FILE).is_file() == (family == "blend")
    bundle = Bundle.load(folder)
    assert bundle.family == family and bundle.linear == linear
    assert (bundle.booster is None) == (family == "logistic")
    X = X[:300]  # LightGBM's own pred_contrib takes ~1 ms a lead
    contrib = bundle.contributions(X)
    np.testing.assert_allclose(contrib[:, -1], bundle.baseline_raw, rtol=0, atol=1e-12)
    np.testing.assert_allclose(contrib.sum(axis=1), bundle.raw_scores(X), rtol=0, atol=1e-9)


@pytest.mark.parametrize("family", ["logistic", "blend"])
def test_scorer_responses_add_up_and_explain_what_lowers_each_lead(
    saved: dict[str, Path], family: str, lead_records
) -> None:
    scorer = Scorer.load(saved[family])
    assert scorer.model_info["family"] == family
    assert scorer.engine == ("linear" if family == "logistic" else "forest")
    results = scorer.score(lead_records[:150])
    assert any(r["lowering_factors"] for r in results) and any(r["what_if"] for r in results)
    for r in results:
        log_odds = r["log_odds"]
        assert log_odds["baseline"] == scorer.bundle.baseline_raw
        total = log_odds["baseline"] + sum(f["impact"] for f in r["factors"])
        assert total == pytest.approx(log_odds["raw_score"], abs=1e-9)
        impacts = [f["impact"] for f in r["lowering_factors"]]
        assert impacts == sorted(impacts) and all(i < 0 for i in impacts)
        for factor in r["lowering_factors"]:
            features = [f["impact"] for f in factor["features"]]
            # >= 0, not > 0: an isotonic calibration map is flat in places
            assert factor["cost_points"] >= 0 and features == sorted(features) and all(f < 0 for f in features)
            assert sum(features) <= factor["impact"] + 1e-9  # the factor's raising features are not listed
        for change in r["what_if"]:
            assert change["probability"] > r["probability"] and change["gain_points"] > 0


@pytest.mark.parametrize("family", ["logistic", "blend"])
def test_batch_explain_equals_the_real_time_scores(saved: dict[str, Path], family: str, fresh, lead_records) -> None:
    scorer = Scorer.load(saved[family])
    n = 200
    explained = scorer.explain(fresh.leads.iloc[:n], chunk_rows=64)
    results = scorer.score(lead_records[:n])
    np.testing.assert_allclose(explained["probability"], [r["probability"] for r in results], rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        explained["raw_score"], [r["log_odds"]["raw_score"] for r in results], rtol=0, atol=1e-12
    )
    impacts = np.array([[f["impact"] for f in r["factors"]] for r in results])
    np.testing.assert_allclose(explained[[f"impact_{k}" for k in FACTORS]].to_numpy(), impacts, rtol=0, atol=1e-12)
    top = [r["lowering_factors"][0]["key"] if r["lowering_factors"] else None for r in results]
    assert explained["top_lowering_factor"].to_numpy(dtype=object, na_value=None).tolist() == top


@pytest.mark.parametrize("family", ["logistic", "blend"])
def test_batch_and_one_by_one_answers_are_the_same_numbers(saved: dict[str, Path], family: str, lead_records) -> None:
    """The logistic model's terms are computed once per batch and what-ifs swap one term; a lead's
    answer is still exactly what scoring it alone gives, and a what-if exactly its changed lead's."""
    scorer = Scorer.load(saved[family])
    leads = [*lead_records[:20], {}, {"lead_id": "x", "industry": "space mining"}]
    results = scorer.score(leads)
    assert results == [scorer.score([lead])[0] for lead in leads]
    changes = [
        ({**lead, c["feature"]: c["to"]}, c) for lead, r in zip(leads, results, strict=True) for c in r["what_if"]
    ]
    assert changes
    assert [r["probability"] for r in scorer.score([lead for lead, _ in changes])] == [
        c["probability"] for _, c in changes
    ]


@pytest.mark.parametrize("family", ["lightgbm", "logistic", "blend"])
def test_the_score_kernel_gives_the_numpy_definitions_answers(
    saved: dict[str, Path], bundle_dir: Path, family: str, lead_records
) -> None:
    """`Scorer.score`'s numbers come from one numba kernel (_score_kernels); without numba they come
    from the models' numpy code. Same answers: every key, order, reason and what-if, numbers within
    1e-12 (the kernel sums terms in column order and takes log1p from the C library)."""
    scorer = Scorer.load(bundle_dir if family == "lightgbm" else saved[family])
    leads = [*lead_records[:40], {}, {"lead_id": "x", "industry": "space mining", "pricing_page_views": "1e9"}]
    by_kernel = scorer.score(leads, what_if=20)
    scorer._numbers = None  # what a server without numba runs
    by_numpy = scorer.score(leads, what_if=20)
    assert _numbers_apart(by_kernel, by_numpy) <= 1e-12


def _numbers_apart(a: object, b: object) -> float:
    """The largest difference between the numbers of two equal-shaped answers; AssertionError on anything else."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b)
    if isinstance(a, dict) and isinstance(b, dict):
        assert list(a) == list(b)
        return max((_numbers_apart(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b)
        return max((_numbers_apart(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    assert a == b and type(a) is type(b)
    return 0.0


def test_the_score_kernel_computes_each_term_as_the_logistic_model_does() -> None:
    """Every kind of term on values past every bound: clipped, extrapolating, logged, missing, categories
    unseen or out of range. Exactly the numpy terms, but for log1p (the C library's vs numpy's SIMD)."""
    from serving.model import _score_kernels as k
    from serving.model.linear import CategoricalTerm

    terms = (
        NumericTerm(name="plain", lo=0.0, hi=10.0, center=2.0, scale=3.0, coef=0.7, missing_weight=-0.2, mean=0.1),
        NumericTerm(
            name="far", lo=0.0, hi=10.0, center=1.0, scale=2.0, coef=-1.3, missing_weight=0.4,
            edges=(-1.0, 12.0), reach=(-3.0, 20.0),
        ),
        NumericTerm(name="logged", lo=-5.0, hi=1e6, center=3.0, scale=1.5, coef=0.9, missing_weight=0.0, log=True),
        CategoricalTerm(name="kind", weights=(0.5, -0.25, 1.0), missing_weight=-0.1, mean=0.2),
    )  # fmt: skip
    model = LinearModel(intercept=-1.5, terms=terms)
    values = [-np.inf, -9.0, -2.0, -0.5, 0.0, 5.0, 11.0, 15.0, 99.0, 1e9, np.inf, np.nan]
    codes = [0.0, 1.0, 2.0, 3.0, -1.0, np.nan, 2.0, 0.0, 1.0, 7.0, 0.0, np.nan]
    X = np.array([[v, v, v, c] for v, c in zip(values, codes, strict=True)])
    n, f = X.shape
    raw, contrib, impacts = np.empty(n), np.empty((n, f + 1)), np.empty((n, 1))
    calibrate, same = np.empty(n * 2), np.empty((n, 0), dtype=np.bool_)
    factor_order, feature_order = np.empty((n, 1), dtype=np.int64), np.empty((n, f), dtype=np.int64)
    empty = (np.zeros(0), np.zeros((0, 0)), np.zeros((0, 0)))
    no_candidates = (np.zeros(0, dtype=np.intp), np.zeros(0))
    outputs = (raw, contrib, impacts, calibrate, factor_order, feature_order, same)
    slots = np.arange(f, dtype=np.intp)[None, :]
    k.score_numbers(X, k.MODE_LINEAR, 0.0, *empty, *model.kernel_arrays, *no_candidates, slots, *outputs)
    expected = model.term_values(X) - np.array([t.mean for t in terms])  # the contributions: term - mean
    got = contrib[:, :-1]
    np.testing.assert_array_equal(got[:, [0, 1, 3]], expected[:, [0, 1, 3]])
    np.testing.assert_allclose(got[:, 2], expected[:, 2], rtol=1e-15, atol=0)
    np.testing.assert_allclose(raw, model.raw(X), rtol=0, atol=1e-12)
    assert (contrib[:, -1] == model.expected_value).all()
    np.testing.assert_array_equal(feature_order, np.argsort(contrib[:, :-1], axis=1, kind="stable"))


def test_logistic_only_bundle_fails_loudly_when_its_linear_model_is_missing(
    saved: dict[str, Path], tmp_path: Path
) -> None:
    folder = shutil.copytree(saved["logistic"], tmp_path / "broken")
    state = json.loads((folder / META_FILE).read_text())
    state["linear"] = None
    (folder / META_FILE).write_text(json.dumps(state))
    with pytest.raises(ModelNotFoundError, match="needs a linear model"):
        Bundle.load(folder)
    state["linear"] = {"intercept": 0.0, "terms": []}
    (folder / META_FILE).write_text(json.dumps(state))
    with pytest.raises(ModelNotFoundError, match="linear.terms"):
        Bundle.load(folder)


def test_a_format_1_bundle_still_loads_as_trees_only(
    bundle_dir: Path, tmp_path: Path, trees: Bundle, X: np.ndarray
) -> None:
    """What the code before format 2 wrote: model.txt and bundle.json without `blend` or `linear`."""
    folder = shutil.copytree(bundle_dir, tmp_path / "v1")
    state = json.loads((folder / META_FILE).read_text())
    state.pop("blend", None)
    state.pop("linear", None)
    state["format_version"] = 1
    (folder / META_FILE).write_text(json.dumps(state))
    bundle = Bundle.load(folder)
    assert bundle.family == "lightgbm" and bundle.tree_weight == 1.0 and bundle.linear is None
    np.testing.assert_array_equal(bundle.raw_scores(X), trees.booster.predict(X, raw_score=True))
    scorer = Scorer(bundle)
    result = scorer.score([{"industry": "software"}])[0]
    assert result["model"]["family"] == "lightgbm"
    total = result["log_odds"]["baseline"] + sum(f["impact"] for f in result["factors"])
    assert total == pytest.approx(result["log_odds"]["raw_score"], abs=1e-9)


@pytest.mark.parametrize("family", ["logistic", "blend"])
def test_mlflow_pyfunc_face_scores_like_the_scorer(saved: dict[str, Path], family: str, fresh) -> None:
    from types import SimpleNamespace

    from serving.model.pyfunc_model import BUNDLE_ARTIFACT, LeadConversionModel

    model = LeadConversionModel()
    model.load_context(SimpleNamespace(artifacts={BUNDLE_ARTIFACT: str(saved[family])}))
    leads = fresh.leads.iloc[:100]
    out = model.predict(None, leads)
    np.testing.assert_allclose(out["probability"], Scorer.load(saved[family]).predict_proba(leads), rtol=0, atol=1e-12)


def test_a_term_extrapolates_only_past_its_edges_and_a_bundle_without_edges_clips() -> None:
    """Between the clip bound and the edge the value is held at the bound (as fitted); past the edge it moves
    on one for one up to the reach. A term saved without edges (older bundles) clips as it always did."""
    term = NumericTerm(name="rate", lo=0.0, hi=10.0, center=0.0, scale=2.0, coef=1.0, missing_weight=0.0)
    reaching = NumericTerm(
        name="rate", lo=0.0, hi=10.0, center=0.0, scale=2.0, coef=1.0, missing_weight=0.0,
        edges=(-1.0, 12.0), reach=(-3.0, 20.0),
    )  # fmt: skip
    x = np.array([[-9.0], [-2.0], [-0.5], [5.0], [11.0], [15.0], [99.0], [np.nan]])
    clipped = LinearModel(intercept=0.0, terms=(term,)).raw(x)
    np.testing.assert_allclose(clipped, [0.0, 0.0, 0.0, 2.5, 5.0, 5.0, 5.0, 0.0])
    moving = LinearModel(intercept=0.0, terms=(reaching,))
    np.testing.assert_allclose(moving.raw(x), [-1.0, -0.5, 0.0, 2.5, 5.0, 6.5, 9.0, 0.0])
    again = LinearModel.from_dict(json.loads(json.dumps(moving.to_dict())))
    assert again == moving and "edges" not in term.to_dict()
