"""The shared KPI report on the synthetic history, whose planted sellers we know."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from features.synthetic import STRONG_OWNER, WEAK_OWNER, bundled_schema
from serving.reports.kpis import build_kpis, kpi_leads_from_history, render_html, sales_table, write_kpis


@pytest.fixture(scope="module")
def kpi_leads(trained_model: Any) -> pd.DataFrame:
    """The session's champion (trained by the real pipeline) on the last four quarters of its history."""
    from features.periods import data_end
    from serving.model.scorer import Scorer
    from serving.reports.report import report_window

    history, schema = trained_model.history.leads, bundled_schema()
    window = report_window(history, schema)
    explained = Scorer.load(trained_model.bundle_dir).explain(window)
    return kpi_leads_from_history(explained, window, schema, as_of=data_end(history, schema))


def test_sellers_are_ranked_against_what_they_were_handed(kpi_leads: pd.DataFrame) -> None:
    sales = sales_table(kpi_leads).set_index("owner")
    ranking = list(sales.index)
    assert ranking[0] == STRONG_OWNER and ranking[-1] == WEAK_OWNER
    assert sales.loc[STRONG_OWNER, "verdict"] == "above expectation"
    assert sales.loc[WEAK_OWNER, "verdict"] == "below expectation"
    # the strong seller was handed weaker leads than the weak one: a raw conversion rate would hide it
    assert sales.loc[STRONG_OWNER, "mean_probability"] < sales.loc[WEAK_OWNER, "mean_probability"]
    others = sales.drop([STRONG_OWNER, WEAK_OWNER])
    assert (others["low"] < others["actual_minus_expected"]).all()
    assert (others["actual_minus_expected"].abs() < sales.loc[STRONG_OWNER, "actual_minus_expected"]).all()


def test_only_final_outcomes_are_judged(kpi_leads: pd.DataFrame) -> None:
    sales = sales_table(kpi_leads)
    assert 0 < sales["leads"].sum() < len(kpi_leads)  # the newest leads are still open
    assert sales["expected"].sum() == pytest.approx(kpi_leads.loc[kpi_leads["final"] > 0, "probability"].sum())


def test_feedback_is_set_against_what_the_model_said(kpi_leads: pd.DataFrame) -> None:
    lowered = kpi_leads[kpi_leads["lowered_authority"] > 0]["lead_id"].head(3).tolist()
    not_lowered = kpi_leads[kpi_leads["lowered_authority"] == 0]["lead_id"].head(2).tolist()
    feedback = pd.DataFrame({"lead_id": lowered + not_lowered + ["unknown-lead"], "factor": "authority"})
    tables = build_kpis(kpi_leads, feedback, bundled_schema())
    row = tables.feedback.set_index("factor").loc["authority"]
    assert (row["sales_marked"], row["scored"], row["model_agrees"], row["sales_only"]) == (6, 5, 3, 2)
    assert row["agreement"] == pytest.approx(0.6)


def test_the_page_names_the_sellers_and_the_campaigns(kpi_leads: pd.DataFrame, tmp_path: Path) -> None:
    tables = build_kpis(kpi_leads, pd.DataFrame(columns=["lead_id", "factor"]), bundled_schema(), source="test")
    paths = write_kpis(tables, tmp_path)
    page = paths["html"].read_text()
    assert f"{STRONG_OWNER}: " in page and "above expectation" in page and "below expectation" in page
    assert "list-vendor-a" in page and "purchased_list" in page
    assert "No leads were routed regardless of score" in page
    marketing = pd.read_csv(paths["marketing"])
    by_source = marketing[marketing["dimension"] == "lead_source"]
    assert by_source["leads"].sum() == len(kpi_leads)
    assert by_source["expected_conversions"].sum() == pytest.approx(kpi_leads["probability"].sum())
    assert render_html(tables).count("<section") == 7  # summary, sales, all, source, campaign, feedback, definitions


def test_names_from_the_data_are_text_on_the_page(kpi_leads: pd.DataFrame) -> None:
    """Owners and campaigns come from a CRM: markup is shown escaped, a $ does not become chart math."""
    leads = kpi_leads.copy()
    owner = leads["owner"].iloc[0]
    leads["owner"] = leads["owner"].replace(owner, "<script>alert(1)</script> Save $50 & $100")
    leads["campaign"] = leads["campaign"].astype(str).str.replace(r"^", "<b>", regex=True)
    page = render_html(build_kpis(leads, pd.DataFrame(columns=["lead_id", "factor"]), bundled_schema()))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; Save $50 &amp; $100" in page
    assert "<b>" not in page.replace("<b>Expected</b>", "").replace("<b>lowered by</b>", "").replace(
        "<b>Model agrees</b>", ""
    )
    assert "&lt;b&gt;" in page
