"""Draft a lead schema for a company's own export (`leadscore schema infer`).

The draft is a starting point a person reviews, not a verdict: every guess is written into the YAML
where it can be read and changed. Types come from the values; quality factors come from the column
names through FACTOR_KEYWORDS (edit it to teach the guesser your CRM's words); columns that cannot
be features (ids, free text, constants) and columns that probably leak the outcome are listed under
`excluded` with the reason, so nobody trains on the answer by accident.

>>> schema, notes = infer_schema(frame, target="Converted")   # doctest: +SKIP
>>> print(schema_yaml(schema, header=notes))                  # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import yaml

from features.errors import DataError
from features.factors import FACTOR_LABELS, FACTORS
from features.files import write_text_atomic
from features.loading import check_separator, parse_dates, read_table
from features.outcome_window import WindowChoice, choose_window
from features.schema import (
    DEFAULT_GRADES,
    FALSE_WORDS,
    TRUE_WORDS,
    LeadSchema,
    normalise_label,
    schema_from_dict,
)
from features.target import matches

# Words in a column name that say which quality factor it carries. A word matches a name's word
# exactly, with a plural or past-tense ending, or (for words of 5+ letters) as its start; words
# joined by "_" match consecutive words. When several factors match, the last matching word in the
# name wins, because English names end with their head noun ("decision_timeline" is a timeline).
FACTOR_KEYWORDS: dict[str, list[str]] = {
    "icp_fit": [
        "industry",
        "sector",
        "vertical",
        "employee",
        "headcount",
        "company_size",
        "size",
        "revenue",
        "turnover",
        "country",
        "region",
        "city",
        "location",
        "territory",
        "geo",
    ],
    "readiness": [
        "visit",
        "page",
        "view",
        "download",
        "demo",
        "pricing",
        "webinar",
        "activity",
        "engagement",
        "session",
        "click",
        "open",
        "trial",
        "event",
    ],
    "contactability": ["email", "phone", "mobile", "opt", "optin", "optout", "unsubscribe", "bounce"],
    "timeline": ["timeline", "timeframe", "budget", "urgency"],
    "authority": ["title", "seniority", "role", "department", "dept", "decision", "job", "persona"],
    "product_fit": ["product", "use_case", "usecase", "interest", "solution", "need"],
}

# Words in names of fields that sales (or the CRM) fills in after first contact: their values
# describe what happened to the lead, so a model trained on them learns the answer, not the lead.
AFTER_CONTACT_KEYWORDS: list[str] = [
    "status",
    "stage",
    "tag",
    "tags",
    "tagged",
    "outcome",
    "quality",
    "disqualif",
    "rating",
    "owner",
    "reason",
    "result",
    "won",
    "lost",
    "closed",
    "opportunit",
    "deal",
    "score",
    "grade",
    "sql",
    "modified",
    "updated",
]

# Words that mark where a lead came from: kept as report context (by campaign, by source), not features.
CONTEXT_KEYWORDS: list[str] = ["source", "campaign", "channel", "utm", "medium"]

# Words that name the seller or team a lead is handed to: the `owner` role (KPI report), never a feature.
OWNER_KEYWORDS: list[str] = ["owner", "assigned_to", "salesperson", "sales_rep", "account_manager"]

CREATED_KEYWORDS: list[str] = ["created", "create", "creation"]
UPDATED_KEYWORDS: list[str] = ["last", "modified", "updated", "activity"]
CONVERTED_KEYWORDS: list[str] = ["conver", "won", "closed", "close"]
POSITIVE_WORDS = frozenset({"1", "converted", "won", "closed won", "closed_won", "success", "positive"})

# Leakage found in the data (see _leak_by_values). Each is evidence that a value was written after
# the outcome was known; a person reviews it, so the thresholds aim at "too good to be a lead fact".
LEAK_AUC = 0.90  # one column alone ranking converted leads this well is too good to be true
PURE_RATIO = 0.05  # a level is one-sided when the other class is 20x rarer in it than the base rate predicts
PURE_MIN_EXPECTED = 25  # ... and the base rate predicts at least this many of the other class in it
PURE_CLASS_SHARE = 0.15  # one-sided levels together holding this share of one class flag the column
PRESENCE_CLASS_SHARE = 0.05  # a column filled in one-sidedly for this share of one class is flagged
FLIP_PRESENT, FLIP_ABSENT = 0.95, 0.20  # filled in for >= 95% of one class and <= 20% of the other
AFTER_CREATION_SHARE = 0.20  # a date later than the lead's creation in more than this share of rows
AFTER_CREATION_GRACE = pd.Timedelta(days=1)  # same-day dates (a date without a time) are not "later"
MAX_LEVELS = 1_000  # per-level evidence is read on columns with at most this many distinct values
# First words of names of fields that hold the newest state of a lead at export time ("Last Activity",
# "Latest Stage"): for a lead sales worked on, that is something that happened after contact.
SNAPSHOT_FIRST_WORDS = ("last", "latest")
MAX_LISTED_VALUES = 20  # categoricals with at most this many levels get an explicit `values` list
FREE_TEXT_UNIQUE = 0.5  # more unique strings than this share: free text or an id, not a category
NUMERIC_SHARE = 0.98  # share of distinct values that must parse for a column to count as numbers or dates
PROBE_VALUES = 5_000  # a column's kind is judged on at most this many of its distinct values
SAMPLE_ROWS = 100_000  # leakage checks run on at most this many rows
_WORD_ENDINGS = ("s", "es", "d", "ed", "ing", "er", "ers")
_DATE_START = re.compile(r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")


@dataclass(frozen=True)
class _Column:
    """What the values of one column look like: its kind and the values cast to that kind."""

    kind: str  # boolean | integer | numeric | categorical | datetime | empty
    values: pd.Series
    bad_cells: int = 0
    bad_example: str = ""


# -- the pure function -------------------------------------------------------------------------


def infer_schema(
    frame: pd.DataFrame,
    *,
    target: str,
    id_column: str | None = None,
    created_at: str | None = None,
    converted_at: str | None = None,
    positive: list[str] | None = None,
    name: str = "leads",
) -> tuple[LeadSchema, list[str]]:
    """Draft a schema for `frame`; returns it and notes that say what was guessed and why."""
    _require_columns(frame, {"target": target, "id": id_column, "created_at": created_at, "converted_at": converted_at})
    notes: list[str] = []
    known = frame[target].notna()
    positives, negatives = _target_values(frame[target], positive, target)
    if positive is None:
        notes.append(
            f"{target} values that mean converted: {', '.join(map(str, positives))} "
            "(guessed; pass --positive to change)"
        )
    is_positive = pd.Series(matches(frame[target], positives), index=frame.index)
    y = is_positive[known].to_numpy(dtype=bool)

    columns = {c: _read_column(frame[c]) for c in frame.columns if c != target}
    roles = {"id": id_column, "created_at": created_at, "converted_at": converted_at, "owner": None}
    _guess_roles(roles, frame, columns, notes)
    dates = {role: _dates_of(frame, columns, roles[role]) for role in ("created_at", "converted_at")}
    for col in roles.values():
        columns.pop(col, None)

    features, context, excluded = _place_columns(columns, _Sample.of(y, known, dates["created_at"]), notes)
    roles.update(_guess_groups(context))
    base_rate = float(y.mean())
    window = _outcome_window(dates["created_at"], dates["converted_at"], is_positive)
    notes.append(f"outcome window: {window.note}")
    notes.append(
        f"converted share {base_rate:.1%} of {int(known.sum()):,} leads; grades A/B/C start at "
        f"3x, 1.5x and 0.6x that (agree them with sales)"
    )
    if excluded:
        notes.append("left out: " + ", ".join(excluded) + " (reasons under `excluded`)")
    raw = {
        "name": name,
        "roles": {
            "id": roles["id"],
            "target": target,
            "positive_values": positives,
            "negative_values": negatives,
            **{k: v for k, v in roles.items() if k != "id" and v},
        },
        "outcome_window_days": window.days,
        "grades": _grades_for(base_rate),
        "context": context,
        "excluded": excluded,
        "features": sorted(features, key=lambda f: FACTORS.index(f["factor"])),
    }
    return schema_from_dict(raw, source="inferred schema"), notes


def _guess_groups(context: list[str]) -> dict[str, str | None]:
    """roles.source and roles.campaign among the context columns (`utm_source`, `Campaign Name`)."""
    found: dict[str, str | None] = {}
    for role, keywords in (("source", ["source", "channel", "medium"]), ("campaign", ["campaign"])):
        found[role] = next(
            (c for c in context if c not in found.values() and _matching_position(_words(c), keywords) is not None),
            None,
        )
    return found


def _guess_roles(
    roles: dict[str, str | None], frame: pd.DataFrame, columns: dict[str, _Column], notes: list[str]
) -> None:
    """Fill in the id and date roles the user did not name, saying so in the notes."""
    if roles["id"] is None:
        roles["id"] = _guess_id(frame, columns)
        notes.append(f"id column: {roles['id']} (guessed; pass --id to change)")
    dates = {c: info for c, info in columns.items() if info.kind == "datetime" and c != roles["id"]}
    if roles["created_at"] is None:
        roles["created_at"] = _guess_date_role(dates, CREATED_KEYWORDS, avoid=CONVERTED_KEYWORDS) or _guess_date_role(
            dates, ["date", "timestamp"], avoid=CONVERTED_KEYWORDS + UPDATED_KEYWORDS
        )
        if roles["created_at"]:
            notes.append(f"created_at: {roles['created_at']} (guessed from its name; pass --created-at to change)")
    if roles["converted_at"] is None:
        dates.pop(roles["created_at"] or "", None)
        roles["converted_at"] = _guess_date_role(dates, CONVERTED_KEYWORDS, avoid=[])
        if roles["converted_at"]:
            notes.append(
                f"converted_at: {roles['converted_at']} (guessed from its name; pass --converted-at to change)"
            )
    texts = [c for c, info in columns.items() if info.kind == "categorical" and c != roles["id"]]
    roles["owner"] = next((c for c in texts if _matching_position(_words(c), OWNER_KEYWORDS) is not None), None)
    if roles["owner"]:
        notes.append(
            f"owner: {roles['owner']} (guessed from its name: who works the lead, for conversion "
            "against expectation in `leadscore kpis`; never a feature)"
        )


def _place_columns(
    columns: dict[str, _Column], sample: _Sample, notes: list[str]
) -> tuple[list[dict[str, Any]], list[str], dict[str, str]]:
    """Each remaining column becomes a feature, a report context column, or an excluded one with a reason.

    Only text columns can be context (`lead_source`, `campaign`): a number named like a campaign
    (contacts made in this campaign) or a flag named like a channel describes the lead, so it stays
    a feature.
    """
    features: list[dict[str, Any]] = []
    context: list[str] = []
    excluded: dict[str, str] = {}
    for col, info in columns.items():
        why = _reason_to_exclude(col, info, sample)
        if why:
            excluded[col] = why
        elif info.kind == "categorical" and _matching_position(_words(col), CONTEXT_KEYWORDS) is not None:
            context.append(col)
        else:
            features.append(_feature_dict(col, info))
            if info.bad_cells:
                notes.append(
                    f"{col}: {info.bad_cells} cells are not {info.kind} values (e.g. "
                    f"{info.bad_example!r}); they are read as missing"
                )
    if not features:
        summary = "; ".join(f"{c}: {r}" for c, r in list(excluded.items())[:5])
        raise DataError(f"no usable feature columns: every column was left out ({summary})")
    return features, context, excluded


def guess_factor(column: str) -> str:
    """The quality factor a column's name suggests (FACTOR_KEYWORDS), or `other`."""
    words = _words(column)
    best, best_pos = "other", -1
    for factor, keywords in FACTOR_KEYWORDS.items():
        pos = _matching_position(words, keywords)
        if pos is not None and pos > best_pos:
            best, best_pos = factor, pos
    return best


