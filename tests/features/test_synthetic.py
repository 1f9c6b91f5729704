"""The synthetic CRM history keeps its promises: size, rate, drift, maturity lag, determinism, known truth,
and the options that reproduce hard real exports (slow conversions, a shifting base rate, a leaky column)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.errors import DataError
from features.loading import read_leads
from features.schema import load_schema
from features.synthetic import (
    COUNTRY_AFTER_EXPANSION,
    DEFAULT_END,
    LAUNCH_CAMPAIGN,
    QUALITY_FACTORS,
    SyntheticHistory,
    bundled_schema,
    generate,
    write_history,
)
from features.validation import validate_frame
from training.cli import main

EXPORT = pd.Timestamp(DEFAULT_END)


def quarter_index(leads: pd.DataFrame) -> np.ndarray:
    """0 for the first quarter of the history, 1 for the next, and so on."""
    periods = leads["created_at"].dt.to_period("Q")
    return (periods - periods.min()).map(lambda offset: offset.n).to_numpy()


def mature(leads: pd.DataFrame) -> pd.Series:
    """Leads whose outcome window (90 days) has closed by the export date."""
    return leads["created_at"] < EXPORT - pd.Timedelta(days=90)


def test_every_quarter_holds_the_requested_number_of_leads(
    history: SyntheticHistory, history_size: dict[str, int]
) -> None:
    leads = history.leads
    quarters, per_quarter = history_size["quarters"], history_size["leads_per_quarter"]
    assert len(leads) == len(history.truth) == quarters * per_quarter
    assert np.bincount(quarter_index(leads)).tolist() == [per_quarter] * quarters
    assert leads["lead_id"].is_unique
    assert leads["created_at"].max() < EXPORT
    assert leads["created_at"].min() >= EXPORT - pd.DateOffset(months=3 * quarters)


def test_leads_carry_exactly_the_schema_columns(history: SyntheticHistory) -> None:
    schema = bundled_schema()
    expected = set(schema.role_columns) | set(schema.feature_names) | set(schema.context) | set(schema.excluded)
    assert set(history.leads.columns) == expected


def test_truth_never_appears_among_the_leads(history: SyntheticHistory) -> None:
    assert not [c for c in history.leads.columns if c.startswith("true_")]
    assert list(history.truth.columns) == [
        "lead_id",
        "true_probability",
        "true_logit",
        "true_converted_eventually",
        *[f"true_{f}" for f in QUALITY_FACTORS],
    ]
    assert history.truth["lead_id"].tolist() == history.leads["lead_id"].tolist()


def test_base_rate_is_between_5_and_15_percent(history: SyntheticHistory) -> None:
    ripe = mature(history.leads)
    assert 0.05 <= history.leads.loc[ripe, "converted"].mean() <= 0.15
    assert 0.05 <= history.truth["true_probability"].mean() <= 0.15


def test_mean_true_probability_matches_observed_rate_on_mature_leads(history: SyntheticHistory) -> None:
    ripe = mature(history.leads)
    observed = history.leads.loc[ripe, "converted"].mean()
    expected = history.truth.loc[ripe, "true_probability"].mean()
    standard_error = np.sqrt(expected * (1 - expected) / ripe.sum())
    assert abs(observed - expected) < 3 * standard_error


def test_factor_contributions_add_up_to_the_true_log_odds(history: SyntheticHistory) -> None:
    truth = history.truth
    parts = truth[[f"true_{f}" for f in QUALITY_FACTORS]].sum(axis=1)
    intercept = truth["true_logit"] - parts
    assert intercept.std() < 1e-9
    assert np.allclose(truth["true_probability"], 1 / (1 + np.exp(-truth["true_logit"])))
    for factor in QUALITY_FACTORS:
        assert abs(truth[f"true_{factor}"].mean()) < 1e-9, "contributions are centred"
        assert truth[f"true_{factor}"].std() > 0.2, f"{factor} matters"


def test_conversion_dates_agree_with_the_target(history: SyntheticHistory) -> None:
    leads = history.leads
    assert (leads["converted_at"].notna() == (leads["converted"] == 1)).all()
    delay = leads["converted_at"] - leads["created_at"]
    assert delay.dropna().between(pd.Timedelta(days=1), pd.Timedelta(days=90)).all()
    assert leads["converted_at"].max() < EXPORT


def test_newest_leads_are_not_mature_yet(history: SyntheticHistory) -> None:
    leads, truth = history.leads, history.truth
    ripe = mature(leads)
    assert (leads.loc[ripe, "converted"] == truth.loc[ripe, "true_converted_eventually"]).all()
    q = quarter_index(leads)
    last = q == q.max()
    seen = leads.loc[last, "converted"].sum() / truth.loc[last, "true_converted_eventually"].sum()
    assert seen < 0.85, "a good share of the last quarter's conversions has not happened yet"
    assert leads.loc[last, "converted"].mean() < 0.85 * leads.loc[ripe, "converted"].mean()


def test_region_effect_changes_half_way(history: SyntheticHistory) -> None:
    leads = history.leads
    q = quarter_index(leads)
    expanded = q >= (q.max() + 1) // 2
    region = leads["country"].isin(list(COUNTRY_AFTER_EXPANSION)).fillna(False).to_numpy(dtype=bool)
    ripe = mature(leads).to_numpy()
    before = leads.loc[region & ~expanded & ripe, "converted"].mean()
    after = leads.loc[region & expanded & ripe, "converted"].mean()
    assert after > 1.6 * before
    icp = history.truth["true_icp_fit"]
    assert icp[region & expanded].mean() - icp[region & ~expanded].mean() > 0.8


def test_new_product_and_campaign_appear_two_thirds_in(history: SyntheticHistory) -> None:
    leads = history.leads
    q = quarter_index(leads)
    launched = q >= int(np.ceil((q.max() + 1) * 2 / 3))
    product = leads["product_interest"].eq("ai_assistant").fillna(False).to_numpy(dtype=bool)
    campaign = leads["campaign"].eq(LAUNCH_CAMPAIGN).to_numpy(dtype=bool)
    assert not product[~launched].any() and not campaign[~launched].any()
    assert product[launched].mean() > 0.1 and campaign[launched].mean() > 0.05


def test_the_launch_and_the_regional_turn_can_be_placed_where_an_export_learns_them() -> None:
    """A short history puts them, by default, in the quarters whose outcomes it cannot know yet."""
    size = {"quarters": 4, "leads_per_quarter": 500}
    default, placed = generate(**size), generate(**size, launch_quarter=1, expansion_quarter=0)
    assert digest(generate(**size, launch_quarter=3, expansion_quarter=2)) == digest(default) == DEFAULT_DIGEST
    q = quarter_index(placed.leads)
    product = placed.leads["product_interest"].eq("ai_assistant").fillna(False).to_numpy(dtype=bool)
    assert not product[q == 0].any() and product[q == 1].mean() > 0.1
    region = placed.leads["country"].isin(list(COUNTRY_AFTER_EXPANSION)).fillna(False).to_numpy(dtype=bool)
    turned = (placed.truth["true_icp_fit"] - default.truth["true_icp_fit"]).to_numpy()
    shift = turned[~region].mean()  # the truth is centred: the turn moves every lead's centre a little
    assert np.allclose(turned[~region], shift) and np.allclose(turned[region & (q >= 2)], shift)
    assert (turned[region & (q < 2)] - shift > 0.8).all(), "turned from the first quarter, not half-way"
    never = generate(**size, launch_quarter=4)
    assert not never.leads["campaign"].eq(LAUNCH_CAMPAIGN).any()
    pd.testing.assert_frame_equal(
        never.leads[["created_at", "country", "industry"]], default.leads[["created_at", "country", "industry"]]
    )


def test_source_mix_shifts_towards_paid_search_and_bought_lists(history: SyntheticHistory) -> None:
    q = quarter_index(history.leads)
    cheap = history.leads["lead_source"].isin(["paid_search", "purchased_list"]).to_numpy()
    assert cheap[q >= q.max() - 1].mean() > cheap[q < 2].mean() + 0.15


def test_missing_data_depends_on_the_source(history: SyntheticHistory) -> None:
    leads = history.leads
    by_source = leads.groupby("lead_source")
    assert by_source["email_present"].mean()["trade_show"] < 0.7 < by_source["email_present"].mean()["web_form"]
    no_visits = by_source["web_visits"].apply(lambda s: s.isna().mean())
    assert no_visits["purchased_list"] > 0.8 and no_visits["referral"] < 0.1


def test_same_seed_same_history_and_other_seeds_differ() -> None:
    first = generate(quarters=3, leads_per_quarter=400, seed=11)
    again = generate(quarters=3, leads_per_quarter=400, seed=11)
    other = generate(quarters=3, leads_per_quarter=400, seed=12)
    pd.testing.assert_frame_equal(first.leads, again.leads)
    pd.testing.assert_frame_equal(first.truth, again.truth)
    assert not first.truth["true_probability"].equals(other.truth["true_probability"])
    assert not first.leads["industry"].equals(other.leads["industry"])


@pytest.mark.parametrize(("quarters", "per_quarter"), [(0, 100), (4, 0)])
def test_empty_history_is_refused(quarters: int, per_quarter: int) -> None:
    with pytest.raises(DataError, match="at least 1"):
        generate(quarters=quarters, leads_per_quarter=per_quarter)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_written_history_reads_back_with_its_schema(history: SyntheticHistory, tmp_path, suffix: str) -> None:
    small = SyntheticHistory(leads=history.leads.head(500), truth=history.truth.head(500))
    paths = write_history(small, tmp_path / f"crm{suffix}")
    assert paths["truth"].name == f"crm.truth{suffix}" and paths["schema"].name == "crm.schema.yaml"
    leads = read_leads(paths["leads"], bundled_schema())
    assert len(leads) == 500
    assert leads["created_at"].tolist() == small.leads["created_at"].tolist()
    assert leads["converted"].astype(int).tolist() == small.leads["converted"].astype(int).tolist()
    assert str(leads["company_size"].dtype) == "Int64" and str(leads["phone_valid"].dtype) == "boolean"


# --- Options that reproduce the shapes of real exports the product learns badly from

SMALL = {"quarters": 8, "leads_per_quarter": 650}  # a small export: 5,200 leads, about 9% converting
DEFAULT_DIGEST = "250c2d1b507a4175f92110e354b95eaefbaa2317171c6b1cea34fec5946219b1"  # before the options existed


def digest(history: SyntheticHistory) -> str:
    """A hash of both frames' columns, dtypes and values."""
    sha = hashlib.sha256()
    leads = history.leads.drop(columns="sales_owner")  # added later from its own random stream
    for frame in (leads, history.truth):
        sha.update(repr(list(frame.columns)).encode())
        sha.update(repr([str(t) for t in frame.dtypes]).encode())
        sha.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return sha.hexdigest()


