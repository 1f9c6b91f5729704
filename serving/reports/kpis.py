"""Shared KPIs, one report both teams read: what marketing delivered, and how sales converted against it.

- **Marketing** (per campaign and source): leads, expected conversions (the sum of calibrated
  probabilities), grade mix, and the share of leads each quality factor lowers.
- **Sales** (per owner): on leads whose outcome is final, actual minus expected conversions with a
  95% interval (sd = sqrt(sum p(1-p))). A seller handed weak leads is judged against a low
  expectation, so they are not blamed for marketing's leads; one handed strong leads is not flattered.
- **Feedback against the model** (per factor): of the leads sales marked with a factor, how many the
  model also says that factor lowers (they agree), and how many it does not (sales sees a problem
  the model does not).

Leads come from either the prediction log joined with posted outcomes (`kpi_leads_from_log`), or a
lead history explained by the model (`kpi_leads_from_history`); both give the same frame, which
`build_kpis` aggregates (pure) and `render_html` draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import progress
from features.factors import FACTOR_LABELS, FACTORS
from features.files import write_together
from features.loading import spreadsheet_safe
from features.schema import LeadSchema
from serving.reports import page
from serving.reports.report import LOWERED_AT, MISSING_GROUP

Z95 = 1.96
NO_OWNER = "(no owner)"


@dataclass(frozen=True)
class KpiTables:
    marketing: pd.DataFrame
    """One row per (dimension, group): leads, expected conversions, grade shares, lowered shares."""
    sales: pd.DataFrame
    """One row per owner, best against expectation first."""
    feedback: pd.DataFrame
    """One row per factor: sales verdicts, how many the model agrees with."""
    grades: tuple[str, ...]
    factors: tuple[str, ...]
    explored: int
    source: str


# -- the lead frame, from either source -----------------------------------------------------------


def kpi_leads_from_history(
    explained: pd.DataFrame, history: pd.DataFrame, schema: LeadSchema, *, as_of: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Explained history rows (`Scorer.explain`) as KPI leads; an outcome counts once its window closed."""
    from serving.reports.report import lead_rows, report_factors

    groups = [c for c in (*schema.context, schema.owner) if c and c in history.columns]
    rows = lead_rows(explained, history, schema, groups, report_factors(explained, schema), as_of=as_of)
    rows["lead_id"] = history.loc[rows.index, schema.id_column].astype("string").to_numpy()
    rows["owner"] = rows[schema.owner] if schema.owner in rows.columns else NO_OWNER
    rows["converted"] = rows["converted"].where(rows["final"] > 0)
    rows["explore"] = False
    return rows.reset_index(drop=True)


def kpi_leads_from_log(scored: pd.DataFrame, schema: LeadSchema) -> pd.DataFrame:
    """`monitor.scored_leads` rows as KPI leads: context and owner from the lead as received (an owner
    posted with the outcome wins), outcome where one was posted."""
    lead = scored["lead"].map(lambda v: v if isinstance(v, dict) else {})
    out = pd.DataFrame(
        {
            "lead_id": scored["lead_id"],
            "probability": scored["probability"].astype(float),
            "grade": scored["grade"].astype(str),
            "converted": scored["converted"].astype(float),
            "explore": scored["explore"].astype(bool),
        }
    )
    for column in schema.context:
        out[column] = lead.map(lambda d, c=column: d.get(c)).fillna(MISSING_GROUP).astype(str)
    given = lead.map(lambda d: d.get(schema.owner) if schema.owner else None)
    out["owner"] = scored["owner"].where(scored["owner"].notna(), given).fillna(NO_OWNER).astype(str)
    impacts = scored["factors"].map(lambda v: v if isinstance(v, dict) else {})
    for factor in FACTORS:
        impact = impacts.map(lambda d, f=factor: d.get(f, 0.0)).astype(float)
        out[f"lowered_{factor}"] = (impact <= LOWERED_AT).astype(float)
    out["final"] = out["converted"].notna().astype(float)
    return out


# -- aggregation (pure) ---------------------------------------------------------------------------


def build_kpis(leads: pd.DataFrame, feedback: pd.DataFrame, schema: LeadSchema, *, source: str = "") -> KpiTables:
    grades = tuple(schema.grades)
    factors = tuple(f for f in FACTORS if f"lowered_{f}" in leads.columns and f in set(schema.factor_map.values()))
    dims = [c for c in schema.context if c in leads.columns]
    marketing = pd.concat([_marketing(leads, dim, grades, factors) for dim in ["all", *dims]], ignore_index=True)
    return KpiTables(
        marketing=marketing,
        sales=sales_table(leads),
        feedback=feedback_table(leads, feedback, factors),
        grades=grades,
        factors=factors,
        explored=int(leads["explore"].sum()),
        source=source,
    )