# -- the command -------------------------------------------------------------------------------


def infer_schema_command(
    *,
    data: str | Path,
    target: str,
    id_column: str | None = None,
    created_at: str | None = None,
    converted_at: str | None = None,
    positive: str | None = None,
    out: str | Path | None = None,
) -> int:
    """`leadscore schema infer`: draft a schema and print it, or write it to `out`.

    `positive` is the comma-separated target values that mean converted, as typed on the command line."""
    path = Path(data)
    frame = read_table(path)
    if frame.empty:
        raise DataError(f"{path.name}: the file has a header but no rows")
    check_separator([str(c) for c in frame.columns], path.name)
    positives = [v.strip() for v in positive.split(",") if v.strip()] if positive else None
    schema, notes = infer_schema(
        frame,
        target=target,
        id_column=id_column,
        created_at=created_at,
        converted_at=converted_at,
        positive=positives,
        name=path.name.split(".")[0] or "leads",
    )
    header = [f"Drafted by `leadscore schema infer {path.name}`. Review every line before training."] + notes
    text = schema_yaml(schema, header=header)
    if not out:
        sys.stdout.write(text)
        return 0
    write_text_atomic(Path(out), text)
    leaks = {c: why for c, why in schema.excluded.items() if why.startswith("possible leakage")}
    print(
        f"wrote {out}: {_count(len(schema.features), 'feature')}, "
        f"{_count(len(schema.excluded), 'column')} left out"
        + (f", possible leakage in {', '.join(leaks)}" if leaks else "")
    )
    for note in notes:
        print(f"  {note}")
    if leaks:
        print(
            "  review before training (move a column into `features` only if its value is known when a lead arrives):"
        )
        for col, why in leaks.items():
            print(f"    {col}: {why.removeprefix('possible leakage, ')}")
    return 0


