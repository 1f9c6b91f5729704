"""Quarters, outcome maturity and where a history's schema comes from."""

from __future__ import annotations

import pandas as pd
import pytest

from features.datasets import load_history_with_schema, schema_for
from features.errors import DataError
from features.periods import latest_quarter, mature_mask, outcome_final, parse_quarter, quarter_of
from features.synthetic import bundled_schema, generate, write_history


def test_quarter_labels_read_like_finance_quarters():
    when = pd.Series(
        pd.to_datetime(["2026-01-01 00:00:00", "2026-03-31 23:59:00", "2026-08-15 00:00:00", None], format="mixed")
    )
    assert quarter_of(when).tolist()[:3] == ["2026Q1", "2026Q1", "2026Q3"]
    assert pd.isna(quarter_of(when).iloc[3])


@pytest.mark.parametrize("text", ["2026Q3", "2026q3", " 2026-Q3 "])
def test_quarter_spellings_are_accepted(text):
    assert parse_quarter(text) == pd.Period("2026Q3", freq="Q")


@pytest.mark.parametrize("text", ["2026", "Q3", "2026Q5", "last quarter"])
def test_a_bad_quarter_is_one_readable_error(text):
    with pytest.raises(DataError, match="like 2026Q3"):
        parse_quarter(text)


def test_only_converted_or_old_enough_leads_are_mature():
    schema = bundled_schema()
    frame = pd.DataFrame(
        {
            "lead_id": ["a", "b", "c"],
            "created_at": pd.to_datetime(["2026-01-10", "2026-09-01", "2026-09-01"]),
            "converted": [0, 1, 0],
            "converted_at": pd.to_datetime([None, "2026-09-20", None]),
        }
    )
    assert mature_mask(frame, schema, as_of=pd.Timestamp("2026-10-01")).tolist() == [True, True, False]
    # Judged earlier, the conversion had not happened yet and the first lead was still young.
    assert mature_mask(frame, schema, as_of=pd.Timestamp("2026-03-01")).tolist() == [False, False, False]
    # Expected-vs-actual comparisons use only leads whose window closed, converted or not.
    assert outcome_final(frame, schema, as_of=pd.Timestamp("2026-10-01")).tolist() == [True, False, False]


def test_history_is_read_with_the_schema_written_beside_it(tmp_path):
    data = tmp_path / "leads.parquet"
    write_history(generate(quarters=2, leads_per_quarter=200, seed=1), data)
    frame, schema = load_history_with_schema(data)
    assert schema.name == "synthetic-crm"
    assert str(frame["company_size"].dtype) == "Int64"
    assert latest_quarter(frame, schema) == "2026Q3"


def test_without_a_schema_beside_the_data_the_bundled_one_applies(tmp_path):
    assert schema_for(tmp_path / "elsewhere.csv") == bundled_schema()