def _marketing(leads: pd.DataFrame, dim: str, grades: Sequence[str], factors: Sequence[str]) -> pd.DataFrame:
    key = pd.Series("All leads", index=leads.index) if dim == "all" else leads[dim].fillna(MISSING_GROUP)
    rows = []
    for group, part in leads.groupby(key, sort=False):
        final = part[part["final"] > 0]
        rows.append(
            {
                "dimension": dim,
                "group": group,
                "leads": len(part),
                "expected_conversions": float(part["probability"].sum()),
                "mean_probability": float(part["probability"].mean()),
                **{f"grade_{g}": float((part["grade"] == g).mean()) for g in grades},
                **{f"lowered_{f}": float(part[f"lowered_{f}"].mean()) for f in factors},
                "final_leads": len(final),
                "expected_final": float(final["probability"].sum()),
                "actual_final": float(final["converted"].sum()),
            }
        )
    return pd.DataFrame(rows).sort_values(["leads"], ascending=False)


def sales_table(leads: pd.DataFrame) -> pd.DataFrame:
    """Per owner, on leads with a final outcome: actual minus expected with a 95% interval, ranked by actual
    over expected (a seller's skill multiplies the odds, so a ratio compares sellers handed weak and strong leads)."""
    final = leads[leads["final"] > 0]
    rows = []
    for owner, part in final.groupby("owner", sort=False):
        p, y = part["probability"].to_numpy(float), part["converted"].to_numpy(float)
        diff, sd = float(y.sum() - p.sum()), float(np.sqrt((p * (1 - p)).sum()))
        low, high = diff - Z95 * sd, diff + Z95 * sd
        verdict = "above expectation" if low > 0 else "below expectation" if high < 0 else "as expected"
        rows.append(
            {
                "owner": owner,
                "leads": len(part),
                "mean_probability": float(p.mean()),
                "expected": float(p.sum()),
                "actual": float(y.sum()),
                "conversion_rate": float(y.mean()),
                "actual_minus_expected": diff,
                "low": low,
                "high": high,
                "points_per_100_leads": 100 * diff / len(part),
                "actual_to_expected": float(y.sum() / p.sum()) if p.sum() > 0 else np.nan,
                "verdict": verdict,
            }
        )
    columns = [
        "owner",
        "leads",
        "mean_probability",
        "expected",
        "actual",
        "conversion_rate",
        "actual_minus_expected",
        "low",
        "high",
        "points_per_100_leads",
        "actual_to_expected",
        "verdict",
    ]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values("actual_to_expected", ascending=False).reset_index(drop=True)


