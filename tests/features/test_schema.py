"""The lead schema: the bundled one loads, and every malformed schema fails with one line naming the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from features.errors import SchemaError
from features.factors import FACTORS
from features.schema import json_schema, load_schema, normalise_label, schema_from_dict
from features.synthetic import bundled_schema, bundled_schema_path

DELETE = object()


def valid() -> dict[str, Any]:
    return {
        "name": "crm",
        "roles": {
            "id": "lead_id",
            "target": "converted",
            "positive_values": ["yes"],
            "negative_values": ["no"],
            "created_at": "created_at",
        },
        "grades": {"A": 0.3, "B": 0.15, "C": 0.05, "D": 0.0},
        "context": ["lead_source"],
        "excluded": {"lead_status": "filled in after contact"},
        "features": [
            {"name": "industry", "type": "categorical", "factor": "icp_fit", "values": ["software", "retail"]},
            {
                "name": "phone_present",
                "type": "boolean",
                "factor": "contactability",
                "monotone": 1,
                "actionable": [True],
                "reason": "No phone number on record",
            },
            {"name": "web_visits", "type": "integer", "factor": "readiness", "min": 0, "max": 10_000},
        ],
    }


def with_change(path: str, value: Any) -> dict[str, Any]:
    """A copy of the valid schema with one key (dotted path; list items by index) set or deleted."""
    raw = copy.deepcopy(valid())
    *parents, last = path.split(".")
    node: Any = raw
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is DELETE:
        del node[int(last) if last.isdigit() else last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return raw


def test_bundled_schema_describes_every_quality_factor() -> None:
    schema = bundled_schema()
    assert len(schema.features) == 24
    assert set(schema.factor_map.values()) == set(FACTORS) - {"other"}
    assert schema.excluded == {"lead_status": "filled in by sales after contact (leakage)"}
    assert schema.context == ("lead_source", "campaign")
    assert schema.feature("phone_present").reason == "No phone number on record"


def test_valid_schema_round_trips_through_its_dict() -> None:
    schema = schema_from_dict(valid())
    assert schema_from_dict(schema.to_dict()) == schema
    assert schema.positive_values == ("1",) and schema.negative_values == ("0",)
    assert schema.feature("phone_present").actionable == (True,)
    assert schema.feature("industry").label == "Industry"


def test_fingerprint_changes_when_the_definition_of_a_lead_changes() -> None:
    before = schema_from_dict(valid()).fingerprint()
    assert schema_from_dict(valid()).fingerprint() == before
    assert schema_from_dict(with_change("grades.A", 0.4)).fingerprint() != before


@pytest.mark.parametrize(
    ("probability", "grade"), [(0.99, "A"), (0.3, "A"), (0.29, "B"), (0.05, "C"), (0.049, "D"), (0.0, "D")]
)
def test_grade_is_the_first_floor_the_probability_reaches(probability: float, grade: str) -> None:
    assert schema_from_dict(valid()).grade(probability) == grade


@pytest.mark.parametrize("value", [1, 1.0, "1", " yes ", True, "TRUE"])
def test_target_spellings_of_converted_compare_equal(value: Any) -> None:
    assert normalise_label(value) == "1"


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        ("features.0.factor", "icp", "features.industry.factor", "unknown factor 'icp'"),
        ("features.0.type", "text", "features.industry.type", "unknown type 'text'"),
        ("features.2.name", "industry", "features.industry", "listed twice"),
        ("roles.id", DELETE, "roles.id", "roles.id is missing"),
        ("roles.target", DELETE, "roles.target", "roles.target is missing"),
        ("roles", DELETE, "roles", "'roles' is missing"),
        ("roles.positive_values", [], "roles.positive_values", "non-empty list"),
        ("roles.negative_values", ["Yes"], "roles.positive_values", "both positive and negative"),
        ("roles.created_at", 3, "roles.created_at", "must be a column name"),
        ("roles.source", ["a"], "roles.source", "must be a column name"),
        ("grades.C", 0.5, "grades", "must fall from A to D"),
        ("grades.D", 0.01, "grades.D", "grades.D must be 0"),
        ("grades.A", 1.5, "grades.A", "between 0 and 1"),
        ("grades", {"A": 0.3, "B": 0.1, "D": 0.0}, "grades", "A, B, C and D"),
        ("outcome_window_days", -1, "outcome_window_days", "whole number of days (0 or more)"),
        ("features", [], "features", "non-empty list"),
        ("features.0.colour", "red", "features.industry.colour", "unknown key 'colour'"),
        ("features.0.monotone", 1, "features.industry.monotone", "needs an ordered type"),
        ("features.1.monotone", 2, "features.phone_present.monotone", "1, -1 or 0"),
        ("features.1.values", ["a"], "features.phone_present.values", "only for categorical"),
        ("features.0.actionable", ["hardware"], "features.industry.actionable", "not one of its values"),
        ("features.2.min", 20_000, "features.web_visits.min", "above max"),
        ("features.2.max", "lots", "features.web_visits.max", "must be a number"),
        ("features.2.name", "lead_id", "features.lead_id", "also a role column"),
        ("context", ["industry"], "features.industry", "both a feature and a context column"),
        ("colour", "red", "colour", "unknown key 'colour'"),
    ],
)
def test_each_schema_mistake_is_one_line_naming_the_field(path: str, value: Any, field: str, words: str) -> None:
    with pytest.raises(SchemaError) as caught:
        schema_from_dict(with_change(path, value))
    assert caught.value.field == field
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_source_and_campaign_roles_are_what_reports_group_by() -> None:
    plain = schema_from_dict(valid())
    assert plain.source is None and plain.group_columns == ["lead_source"]
    raw = with_change("roles.source", "utm_source")
    raw["roles"]["campaign"] = "utm_campaign"
    schema = schema_from_dict(raw)
    assert (schema.source, schema.campaign) == ("utm_source", "utm_campaign")
    assert schema.group_columns == ["utm_source", "utm_campaign"]
    assert schema.context == ("lead_source", "utm_source", "utm_campaign")  # grouping columns are context
    assert schema_from_dict(schema.to_dict()) == schema
    assert bundled_schema().group_columns == ["lead_source", "campaign"]


def test_feature_without_a_name_names_its_position() -> None:
    with pytest.raises(SchemaError, match=r"features\[1\] needs a 'name'"):
        schema_from_dict(with_change("features.1.name", DELETE))


def test_load_schema_reads_the_bundled_file() -> None:
    assert load_schema(bundled_schema_path()) == bundled_schema()


def test_load_schema_reports_the_line_of_broken_yaml(tmp_path: Path) -> None:
    path = tmp_path / "leads.schema.yaml"
    path.write_text("name: crm\nroles:\n  id: [unclosed\n")
    with pytest.raises(SchemaError, match=r"leads.schema.yaml: not valid YAML at line \d"):
        load_schema(path)


def test_load_schema_names_the_file_in_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(with_change("features.0.factor", "icp")))
    with pytest.raises(SchemaError, match=r"^mine.yaml: features.industry.factor: unknown factor"):
        load_schema(path)
    with pytest.raises(SchemaError, match="schema file not found"):
        load_schema(tmp_path / "absent.yaml")


def test_the_readme_schema_example_loads() -> None:
    readme = Path(__file__).resolve().parents[2] / "README.md"
    block = readme.read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    schema = schema_from_dict(yaml.safe_load(block), source="README")
    assert schema.feature("company_size").max == 500000
    assert {f.name for f in schema.features} == {"phone_present", "company_size", "industry"}


def test_the_shipped_json_schema_is_the_models_and_editors_can_check_a_file_with_it() -> None:
    shipped = Path(__file__).resolve().parents[2] / "features" / "data" / "lead-schema.json"
    assert json.loads(shipped.read_text()) == json_schema()
    document = yaml.safe_load(bundled_schema_path().read_text())
    jsonschema.validate(document, json_schema())
    document["features"][0]["factor"] = "icp"
    with pytest.raises(jsonschema.ValidationError, match="'icp' is not one of"):
        jsonschema.validate(document, json_schema())