def lag_days(leads: pd.DataFrame) -> np.ndarray:
    return ((leads["converted_at"] - leads["created_at"]).dropna().dt.total_seconds() / 86_400).to_numpy()


def late_quarters(quarters: int, per_quarter: int) -> np.ndarray:
    return np.repeat(np.arange(quarters), per_quarter) >= quarters - 2


def test_default_options_give_the_same_history_as_before_they_existed() -> None:
    size = {"quarters": 4, "leads_per_quarter": 500}
    assert digest(generate(**size)) == DEFAULT_DIGEST
    explicit = generate(**size, conversion_delay="fast", base_rate_shift=1.0, leak_column=None)
    assert digest(explicit) == DEFAULT_DIGEST and explicit.leaks == {}
    assert explicit.schema() == bundled_schema()


def test_slow_conversions_arrive_up_to_nine_months_later() -> None:
    fast, slow = generate(**SMALL), generate(**SMALL, conversion_delay="slow")
    lag = lag_days(slow.leads)
    assert np.percentile(lag, 95) > 150 and lag.min() >= 1 and lag.max() <= 270
    assert 60 < np.median(lag) < 90 and np.percentile(lag_days(fast.leads), 95) <= 89
    leads, truth = slow.leads, slow.truth
    assert (leads["converted_at"].notna() == (leads["converted"] == 1)).all()
    assert leads["converted_at"].max() < EXPORT, "conversions after the export are not visible yet"
    ripe = leads["created_at"] < EXPORT - pd.Timedelta(days=270)
    assert (leads.loc[ripe, "converted"] == truth.loc[ripe, "true_converted_eventually"]).all()
    assert leads["converted"].sum() < 0.93 * truth["true_converted_eventually"].sum() < fast.leads["converted"].sum()
    same = [c for c in leads.columns if c not in ("lead_status", "converted", "converted_at")]
    pd.testing.assert_frame_equal(leads[same], fast.leads[same])
    pd.testing.assert_frame_equal(truth, fast.truth)