# -- YAML with comments ------------------------------------------------------------------------


def schema_yaml(schema: LeadSchema, *, header: list[str] | None = None) -> str:
    """The schema as YAML a person can review: comments say what was guessed and what to check."""
    data = schema.to_dict()
    for key in ("positive_values", "negative_values"):
        data["roles"][key] = [_spelling(v) for v in data["roles"][key]]
    parts = [_comment_block(header or [])]
    top = {k: data[k] for k in ("name", "description", "roles", "outcome_window_days") if k in data}
    parts.append(_dump(top))
    parts.append("# Grade floors on the calibrated probability: the shared definition of a good lead.\n")
    parts.append("grades: {" + ", ".join(f"{k}: {v}" for k, v in schema.grades.items()) + "}\n")
    parts.append("# Kept for reports (by source, by campaign); never model features.\n")
    parts.append(_dump({"context": data["context"]}))
    parts.append(_excluded_yaml(schema.excluded))
    parts.append(_features_yaml(data["features"]))
    return "".join(parts)


def _excluded_yaml(excluded: dict[str, str]) -> str:
    if not excluded:
        return "excluded: {}\n"
    lines = [
        "# Columns left out of the model, with the reason. Possible leakage is a guess: a field sales fills",
        "# in after contact, or one whose values, blanks or dates tell converted from not converted, hands",
        "# the model an answer it will not have when a new lead arrives. Move a column into `features` only",
        "# if its value is known the moment the lead is created.",
        "excluded:",
    ]
    for col, why in excluded.items():
        if why.startswith("possible leakage"):
            lines.append("  # POSSIBLE LEAKAGE: check this column before you train")
        lines.extend("  " + line for line in _dump({col: why}).splitlines())
    return "\n".join(lines) + "\n"


