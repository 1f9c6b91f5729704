"""The encoder: fitted once in training, replayed exactly in serving, tolerant of new category levels."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.encoding import LeadEncoder
from features.schema import LeadSchema, schema_from_dict
from features.synthetic import SyntheticHistory, bundled_schema


@pytest.fixture(scope="module")
def encoder(history: SyntheticHistory) -> LeadEncoder:
    return LeadEncoder(bundled_schema()).fit(history.leads)


def as_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Leads as an API receives them: plain JSON values, missing as None."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def test_matrix_follows_schema_order_with_codes_and_flags(encoder: LeadEncoder, history: SyntheticHistory) -> None:
    leads = history.leads.head(50)
    matrix = encoder.transform(leads)
    schema = bundled_schema()
    assert matrix.shape == (50, len(schema.features)) and matrix.dtype == np.float64
    col = schema.feature_names.index("phone_present")
    assert matrix[:, col].tolist() == leads["phone_present"].astype(float).tolist()
    col = schema.feature_names.index("industry")
    decoded = [encoder.decode("industry", code) for code in matrix[:, col]]
    assert decoded == [None if pd.isna(v) else v for v in leads["industry"]]


def test_unseen_category_level_is_missing_not_an_error(encoder: LeadEncoder, history: SyntheticHistory) -> None:
    lead = history.leads.head(1).copy()
    lead["industry"] = "space_mining"
    col = bundled_schema().feature_names.index("industry")
    assert math.isnan(encoder.transform(lead)[0, col])
    record = as_records(lead)[0]
    assert math.isnan(encoder.transform_records([record])[0, col])
    assert encoder.unseen(record) == {"industry": "space_mining"}


def test_records_path_equals_frame_path_row_for_row(encoder: LeadEncoder, history: SyntheticHistory) -> None:
    leads = history.leads.sample(400, random_state=1)
    from_frame = encoder.transform(leads)
    from_records = encoder.transform_records(as_records(leads))
    np.testing.assert_array_equal(from_frame, from_records)


def test_text_values_from_a_csv_encode_like_typed_values(encoder: LeadEncoder, history: SyntheticHistory) -> None:
    leads = history.leads.head(200)
    as_text = leads.astype("string")
    np.testing.assert_array_equal(encoder.transform(leads), encoder.transform(as_text))


def test_state_round_trips_through_json(encoder: LeadEncoder, history: SyntheticHistory) -> None:
    state = json.loads(json.dumps(encoder.to_dict()))
    again = LeadEncoder.from_dict(bundled_schema(), state)
    leads = history.leads.head(300)
    np.testing.assert_array_equal(again.transform(leads), encoder.transform(leads))
    assert again.levels_ == encoder.levels_


def test_state_for_another_schema_is_refused(encoder: LeadEncoder) -> None:
    raw = bundled_schema().to_dict()
    raw["features"] = raw["features"][1:]
    with pytest.raises(ValueError, match="does not match"):
        LeadEncoder.from_dict(schema_from_dict(raw), encoder.to_dict())


def test_levels_without_a_values_list_are_learned_from_frequent_values() -> None:
    schema: LeadSchema = schema_from_dict(
        {"roles": {"id": "id", "target": "y"}, "features": [{"name": "city", "type": "categorical"}]}
    )
    frame = pd.DataFrame({"city": ["Paris"] * 6 + ["Lyon"] * 5 + ["Nice"] * 2})
    encoder = LeadEncoder(schema).fit(frame)
    assert encoder.levels_ == {"city": ["Lyon", "Paris"]}
    codes = encoder.transform(pd.DataFrame({"city": ["Paris", "Lyon", "Nice", None]}))[:, 0]
    np.testing.assert_array_equal(codes, [1.0, 0.0, np.nan, np.nan])


def test_model_hints_come_from_the_schema(encoder: LeadEncoder) -> None:
    schema = bundled_schema()
    assert encoder.categorical_indices == [i for i, f in enumerate(schema.features) if f.type == "categorical"]
    assert encoder.monotone_constraints == [f.monotone for f in schema.features]


def test_a_number_field_reads_each_value_as_float_would_alone_or_in_a_batch(encoder: LeadEncoder) -> None:
    """A batch is converted column by column (NumPy for a clean column): every value reads the same as
    it does in a lead alone, and what `float` cannot read is missing, not an error."""
    values = [12, "13", " 14 ", "abc", None, True, [1, 2], {"a": 1}, 2.5, "1e3"]
    expected = [12.0, 13.0, 14.0, math.nan, math.nan, 1.0, math.nan, math.nan, 2.5, 1000.0]
    col = bundled_schema().feature_names.index("company_size")
    batch = encoder.transform_records([{"company_size": v} for v in values])[:, col]
    alone = [encoder.transform_records([{"company_size": v}])[0, col] for v in values]
    clean = encoder.transform_records([{"company_size": v} for v in (12, "13", None, 2.5)])[:, col]
    np.testing.assert_array_equal(batch, expected)
    np.testing.assert_array_equal(alone, expected)
    np.testing.assert_array_equal(clean, [12.0, 13.0, math.nan, 2.5])
