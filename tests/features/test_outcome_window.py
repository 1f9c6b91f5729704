"""The outcome window is fitted to the export: it holds most conversions and still leaves leads to learn from."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.outcome_window import choose_window, export_end, lag_days, window_options

START = pd.Timestamp("2024-01-01")


def export(
    *,
    n: int = 8_000,
    span_days: float = 290,
    median_lag: float = 60,
    sigma: float = 0.8,
    max_lag: float = 270,
    rate: float = 0.12,
    seed: int = 0,
) -> tuple[pd.Series, pd.Series, np.ndarray]:
    """Leads created evenly over `span_days`; the export is taken when the last lead arrives.

    Returns creation dates, conversion dates as the export shows them (only conversions that
    happened by the export), and the true lags of every lead that converts eventually.
    """
    rng = np.random.default_rng(seed)
    created = START + pd.to_timedelta(rng.random(n) * span_days, unit="D")
    lags = np.clip(np.exp(rng.normal(np.log(median_lag), sigma, n)), 0.5, max_lag)
    converts = rng.random(n) < rate
    converted = created + pd.to_timedelta(lags, unit="D")
    seen = converts & (converted <= created.max())
    return pd.Series(created), pd.Series(converted.where(seen)), lags[converts]


def test_a_slow_funnel_on_a_short_export_keeps_half_the_leads_mature_and_says_what_it_gives_up() -> None:
    # 9.5 months of leads, conversions up to 9 months after first contact: the 90%-coverage window
    # (about half a year) would leave a third of the leads mature, so a shorter one is proposed.
    created, converted, _ = export()
    choice = choose_window(created, converted)
    assert choice.n_mature >= 0.5 * choice.n_leads
    assert choice.n_mature_converted >= 200
    assert 60 <= choice.days < 180
    assert choice.note.startswith(
        f"{choice.days} days: covers {choice.coverage:.0%} of conversions; "
        f"{choice.n_mature:,} of {choice.n_leads:,} leads mature "
        f"({choice.n_mature_converted:,} converted within it)"
    )
    assert "90% coverage would need" in choice.note and "so this window trades coverage for data" in choice.note


def test_fast_conversions_get_the_shortest_window_holding_90_percent_of_them() -> None:
    created, converted, true_lags = export(median_lag=20, sigma=0.6)
    choice = choose_window(created, converted)
    expected = next(d for d in (30, 45, 60, 90) if (true_lags <= d).mean() >= 0.9)
    assert choice.days == expected == 45
    assert choice.coverage >= 0.9
    assert "trades coverage" not in choice.note


def test_coverage_corrects_for_recent_leads_that_cannot_show_long_lags_yet() -> None:
    created, converted, true_lags = export(n=40_000, median_lag=90, sigma=0.7)
    naive = lag_days(created, converted)
    for option in window_options(created, converted, candidates=(60, 90, 120, 180)):
        truth = (true_lags <= option.days).mean()
        assert option.coverage == pytest.approx(truth, abs=0.03), option.days
        assert (naive <= option.days).mean() > truth + 0.05  # raw lags of the export look shorter than they are


def test_without_conversion_dates_outcomes_are_taken_as_recorded_and_the_note_says_so() -> None:
    created, _, _ = export(span_days=700)
    choice = choose_window(created, None)
    assert choice.days == 0 and math.isnan(choice.coverage) and choice.n_mature == len(created)
    assert "no conversion dates, so each outcome is taken as the export records it" in choice.note


def test_a_small_export_asks_for_conversions_in_proportion_to_what_it_has() -> None:
    # About 60 conversions in all: 200 mature ones are out of reach, half of them is not.
    created, converted, _ = export(n=600, median_lag=40)
    choice = choose_window(created, converted)
    shortest = next(o for o in window_options(created, converted) if o.coverage >= 0.9)
    assert choice.days == shortest.days and "trades coverage" not in choice.note
    assert 0.5 * len(lag_days(created, converted)) <= choice.n_mature_converted < 200


def test_never_shorter_than_30_days() -> None:
    created, converted, _ = export(median_lag=2, sigma=0.3)
    assert choose_window(created, converted, candidates=(7, 14, 30, 60)).days == 30


def test_only_what_is_known_at_as_of_counts() -> None:
    created, converted, _ = export(median_lag=20, sigma=0.6)
    as_of = START + pd.Timedelta(days=200)
    at = {o.days: o for o in window_options(created, converted, as_of=as_of)}
    assert at[30].n_leads == int((created <= as_of).sum())
    assert at[30].n_mature == int((created <= as_of - pd.Timedelta(days=30)).sum())
    within = (converted - created <= pd.Timedelta(days=30)) & (created <= as_of - pd.Timedelta(days=30))
    assert at[30].n_mature_converted == int(within.sum())


def test_export_end_is_the_newest_event_and_lags_skip_impossible_dates() -> None:
    created = pd.Series(pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01", None]))
    converted = pd.Series(pd.to_datetime(["2024-01-11", None, "2024-02-01", "2024-05-01"]))
    assert export_end(created, converted) == pd.Timestamp("2024-05-01")
    assert export_end(created, None) == pd.Timestamp("2024-03-01")
    assert lag_days(created, converted).tolist() == [10.0]


def test_an_export_that_records_conversions_late_says_so() -> None:
    # Leads from a year, but conversions recorded only for the last half: old leads show only slow ones.
    created, converted, _ = export(span_days=365, median_lag=15, sigma=0.8)
    recorded_from = START + pd.Timedelta(days=180)
    choice = choose_window(created, converted.where(converted >= recorded_from))
    assert choice.days <= 60
    assert f"conversions are recorded only from {recorded_from:%Y-%m-%d}" in choice.note