def _features_yaml(features: list[dict[str, Any]]) -> str:
    lines = [
        "# Factors were guessed from column names (FACTOR_KEYWORDS in features/inference.py); `other` means",
        "# no keyword matched. Add `reason` (shown when a feature lowers a lead), `monotone` and",
        "# `actionable` where you know them.",
        "features:",
    ]
    factor = None
    for item in features:
        if item["factor"] != factor:
            factor = item["factor"]
            lines.append(f"  # {FACTOR_LABELS[factor]}")
        if factor == "other":
            lines.append(f"  # {item['name']}: no factor keyword matched; pick one of {', '.join(FACTORS)}")
        block = _dump([item]).rstrip("\n").splitlines()
        lines.extend("  " + line for line in block)
    return "\n".join(lines) + "\n"


def _comment_block(lines: list[str]) -> str:
    return "".join(f"# {line}\n" for line in lines)


class _Dumper(yaml.SafeDumper):
    """Short lists of plain values stay on one line, as in the bundled schema."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(v, list | dict) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110, default_flow_style=False)


# -- roles -------------------------------------------------------------------------------------


def _require_columns(frame: pd.DataFrame, roles: dict[str, str | None]) -> None:
    for role, col in roles.items():
        if col is not None and col not in frame.columns:
            shown = ", ".join(str(c)[:40] for c in frame.columns[:8]) + (", ..." if frame.shape[1] > 8 else "")
            raise DataError(f"{role} column '{col}' is not in the data (columns: {shown})", field=col)


def _target_values(target: pd.Series, positive: list[str] | None, name: str) -> tuple[list[Any], list[Any]]:
    """Split the target's distinct values into converted and not converted, one spelling per value."""
    spellings: dict[str, Any] = {}
    for value in target.dropna().unique():
        spellings.setdefault(normalise_label(value), _spelling(value))
    if not spellings:
        raise DataError(f"target column '{name}' has no values", field=name)
    if len(spellings) < 2:
        raise DataError(
            f"target column '{name}' has a single value ({next(iter(spellings.values()))!r}); "
            "a model needs converted and not-converted leads",
            field=name,
        )
    if positive is not None:
        wanted = {normalise_label(v) for v in positive}
        missing = wanted - set(spellings)
        if missing:
            raise DataError(
                f"--positive value {min(missing)!r} never occurs in '{name}' "
                f"(values: {', '.join(map(str, list(spellings.values())[:8]))})",
                field=name,
            )
    else:
        wanted = {k for k, v in spellings.items() if k in POSITIVE_WORDS or str(v).strip().lower() in TRUE_WORDS}
        if not wanted:
            raise DataError(
                f"cannot tell which values of '{name}' mean converted "
                f"(values: {', '.join(map(str, list(spellings.values())[:8]))}); pass --positive",
                field=name,
            )
    pos = [v for k, v in spellings.items() if k in wanted]
    neg = [v for k, v in spellings.items() if k not in wanted]
    if not neg:
        raise DataError(f"every value of '{name}' means converted; a model needs both outcomes", field=name)
    return pos, neg


