"""The lead-quality report for marketing: the feedback loop from sales, one HTML page plus CSV.

Per lead source and campaign, per quarter: leads, mean score, grade mix, expected conversions (the
sum of calibrated probabilities) against actual conversions where outcomes are final, and the share
of leads each quality factor lowers, with the change from the previous quarter. A summary on top
names the sources whose leads got worse and the factor behind it.

A lead is *lowered by* a factor when that factor's impact on its score is at most `LOWERED_AT`
log-odds (-0.25: it cuts the lead's odds of converting by about a fifth against the model's average
lead). So "61% lowered by contact data" means 61% of that campaign's leads have contact data
clearly worse than a typical lead's. A smaller cut-off (-0.1) would count the median lead as
lowered by most factors, which tells marketing nothing.

    >>> explained = analyst.explain(history)                   # doctest: +SKIP
    >>> tables = build_report(explained, history, schema)      # doctest: +SKIP
    >>> Path("report.html").write_text(render_html(tables))    # doctest: +SKIP

Aggregation (`build_report`) is pure; drawing (`render_html`) and files (`report_command`) sit at
the edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import progress
from features.datasets import load_history_with_schema
from features.errors import DataError
from features.factors import FACTOR_LABELS, FACTORS
from features.files import write_together
from features.loading import spreadsheet_safe
from features.periods import data_end, outcome_final, outcome_label, parse_quarter, quarter_label, quarters
from features.schema import LeadSchema
from features.target import labels
from serving.reports import page

SOURCE_COLUMN = "lead_source"  # shown beside each campaign
LOWERED_AT = -0.25
"""A factor lowers a lead when its impact is at most this many log-odds (odds cut by about a fifth)."""
MIN_LEADS = 30
"""Groups smaller than this in either quarter are not named in the summary (too noisy)."""
WORSE_AT = -0.1
"""A group got worse when its mean log-odds fell by at least this much, and by more than its noise."""
NOISE_SE = 3.0
"""...where noise is this many standard errors of the change: with a dozen sources, 2 would cry wolf."""
REPORT_QUARTERS = 4
"""How many quarters, ending with the report quarter, the CLI explains (trend charts, previous quarter)."""
ALL = "all"
ALL_LEADS = "All leads"
MISSING_GROUP = "(none)"


@dataclass(frozen=True)
class ReportTables:
    """Everything the page and the CSV show; built by `build_report`, drawn by `render_html`."""

    quarter: str
    previous: str | None
    by: tuple[str, ...]
    factors: tuple[str, ...]
    grades: tuple[str, ...]
    quarterly: pd.DataFrame
    """One row per (dimension, group, quarter), dimension 'all' for every lead together."""
    current: pd.DataFrame
    """The report quarter's rows with `*_change` columns against the previous quarter."""
    summary: tuple[str, ...]
    calibration_quarter: str | None
    """The latest quarter whose outcomes are all final: where expected meets actual."""
    lowered_at: float = LOWERED_AT
    model: str = ""
    grade_floors: tuple[float, ...] = ()
    """The schema's grade floors on the probability, in the order of `grades`."""
    outcome: str = ""
    """What the probability is of, e.g. 'converted within 90 days of creation'."""
    sources: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per grouping column other than the lead source: each group's lead source(s), shown beside it."""


# -- aggregation (pure) ---------------------------------------------------------------------------