def feedback_table(leads: pd.DataFrame, feedback: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """Per factor: leads sales marked with it, how many the model also says it lowers, and the model's view overall."""
    rows = []
    by_id = leads.dropna(subset=["lead_id"]).drop_duplicates("lead_id").set_index("lead_id")
    for factor in factors:
        marked = feedback.loc[feedback["factor"] == factor, "lead_id"].drop_duplicates() if len(feedback) else []
        known = [i for i in marked if i in by_id.index]
        agree = int(by_id.loc[known, f"lowered_{factor}"].sum()) if known else 0
        rows.append(
            {
                "factor": factor,
                "sales_marked": len(marked),
                "scored": len(known),
                "model_agrees": agree,
                "sales_only": len(known) - agree,
                "agreement": agree / len(known) if known else np.nan,
                "model_lowered_share": float(leads[f"lowered_{factor}"].mean()) if len(leads) else np.nan,
            }
        )
    return pd.DataFrame(rows)


# -- the page -------------------------------------------------------------------------------------


def summary_lines(tables: KpiTables) -> list[str]:
    lines = []
    overall = tables.marketing[tables.marketing["dimension"] == "all"]
    if len(overall):
        row = overall.iloc[0]
        lines.append(
            f"Marketing delivered {row['leads']:,} leads, {row['expected_conversions']:,.0f} expected "
            f"conversions ({row['mean_probability']:.1%} per lead)."
        )
    for _, row in tables.sales.iterrows():
        if row["verdict"] != "as expected":
            lines.append(
                f"{row['owner']}: {row['actual']:.0f} conversions against {row['expected']:.1f} expected on "
                f"{row['leads']:,} leads with final outcomes "
                f"({row['points_per_100_leads']:+.1f} per 100 leads): "
                f"{row['verdict']}."
            )
    mixed = tables.feedback[(tables.feedback["sales_only"] > 0)]
    for _, row in mixed.sort_values("sales_only", ascending=False).head(2).iterrows():
        lines.append(
            f"Sales marked {row['sales_only']} leads as {FACTOR_LABELS[row['factor']].lower()} problems "
            "that the model does not see lowering them."
        )
    lines.append(
        f"{tables.explored:,} leads were routed regardless of score (exploration), so the next model "
        "also learns from leads this one disfavours."
        if tables.explored
        else "No leads were routed regardless of score (LEADSCORE_EXPLORE_SHARE is 0): the next model learns "
        "only from leads routed by this one's scores."
    )
    return lines


def render_html(tables: KpiTables) -> str:
    """One self-contained page drawn by serving/reports/templates/kpis.html.j2 (serving.reports.page)."""
    sections = [_section("sales", "Sales: conversion against expectation", _sales_display(tables.sales))]
    for dim in tables.marketing["dimension"].unique():
        label = "All leads" if dim == "all" else f"Marketing: quality delivered by {dim.replace('_', ' ')}"
        sections.append(_section(f"marketing-{dim}", label, _marketing_display(tables, dim)))
    sections.append(_section("feedback", "Sales feedback against the model", _feedback_display(tables.feedback)))
    with page.plain_text_charts():
        charts = (
            [
                {
                    "caption": "Actual minus expected conversions per owner, with 95% intervals",
                    "png": _chart_sales(tables.sales),
                }
            ]
            if len(tables.sales)
            else []
        )
    return page.render(
        "kpis.html.j2",
        title="Shared KPIs: what marketing delivered, how sales converted",
        source=tables.source,
        summary=summary_lines(tables),
        charts=charts,
        sections=sections,
        lowered_cut=f"{1 - np.exp(LOWERED_AT):.0%}",
    )


def _section(anchor: str, heading: str, frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "anchor": anchor,
        "heading": heading,
        "columns": list(frame.columns),
        "rows": frame.astype(str).to_numpy().tolist(),
    }


def _sales_display(sales: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "owner": sales["owner"].astype(str),
            "leads (final)": [f"{n:,}" for n in sales["leads"]],
            "mean probability": [f"{v:.1%}" for v in sales["mean_probability"]],
            "expected": [f"{v:.1f}" for v in sales["expected"]],
            "actual": [f"{v:.0f}" for v in sales["actual"]],
            "actual − expected (95%)": [
                f"{d:+.1f} ({lo:+.1f} to {hi:+.1f})"
                for d, lo, hi in zip(sales["actual_minus_expected"], sales["low"], sales["high"], strict=True)
            ],
            "per 100 leads": [f"{v:+.1f}" for v in sales["points_per_100_leads"]],
            "actual / expected": [f"{v:.2f}" for v in sales["actual_to_expected"]],
            "verdict": sales["verdict"],
        }
    )


def _marketing_display(tables: KpiTables, dim: str) -> pd.DataFrame:
    rows = tables.marketing[tables.marketing["dimension"] == dim]
    out = pd.DataFrame(
        {
            "group": rows["group"].astype(str).to_numpy(),
            "leads": [f"{n:,}" for n in rows["leads"]],
            "expected conversions": [f"{v:,.1f}" for v in rows["expected_conversions"]],
            "grades " + "/".join(tables.grades): [
                "/".join(f"{r[f'grade_{g}']:.0%}" for g in tables.grades) for _, r in rows.iterrows()
            ],
            "actual of expected (final)": [
                f"{a:,.0f} of {e:,.1f}" if n else "open"
                for a, e, n in zip(rows["actual_final"], rows["expected_final"], rows["final_leads"], strict=True)
            ],
        }
    )
    for factor in tables.factors:
        out[f"lowered by {FACTOR_LABELS[factor].lower()}"] = [f"{v:.0%}" for v in rows[f"lowered_{factor}"]]
    return out


def _feedback_display(feedback: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "factor": [FACTOR_LABELS[f] for f in feedback["factor"]],
            "sales marked": feedback["sales_marked"],
            "model agrees": feedback["model_agrees"],
            "sales only": feedback["sales_only"],
            "agreement": ["" if pd.isna(v) else f"{v:.0%}" for v in feedback["agreement"]],
            "model: share of all leads lowered": [f"{v:.0%}" for v in feedback["model_lowered_share"]],
        }
    )


def _chart_sales(sales: pd.DataFrame) -> str:
    fig = page.figure(7, 0.5 + 0.35 * len(sales))
    ax = fig.add_subplot()
    y = np.arange(len(sales))[::-1]
    ax.errorbar(
        sales["actual_minus_expected"],
        y,
        xerr=[sales["actual_minus_expected"] - sales["low"], sales["high"] - sales["actual_minus_expected"]],
        fmt="o",
        color="#3e7bfa",
        capsize=3,
    )
    ax.axvline(0, color="#52606d", linewidth=1)
    ax.set_yticks(y, sales["owner"].astype(str))
    ax.set_xlabel("actual minus expected conversions")
    return page.png(fig)