def _guess_id(frame: pd.DataFrame, columns: dict[str, _Column]) -> str:
    """The lead id: text or whole numbers, unique and never blank, preferring a name that says id."""
    unique = [
        c
        for c, info in columns.items()
        if info.kind in ("categorical", "integer") and frame[c].notna().all() and frame[c].is_unique
    ]
    named = [c for c in unique if _matching_position(_words(c), ["id", "key", "uuid", "guid"]) is not None]
    if named or unique:
        return (named or unique)[0]
    raise DataError("no column has a unique value for every lead; pass --id COLUMN")


def _guess_date_role(dates: dict[str, _Column], keywords: list[str], *, avoid: list[str]) -> str | None:
    for col in dates:
        words = _words(col)
        if _matching_position(words, keywords) is not None and _matching_position(words, avoid) is None:
            return col
    return None


def _dates_of(frame: pd.DataFrame, columns: dict[str, _Column], col: str | None) -> pd.Series | None:
    """A role's dates, reusing the column already read as dates when it was."""
    if col is None:
        return None
    info = columns.get(col)
    return info.values if info is not None and info.kind == "datetime" else parse_dates(frame[col])


def _outcome_window(created: pd.Series | None, converted: pd.Series | None, positive: pd.Series) -> WindowChoice:
    """Days after creation by which an outcome is final: `choose_window` on converted leads' lags."""
    if created is None:
        return WindowChoice(
            90,
            math.nan,
            0,
            0,
            0,
            "90 days (default; no creation dates to measure how long conversions take or which leads are mature)",
        )
    return choose_window(created, None if converted is None else converted.where(positive.astype(bool)))


def _grades_for(base_rate: float) -> dict[str, float]:
    """Grade floors relative to the base rate, so an A lead is clearly better than average anywhere."""
    floors = [float(f"{min(m * base_rate, cap):.2g}") for m, cap in ((3.0, 0.9), (1.5, 0.6), (0.6, 0.3))]
    if not (1 >= floors[0] > floors[1] > floors[2] > 0):
        return dict(DEFAULT_GRADES)
    return {"A": floors[0], "B": floors[1], "C": floors[2], "D": 0.0}


# -- one column --------------------------------------------------------------------------------


def _read_column(values: pd.Series) -> _Column:
    """Decide a column's kind from its values; typed Parquet columns keep their type."""
    present = values.dropna()
    if present.empty:
        return _Column("empty", values)
    if pd.api.types.is_bool_dtype(values):
        return _Column("boolean", values.astype("boolean"))
    if pd.api.types.is_datetime64_any_dtype(values):
        return _Column("datetime", parse_dates(values))
    if pd.api.types.is_numeric_dtype(values):
        return _numeric_column(values.astype("Float64").astype(float), 0, "")
    text = present.astype(str).str.strip()
    distinct = pd.Series(text.unique())
    probe = distinct if len(distinct) <= PROBE_VALUES else distinct.sample(PROBE_VALUES, random_state=0)
    if probe.str.lower().isin(TRUE_WORDS | FALSE_WORDS).all():
        return _Column(
            "boolean",
            values.astype("string").str.strip().str.lower().isin(TRUE_WORDS).astype("boolean").where(values.notna()),
        )
    if pd.to_numeric(probe, errors="coerce").notna().mean() >= NUMERIC_SHARE:
        cast = pd.to_numeric(values.astype("string").str.strip(), errors="coerce").astype("Float64").astype(float)
        return _numeric_column(cast, *_bad_cells(values, cast))
    if probe.str.match(_DATE_START).mean() >= NUMERIC_SHARE:
        dates = parse_dates(values)
        if dates[values.notna()].notna().mean() >= NUMERIC_SHARE:
            return _Column("datetime", dates, *_bad_cells(values, dates))
    return _Column("categorical", values.astype("string").str.strip())


def _bad_cells(raw: pd.Series, cast: pd.Series) -> tuple[int, str]:
    """How many present cells did not survive the cast, and the first of them."""
    bad = raw[raw.notna() & cast.isna()]
    return len(bad), (str(bad.iloc[0]) if len(bad) else "")


def _numeric_column(cast: pd.Series, bad: int, example: str) -> _Column:
    present = cast.dropna()
    if present.isin([0.0, 1.0]).all() and present.nunique() == 2:
        return _Column("boolean", cast.map({1.0: True, 0.0: False}).astype("boolean"), bad, example)
    whole = bool((present % 1 == 0).all())
    return _Column("integer" if whole else "numeric", cast, bad, example)