def build_report(
    explained: pd.DataFrame,
    history: pd.DataFrame,
    schema: LeadSchema,
    by: Sequence[str] | None = None,
    quarter: str | None = None,
    *,
    lowered_at: float = LOWERED_AT,
    min_leads: int = MIN_LEADS,
    model: str = "",
    as_of: pd.Timestamp | None = None,
) -> ReportTables:
    """Aggregate explained leads into the report's tables and summary sentences.

    `explained` is `Scorer.explain(history)`: same rows, same order. `as_of` is when the outcomes
    were read (default: the newest lead in `history`); pass the export's end when `history` is a slice.
    """
    by = tuple(schema.group_columns if by is None else by)
    factors = report_factors(explained, schema)
    leads = lead_rows(explained, history, schema, by, factors, lowered_at=lowered_at, as_of=as_of)
    report_q = _report_quarter(leads, quarter)
    leads = leads[leads["quarter"] <= report_q]
    previous = _previous_quarter(leads, report_q)
    grades = tuple(schema.grades)
    quarterly = quarterly_table(leads, by, factors, grades)
    current = with_changes(quarterly, report_q, previous, factors)
    calibration_q = _calibration_quarter(quarterly)
    summary = summarise(current, quarterly, by[0] if by else ALL, previous, calibration_q, factors, min_leads=min_leads)
    return ReportTables(
        quarter=report_q,
        previous=previous,
        by=by,
        factors=factors,
        grades=grades,
        quarterly=quarterly,
        current=current,
        summary=summary,
        calibration_quarter=calibration_q,
        lowered_at=lowered_at,
        model=model,
        grade_floors=tuple(schema.grades.values()),
        outcome=outcome_label(schema.outcome_window_days),
        sources=group_sources(history, by, schema.source),
    )


def report_factors(explained: pd.DataFrame, schema: LeadSchema) -> tuple[str, ...]:
    """The factors the schema maps features to and the explanation carries, in vocabulary order."""
    used = set(schema.factor_map.values())
    return tuple(f for f in FACTORS if f in used and f"impact_{f}" in explained.columns)


