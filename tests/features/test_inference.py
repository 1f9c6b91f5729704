"""`schema infer`: types and factors guessed, ids and constants dropped, likely leakage flagged and shown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import DataError
from features.inference import guess_factor, infer_schema, infer_schema_command, schema_yaml
from features.loading import read_table
from features.schema import LeadSchema, load_schema
from features.synthetic import bundled_schema


def crm_export(n: int = 600, seed: int = 3) -> pd.DataFrame:
    """A small CSV-like export (all text) with one planted leak of each kind and columns to drop."""
    rng = np.random.default_rng(seed)
    converted = rng.random(n) < 0.15
    frame = pd.DataFrame(
        {
            "Lead ID": [f"00Q{i:06d}" for i in range(n)],
            "Created Date": pd.date_range("2025-01-01", periods=n, freq="6h").strftime("%Y-%m-%d %H:%M"),
            "Industry": rng.choice(["Software", "Retail", "Education"], n),
            "NumberOfEmployees": rng.integers(1, 5000, n).astype(str),
            "Web Visits": rng.poisson(3, n).astype(str),
            "Phone": rng.choice(["yes", "no"], n),
            "Job Title": rng.choice(["CEO", "Manager", "Analyst", "Student"], n),
            "Budget Confirmed": rng.choice(["true", "false"], n),
            "Lead Source": rng.choice(["Web", "Event"], n),
            "Favourite Colour": rng.choice(["red", "blue"], n),
            "Deal Amount": np.where(converted, rng.integers(1000, 9000, n).astype(str), None),
            "Lead Status": np.where(converted, "Qualified", rng.choice(["Open", "Qualified"], n, p=[0.9, 0.1])),
            "Notes": [f"called on {i} and left a message" for i in range(n)],
            "CRM Row": np.arange(n).astype(str),
            "Region Code": "EU",
            "Converted": np.where(converted, "Yes", "No"),
        }
    )
    frame["Account Flag"] = np.where(converted & (rng.random(n) < 0.5), "A", rng.choice(["B", "C"], n))
    frame.loc[::50, "Web Visits"] = np.nan
    return frame


@pytest.fixture(scope="module")
def drafted() -> tuple[LeadSchema, list[str]]:
    return infer_schema(crm_export(), target="Converted", name="crm")


def test_roles_and_positive_values_are_guessed(drafted: tuple[LeadSchema, list[str]]) -> None:
    schema, notes = drafted
    assert (schema.id_column, schema.target_column, schema.created_at, schema.converted_at) == (
        "Lead ID",
        "Converted",
        "Created Date",
        None,
    )
    assert schema.positive_values == ("1",) and schema.negative_values == ("0",)
    assert any("Converted values that mean converted: Yes" in note for note in notes)


def test_types_come_from_the_values(drafted: tuple[LeadSchema, list[str]]) -> None:
    schema, _ = drafted
    types = {f.name: f.type for f in schema.features}
    assert types == {
        "Industry": "categorical",
        "NumberOfEmployees": "integer",
        "Web Visits": "integer",
        "Phone": "boolean",
        "Job Title": "categorical",
        "Budget Confirmed": "boolean",
        "Favourite Colour": "categorical",
    }
    assert set(schema.feature("Industry").values or ()) == {"Software", "Retail", "Education"}
    assert schema.feature("Web Visits").min == 0


def test_factors_come_from_the_names(drafted: tuple[LeadSchema, list[str]]) -> None:
    schema, _ = drafted
    assert schema.factor_map == {
        "Industry": "icp_fit",
        "NumberOfEmployees": "icp_fit",
        "Web Visits": "readiness",
        "Phone": "contactability",
        "Budget Confirmed": "timeline",
        "Job Title": "authority",
        "Favourite Colour": "other",
    }
    assert schema.context == ("Lead Source",)


def test_planted_leaks_are_flagged_and_left_out(drafted: tuple[LeadSchema, list[str]]) -> None:
    schema, _ = drafted
    for column in ("Lead Status", "Deal Amount", "Account Flag"):
        assert column not in schema.feature_names
        assert schema.excluded[column].startswith("possible leakage"), column
    assert "after contact (name contains status)" in schema.excluded["Lead Status"]
    assert "(name contains deal)" in schema.excluded["Deal Amount"]
    assert "value 'A' occurs only among converted leads" in schema.excluded["Account Flag"]


def test_a_neutrally_named_column_that_gives_the_answer_away_is_flagged() -> None:
    frame = crm_export()
    converted = frame["Converted"] == "Yes"
    frame["Engagement Index"] = (
        np.where(converted, 2.0, 0.0) + np.random.default_rng(1).normal(0, 0.6, len(frame))
    ).round(3)
    schema, _ = infer_schema(frame, target="Converted")
    assert schema.excluded["Engagement Index"].startswith(
        "possible leakage, on its own it separates converted leads almost perfectly (AUC 0.9"
    )


def test_a_field_filled_in_only_for_won_leads_is_flagged() -> None:
    frame = crm_export().rename(columns={"Deal Amount": "Amount"})
    converted = frame["Converted"] == "Yes"
    created = pd.to_datetime(frame["Created Date"])
    frame["Signed On"] = (created + pd.Timedelta(days=12)).dt.strftime("%Y-%m-%d").where(converted)
    schema, _ = infer_schema(frame, target="Converted")
    n = int(converted.sum())
    for column in ("Amount", "Signed On"):
        assert column not in schema.feature_names
        assert schema.excluded[column] == (
            f"possible leakage, filled in for 100% of converted leads ({n} of {n}) but 0% of lost ones "
            f"(0 of {len(frame) - n}): a field filled in when a lead is won looks like this"
        )


def test_a_date_filled_in_after_the_lead_arrived_is_flagged() -> None:
    frame = crm_export()
    created = pd.to_datetime(frame["Created Date"])
    later = np.random.default_rng(2).random(len(frame)) < 0.6
    frame["Demo Date"] = (created + pd.to_timedelta(np.where(later, 9, -30), unit="D")).dt.strftime("%Y-%m-%d %H:%M")
    schema, _ = infer_schema(frame, target="Converted")
    assert schema.excluded["Demo Date"].startswith(
        f"possible leakage, later than the lead's creation date in {later.mean():.0%} of rows "
        f"({later.sum()} of {len(frame)}, typically 9 days later): filled in after the lead arrived"
    )


def test_ids_free_text_and_constants_are_dropped_with_a_reason(drafted: tuple[LeadSchema, list[str]]) -> None:
    schema, _ = drafted
    assert schema.excluded["Notes"] == "free text or id-like, 100% of values are unique"
    assert schema.excluded["CRM Row"] == "id-like, every value is different"
    assert schema.excluded["Region Code"] == "constant, the same value in every row"


def test_yaml_loads_back_and_shows_why_columns_were_left_out(
    drafted: tuple[LeadSchema, list[str]], tmp_path: Path
) -> None:
    schema, notes = drafted
    text = schema_yaml(schema, header=notes)
    path = tmp_path / "crm.schema.yaml"
    path.write_text(text)
    assert load_schema(path) == schema
    lines = text.splitlines()
    for column in ("Lead Status", "Deal Amount", "Account Flag"):
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{column}:"))
        assert lines[at - 1].strip() == "# POSSIBLE LEAKAGE: check this column before you train", column
    assert "  # Favourite Colour: no factor keyword matched" in text
    assert lines[0].startswith("# ") and "Converted values that mean converted" in text


def test_grades_follow_the_base_rate(drafted: tuple[LeadSchema, list[str]]) -> None:
    schema, _ = drafted
    rate = (crm_export()["Converted"] == "Yes").mean()
    assert schema.grades["A"] == pytest.approx(3 * rate, rel=0.05)
    assert schema.grades["B"] == pytest.approx(1.5 * rate, rel=0.05)
    assert schema.grades["C"] == pytest.approx(0.6 * rate, rel=0.05)
    assert schema.grades["D"] == 0.0


def test_synthetic_export_drafts_the_bundled_definition(history_files: dict[str, Path]) -> None:
    schema, _ = infer_schema(read_table(history_files["csv"]), target="converted")
    bundled = bundled_schema()
    assert schema.factor_map == bundled.factor_map
    assert {f.name: f.type for f in schema.features} == {f.name: f.type for f in bundled.features}
    assert set(schema.excluded) == {"lead_status"}
    assert (schema.id_column, schema.created_at, schema.converted_at) == ("lead_id", "created_at", "converted_at")
    assert schema.owner == bundled.owner == "sales_owner"  # a role for the KPI report, not a feature
    assert schema.context == bundled.context
    assert (schema.source, schema.campaign) == (bundled.source, bundled.campaign) == ("lead_source", "campaign")
    assert schema.outcome_window_days == 90


def post_contact_export(n: int = 6_000, seed: int = 5) -> pd.DataFrame:
    """Leads with a 15% base rate, real features of varying strength and one post-contact event column."""
    rng = np.random.default_rng(seed)
    country = rng.choice(["DE", "FR", "NL", "Mars"], n, p=[0.5, 0.3, 0.193, 0.007])
    visits = rng.poisson(3, n)
    logit = -2.2 + 1.6 * (country == "DE") - 0.8 * (country == "NL") + 0.35 * visits
    logit = np.where(country == "Mars", -9.0, logit)  # 40 leads, none converts: strong, not leakage
    converted = rng.random(n) < 1 / (1 + np.exp(-logit))
    won_touch = rng.choice(["Meeting held", "Proposal sent", "Email opened"], n, p=[0.45, 0.4, 0.15])
    lost_touch = rng.choice(["Email bounced", "No answer", "Email opened"], n, p=[0.35, 0.45, 0.2])
    return pd.DataFrame(
        {
            "lead_id": [f"L{i:05d}" for i in range(n)],
            "country": country,
            "visits": visits,
            "touch": np.where(converted, won_touch, lost_touch),
            "converted": converted.astype(int),
        }
    )


def test_a_post_contact_event_column_with_an_innocent_name_is_flagged_by_its_values() -> None:
    frame = post_contact_export()
    schema, _ = infer_schema(frame, target="converted")
    converted = frame["converted"] == 1
    won = frame["touch"].isin(["Meeting held", "Proposal sent"])
    lost = frame["touch"].isin(["Email bounced", "No answer"])
    assert "touch" not in schema.feature_names
    assert schema.excluded["touch"] == (
        f"possible leakage, values 'Meeting held', 'Proposal sent' occur only among converted leads "
        f"({int((won & converted).sum()):,} of {int(won.sum()):,} converted); 'No answer', 'Email bounced' only "
        f"among lost ones (0 of {int(lost.sum()):,} converted): an outcome field filled in later looks like this"
    )


def test_strong_real_features_are_kept() -> None:
    # country: one level converts at 2.6x the base rate and a 40-lead level never converts;
    # visits: a clear trend. Neither is too good to be a fact known when the lead arrives.
    schema, _ = infer_schema(post_contact_export(), target="converted")
    assert {"country", "visits"} <= set(schema.feature_names)
    assert set(schema.excluded) == {"touch"}


def test_only_text_columns_are_report_context() -> None:
    frame = crm_export()
    frame["campaign"] = np.random.default_rng(4).integers(1, 12, len(frame)).astype(str)  # contacts this campaign
    frame["Campaign Name"] = np.random.default_rng(5).choice(["spring", "summer"], len(frame))
    frame["Paid Channel"] = np.random.default_rng(6).choice(["yes", "no"], len(frame))
    schema, _ = infer_schema(frame, target="Converted")
    assert schema.context == ("Lead Source", "Campaign Name")
    assert (schema.source, schema.campaign) == ("Lead Source", "Campaign Name")
    assert schema.feature("campaign").type == "integer"
    assert schema.feature("Paid Channel").type == "boolean"


def slow_export(n: int = 8_000, seed: int = 11) -> pd.DataFrame:
    """9.5 months of leads; a marketing funnel whose conversions arrive up to 9 months after first contact."""
    rng = np.random.default_rng(seed)
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.random(n) * 290, unit="D")
    lag = np.clip(np.exp(rng.normal(np.log(60), 0.8, n)), 1, 270)
    converted_at = created + pd.to_timedelta(lag, unit="D")
    converted = (rng.random(n) < 0.12) & (converted_at <= created.max())
    return pd.DataFrame(
        {
            "lead_id": [f"L{i:05d}" for i in range(n)],
            "created_at": created.strftime("%Y-%m-%d %H:%M"),
            "industry": rng.choice(["software", "retail"], n),
            "converted": converted.astype(int),
            "converted_at": converted_at.where(converted).strftime("%Y-%m-%d %H:%M"),
        }
    )


def test_the_outcome_window_leaves_half_the_leads_mature_and_the_notes_say_what_it_covers() -> None:
    frame = slow_export()
    schema, notes = infer_schema(frame, target="converted")
    created = pd.to_datetime(frame["created_at"])
    end = max(created.max(), pd.to_datetime(frame["converted_at"]).max())
    assert (created <= end - pd.Timedelta(days=schema.outcome_window_days)).mean() >= 0.5
    assert 60 <= schema.outcome_window_days < 180
    note = next(n for n in notes if n.startswith("outcome window: "))
    assert note.startswith(f"outcome window: {schema.outcome_window_days} days: covers ")
    assert "% of conversions;" in note and "90% coverage would need" in note
    assert f"# {note}" in schema_yaml(schema, header=notes)


def test_the_console_lists_each_flagged_column_with_its_evidence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "leads.csv"
    post_contact_export().to_csv(data, index=False)
    assert infer_schema_command(data=data, target="converted", out=tmp_path / "leads.schema.yaml") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith("1 column left out, possible leakage in touch")
    assert "    touch: values 'Meeting held', 'Proposal sent' occur only among converted leads (" in out


def test_explicit_roles_and_positive_values_win() -> None:
    frame = crm_export()
    frame["Stage"] = np.where(frame["Converted"] == "Yes", "won", "open")
    schema, notes = infer_schema(frame, target="Stage", id_column="CRM Row", positive=["won"])
    assert schema.id_column == "CRM Row" and "Lead ID" in schema.excluded
    assert schema.positive_values == ("won",) and schema.negative_values == ("open",)
    assert not any("guessed; pass --positive" in note for note in notes)


@pytest.mark.parametrize(
    ("column", "factor"),
    [
        ("NumberOfEmployees", "icp_fit"),
        ("annual_revenue", "icp_fit"),
        ("Country", "icp_fit"),
        ("pricing_page_views", "readiness"),
        ("demo_requested", "readiness"),
        ("webinar_attended", "readiness"),
        ("days_since_last_activity", "readiness"),
        ("HasOptedOutOfEmail", "contactability"),
        ("email_bounced", "contactability"),
        ("MobilePhone", "contactability"),
        ("decision_timeline", "timeline"),
        ("budget_confirmed", "timeline"),
        ("job_title", "authority"),
        ("Seniority", "authority"),
        ("decision_maker", "authority"),
        ("product_interest", "product_fit"),
        ("UseCase", "product_fit"),
        ("use_case", "product_fit"),
        ("demographic_segment", "other"),
        ("favourite_colour", "other"),
    ],
)
def test_factor_keywords(column: str, factor: str) -> None:
    assert guess_factor(column) == factor


@pytest.mark.parametrize(
    ("target", "kwargs", "message"),
    [
        ("Outcome", {}, "target column 'Outcome' is not in the data"),
        ("Converted", {"id_column": "Key"}, "id column 'Key' is not in the data"),
        ("Region Code", {}, "target column 'Region Code' has a single value ('EU')"),
        ("Industry", {}, "cannot tell which values of 'Industry' mean converted"),
        ("Converted", {"positive": ["Maybe"]}, "--positive value 'maybe' never occurs in 'Converted'"),
    ],
)
def test_impossible_requests_are_one_clear_line(target: str, kwargs: dict, message: str) -> None:
    with pytest.raises(DataError) as caught:
        infer_schema(crm_export(n=100), target=target, **kwargs)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