def _reason_to_exclude(col: str, info: _Column, sample: _Sample) -> str | None:
    """Why a column cannot be a feature, or None when it can."""
    if info.kind == "empty":
        return "empty, no values"
    distinct = info.values.nunique(dropna=True)
    if distinct == 1 and info.values.notna().all():
        return "constant, the same value in every row"
    after = _matching_keyword(_words(col), AFTER_CONTACT_KEYWORDS)
    if after:
        return f"possible leakage, sales fills in fields like this after contact (name contains {after})"
    leak = _leak_by_values(info, sample) or _snapshot_field(col, info, sample)
    if leak:
        return leak
    n_present = int(info.values.notna().sum())
    if info.kind == "categorical" and distinct > 20 and distinct > FREE_TEXT_UNIQUE * n_present:
        return f"free text or id-like, {distinct / n_present:.0%} of values are unique"
    if info.kind == "integer" and n_present > 20 and distinct == n_present:
        return "id-like, every value is different"
    if _matching_position(_words(col), ["id", "uuid", "guid"]) is not None and distinct > 0.9 * n_present:
        return "id-like, named like an id and nearly every value is different"
    return None


def _feature_dict(col: str, info: _Column) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": col,
        "type": info.kind,
        "factor": guess_factor(col),
        "label": col.replace("_", " ").strip().capitalize(),
    }
    present = info.values.dropna()
    if info.kind in ("integer", "numeric") and len(present) and present.min() >= 0:
        item["min"] = 0
    if info.kind == "categorical":
        levels = present.value_counts()
        if len(levels) <= MAX_LISTED_VALUES:
            item["values"] = [str(v) for v in levels.index]
    return item


# -- leakage by values -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sample:
    """The rows leakage is judged on: leads with a known outcome, at most SAMPLE_ROWS of them."""

    rows: np.ndarray  # positions in the frame
    y: np.ndarray  # converted or not, per sampled row
    created: pd.Series | None  # creation dates of the sampled rows (index 0..n-1), when known

    @classmethod
    def of(cls, y: np.ndarray, known: pd.Series, created: pd.Series | None) -> _Sample:
        rows = np.flatnonzero(known.to_numpy(dtype=bool))
        if len(rows) > SAMPLE_ROWS:
            pick = np.sort(np.random.default_rng(0).choice(len(rows), SAMPLE_ROWS, replace=False))
            rows, y = rows[pick], y[pick]
        dates = None if created is None else created.iloc[rows].reset_index(drop=True)
        return cls(rows, y, dates)

    def values(self, info: _Column) -> pd.Series:
        return info.values.iloc[self.rows].reset_index(drop=True)


def _leak_by_values(info: _Column, sample: _Sample) -> str | None:
    """Evidence in the values that a column was written after the outcome was known, or None.

    Four kinds, each read as "a lead fact would not look like this":
    - filled in (or blank) depending on the outcome: present for >= 95% of one class and <= 20% of
      the other (a won date), or present almost only in one class (see one-sided below);
    - one-sided values: a level is one-sided when the base rate predicts at least 25 leads of the
      other class in it but at most 1 in 20 of those occur (at a 38% base rate: a conversion rate
      of 97% or more, or 1.9% or less). A tiny level is no evidence, and a strong real feature (a
      country with no conversion in 40 leads at a 10% base rate, 4 expected) is not flagged. The
      column is flagged when its one-sided levels hold >= 15% of the converted or of the lost leads;
    - a date later than the lead's creation date in more than 20% of the rows that have both;
    - on its own it ranks converted above lost leads almost perfectly: cross-fitted AUC above 0.90.
    """
    y = sample.y
    if y.all() or not y.any():
        return None
    values = sample.values(info)
    why = _presence_evidence(values.notna().to_numpy(), y)
    if why is None and info.kind in ("categorical", "boolean", "integer"):
        why = _one_sided_levels(values, y)
    if why is None and info.kind == "datetime" and sample.created is not None:
        why = _after_creation(values, sample.created)
    if why is None:
        why = _too_good_a_ranking(values, info.kind, y)
    return f"possible leakage, {why}" if why else None


def _one_side(n: npt.ArrayLike, k: npt.ArrayLike, base: float) -> np.ndarray:
    """Per level with n leads and k conversions: 1 when (almost) only converted, -1 when only lost, else 0."""
    n, k = np.asarray(n, dtype=float), np.asarray(k, dtype=float)
    lost_expected, conv_expected = n * (1 - base), n * base
    only_conv = (lost_expected >= PURE_MIN_EXPECTED) & (n - k <= PURE_RATIO * lost_expected)
    only_lost = (conv_expected >= PURE_MIN_EXPECTED) & (k <= PURE_RATIO * conv_expected)
    return np.where(only_conv, 1, np.where(only_lost, -1, 0))


