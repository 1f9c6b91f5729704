"""`leadscore score`: explain a CSV/Parquet file of leads, chunk by chunk, into a table in input order.

Chunked reading and writing keep memory flat, so a file larger than memory scores. The output is
written to a temporary file beside the target and renamed at the end: a failed run leaves no
half-written file behind.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from features.errors import DataError
from features.files import commit, temp_beside
from features.lead_checks import check_frame
from features.loading import (
    check_separator,
    iter_table,
    read_header,
    spreadsheet_safe,
    table_format,
)
from features.progress import Advance, count_rows, shown
from features.progress import rows as progress_rows
from serving.model.scorer import PROGRESS_ROWS, Scorer

_logger = logging.getLogger(__name__)

CHUNK_ROWS = 100_000  # leads read, scored and written at a time: files larger than memory work


def score_command(*, data: str | Path, out: str | Path, model: str | None = None, chunk_rows: int = CHUNK_ROWS) -> int:
    """Score `data` with `model` (default: the champion) into `out`."""
    out = Path(out)
    table_format(out)  # refuse an unsupported output type before any work
    if int(chunk_rows) < 1:
        raise DataError(f"--chunk-rows must be at least 1, got {chunk_rows}")
    scorer = Scorer.load(model)
    summary = score_file(scorer=scorer, data=Path(data), out=out, chunk_rows=int(chunk_rows), progress=shown())
    grades = ", ".join(f"{g} {summary['grades'].get(g, 0):,}" for g in scorer.schema.grades)
    print(
        f"scored {summary['rows']:,} leads with {scorer.bundle.name} version {scorer.bundle.version} "
        f"to {out} (grades: {grades})"
    )
    if summary["missing_columns"]:
        print(
            f"note: {len(summary['missing_columns'])} schema fields absent from the data were scored as missing: "
            f"{', '.join(summary['missing_columns'][:5])}",
            file=sys.stderr,
        )
    return 0


def score_file(
    *, scorer: Scorer, data: Path, out: Path, chunk_rows: int = CHUNK_ROWS, progress: bool = False
) -> dict[str, Any]:
    """Stream `data` through `scorer.explain` into `out` atomically; returns row and grade counts."""
    writer = _TableWriter(out)
    rows = 0
    grades: Counter[str] = Counter()
    try:
        missing = _check_columns(read_header(data), scorer, data.name)  # before any row is read
        total = count_rows(data) if progress else None
        with progress_rows(total, "score", enabled=progress) as advance:
            for chunk in iter_table(data, chunk_rows=chunk_rows):
                check_frame(chunk, scorer.schema, source=data.name, rows_before=rows)  # as the API refuses it
                explained = _explain(scorer, chunk, advance)
                explained = explained.rename(columns={"lead_id": scorer.schema.id_column})
                writer.write(explained)
                rows += len(explained)
                grades.update(explained["grade"].tolist())
        if rows == 0:
            raise DataError(f"{data.name}: the file has a header but no rows")
        writer.commit()
    finally:
        writer.discard()
    return {"rows": rows, "grades": dict(grades), "missing_columns": missing or []}


def _explain(scorer: Scorer, chunk: pd.DataFrame, advance: Advance) -> pd.DataFrame:
    """Explain a read chunk in steps of PROGRESS_ROWS, so the bar moves every few seconds."""
    parts = []
    for start in range(0, max(len(chunk), 1), PROGRESS_ROWS):
        parts.append(scorer.explain(chunk.iloc[start : start + PROGRESS_ROWS]))
        advance(len(parts[-1]))
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def _check_columns(columns: list[str], scorer: Scorer, source: str) -> list[str]:
    check_separator(columns, source)
    names = scorer.schema.feature_names
    missing = [n for n in names if n not in columns]
    if len(missing) == len(names):
        raise DataError(
            f"{source}: none of the model's {len(names)} feature columns are in the file "
            f"(expected e.g. {', '.join(names[:3])})"
        )
    return missing


class _TableWriter:
    """Appends DataFrames to a temporary CSV or Parquet file; `commit` renames it into place."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.format = table_format(out)
        self.tmp = temp_beside(out)
        self._parquet: Any = None
        self._wrote_header = False

    def write(self, frame: pd.DataFrame) -> None:
        if self.format == "csv":
            spreadsheet_safe(frame).to_csv(self.tmp, mode="a", header=not self._wrote_header, index=False)
            self._wrote_header = True
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.tmp, table.schema)
        self._parquet.write_table(table.cast(self._parquet.schema))

    def commit(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        commit(self.tmp, self.out)

    def discard(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        self.tmp.unlink(missing_ok=True)