def test_a_short_export_with_slow_conversions_still_works() -> None:
    history = generate(quarters=4, leads_per_quarter=650, conversion_delay="slow")
    leads, truth = history.leads, history.truth
    assert len(leads) == 2600 and leads["created_at"].min() >= EXPORT - pd.DateOffset(months=12)
    seen = leads["converted"].sum() / truth["true_converted_eventually"].sum()
    assert 0.5 < seen < 0.85, "a large share of conversions has not arrived by the export"
    assert lag_days(leads).max() <= 270


def test_a_small_export_keeps_every_level_of_the_schema() -> None:
    history = generate(**SMALL)
    leads, schema = history.leads, history.schema()
    ripe = mature(leads)
    assert len(leads) == 5200 and 0.07 <= leads.loc[ripe, "converted"].mean() <= 0.12
    for spec in schema.features:
        if spec.is_categorical:
            assert set(leads[spec.name].dropna()) == set(spec.values), spec.name
    report = validate_frame(leads, schema, now=EXPORT)
    assert not report.issues


def test_base_rate_triples_in_the_last_two_quarters() -> None:
    plain, shifted = generate(**SMALL), generate(**SMALL, base_rate_shift=3.0)
    late = late_quarters(SMALL["quarters"], SMALL["leads_per_quarter"])
    prob = shifted.truth["true_probability"].to_numpy()
    assert 2.5 < prob[late].mean() / prob[~late].mean() < 3.5
    assert np.array_equal(prob[~late], plain.truth["true_probability"].to_numpy()[~late]), "earlier quarters unchanged"
    outcomes = shifted.truth["true_converted_eventually"].to_numpy()
    assert outcomes[late].mean() > 2 * outcomes[~late].mean()
    factors = [f"true_{f}" for f in QUALITY_FACTORS]
    pd.testing.assert_frame_equal(shifted.truth[factors], plain.truth[factors])
    intercept = (shifted.truth["true_logit"] - shifted.truth[factors].sum(axis=1)).to_numpy()
    assert intercept[late].std() < 1e-9 and intercept[~late].std() < 1e-9
    assert intercept[late][0] - intercept[~late][0] > np.log(3.0), "tripling a rate needs more than triple odds"
    assert np.allclose(prob, 1 / (1 + np.exp(-shifted.truth["true_logit"])))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"conversion_delay": "glacial"}, "conversion delay must be one of fast, slow"),
        ({"base_rate_shift": 0.0}, "must be a positive number"),
        ({"base_rate_shift": 20.0}, "would lift the base rate"),
        ({"quarters": 2, "base_rate_shift": 3.0}, "needs more than 2 quarters"),
        ({"leak_column": "lead_status"}, "must be a new name"),
        ({"launch_quarter": 5}, "launch-quarter must be a whole number from 0 to 4 \\(never\\), got 5"),
        ({"expansion_quarter": -1}, "expansion-quarter must be a whole number from 0 to 4"),
    ],
)
def test_impossible_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        generate(**{"quarters": 4, "leads_per_quarter": 100, **options})