def _presence_evidence(present: np.ndarray, y: np.ndarray) -> str | None:
    """A column filled in (or left blank) according to the outcome, as a won date or a lost reason is."""
    n1, n0 = int(y.sum()), int((~y).sum())
    k1, k0 = int(present[y].sum()), int(present[~y].sum())
    for (got, total, word), (other, other_total, other_word) in (
        ((k1, n1, "converted"), (k0, n0, "lost")),
        ((k0, n0, "lost"), (k1, n1, "converted")),
    ):
        if got >= FLIP_PRESENT * total and other <= FLIP_ABSENT * other_total:
            return (
                f"filled in for {got / total:.0%} of {word} leads ({got:,} of {total:,}) but "
                f"{other / other_total:.0%} of {other_word} ones ({other:,} of {other_total:,}): a field filled "
                f"in when a lead is {'won' if word == 'converted' else 'lost or disqualified'} looks like this"
            )
    base = n1 / (n1 + n0)
    for mask, state in ((present, "filled in"), (~present, "blank")):
        n, k = int(mask.sum()), int((mask & y).sum())
        side = int(_one_side(n, k, base))
        held = k / n1 if side == 1 else (n - k) / n0 if side == -1 else 0.0
        if held >= PRESENCE_CLASS_SHARE:
            word = "converted" if side == 1 else "lost"
            return (
                f"{state} almost only for {word} leads ({n:,} rows, {k:,} converted; the base rate of "
                f"{base:.1%} predicts {n * base:,.0f} converted): an outcome field looks like this"
            )
    return None


def _one_sided_levels(values: pd.Series, y: np.ndarray) -> str | None:
    """Values that occur (almost) only among converted or only among lost leads, with their counts."""
    present = values.notna().to_numpy()
    codes, uniques = pd.factorize(values[present])
    if len(uniques) > MAX_LEVELS or len(uniques) == 0:
        return None
    y_present = y[present]
    n = np.bincount(codes, minlength=len(uniques))
    k = np.bincount(codes, weights=y_present.astype(float), minlength=len(uniques))
    n1, n0 = int(y.sum()), int((~y).sum())
    side = _one_side(n, k, n1 / len(y))
    held_conv = k[side == 1].sum() / n1
    held_lost = (n - k)[side == -1].sum() / n0
    if max(held_conv, held_lost) < PURE_CLASS_SHARE:
        return None
    parts = []
    for wanted in (1, -1):  # converted, then lost
        levels = np.flatnonzero(side == wanted)
        if not len(levels):
            continue
        levels = levels[np.argsort(-n[levels], kind="stable")]
        shown = ", ".join(repr(str(_plain(uniques[i]))) for i in levels[:3])
        more = f" and {len(levels) - 3} more" if len(levels) > 3 else ""
        total, conv = int(n[levels].sum()), int(k[levels].sum())
        almost = "only" if (conv == total if wanted == 1 else conv == 0) else "almost only"
        if wanted == 1:
            verb = "value {} occurs" if len(levels) == 1 else "values {} occur"
            parts.append(
                f"{verb.format(shown + more)} {almost} among converted leads ({conv:,} of {total:,} converted)"
            )
        else:
            parts.append(f"{shown}{more} {almost} among lost ones ({conv:,} of {total:,} converted)")
    return "; ".join(parts) + ": an outcome field filled in later looks like this"


def _after_creation(values: pd.Series, created: pd.Series) -> str | None:
    """A date that falls after the lead was created, in many rows: filled in after the lead arrived."""
    both = (values.notna() & created.notna()).to_numpy()
    if both.sum() < 20:
        return None
    gap = values[both] - created[both]
    later = (gap > AFTER_CREATION_GRACE).to_numpy()
    share = later.mean()
    if share <= AFTER_CREATION_SHARE:
        return None
    median = gap[later].median() / pd.Timedelta(days=1)
    return (
        f"later than the lead's creation date in {share:.0%} of rows ({int(later.sum()):,} of "
        f"{int(both.sum()):,}, typically {median:,.0f} days later): filled in after the lead arrived"
    )


def _too_good_a_ranking(values: pd.Series, kind: str, y: np.ndarray) -> str | None:
    codes = _bin_codes(values, kind)
    auc = _cross_fitted_auc(codes, y)
    if kind in ("integer", "numeric", "datetime"):
        numbers = _as_numbers(values)
        auc = max(
            auc, _separation(np.nan_to_num(numbers, nan=-np.inf), y), _separation(np.nan_to_num(numbers, nan=np.inf), y)
        )
    if auc > LEAK_AUC:
        return (
            f"on its own it separates converted leads almost perfectly (AUC {auc:.3f}, an outcome field "
            "filled in later looks like this)"
        )
    return None