def lead_rows(
    explained: pd.DataFrame,
    history: pd.DataFrame,
    schema: LeadSchema,
    by: Sequence[str],
    factors: Sequence[str],
    *,
    lowered_at: float = LOWERED_AT,
    as_of: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """One row per lead with what aggregation needs: quarter, groups, score, outcome, lowered flags."""
    _check_aligned(explained, history, schema)
    check_grouping(history, by, schema)
    final = outcome_final(history, schema, as_of).to_numpy(dtype=bool)
    converted = labels(history, schema).astype(float)
    out = pd.DataFrame(
        {
            "quarter": quarters(history, schema).to_numpy(),
            "probability": explained["probability"].to_numpy(dtype=float),
            "score": explained["score"].to_numpy(dtype=float),
            "raw_score": explained["raw_score"].to_numpy(dtype=float),
            "grade": explained["grade"].astype(str).to_numpy(),
            "converted": converted,
            "final": final.astype(float),
        }
    )
    out["expected_final"] = out["probability"] * out["final"]
    out["actual_final"] = out["converted"] * out["final"]
    for column in by:
        out[column] = history[column].astype("string").fillna(MISSING_GROUP).to_numpy()
    for factor in factors:
        impact = explained[f"impact_{factor}"].to_numpy(dtype=float)
        out[f"impact_{factor}"] = impact
        out[f"lowered_{factor}"] = (impact <= lowered_at).astype(float)
    return out[out["quarter"].notna()]


def group_sources(history: pd.DataFrame, by: Sequence[str], source: str | None) -> dict[str, dict[str, str]]:
    """Each campaign's (or other group's) lead source (the schema's roles.source), most leads first: a
    campaign name alone does not say where its leads come from. Empty when there is no source column."""
    if not source or source not in history.columns:
        return {}
    out: dict[str, dict[str, str]] = {}
    for column in by:
        if column == source or column not in history.columns:
            continue
        pairs = history[[column, source]].astype("string").fillna(MISSING_GROUP)
        per_group: dict[str, list[str]] = {}
        for (group, source), _ in pairs.value_counts().items():  # most leads first
            per_group.setdefault(str(group), []).append(str(source))
        out[column] = {g: s[0] if len(s) == 1 else f"{s[0]} and {len(s) - 1} more" for g, s in per_group.items()}
    return out


def check_grouping(history: pd.DataFrame, by: Sequence[str], schema: LeadSchema) -> None:
    """Every grouping column must exist; checked before the slow part (explaining) starts."""
    missing = [c for c in by if c not in history.columns]
    if missing:
        raise DataError(
            f"cannot group by '{missing[0]}': no such column in the data "
            f"(context columns: {', '.join(schema.context) or 'none'})",
            field=missing[0],
        )


def quarterly_table(
    leads: pd.DataFrame, by: Sequence[str], factors: Sequence[str], grades: Sequence[str]
) -> pd.DataFrame:
    """Per dimension, group and quarter: volume, score, grade mix, expected vs actual, factor shares."""
    parts = [_aggregate(leads.assign(group=ALL_LEADS), ALL, factors, grades)]
    parts += [_aggregate(leads.assign(group=leads[column]), column, factors, grades) for column in by]
    return pd.concat(parts, ignore_index=True)


def with_changes(quarterly: pd.DataFrame, quarter: str, previous: str | None, factors: Sequence[str]) -> pd.DataFrame:
    """The quarter's rows, each with its change from the same group's previous quarter."""
    keys = ["dimension", "group"]
    now = quarterly[quarterly["quarter"] == quarter].reset_index(drop=True)
    compared = [
        "leads",
        "mean_score",
        "mean_raw_score",
        "raw_score_sd",
        *[f"lowered_{f}" for f in factors],
        *[f"impact_{f}" for f in factors],
    ]
    before = quarterly.loc[quarterly["quarter"] == previous, keys + compared]
    merged = now.merge(before, on=keys, how="left", suffixes=("", "_previous"))
    for column in [
        "mean_score",
        "mean_raw_score",
        *[f"lowered_{f}" for f in factors],
        *[f"impact_{f}" for f in factors],
    ]:
        merged[f"{column}_change"] = merged[column] - merged[f"{column}_previous"]
    merged["lowered_by"] = [_lowered_text(row, factors) for _, row in merged.iterrows()]
    return merged


def summarise(
    current: pd.DataFrame,
    quarterly: pd.DataFrame,
    dimension: str,
    previous: str | None,
    calibration_quarter: str | None,
    factors: Sequence[str],
    *,
    min_leads: int = MIN_LEADS,
) -> tuple[str, ...]:
    """A few plain sentences: the quarter in one line, expected vs actual, and who got worse and why."""
    overall = current[current["dimension"] == ALL].iloc[0]
    lines = [_headline(overall, previous), _calibration_line(quarterly, calibration_quarter)]
    if previous is None:
        lines.append("No previous quarter in the data to compare with.")
        return tuple(lines)
    worse = worsened_groups(current, dimension, factors, min_leads=min_leads)
    if worse.empty:
        lines.append(f"No {_dimension_label(dimension)} brought worse leads than in {previous}.")
    for _, row in worse.iterrows():
        lines.append(_worse_line(row, previous))
    return tuple(lines)


def worsened_groups(
    current: pd.DataFrame, dimension: str, factors: Sequence[str], *, min_leads: int = MIN_LEADS
) -> pd.DataFrame:
    """Groups whose mean log-odds fell by at least WORSE_AT and by more than NOISE_SE standard errors.

    Adds `worst_factor`: the factor whose mean impact fell most (impacts add up to the score, so
    this is the factor that explains most of the drop).
    """
    rows = current[
        (current["dimension"] == dimension) & (current["leads"] >= min_leads) & (current["leads_previous"] >= min_leads)
    ].copy()
    noise = NOISE_SE * np.sqrt(
        rows["raw_score_sd"] ** 2 / rows["leads"] + rows["raw_score_sd_previous"] ** 2 / rows["leads_previous"]
    )
    rows = rows[(rows["mean_raw_score_change"] <= WORSE_AT) & (rows["mean_raw_score_change"] < -noise)]
    if rows.empty or not factors:
        return rows.assign(worst_factor=pd.Series(dtype="string"))
    changes = rows[[f"impact_{f}_change" for f in factors]].to_numpy()
    rows["worst_factor"] = [factors[i] for i in np.argmin(changes, axis=1)]
    return rows.sort_values("mean_raw_score_change")


def _aggregate(leads: pd.DataFrame, dimension: str, factors: Sequence[str], grades: Sequence[str]) -> pd.DataFrame:
    frame = leads.assign(**{f"grade_{g}": (leads["grade"] == g).astype(float) for g in grades})
    named = {
        "leads": ("probability", "size"),
        "mean_score": ("score", "mean"),
        "mean_probability": ("probability", "mean"),
        "mean_raw_score": ("raw_score", "mean"),
        "raw_score_sd": ("raw_score", "std"),
        **{f"grade_{g}": (f"grade_{g}", "mean") for g in grades},
        "expected_conversions": ("probability", "sum"),
        "converted_so_far": ("converted", "sum"),
        "final_leads": ("final", "sum"),
        "expected_final": ("expected_final", "sum"),
        "actual_final": ("actual_final", "sum"),
        **{f"lowered_{f}": (f"lowered_{f}", "mean") for f in factors},
        **{f"impact_{f}": (f"impact_{f}", "mean") for f in factors},
    }
    table = frame.groupby(["group", "quarter"], observed=True, sort=True).agg(**named).reset_index()
    table["leads"] = table["leads"].astype(int)
    table["final_leads"] = table["final_leads"].astype(int)
    none_final = table["final_leads"] == 0
    table.loc[none_final, ["expected_final", "actual_final"]] = np.nan
    table.insert(0, "dimension", dimension)
    return table


def _check_aligned(explained: pd.DataFrame, history: pd.DataFrame, schema: LeadSchema) -> None:
    if len(explained) != len(history):
        raise DataError(
            f"explained leads ({len(explained):,}) and history ({len(history):,}) differ in length: "
            "explain the same frame you report on"
        )
    ids = schema.id_column
    if ids in explained.columns and ids in history.columns:
        same = explained[ids].astype("string").to_numpy() == history[ids].astype("string").to_numpy()
        if not np.all(same):
            raise DataError("explained leads are not in the history's row order (lead ids differ)", field=ids)


def _report_quarter(leads: pd.DataFrame, quarter: str | None) -> str:
    available = sorted(leads["quarter"].unique())
    if not available:
        raise DataError("no lead has a readable creation date to put it in a quarter")
    if quarter is None:
        return str(available[-1])
    period = parse_quarter(quarter)
    label = quarter_label(period)
    if label not in available:
        raise DataError(f"no leads in {label} (the data covers {available[0]} to {available[-1]})", field="quarter")
    return label


def _previous_quarter(leads: pd.DataFrame, quarter: str) -> str | None:
    previous = parse_quarter(quarter) - 1
    label = quarter_label(previous)
    return label if (leads["quarter"] == label).any() else None


def _calibration_quarter(quarterly: pd.DataFrame) -> str | None:
    overall = quarterly[(quarterly["dimension"] == ALL) & (quarterly["final_leads"] == quarterly["leads"])]
    return str(overall["quarter"].max()) if not overall.empty else None


def _lowered_text(row: pd.Series, factors: Sequence[str], top: int = 3) -> str:
    """'61% contact data, 12% decision authority': the factors lowering most leads in a group."""
    shares = sorted(((row[f"lowered_{f}"], f) for f in factors), reverse=True)[:top]
    return ", ".join(f"{share:.0%} {FACTOR_LABELS[f].lower()}" for share, f in shares if share > 0)


def _headline(overall: pd.Series, previous: str | None) -> str:
    change = ""
    if previous is not None and pd.notna(overall.get("mean_score_change")):
        change = f" ({overall['mean_score_change']:+.1f} against {previous})"
    return (
        f"{overall['quarter']}: {int(overall['leads']):,} leads, mean score {overall['mean_score']:.1f}{change}, "
        f"{overall['expected_conversions']:,.0f} conversions expected."
    )


def _calibration_line(quarterly: pd.DataFrame, calibration_quarter: str | None) -> str:
    if calibration_quarter is None:
        return "No quarter in the report has final outcomes yet, so expected cannot meet actual."
    row = quarterly[(quarterly["dimension"] == ALL) & (quarterly["quarter"] == calibration_quarter)].iloc[0]
    return (
        f"{calibration_quarter} (outcomes final): {row['actual_final']:,.0f} leads converted against "
        f"{row['expected_final']:,.0f} expected."
    )


def _worse_line(row: pd.Series, previous: str) -> str:
    factor = row["worst_factor"]
    label = FACTOR_LABELS[factor].lower()
    before, after = row[f"lowered_{factor}_previous"], row[f"lowered_{factor}"]
    return (
        f"{_pretty(row['group'])} brought worse leads than in {previous}: mean score "
        f"{row['mean_score_previous']:.1f} -> {row['mean_score']:.1f}, mostly {label} "
        f"(lowered {before:.0%} -> {after:.0%} of its leads)."
    )


def _pretty(value: str) -> str:
    text = str(value).replace("_", " ")
    return text[:1].upper() + text[1:]


def _dimension_label(column: str) -> str:
    return "group" if column == ALL else column.replace("_", " ")


# -- rendering (HTML with inline charts) ---------------------------------------------------------


def render_html(tables: ReportTables) -> str:
    """One self-contained page: inline CSS, charts as base64 PNG, no scripts, fonts or links.

    Drawn by serving/reports/templates/report.html.j2 (serving.reports.page)."""
    with page.plain_text_charts():
        return _render_html(tables)


def _render_html(tables: ReportTables) -> str:
    main_dim = tables.by[0] if tables.by else ALL
    charts = [
        ("Share of leads lowered by each factor", _chart_lowered(tables, main_dim)),
        ("Mean score per quarter", _chart_score_trend(tables, main_dim)),
    ]
    if tables.calibration_quarter is not None:
        charts.append(
            (
                f"Expected against actual conversions, {tables.calibration_quarter}",
                _chart_expected_actual(tables, main_dim),
            )
        )
    return page.render(
        "report.html.j2",
        title=f"Lead quality report, {tables.quarter}",
        meta=_meta_line(tables),
        meaning=_meaning(tables),
        summary=tables.summary,
        quarter=tables.quarter,
        charts=[{"caption": caption, "png": png} for caption, png in charts],
        sections=[_table_section(tables, dim) for dim in (ALL, *tables.by)],
        lowered_cut=f"{1 - np.exp(tables.lowered_at):.0%}",
        worse_cut=f"{1 - np.exp(WORSE_AT):.0%}",
    )


def _meta_line(tables: ReportTables) -> str:
    previous = f", compared with {tables.previous}" if tables.previous else ""
    model = f" Scored by {tables.model}." if tables.model else ""
    return f"Quarter {tables.quarter}{previous}.{model}"


def _meaning(tables: ReportTables) -> dict[str, Any] | None:
    """Score and grades in plain words, for a reader who never saw the model (the template words it)."""
    if not tables.grade_floors:
        return None
    bands = []
    for k, (grade, floor) in enumerate(zip(tables.grades, tables.grade_floors, strict=True)):
        if k == len(tables.grades) - 1:
            bands.append(f"{grade} below {tables.grade_floors[k - 1]:.0%}" if k else grade)
        else:
            bands.append(f"{grade} from {floor:.0%}")
    return {"outcome": tables.outcome, "bands": ", ".join(bands)}


Cell = tuple[str, str | None]  # a value and its note in brackets (the change, or a campaign's source), if any


def _table_section(tables: ReportTables, dimension: str) -> dict[str, Any]:
    """One table of the page: grouped column headings and rows of cells (plain text; the template escapes)."""
    rows = tables.current[tables.current["dimension"] == dimension].sort_values("leads", ascending=False)
    heading = "All leads" if dimension == ALL else f"By {_dimension_label(dimension)}"
    columns = _display_columns(rows, tables)
    groups: list[list[Any]] = []
    for group, _ in columns:
        if groups and groups[-1][0] == group:
            groups[-1][1] += 1
        else:
            groups.append([group, 1])
    cells = list(zip(*columns.values(), strict=True)) if columns else []
    return {
        "dimension": dimension,
        "heading": heading,
        "groups": groups,
        "columns": [name for _, name in columns],
        "rows": cells,
    }


def _display_columns(rows: pd.DataFrame, tables: ReportTables) -> dict[tuple[str, str], list[Cell]]:
    """Readable cells: counts, scores with their change, shares with their change in points."""
    leads, lowered = "leads", "share of leads lowered by"
    out: dict[tuple[str, str], list[Cell]] = {
        (leads, "group"): [
            (str(g), tables.sources.get(str(d), {}).get(str(g)) or None)
            for g, d in zip(rows["group"], rows["dimension"], strict=True)
        ],
        (leads, "leads"): [(f"{n:,}", None) for n in rows["leads"]],
        (leads, "mean score"): [
            _with_change(v, c, "{:.1f}", "{:+.1f}")
            for v, c in zip(rows["mean_score"], rows["mean_score_change"], strict=True)
        ],
        (leads, "grades " + "/".join(tables.grades)): [
            ("/".join(f"{row[f'grade_{g}']:.0%}" for g in tables.grades), None) for _, row in rows.iterrows()
        ],
        ("conversions", "expected"): [(f"{v:,.0f}", None) for v in rows["expected_conversions"]],
        ("conversions", "actual"): [(_actual_text(row), None) for _, row in rows.iterrows()],
    }
    for factor in tables.factors:
        out[(lowered, FACTOR_LABELS[factor])] = [
            _with_change(v, c * 100 if pd.notna(c) else c, "{:.0%}", "{:+.0f} pp")
            for v, c in zip(rows[f"lowered_{factor}"], rows[f"lowered_{factor}_change"], strict=True)
        ]
    return out


def _with_change(value: float, change: float, fmt: str, change_fmt: str) -> Cell:
    if pd.isna(change):
        return fmt.format(value), None
    shown = change_fmt.format(change)
    if not any(ch in "123456789" for ch in shown.split()[0]):  # "-0 pp" and "+0.0" are no change
        shown = change_fmt.format(0.0).replace("+", "±", 1)
    return fmt.format(value), shown


def _actual_text(row: pd.Series) -> str:
    """Actual conversions only mean something once most outcomes are final."""
    share = row["final_leads"] / row["leads"]
    if share < 0.5:
        return f"open ({row['converted_so_far']:,.0f} so far)"
    if share < 1:
        return f"{row['actual_final']:,.0f} of {row['expected_final']:,.0f} expected ({share:.0%} final)"
    return f"{row['actual_final']:,.0f}"


def _top_groups(tables: ReportTables, dimension: str, limit: int = 12) -> list[str]:
    rows = tables.current[tables.current["dimension"] == dimension]
    return rows.sort_values("leads", ascending=False)["group"].head(limit).tolist()


def _chart_lowered(tables: ReportTables, dimension: str) -> str:
    """Heat map: groups by factors, cell = share of the group's leads lowered by the factor."""
    groups = _top_groups(tables, dimension)
    rows = tables.current.set_index(["dimension", "group"]).loc[[(dimension, g) for g in groups]]
    shares = rows[[f"lowered_{f}" for f in tables.factors]].to_numpy(dtype=float)
    fig = page.figure(1.4 * len(tables.factors) + 2.5, 0.4 * len(groups) + 1.5)
    ax = fig.subplots()
    ax.imshow(shares, cmap="Reds", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(tables.factors)), [FACTOR_LABELS[f] for f in tables.factors], rotation=20, ha="right")
    ax.set_yticks(range(len(groups)), groups)
    for (i, j), share in np.ndenumerate(shares):
        ax.text(j, i, f"{share:.0%}", ha="center", va="center", fontsize=8, color="white" if share > 0.6 else "black")
    ax.set_title(f"{tables.quarter}: share of leads lowered, by {_dimension_label(dimension)}")
    return page.png(fig)


