"""Reading and writing lead tables (CSV or Parquet) with the dtypes the schema declares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from features.errors import DataError
from features.files import atomic_path
from features.schema import FALSE_WORDS, TRUE_WORDS, FeatureSpec, LeadSchema

SUFFIXES = (".csv", ".parquet", ".pq")


def table_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise DataError(f"{Path(path).name}: unsupported file type '{suffix or '(none)'}' (use .csv or .parquet)")


def _readable_file(path: str | Path) -> tuple[Path, str]:
    """The checks every reader makes first: a known format, a file that exists and is not empty."""
    path = Path(path)
    fmt = table_format(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"{path.name}: the file is empty")
    return path, fmt


def read_table(path: str | Path, *, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file as it is; problems become one readable DataError."""
    path, fmt = _readable_file(path)
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path, columns=columns)
        else:
            frame = pd.read_csv(
                path, usecols=columns, dtype=str, keep_default_na=True, na_values=[""], skipinitialspace=True
            )
    except ValueError as exc:
        if columns is not None and ("not in list" in str(exc) or "Usecols" in str(exc)):
            raise DataError(f"{path.name}: missing columns: {exc}") from exc
        raise DataError(f"{path.name}: not a readable {fmt.upper()} table ({_first_line(exc)})") from exc
    except Exception as exc:  # pyarrow, parser and OS errors all mean the same to a user
        raise DataError(f"{path.name}: not a readable {fmt.upper()} table ({_first_line(exc)})") from exc
    if frame.shape[1] == 0:
        raise DataError(f"{path.name}: no columns found")
    return frame


def iter_table(path: str | Path, *, chunk_rows: int = 100_000) -> Iterator[pd.DataFrame]:
    """Read a table in chunks, so files larger than memory can be scored."""
    path, fmt = _readable_file(path)
    try:
        if fmt == "csv":
            yield from pd.read_csv(path, dtype=str, chunksize=chunk_rows, na_values=[""], skipinitialspace=True)
        else:
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path.name}: not a readable {fmt.upper()} table ({_first_line(exc)})") from exc


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as a formula (starting with = + - @, tab or carriage
    return) prefixed with a single quote, the OWASP rule for CSV injection: a campaign named
    `=HYPERLINK(...)` is shown as text when an analyst opens our CSV in Excel. Numbers are untouched."""
    out = frame
    for column in frame.columns:
        values = frame[column]
        if not (values.dtype == object or pd.api.types.is_string_dtype(values.dtype)):
            continue
        text = values.astype("string")
        risky = text.str.startswith(FORMULA_START).fillna(False).to_numpy(dtype=bool)
        if risky.any():
            out = frame.copy() if out is frame else out
            out[column] = text.where(~risky, "'" + text)
    return out


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write atomically: a temp file beside the target, renamed on success, so no half-written file.
    CSV cells that a spreadsheet would run as formulas are neutralised (`spreadsheet_safe`)."""
    fmt = table_format(path)
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            spreadsheet_safe(frame).to_csv(tmp, index=False)


def coerce_feature(values: pd.Series, spec: FeatureSpec) -> tuple[pd.Series, pd.Series]:
    """Cast one column to its schema type; returns the cast column and a mask of unparseable cells."""
    present = values.notna()
    if spec.type in ("numeric", "integer"):
        cast = pd.to_numeric(values, errors="coerce")
        if cast.dtype == object:
            cast = cast.astype(float)
        bad = present & cast.isna()
        if spec.type == "integer":
            frac = cast.notna() & (cast.astype(float) % 1 != 0)
            bad = bad | frac
            cast = cast.where(~frac)
            return cast.astype("Float64").astype("Int64"), bad
        return cast.astype(float), bad
    if spec.type == "boolean":
        cast, bad = coerce_boolean(values)
        return cast, bad
    if spec.type == "datetime":
        cast = parse_dates(values)
        return cast, present & cast.isna()
    cast = values.astype("string")
    return cast.str.strip(), pd.Series(False, index=values.index)


