"""`validate`: a clean export passes; each planted fault is reported with its exact count and rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.datasets import schema_path
from features.loading import read_table
from features.synthetic import bundled_schema, bundled_schema_path
from features.validation import Issue, ValidationReport, validate_frame

NOW = pd.Timestamp("2026-10-01")


@pytest.fixture(scope="module")
def clean(history_files: dict[str, Path]) -> pd.DataFrame:
    """The first 300 leads as text, exactly as a CSV export reads."""
    return read_table(history_files["csv"]).head(300).copy()


def planted_faults(clean: pd.DataFrame) -> pd.DataFrame:
    """One of each fault, at known rows (row numbers below are 1-based: index + 1)."""
    bad = clean.copy()
    bad = bad.drop(columns=["use_case"])
    bad.loc[[2, 7], "company_size"] = ["2.5", "many"]
    bad.loc[3, "web_visits"] = "-4"
    bad.loc[[4, 5, 6], "industry"] = ["Software", "space", "space"]
    bad.loc[9, "lead_id"] = bad.loc[8, "lead_id"]
    bad.loc[10, "created_at"] = "last tuesday"
    bad.loc[11, "created_at"] = "2099-01-01"
    bad.loc[12, "converted"] = "maybe"
    bad.loc[13, "converted"] = None
    bad.loc[14, "demo_requested"] = "perhaps"
    positive = bad.index[(bad["converted"] == "1") & (bad.index > 20)][0]
    bad.loc[positive, "converted_at"] = "2020-01-01"
    bad["notes"] = "x"
    return bad


def find(report: ValidationReport, column: str | None, words: str) -> Issue:
    matches = [i for i in report.issues if i.column == column and words in i.problem]
    assert len(matches) == 1, f"{column}: {words!r} not reported once in {[i.problem for i in report.issues]}"
    return matches[0]


def test_clean_export_has_no_issues(clean: pd.DataFrame) -> None:
    report = validate_frame(clean, bundled_schema(), now=NOW)
    assert report.issues == () and report.ok
    assert (report.n_rows, report.n_columns) == (300, 32)


def test_typed_parquet_is_checked_the_same_way(history_files: dict[str, Path]) -> None:
    report = validate_frame(read_table(history_files["parquet"]), bundled_schema(), now=NOW)
    assert report.issues == ()


@pytest.mark.parametrize(
    ("column", "words", "count", "rows", "values"),
    [
        ("use_case", "feature column named in the schema is missing", 0, (), ()),
        ("company_size", "2 values of the wrong type (expected a whole number)", 2, (3, 8), ("'2.5'", "'many'")),
        ("web_visits", "1 value below the minimum 0", 1, (4,), ("'-4'",)),
        ("industry", "3 values not allowed", 3, (5, 6, 7), ("'Software'", "'space'", "'space'")),
        ("lead_id", "2 rows share 1 id", 2, (9, 10), None),
        ("created_at", "1 unreadable date", 1, (11,), ("'last tuesday'",)),
        ("created_at", "1 date in the future", 1, (12,), ("'2099-01-01'",)),
        ("converted", "1 value not in the schema's positive or negative values (0, 1)", 1, (13,), ("'maybe'",)),
        ("converted", "1 row without a target value", 1, (14,), ("(empty)",)),
        ("demo_requested", "1 value of the wrong type (expected true or false)", 1, (15,), ("'perhaps'",)),
        ("converted_at", "1 lead with a conversion date before the creation date", 1, None, ("'2020-01-01'",)),
    ],
)
def test_each_planted_fault_is_reported_with_count_and_rows(
    clean: pd.DataFrame, column: str, words: str, count: int, rows: tuple | None, values: tuple | None
) -> None:
    report = validate_frame(planted_faults(clean), bundled_schema(), now=NOW)
    issue = find(report, column, words)
    assert issue.level == "error"
    assert issue.count == count
    if rows is not None:
        assert issue.rows == rows
    if values is not None:
        assert issue.values == values


def test_planted_faults_make_exactly_these_errors_and_one_warning(clean: pd.DataFrame) -> None:
    report = validate_frame(planted_faults(clean), bundled_schema(), now=NOW)
    assert len(report.errors) == 11 and not report.ok
    assert [w.problem for w in report.warnings] == ["1 column not in the schema, ignored: notes"]


def test_rows_carry_their_lead_ids(clean: pd.DataFrame) -> None:
    report = validate_frame(planted_faults(clean), bundled_schema(), now=NOW)
    issue = find(report, "company_size", "wrong type")
    assert issue.ids == (clean.loc[2, "lead_id"], clean.loc[7, "lead_id"])


def test_warnings_alone_do_not_fail(clean: pd.DataFrame) -> None:
    frame = clean.assign(notes="x", campaign=None).drop(columns=["lead_source"])
    frame["webinar_attended"] = None
    report = validate_frame(frame, bundled_schema(), now=NOW)
    assert report.ok and not report.errors
    assert {(w.column, w.problem) for w in report.warnings} == {
        (None, "1 column not in the schema, ignored: notes"),
        ("lead_source", "context column is missing (reports cannot group by it)"),
        ("webinar_attended", "no values in any row (the model learns nothing from it)"),
    }


def test_target_and_conversion_date_disagreeing_is_a_warning(clean: pd.DataFrame) -> None:
    frame = clean.copy()
    negative = frame.index[frame["converted"] == "0"][0]
    positive = frame.index[frame["converted"] == "1"][0]
    frame.loc[negative, "converted_at"] = frame.loc[negative, "created_at"]
    frame.loc[positive, "converted_at"] = None
    report = validate_frame(frame, bundled_schema(), now=NOW)
    assert report.ok
    assert find(report, "converted_at", "although the target says not converted").rows == (negative + 1,)
    assert find(report, "converted_at", "converted lead without a conversion date").rows == (positive + 1,)


def test_report_reads_top_to_bottom(clean: pd.DataFrame) -> None:
    text = validate_frame(planted_faults(clean), bundled_schema(), now=NOW).render(source="leads.csv", max_examples=2)
    lines = text.splitlines()
    assert lines[0] == "leads.csv: 300 rows, 32 columns, checked"
    assert "ERROR    industry: 3 values not allowed (allowed: software, financial_services," in text
    assert "         rows 5, 6 (id=value: " in text and ", and 1 more" in text
    assert lines[-1].startswith("FAILED: 11 errors, 1 warning")


def test_default_schema_is_the_one_beside_the_data_else_the_bundled_one(tmp_path: Path) -> None:
    data = tmp_path / "export.csv"
    assert schema_path(data) == bundled_schema_path()
    (tmp_path / "export.schema.yaml").write_text("name: x\n")
    assert schema_path(data) == tmp_path / "export.schema.yaml"
    assert schema_path(data, "other.yaml") == Path("other.yaml")
