"""The synthetic CRM history keeps its promises: size, rate, drift, maturity lag, determinism, known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.errors import DataError
from features.loading import read_leads
from features.synthetic import (
    COUNTRY_AFTER_EXPANSION, DEFAULT_END, LAUNCH_CAMPAIGN, QUALITY_FACTORS, SyntheticHistory, bundled_schema,
    generate, write_history,
)

EXPORT = pd.Timestamp(DEFAULT_END)


def quarter_index(leads: pd.DataFrame) -> np.ndarray:
    """0 for the first quarter of the history, 1 for the next, and so on."""
    periods = leads["created_at"].dt.to_period("Q")
    return (periods - periods.min()).map(lambda offset: offset.n).to_numpy()


def mature(leads: pd.DataFrame) -> pd.Series:
    """Leads whose outcome window (90 days) has closed by the export date."""
    return leads["created_at"] < EXPORT - pd.Timedelta(days=90)


def test_every_quarter_holds_the_requested_number_of_leads(history: SyntheticHistory,
                                                          history_size: dict[str, int]) -> None:
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
    assert list(history.truth.columns) == ["lead_id", "true_probability", "true_logit", "true_converted_eventually",
                                           *[f"true_{f}" for f in QUALITY_FACTORS]]
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