def _chart_score_trend(tables: ReportTables, dimension: str) -> str:
    q = tables.quarterly
    fig = page.figure(9, 4)
    ax = fig.subplots()
    for group in _top_groups(tables, dimension, limit=10):
        series = q[(q["dimension"] == dimension) & (q["group"] == group)]
        ax.plot(series["quarter"], series["mean_score"], marker="o", label=group)
    overall = q[q["dimension"] == ALL]
    ax.plot(overall["quarter"], overall["mean_score"], color="black", linestyle="--", linewidth=2, label=ALL_LEADS)
    ax.set_ylabel("mean score")
    ax.tick_params(axis="x", labelrotation=45)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3)
    return page.png(fig)


def _chart_expected_actual(tables: ReportTables, dimension: str) -> str:
    q = tables.quarterly
    rows = q[(q["dimension"] == dimension) & (q["quarter"] == tables.calibration_quarter)]
    rows = rows.sort_values("leads", ascending=False).head(12)
    x = np.arange(len(rows))
    fig = page.figure(9, 3.8)
    ax = fig.subplots()
    ax.bar(x - 0.2, rows["expected_final"], width=0.4, label="expected", color="#9fb3c8")
    ax.bar(x + 0.2, rows["actual_final"], width=0.4, label="actual", color="#3e7bfa")
    ax.set_xticks(x, rows["group"], rotation=20, ha="right")
    ax.set_ylabel("conversions")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return page.png(fig)