def test_a_leaky_column_reveals_the_outcome_but_is_excluded_from_the_schema(tmp_path) -> None:
    history = generate(**SMALL, leak_column="last_touch")
    leads, schema = history.leads, history.schema()
    rate = leads.groupby("last_touch")["converted"].transform("mean")
    assert roc_auc_score(leads["converted"], rate) > 0.9
    shares = leads.groupby("converted")["last_touch"].value_counts(normalize=True).unstack(fill_value=0)
    assert 0.05 < shares.loc[0, ["Meeting held", "Proposal sent"]].sum() < 0.12, "not a pure column"
    assert 0.1 < shares.loc[1, "Email opened"] < 0.2 and 0.1 < shares.loc[0, "Email opened"] < 0.2
    assert schema.excluded["last_touch"] == "post-contact event (leakage)"
    assert "last_touch" not in schema.feature_names and "last_touch" not in " ".join(history.truth.columns)
    expected = set(schema.role_columns) | set(schema.feature_names) | set(schema.context) | set(schema.excluded)
    assert set(leads.columns) == expected
    plain = generate(**SMALL)
    pd.testing.assert_frame_equal(leads.drop(columns="last_touch"), plain.leads)
    paths = write_history(history, tmp_path / "crm.csv")
    assert load_schema(paths["schema"]) == schema
    assert read_leads(paths["leads"], schema)["last_touch"].tolist() == leads["last_touch"].tolist()


def test_generate_command_passes_the_options_through(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "funnel.csv"
    code = main(
        [
            "generate",
            "--quarters",
            "4",
            "--leads-per-quarter",
            "300",
            "--conversion-delay",
            "slow",
            "--base-rate-shift",
            "3",
            "--leak-column",
            "last_touch",
            "--out",
            str(out),
        ]
    )
    stdout = capsys.readouterr().out
    assert code == 0 and "(last_touch excluded as leakage)" in stdout
    assert "last_touch" in pd.read_csv(out).columns
    assert load_schema(tmp_path / "funnel.schema.yaml").excluded["last_touch"] == "post-contact event (leakage)"
    truth = pd.read_csv(tmp_path / "funnel.truth.csv")["true_probability"].to_numpy()
    late = late_quarters(4, 300)
    assert 2.5 < truth[late].mean() / truth[~late].mean() < 3.5