def parse_dates(values: pd.Series) -> pd.Series:
    """Dates in any common format, each cell parsed on its own; zoned times become UTC without a zone.

    Text columns (pandas 3 reads CSV text as `str`, not `object`) need format="mixed": otherwise
    pandas guesses one format from the first cell and silently turns every other format into NaT.
    The result is always datetime64[ns], so CSV and Parquet give the same dtype; dates outside
    the years 1677-2262 (a misread "March" is year 1) become missing.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        out = values
    else:
        out = pd.to_datetime(values.astype("string"), errors="coerce", format="mixed", utc=True)
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    if out.dtype != "datetime64[ns]":
        out = out.where((out >= pd.Timestamp.min) & (out <= pd.Timestamp.max)).astype("datetime64[ns]")
    return out


def coerce_boolean(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    if str(values.dtype) == "boolean" or values.dtype == bool:
        return values.astype("boolean"), pd.Series(False, index=values.index)
    text = values.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    out[text.isin(TRUE_WORDS).fillna(False).astype(bool)] = True
    out[text.isin(FALSE_WORDS).fillna(False).astype(bool)] = False
    bad = values.notna() & out.isna()
    return out, bad


_KINDS = {"numeric": "numbers", "integer": "whole numbers", "boolean": "true/false values", "datetime": "dates"}


def cast_to_schema(
    frame: pd.DataFrame, schema: LeadSchema, *, source: str = "data", strict: bool = False
) -> pd.DataFrame:
    """Give every schema column its declared dtype; unparseable cells become missing.

    `strict` (training) refuses instead: a cell that does not fit its feature's type, and a lead
    created in the future, are one DataError naming the column and the first offending row.
    """
    out = frame.copy()
    for spec in schema.features:
        if spec.name in out.columns:
            out[spec.name], bad = coerce_feature(out[spec.name], spec)
            if strict and bad.any():
                _refuse_cells(frame, spec.name, bad, f"are not {_KINDS.get(spec.type, spec.type)}", source)
    for col in (schema.created_at, schema.converted_at):
        if col and col in out.columns:
            out[col] = parse_dates(out[col])
    if strict and schema.created_at and schema.created_at in out.columns:
        # a day's grace: naive local times from zones ahead of UTC may look a few hours ahead
        future = out[schema.created_at] > pd.Timestamp.now(tz="UTC").tz_localize(None) + pd.Timedelta(days=1)
        if future.any():
            _refuse_cells(frame, schema.created_at, future, "are dates in the future", source)
    if schema.id_column in out.columns:
        out[schema.id_column] = out[schema.id_column].astype("string")
    for col in (*schema.context, schema.owner):
        if col and col in out.columns:
            out[col] = out[col].astype("string")
    return out


def _refuse_cells(frame: pd.DataFrame, column: str, bad: pd.Series, what: str, source: str) -> None:
    first = bad.to_numpy(dtype=bool).argmax()
    raise DataError(
        f"{source}: {column}: {int(bad.sum()):,} values {what} (first: {frame[column].iloc[first]!r} "
        f"in data row {first + 1}); fix them or leave those cells empty (`leadscore validate` lists them)",
        field=column,
    )


def read_header(path: str | Path) -> list[str]:
    """Column names only (the first line of a CSV, the schema of a Parquet file): cheap at any size."""
    return peek_table(path)[0]


def peek_table(path: str | Path) -> tuple[list[str], bool]:
    """Column names and whether there is at least one row, from the first lines or the metadata only."""
    path, fmt = _readable_file(path)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            meta = pq.read_metadata(path)
            return list(meta.schema.to_arrow_schema().names), meta.num_rows > 0
        head = pd.read_csv(path, nrows=1, dtype=str, skipinitialspace=True)
        return [str(c) for c in head.columns], len(head) > 0
    except Exception as exc:
        raise DataError(f"{path.name}: not a readable {fmt.upper()} table ({_first_line(exc)})") from exc


def check_separator(columns: list[str], source: str) -> None:
    """A header read as one column holding `;`, tabs or `|` was written with another separator."""
    if len(columns) == 1:
        for sep, word in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
            if sep in columns[0]:
                raise DataError(
                    f"{source}: the header is one column '{columns[0][:60]}'; the file seems separated "
                    f"by {word}, but leadscore reads comma-separated CSV"
                )


def check_columns(columns: list[str], schema: LeadSchema, source: str, *, require_target: bool = True) -> None:
    """Every role and feature column the schema names is there, else one line naming what is missing."""
    check_separator(columns, source)
    present = set(columns)
    required = [schema.id_column] + ([schema.target_column] if require_target else [])
    for col in required:
        if col not in present:
            role = "target" if col == schema.target_column else "id"
            raise DataError(f"{source}: missing the {role} column '{col}' named in the schema", field=col)
    missing = [f for f in schema.feature_names if f not in present]
    if missing:
        raise DataError(
            f"{source}: missing feature columns named in the schema: {', '.join(missing[:5])}"
            + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""),
            field=missing[0],
        )


def read_leads(
    path: str | Path, schema: LeadSchema, *, require_target: bool = True, strict: bool = False
) -> pd.DataFrame:
    """Load a lead file with the schema's dtypes; missing role or feature columns are one clear error.

    The header is checked before any row is read, so a large file that does not fit the schema fails
    at once. `strict` refuses cells that do not fit their type and future creation dates
    (see `cast_to_schema`); training reads with it.
    """
    path = Path(path)
    columns, has_rows = peek_table(path)
    if not has_rows:
        raise DataError(f"{path.name}: the file has a header but no rows")
    check_columns(columns, schema, path.name, require_target=require_target)
    frame = read_table(path)
    if frame.empty:
        raise DataError(f"{path.name}: the file has a header but no rows")
    return cast_to_schema(frame, schema, source=path.name, strict=strict)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