# -- command line ---------------------------------------------------------------------------------


def report_window(
    frame: pd.DataFrame, schema: LeadSchema, quarter: str | None = None, n_quarters: int = REPORT_QUARTERS
) -> pd.DataFrame:
    """The leads of the report quarter and the few before it: all the report needs explaining."""
    labels = quarters(frame, schema)
    last = parse_quarter(quarter) if quarter else pd.Period(str(labels.max()), freq="Q")
    first = last - (n_quarters - 1)
    keep = (labels >= quarter_label(first)) & (labels <= quarter_label(last))
    keep = keep.fillna(False).to_numpy(dtype=bool)
    if not keep.any():
        raise DataError(f"no leads in {last} (the data covers {labels.min()} to {labels.max()})", field="quarter")
    return frame[keep].reset_index(drop=True)


def write_report(tables: ReportTables, out: str | Path) -> dict[str, Path]:
    """Write report.html, report.csv (the quarter) and report_quarterly.csv together or not at all.
    CSV cells a spreadsheet would run as formulas are neutralised (`spreadsheet_safe`)."""
    out = Path(out)
    paths = {"html": out / "report.html", "csv": out / "report.csv", "quarterly": out / "report_quarterly.csv"}
    page = render_html(tables)  # the step that can fail on odd data: before any file is touched
    write_together(
        {
            paths["html"]: lambda tmp: tmp.write_text(page, encoding="utf-8"),
            paths["csv"]: lambda tmp: spreadsheet_safe(tables.current).to_csv(tmp, index=False),
            paths["quarterly"]: lambda tmp: spreadsheet_safe(tables.quarterly).to_csv(tmp, index=False),
        }
    )
    return paths


def report_command(
    *,
    data: str | Path,
    out: str | Path,
    schema: str | Path | None = None,
    model: str | None = None,
    by: str | None = None,
    quarter: str | None = None,
) -> int:
    """`leadscore report`: explain the recent quarters with the champion and write the report.

    `by` is the comma-separated grouping columns as typed (default: the schema's source and campaign)."""
    from serving.model.scorer import Scorer

    frame, lead_schema = load_history_with_schema(Path(data), schema)
    groups = [c.strip() for c in by.split(",") if c.strip()] if by else lead_schema.group_columns
    check_grouping(frame, groups, lead_schema)
    window = report_window(frame, lead_schema, quarter)
    scorer = Scorer.load(model)
    explained = scorer.explain(window, progress=progress.shown())
    name = f"{scorer.bundle.name} version {scorer.bundle.version}"
    tables = build_report(
        explained, window, lead_schema, groups, quarter, model=name, as_of=data_end(frame, lead_schema)
    )
    paths = write_report(tables, out)
    print("\n".join(tables.summary))
    print(f"wrote {paths['html']}, {paths['csv']} and {paths['quarterly']}")
    return 0
