"""Reading lead files: schema dtypes for CSV and Parquet, and one clear line for every unreadable file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import DataError
from features.loading import cast_to_schema, iter_table, read_leads, read_table, write_table
from features.schema import LeadSchema, schema_from_dict
from features.synthetic import bundled_schema
from features.target import labels


def tiny_schema() -> LeadSchema:
    return schema_from_dict(
        {
            "roles": {
                "id": "lead_id",
                "target": "converted",
                "positive_values": ["yes"],
                "negative_values": ["no"],
                "created_at": "created_at",
            },
            "features": [
                {"name": "employees", "type": "integer"},
                {"name": "phone", "type": "boolean"},
                {"name": "industry", "type": "categorical"},
            ],
        }
    )


def write(tmp_path: Path, text: str, name: str = "leads.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_and_parquet_load_with_the_same_dtypes(history_files: dict[str, Path]) -> None:
    schema = bundled_schema()
    from_csv = read_leads(history_files["csv"], schema)
    from_parquet = read_leads(history_files["parquet"], schema)
    for name in ["created_at", "converted_at", *schema.feature_names]:
        assert from_csv[name].dtype == from_parquet[name].dtype, name
    pd.testing.assert_frame_equal(from_csv[schema.feature_names], from_parquet[schema.feature_names])


def test_dates_in_mixed_formats_all_parse(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "lead_id,created_at,converted,employees,phone,industry\n"
        "a,2024-01-05,yes,10,y,retail\n"
        "b,2024-01-06 10:30:00,no,20,n,retail\n"
        "c,2024-01-07T08:00:00Z,no,30,,software\n",
    )
    leads = read_leads(path, tiny_schema())
    assert leads["created_at"].tolist() == [
        pd.Timestamp("2024-01-05"),
        pd.Timestamp("2024-01-06 10:30"),
        pd.Timestamp("2024-01-07 08:00"),
    ]
    assert leads["phone"].tolist() == [True, False, pd.NA]
    assert labels(leads, tiny_schema()).tolist() == [1, 0, 0]


def test_unparseable_cells_become_missing_when_cast(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "lead_id": ["a", "b"],
            "converted": ["yes", "no"],
            "created_at": ["soon", "2024-01-01"],
            "employees": ["2.5", "7"],
            "phone": ["maybe", "true"],
            "industry": [" retail ", None],
        }
    )
    cast = cast_to_schema(frame, tiny_schema())
    assert cast["employees"].tolist() == [pd.NA, 7]
    assert cast["phone"].tolist() == [pd.NA, True]
    assert cast["industry"].tolist() == ["retail", pd.NA]
    assert cast["created_at"].isna().tolist() == [True, False]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("leads.csv", "", "leads.csv: the file is empty"),
        ("leads.parquet", "not parquet at all", "leads.parquet: not a readable PARQUET table"),
        ("leads.xlsx", "x", "unsupported file type '.xlsx'"),
    ],
)
def test_unreadable_files_are_one_clear_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    with pytest.raises(DataError) as caught:
        read_table(write(tmp_path, content, name))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data file not found: .*absent.csv"):
        read_table(tmp_path / "absent.csv")


def test_header_without_rows_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="leads.csv: the file has a header but no rows"):
        read_leads(write(tmp_path, "lead_id,converted\n"), tiny_schema())


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("lead_id,created_at,employees,phone,industry", "missing the target column 'converted'"),
        ("converted,created_at,employees,phone,industry", "missing the id column 'lead_id'"),
        ("lead_id,converted,created_at,phone", "missing feature columns named in the schema: employees, industry"),
    ],
)
def test_missing_columns_are_named(tmp_path: Path, header: str, message: str) -> None:
    row = ",".join("1" for _ in header.split(","))
    with pytest.raises(DataError, match=message):
        read_leads(write(tmp_path, f"{header}\n{row}\n"), tiny_schema())


def test_scoring_files_may_lack_the_target(tmp_path: Path) -> None:
    path = write(tmp_path, "lead_id,created_at,employees,phone,industry\na,2024-01-01,3,yes,retail\n")
    assert len(read_leads(path, tiny_schema(), require_target=False)) == 1


def test_iter_table_reads_in_chunks(history_files: dict[str, Path]) -> None:
    for key in ("csv", "parquet"):
        sizes = [len(chunk) for chunk in iter_table(history_files[key], chunk_rows=5000)]
        assert sizes == [5000, 5000, 2000], key


def test_write_table_leaves_no_temporary_files(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": np.arange(3)})
    write_table(frame, tmp_path / "out" / "table.parquet")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["table.parquet"]
    assert pd.read_parquet(tmp_path / "out" / "table.parquet")["a"].tolist() == [0, 1, 2]


def test_written_tables_are_readable_by_others_like_any_new_file(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    write_table(pd.DataFrame({"a": [1]}), path)
    probe = tmp_path / "plain.txt"
    probe.write_text("x")
    assert path.stat().st_mode & 0o777 == probe.stat().st_mode & 0o777