def write_kpis(tables: KpiTables, out: str | Path) -> dict[str, Path]:
    """The page and its three tables, together or not at all; formula-like cells neutralised."""
    out = Path(out)
    paths = {
        "html": out / "kpis.html",
        "sales": out / "kpis_sales.csv",
        "marketing": out / "kpis_marketing.csv",
        "feedback": out / "kpis_feedback.csv",
    }
    page = render_html(tables)
    write_together(
        {
            paths["html"]: lambda tmp: tmp.write_text(page, encoding="utf-8"),
            paths["sales"]: lambda tmp: spreadsheet_safe(tables.sales).to_csv(tmp, index=False),
            paths["marketing"]: lambda tmp: spreadsheet_safe(tables.marketing).to_csv(tmp, index=False),
            paths["feedback"]: lambda tmp: spreadsheet_safe(tables.feedback).to_csv(tmp, index=False),
        }
    )
    return paths


# -- command line ---------------------------------------------------------------------------------


def kpis_command(
    *,
    out: str | Path = "reports/",
    data: str | Path | None = None,
    schema: str | Path | None = None,
    model: str | None = None,
    database_url: str | None = None,
    quarter: str | None = None,
) -> int:
    """`leadscore kpis`: from the prediction log (default) or from a lead history file (`data`)."""
    if data:
        tables = _from_history(Path(data), schema=schema, model=model, database_url=database_url, quarter=quarter)
    else:
        tables = _from_log(database_url, schema=schema, model=model)
    paths = write_kpis(tables, out)
    print("\n".join(summary_lines(tables)))
    print(f"wrote {paths['html']} and {', '.join(str(p) for k, p in paths.items() if k != 'html')}")
    return 0


def _from_history(
    data: Path, *, schema: str | Path | None, model: str | None, database_url: str | None, quarter: str | None
) -> KpiTables:
    from features.datasets import load_history_with_schema
    from features.periods import data_end
    from serving.model.scorer import Scorer
    from serving.reports.report import report_window

    frame, lead_schema = load_history_with_schema(data, schema)
    window = report_window(frame, lead_schema, quarter)
    scorer = Scorer.load(model)
    explained = scorer.explain(window, progress=progress.shown())
    leads = kpi_leads_from_history(explained, window, lead_schema, as_of=data_end(frame, lead_schema))
    feedback = read_feedback(database_url, required=False)
    source = (
        f"{len(window):,} leads from {data.name}, scored by {scorer.bundle.name} version "
        f"{scorer.bundle.version}; outcomes from the file where their window has closed"
    )
    return build_kpis(leads, feedback, lead_schema, source=source)


def _from_log(database_url: str | None, *, schema: str | Path | None, model: str | None) -> KpiTables:
    from features.errors import DataError
    from serving.predlog.db import connect, describe, migrate
    from serving.predlog.monitor import scored_leads

    engine = connect(database_url)
    try:
        migrate(engine)
        scored = scored_leads(engine)
    except Exception as exc:
        raise DataError(
            f"cannot read the prediction log at {describe(database_url)}: {str(exc).splitlines()[0]}"
        ) from None
    if scored.empty:
        raise DataError(
            f"the prediction log at {describe(database_url)} has no scores yet "
            "(serve the model and score leads, or use --data FILE)"
        )
    lead_schema = _schema(schema, model)
    leads = kpi_leads_from_log(scored, lead_schema)
    source = (
        f"{len(leads):,} leads from the prediction log ({describe(database_url)}), "
        f"{int(leads['final'].sum()):,} with posted outcomes"
    )
    return build_kpis(leads, read_feedback(database_url, required=True), lead_schema, source=source)


def _schema(path: str | Path | None, model: str | None) -> LeadSchema:
    if path:
        from features.schema import load_schema

        return load_schema(path)
    from serving.model.registry import load_bundle

    return load_bundle(model).schema


def read_feedback(url: str | None = None, *, required: bool = False) -> pd.DataFrame:
    """Sales verdicts (lead id, factor) from the log; with `required` False an unreachable log gives none."""
    from sqlalchemy import select

    from serving.predlog.db import connect, feedback

    try:
        with connect(url).connect() as connection:
            return pd.DataFrame(
                connection.execute(select(feedback.c.lead_id, feedback.c.factor)).mappings().all(),
                columns=["lead_id", "factor"],
            )
    except Exception:
        if required:
            raise
        return pd.DataFrame(columns=["lead_id", "factor"])
