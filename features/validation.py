"""Check a lead file against its schema before anything trains on it (`leadscore validate`).

A bad export (a renamed column, a date in the future, a target spelled a new way) would otherwise
train a quietly wrong model. Every finding says which column, what is wrong, how many rows, and
which rows, so the person who owns the export can fix it. Errors fail the check; warnings (extra
columns, a feature with no values) are worth reading but do not.

>>> report = validate_frame(read_table("leads.csv"), load_schema("leads.schema.yaml"))  # doctest: +SKIP
>>> print(report.render())                                                              # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.datasets import schema_path as resolve_schema_path
from features.errors import DataError
from features.lead_checks import TYPE_WORDS
from features.loading import check_separator, coerce_feature, parse_dates, read_table
from features.schema import FeatureSpec, LeadSchema, load_schema
from features.target import normalised_labels

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Issue:
    """One finding: which column, what is wrong, in how many rows, and the first few of them."""

    level: str  # "error" fails validation, "warning" does not
    column: str | None
    problem: str
    count: int = 0
    rows: tuple[int, ...] = ()  # data row numbers, 1 = the first row after the header
    ids: tuple[str, ...] = ()  # the lead ids of those rows, when the id column is readable
    values: tuple[str, ...] = ()  # the offending cells of those rows


@dataclass(frozen=True)
class ValidationReport:
    n_rows: int
    n_columns: int
    issues: tuple[Issue, ...]

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == ERROR]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def render(self, *, source: str = "data", schema_source: str = "", max_examples: int = 5) -> str:
        """A report a person reads top to bottom: errors first, each with examples, then the verdict."""
        against = f" against {schema_source}" if schema_source else ""
        lines = [f"{source}: {self.n_rows:,} rows, {self.n_columns} columns, checked{against}"]
        for issue in self.errors + self.warnings:
            where = f"{issue.column}: " if issue.column else ""
            lines.append(f"{issue.level.upper():8} {where}{issue.problem}")
            if issue.rows and max_examples > 0:
                lines.append(" " * 9 + _examples(issue, max_examples))
        verdict = "FAILED" if self.errors else "OK"
        lines.append(
            f"{verdict}: {_plural(len(self.errors), 'error')}, {_plural(len(self.warnings), 'warning')}"
            + (" (row numbers count data rows from 1, the line after the header)" if self.issues else "")
        )
        return "\n".join(lines)


# -- the pure function -------------------------------------------------------------------------


def validate_frame(
    frame: pd.DataFrame, schema: LeadSchema, now: pd.Timestamp | None = None, *, max_examples: int = 5
) -> ValidationReport:
    """Check raw leads (as read from the file) against the schema; never raises on bad cells."""
    now = pd.Timestamp.now() if now is None else pd.Timestamp(now)
    ids = _id_text(frame, schema)
    issues: list[Issue] = []
    issues += _missing_columns(frame, schema)
    if schema.id_column in frame.columns:
        issues += _check_ids(frame[schema.id_column], schema.id_column, max_examples)
    if schema.target_column in frame.columns:
        issues += _check_target(frame[schema.target_column], schema, ids, max_examples)
    issues += _check_dates(frame, schema, now, ids, max_examples)
    for spec in schema.features:
        if spec.name in frame.columns:
            issues += _check_feature(frame[spec.name], spec, ids, max_examples)
    issues += _extra_columns(frame, schema)
    return ValidationReport(n_rows=len(frame), n_columns=frame.shape[1], issues=tuple(issues))


# -- the command -------------------------------------------------------------------------------


def validate_command(*, data: str | Path, schema: str | Path | None = None, max_examples: int = 5) -> int:
    """`leadscore validate`: print the report; exit 2 when there are errors, 0 otherwise."""
    data = Path(data)
    schema_path = resolve_schema_path(data, schema)
    lead_schema = load_schema(schema_path)
    frame = read_table(data)
    if frame.empty:
        raise DataError(f"{data.name}: the file has a header but no rows")
    _require_some_schema_columns(frame, lead_schema, data.name)
    report = validate_frame(frame, lead_schema, max_examples=max_examples)
    print(report.render(source=data.name, schema_source=str(schema_path), max_examples=max_examples))
    return 0 if report.ok else 2


def _require_some_schema_columns(frame: pd.DataFrame, schema: LeadSchema, name: str) -> None:
    """A file sharing no column with the schema is the wrong file or delimiter: say so in one line."""
    expected = set(schema.role_columns) | set(schema.feature_names)
    if expected & set(map(str, frame.columns)):
        return
    check_separator([str(c) for c in frame.columns], name)
    found = ", ".join(str(c)[:40] for c in frame.columns[:5])
    raise DataError(
        f"{name}: none of the schema's columns are in the file (found: {found}); is this the right file or --schema?"
    )


# -- the checks --------------------------------------------------------------------------------


def _missing_columns(frame: pd.DataFrame, schema: LeadSchema) -> list[Issue]:
    issues = []
    roles = {
        "id": schema.id_column,
        "target": schema.target_column,
        "created_at": schema.created_at,
        "converted_at": schema.converted_at,
    }
    for role, col in roles.items():
        if col and col not in frame.columns:
            issues.append(Issue(ERROR, col, f"the {role} column named in the schema is missing"))
    missing = [f for f in schema.feature_names if f not in frame.columns]
    for name in missing:
        issues.append(Issue(ERROR, name, "feature column named in the schema is missing"))
    for name in schema.context:
        if name not in frame.columns:
            issues.append(Issue(WARNING, name, "context column is missing (reports cannot group by it)"))
    return issues


def _check_ids(ids: pd.Series, column: str, max_examples: int) -> list[Issue]:
    issues = []
    text = ids.astype("string").str.strip()
    blank = (text.isna() | (text == "")).fillna(True).astype(bool)
    if blank.any():
        issues.append(
            _issue(ERROR, column, f"{_plural(int(blank.sum()), 'row')} without an id", blank, ids, None, max_examples)
        )
    dup = text.duplicated(keep=False) & ~blank
    if dup.any():
        shared = int(text[dup].nunique())
        issues.append(
            _issue(
                ERROR,
                column,
                f"{_plural(int(dup.sum()), 'row')} share {_plural(shared, 'id')} (ids must be unique)",
                dup,
                ids,
                None,
                max_examples,
            )
        )
    return issues


def _check_target(target: pd.Series, schema: LeadSchema, ids: pd.Series | None, max_examples: int) -> list[Issue]:
    issues = []
    missing = target.isna()
    if missing.any():
        issues.append(
            _issue(
                ERROR,
                schema.target_column,
                f"{_plural(int(missing.sum()), 'row')} without a target value",
                missing,
                target,
                ids,
                max_examples,
            )
        )
    allowed = set(schema.positive_values) | set(schema.negative_values)
    unknown = ~missing & ~normalised_labels(target).isin(allowed)
    if unknown.any():
        values = ", ".join(sorted(allowed))
        issues.append(
            _issue(
                ERROR,
                schema.target_column,
                f"{_plural(int(unknown.sum()), 'value')} not in the schema's positive or negative values ({values})",
                unknown,
                target,
                ids,
                max_examples,
            )
        )
    return issues


def _check_dates(
    frame: pd.DataFrame, schema: LeadSchema, now: pd.Timestamp, ids: pd.Series | None, max_examples: int
) -> list[Issue]:
    issues: list[Issue] = []
    parsed: dict[str, pd.Series] = {}
    for col in (schema.created_at, schema.converted_at):
        if not col or col not in frame.columns:
            continue
        raw = frame[col]
        when = parse_dates(raw)
        parsed[col] = when
        bad = raw.notna() & when.isna()
        if bad.any():
            issues.append(
                _issue(ERROR, col, f"{_plural(int(bad.sum()), 'unreadable date')}", bad, raw, ids, max_examples)
            )
        future = when > now
        if future.any():
            issues.append(
                _issue(
                    ERROR,
                    col,
                    f"{_plural(int(future.sum()), 'date')} in the future (after {now:%Y-%m-%d %H:%M})",
                    future,
                    raw,
                    ids,
                    max_examples,
                )
            )
    created = parsed.get(schema.created_at or "")
    if created is not None:
        blank = frame[schema.created_at].isna()
        if blank.any():
            issues.append(
                _issue(
                    ERROR,
                    schema.created_at,
                    f"{_plural(int(blank.sum()), 'row')} without a creation date",
                    blank,
                    frame[schema.created_at],
                    ids,
                    max_examples,
                )
            )
    converted = parsed.get(schema.converted_at or "")
    if created is not None and converted is not None:
        early = converted < created
        if early.any():
            issues.append(
                _issue(
                    ERROR,
                    schema.converted_at,
                    f"{_plural(int(early.sum()), 'lead')} with a conversion date before the creation date",
                    early,
                    frame[schema.converted_at],
                    ids,
                    max_examples,
                )
            )
    if converted is not None and schema.target_column in frame.columns:
        issues += _conversion_date_agrees(frame, schema, converted, ids, max_examples)
    return issues


def _conversion_date_agrees(
    frame: pd.DataFrame, schema: LeadSchema, converted: pd.Series, ids: pd.Series | None, max_examples: int
) -> list[Issue]:
    """A conversion date and a target that disagree usually mean one of them is stale."""
    target = frame[schema.target_column]
    label = normalised_labels(target)
    known = label.isin(set(schema.positive_values) | set(schema.negative_values))
    positive = known & label.isin(schema.positive_values)
    issues = []
    dated_negative = known & ~positive & converted.notna()
    if dated_negative.any():
        issues.append(
            _issue(
                WARNING,
                schema.converted_at,
                f"{_plural(int(dated_negative.sum()), 'lead')} with a "
                "conversion date although the target says not converted",
                dated_negative,
                frame[schema.converted_at],
                ids,
                max_examples,
            )
        )
    undated = positive & converted.isna() & frame[schema.converted_at].isna()
    if undated.any():
        issues.append(
            _issue(
                WARNING,
                schema.converted_at,
                f"{_plural(int(undated.sum()), 'converted lead')} without a conversion date",
                undated,
                target,
                ids,
                max_examples,
            )
        )
    return issues


def _check_feature(values: pd.Series, spec: FeatureSpec, ids: pd.Series | None, max_examples: int) -> list[Issue]:
    if values.isna().all():
        return [Issue(WARNING, spec.name, "no values in any row (the model learns nothing from it)")]
    cast, bad = coerce_feature(values, spec)
    issues = []
    if bad.any():
        issues.append(
            _issue(
                ERROR,
                spec.name,
                f"{_plural(int(bad.sum()), 'value')} of the wrong type (expected {TYPE_WORDS[spec.type]})",
                bad,
                values,
                ids,
                max_examples,
            )
        )
    if spec.type in ("numeric", "integer"):
        numbers = cast.astype("Float64")
        below = numbers < spec.min if spec.min is not None else None
        above = numbers > spec.max if spec.max is not None else None
        for bound, mask, word in ((spec.min, below, "below the minimum"), (spec.max, above, "above the maximum")):
            if mask is not None and mask.fillna(False).any():
                mask = mask.fillna(False).astype(bool)
                issues.append(
                    _issue(
                        ERROR,
                        spec.name,
                        f"{_plural(int(mask.sum()), 'value')} {word} {_number(bound)}",
                        mask,
                        values,
                        ids,
                        max_examples,
                    )
                )
    if spec.values is not None:
        text = cast.astype("string")
        outside = (text.notna() & ~text.isin(spec.values)).fillna(False).astype(bool)
        if outside.any():
            shown = ", ".join(spec.values[:10]) + (", ..." if len(spec.values) > 10 else "")
            issues.append(
                _issue(
                    ERROR,
                    spec.name,
                    f"{_plural(int(outside.sum()), 'value')} not allowed (allowed: {shown})",
                    outside,
                    values,
                    ids,
                    max_examples,
                )
            )
    return issues


def _extra_columns(frame: pd.DataFrame, schema: LeadSchema) -> list[Issue]:
    known = set(schema.role_columns) | set(schema.feature_names) | set(schema.context) | set(schema.excluded)
    extra = [str(c) for c in frame.columns if c not in known]
    if not extra:
        return []
    shown = ", ".join(extra[:8]) + (", ..." if len(extra) > 8 else "")
    return [
        Issue(WARNING, None, f"{_plural(len(extra), 'column')} not in the schema, ignored: {shown}", count=len(extra))
    ]


# -- helpers -----------------------------------------------------------------------------------


def _issue(
    level: str,
    column: str | None,
    problem: str,
    mask: pd.Series,
    values: pd.Series,
    ids: pd.Series | None,
    max_examples: int,
) -> Issue:
    """An issue with the row numbers, ids and cells of its first few offending rows."""
    flags = mask.to_numpy(dtype=bool)
    where = np.flatnonzero(flags)[: max(max_examples, 0)]
    return Issue(
        level=level,
        column=column,
        problem=problem,
        count=int(flags.sum()),
        rows=tuple(int(i) + 1 for i in where),
        ids=tuple(str(ids.iloc[i]) for i in where) if ids is not None else (),
        values=tuple(_cell(values.iloc[i]) for i in where),
    )


def _id_text(frame: pd.DataFrame, schema: LeadSchema) -> pd.Series | None:
    if schema.id_column not in frame.columns:
        return None
    return frame[schema.id_column].astype("string").fillna("(no id)")


def _examples(issue: Issue, max_examples: int) -> str:
    rows = issue.rows[:max_examples]
    label = "row" if len(rows) == 1 else "rows"
    text = f"{label} {', '.join(map(str, rows))}"
    if issue.ids and issue.values and list(issue.ids[:max_examples]) != list(issue.values[:max_examples]):
        pairs = zip(issue.ids[:max_examples], issue.values[:max_examples], strict=True)
        cells = ", ".join(f"{i}={v}" for i, v in pairs)
        text += f" (id=value: {cells})"
    elif issue.values:
        text += f" ({', '.join(issue.values[:max_examples])})"
    if issue.count > len(rows):
        text += f", and {issue.count - len(rows):,} more"
    return text


def _cell(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "(empty)"
    return repr(value) if isinstance(value, str) else str(value)


def _number(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
