"""Drift (PSI): the planted shifts in the synthetic history are found, and stable features stay quiet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.drift import drift_by_quarter, drift_windows, feature_shares, psi, psi_table
from features.periods import quarters
from features.synthetic import bundled_schema, generate, write_history
from training.cli import main

STABLE = ["seniority", "department", "industry", "company_size", "decision_maker", "use_case"]


@pytest.fixture(scope="module")
def schema():
    return bundled_schema()


@pytest.fixture(scope="module")
def leads() -> pd.DataFrame:
    return generate(quarters=12, leads_per_quarter=3000, seed=7).leads


@pytest.fixture(scope="module")
def launch_quarter(leads, schema) -> str:
    """The first quarter in which the new product (ai_assistant) appears."""
    labels = quarters(leads, schema)
    return str(labels[(leads["product_interest"] == "ai_assistant").fillna(False)].min())


def test_identical_frames_have_no_drift(leads, schema):
    table = psi_table(leads, leads, schema)
    assert len(table) == len(schema.features)
    assert table["psi"].abs().max() < 1e-9
    assert not table["flagged"].any()


def test_new_product_is_flagged_in_its_launch_quarter(leads, schema, launch_quarter):
    reference, current, quarter = drift_windows(leads, schema, launch_quarter)
    table = psi_table(reference, current, schema).set_index("feature")
    assert quarter == launch_quarter
    assert table.loc["product_interest", "psi"] > 0.5
    assert "ai_assistant" in table.loc["product_interest", "largest_change"]
    assert set(table.index[table["flagged"]]) == {"product_interest"}


def test_latest_quarter_ranks_the_planted_drift_first_and_stable_features_stay_quiet(leads, schema):
    reference, current, quarter = drift_windows(leads, schema)
    table = psi_table(reference, current, schema)
    assert quarter == "2026Q3"
    # The training window already holds three post-launch quarters, so the shift is smaller now.
    assert table.iloc[0]["feature"] == "product_interest"
    assert table.iloc[0]["psi"] > 0.1
    stable = table.set_index("feature").loc[STABLE, "psi"]
    assert (stable < 0.05).all(), stable.to_dict()


def test_source_mix_shift_moves_web_tracking_missingness(leads, schema):
    reference, current, _ = drift_windows(leads, schema)
    shares = feature_shares(reference, current, schema.feature("web_visits")).set_index("bin")
    assert shares.loc["(missing)", "current"] > shares.loc["(missing)", "reference"] + 0.03


def test_reference_is_the_mature_training_window_before_the_quarter(leads, schema):
    reference, current, quarter = drift_windows(leads, schema, "2025Q2")
    assert (quarters(reference, schema) < "2025Q2").all()
    assert (quarters(current, schema) == "2025Q2").all()
    assert len(current) == 3000 and len(reference) > 0


def test_numeric_shift_and_new_missingness_are_flagged(leads, schema):
    reference = leads.iloc[:5000]
    current = reference.copy()
    current["company_size"] = current["company_size"] * 10
    current.loc[current.index[::2], "annual_revenue"] = np.nan
    table = psi_table(reference, current, schema).set_index("feature")
    assert table.loc["company_size", "flagged"]
    assert table.loc["annual_revenue", "flagged"]
    assert table.loc["seniority", "psi"] < 1e-9


def test_psi_is_finite_when_a_level_is_new():
    assert np.isfinite(psi(np.array([1.0, 0.0]), np.array([0.5, 0.5])))
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0


def test_drift_by_quarter_peaks_at_the_launch(leads, schema, launch_quarter):
    table = drift_by_quarter(leads, schema)
    assert table.loc["product_interest"].idxmax() == launch_quarter


def test_cli_prints_the_table_and_flags_drift(tmp_path, capsys, launch_quarter):
    data = tmp_path / "leads.parquet"
    write_history(generate(quarters=12, leads_per_quarter=1500, seed=3), data)
    assert main(["drift", "--data", str(data), "--quarter", launch_quarter]) == 0
    out = capsys.readouterr().out
    assert "product_interest" in out and "DRIFT" in out
    assert "above PSI 0.2: product_interest" in out


def test_cli_refuses_a_quarter_without_leads_in_one_line(tmp_path, capsys):
    data = tmp_path / "leads.parquet"
    write_history(generate(quarters=4, leads_per_quarter=500, seed=3), data)
    assert main(["drift", "--data", str(data), "--quarter", "2031Q1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "2031Q1" in err