def _snapshot_field(col: str, info: _Column, sample: _Sample) -> str | None:
    """A text or date field named for the lead's newest state ("Last Activity"): written up to the export.

    Its values need not separate the outcome to leak: for leads sales worked on, the last activity
    is a call or an SMS after first contact. The reason shows the values whose conversion rates
    depart most from the base rate, so a person can judge.
    """
    words = _words(col)
    if not words or words[0] not in SNAPSHOT_FIRST_WORDS or info.kind not in ("categorical", "datetime"):
        return None
    why = (
        f"possible leakage, a '{words[0]} ...' field holds the lead's newest state when the file was exported, "
        "which for leads sales worked on is after contact"
    )
    if info.kind != "categorical":
        return why
    values, y = sample.values(info), sample.y
    present = values.notna().to_numpy()
    rates = (
        pd.DataFrame({"value": values[present].to_numpy(), "y": y[present]}).groupby("value")["y"].agg(["size", "mean"])
    )
    base = float(y.mean())
    rates["weight"] = rates["size"] * (rates["mean"] - base).abs()
    top = rates.sort_values("weight", ascending=False).head(3)
    shown = ", ".join(f"{str(v)!r} {r['mean']:.0%} of {int(r['size']):,}" for v, r in top.iterrows())
    return f"{why} (converted by value: {shown}; {base:.0%} overall)"


def _bin_codes(values: pd.Series, kind: str) -> np.ndarray:
    """Integer codes per value (numbers in up to 50 quantile bins); missing gets its own code."""
    if kind in ("integer", "numeric", "datetime"):
        numbers = pd.Series(_as_numbers(values))
        binned = pd.qcut(numbers.rank(method="dense"), q=50, labels=False, duplicates="drop")
        return binned.fillna(-1).to_numpy(dtype=np.int64) + 1
    codes, _ = pd.factorize(values.astype("string"), use_na_sentinel=True)
    return codes.astype(np.int64) + 1


def _as_numbers(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(values):
        out = values.astype("int64").to_numpy(dtype=float, copy=True)
        out[values.isna().to_numpy()] = np.nan
        return out
    return pd.to_numeric(values, errors="coerce").astype(float).to_numpy()


def _cross_fitted_auc(codes: np.ndarray, y: np.ndarray) -> float:
    """Score each row by its bin's conversion rate learned on the other half, then measure ranking."""
    fold = np.arange(len(codes)) % 2
    score = np.empty(len(codes))
    size = int(codes.max()) + 1
    for f in (0, 1):
        fit = fold != f
        counts = np.bincount(codes[fit], minlength=size)
        wins = np.bincount(codes[fit], weights=y[fit].astype(float), minlength=size)
        prior = y[fit].mean()
        rate = np.where(counts > 0, wins / np.maximum(counts, 1), prior)
        score[~fit] = rate[codes[~fit]]
    return _separation(score, y)


def _separation(score: np.ndarray, y: np.ndarray) -> float:
    """max(AUC, 1 - AUC): how well the score orders converted against not converted, either way round."""
    from sklearn.metrics import roc_auc_score

    ranks = pd.Series(score).rank(method="average").to_numpy()  # finite, same order: missing sorts as +-inf
    auc = float(roc_auc_score(y, ranks))
    return max(auc, 1 - auc)


# -- words in column names ---------------------------------------------------------------------


def _words(column: str) -> list[str]:
    """Lower-case words of a column name: `NumberOfEmployees` and `number_of_employees` agree."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(column))
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


def _word_matches(word: str, keyword: str) -> bool:
    if word == keyword:
        return True
    if not word.startswith(keyword):
        return False
    return len(keyword) >= 5 or word[len(keyword) :] in _WORD_ENDINGS


def _matching_position(words: list[str], keywords: list[str]) -> int | None:
    """Index of the last word that matches any keyword (multi-word keywords end there), else None."""
    best = None
    for keyword in keywords:
        parts = keyword.split("_")
        for end in range(len(parts) - 1, len(words)):
            window = words[end - len(parts) + 1 : end + 1]
            if all(_word_matches(w, k) for w, k in zip(window, parts, strict=True)):
                best = end if best is None else max(best, end)
    return best


def _matching_keyword(words: list[str], keywords: list[str]) -> str | None:
    for keyword in keywords:
        if _matching_position(words, [keyword]) is not None:
            return keyword
    return None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _spelling(value: Any) -> Any:
    """How a target value is written in the YAML: whole numbers unquoted, text as it appears."""
    value = _plain(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return value


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones, so YAML can write them."""
    return value.item() if isinstance(value, np.generic) else value
