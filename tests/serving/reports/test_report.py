"""The lead-quality report: numbers marketing can trust, a summary that names what got worse, a page that opens."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import DataError
from features.factors import FACTORS
from features.schema import LeadSchema, schema_from_dict
from features.synthetic import QUALITY_FACTORS, bundled_schema, generate, write_history
from serving.reports.report import (
    ALL,
    LOWERED_AT,
    build_report,
    render_html,
    report_window,
    worsened_groups,
    write_report,
)


def truth_explained(leads: pd.DataFrame, truth: pd.DataFrame, schema: LeadSchema) -> pd.DataFrame:
    """A frame shaped like `Scorer.explain` whose impacts are the generator's true factor effects."""
    p = truth["true_probability"].to_numpy()
    out = pd.DataFrame(
        {
            "lead_id": leads["lead_id"].to_numpy(),
            "probability": p,
            "score": np.clip(np.round(p * 100), 1, 99).astype(int),
            "grade": [schema.grade(x) for x in p],
            "raw_score": truth["true_logit"].to_numpy(),
        }
    )
    for factor in FACTORS:
        out[f"impact_{factor}"] = truth[f"true_{factor}"].to_numpy() if factor in QUALITY_FACTORS else 0.0
    out["top_lowering_factor"] = None
    out["top_lowering_reason"] = None
    return out


@pytest.fixture(scope="module")
def schema() -> LeadSchema:
    return bundled_schema()


@pytest.fixture(scope="module")
def history():
    return generate(quarters=6, leads_per_quarter=3000, seed=11)


@pytest.fixture(scope="module")
def explained(history, schema) -> pd.DataFrame:
    return truth_explained(history.leads, history.truth, schema)


@pytest.fixture(scope="module")
def tables(explained, history, schema):
    return build_report(explained, history.leads, schema)


@pytest.fixture(scope="module")
def worse_history(history, schema):
    """Trade-show leads lose their contact data in the latest quarter: the report must say so."""
    leads, explained = history.leads.copy(), truth_explained(history.leads, history.truth, schema)
    hit = (leads["lead_source"] == "trade_show") & (leads["created_at"] >= "2026-07-01")
    explained.loc[hit, "impact_contactability"] -= 1.5
    explained.loc[hit, "raw_score"] -= 1.5
    return leads, explained


def _row(tables, dimension: str, group: str) -> pd.Series:
    rows = tables.current
    return rows[(rows["dimension"] == dimension) & (rows["group"] == group)].iloc[0]


def test_report_covers_the_latest_quarter_against_the_one_before(tables):
    assert (tables.quarter, tables.previous) == ("2026Q3", "2026Q2")
    assert set(tables.current["dimension"]) == {ALL, "lead_source", "campaign"}


def test_group_counts_add_up_to_all_leads(tables, history):
    in_quarter = (history.leads["created_at"] >= "2026-07-01").sum()
    rows = tables.current
    assert _row(tables, ALL, "All leads")["leads"] == in_quarter
    assert rows.loc[rows["dimension"] == "lead_source", "leads"].sum() == in_quarter
    assert rows.loc[rows["dimension"] == "campaign", "leads"].sum() == in_quarter


def test_expected_conversions_are_the_sum_of_probabilities(tables, explained, history):
    mask = (history.leads["lead_source"] == "referral") & (history.leads["created_at"] >= "2026-07-01")
    row = _row(tables, "lead_source", "referral")
    assert row["expected_conversions"] == pytest.approx(explained.loc[mask, "probability"].sum())


def test_expected_meets_actual_on_a_quarter_with_final_outcomes(tables):
    assert tables.calibration_quarter == "2026Q2"
    q = tables.quarterly
    row = q[(q["dimension"] == ALL) & (q["quarter"] == "2026Q2")].iloc[0]
    assert row["final_leads"] == row["leads"]
    # True probabilities: actual conversions fall within sampling error of the expected count.
    assert abs(row["actual_final"] - row["expected_final"]) < 3 * np.sqrt(row["expected_final"])


def test_the_open_quarter_does_not_pretend_to_know_its_outcomes(tables):
    row = _row(tables, ALL, "All leads")
    assert row["final_leads"] < 0.1 * row["leads"]


def test_grade_mix_sums_to_one(tables):
    shares = tables.current[[f"grade_{g}" for g in tables.grades]].sum(axis=1)
    assert np.allclose(shares, 1.0)


def test_lowered_share_counts_leads_whose_factor_costs_enough(tables, explained, history):
    leads = history.leads
    mask = ((leads["lead_source"] == "purchased_list") & (leads["created_at"] >= "2026-07-01")).to_numpy()
    expected = (explained.loc[mask, "impact_readiness"] <= LOWERED_AT).mean()
    assert _row(tables, "lead_source", "purchased_list")["lowered_readiness"] == pytest.approx(expected)
    # Purchased lists carry no web tracking: readiness is what lowers them most.
    assert _row(tables, "lead_source", "purchased_list")["lowered_by"].split(",")[0].endswith("buying readiness")


def test_summary_names_the_source_that_got_worse_and_the_factor(worse_history, schema):
    leads, explained = worse_history
    tables = build_report(explained, leads, schema)
    worse = worsened_groups(tables.current, "lead_source", tables.factors)
    assert worse["group"].tolist() == ["trade_show"]
    assert worse.iloc[0]["worst_factor"] == "contactability"
    line = next(s for s in tables.summary if s.startswith("Trade show"))
    assert "contact data" in line and "2026Q2" in line
    row = _row(tables, "lead_source", "trade_show")
    assert row["lowered_contactability_change"] > 0.2


def test_no_source_is_blamed_when_nothing_changed(tables):
    assert any(line.startswith("No lead source brought worse leads") for line in tables.summary)


def test_an_earlier_quarter_can_be_reported(explained, history, schema):
    tables = build_report(explained, history.leads, schema, quarter="2026q1")
    assert (tables.quarter, tables.previous) == ("2026Q1", "2025Q4")
    assert tables.quarterly["quarter"].max() == "2026Q1"


def test_first_quarter_has_no_previous_and_says_so(explained, history, schema):
    tables = build_report(explained, history.leads, schema, quarter="2025Q2")
    assert tables.previous is None
    assert any("No previous quarter" in line for line in tables.summary)


def test_bad_inputs_are_one_clear_error(explained, history, schema):
    with pytest.raises(DataError, match="2031Q1"):
        build_report(explained, history.leads, schema, quarter="2031Q1")
    with pytest.raises(DataError, match="region"):
        build_report(explained, history.leads, schema, by=["region"])
    with pytest.raises(DataError, match="differ in length"):
        build_report(explained.iloc[:10], history.leads, schema)
    with pytest.raises(DataError, match="row order"):
        build_report(explained.iloc[::-1].reset_index(drop=True), history.leads, schema)


def test_grouping_follows_the_schema_roles_so_a_utm_export_needs_no_renaming(explained, history, schema):
    leads = history.leads.rename(columns={"lead_source": "utm_source"})
    raw = schema.to_dict()
    raw["roles"]["source"] = "utm_source"
    raw["context"] = ["campaign"]
    utm = schema_from_dict(raw)
    tables = build_report(explained, leads, utm)
    assert tables.by == ("utm_source", "campaign")
    assert set(tables.current["dimension"]) >= {"utm_source", "campaign"}
    assert "trade_show" in set(tables.current.loc[tables.current["dimension"] == "utm_source", "group"])


def test_report_window_keeps_the_quarter_and_the_three_before(history, schema):
    window = report_window(history.leads, schema, "2026Q2")
    assert window["created_at"].min() >= pd.Timestamp("2025-07-01")
    assert window["created_at"].max() < pd.Timestamp("2026-07-01")


def test_html_is_self_contained_with_summary_tables_and_charts(tables):
    page = render_html(tables)
    assert page.startswith("<!DOCTYPE html>")
    assert 'id="summary"' in page and tables.summary[0] in page
    assert "By lead source" in page and "By campaign" in page
    # Nothing is fetched: no external scripts, styles, fonts or images.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<script" not in page and "@import" not in page and "url(" not in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3
    assert all(base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n") for data in images)


def test_html_says_what_score_and_grades_mean_without_log_odds(tables, schema):
    page = render_html(tables)
    meaning = re.search(r'<p id="meaning">(.*?)</p>', page).group(1)
    floors = list(schema.grades.values())
    assert "chance of converting (converted within 90 days of creation), in percent" in meaning
    assert f"A from {floors[0]:.0%}, B from {floors[1]:.0%}, C from {floors[2]:.0%}, D below {floors[2]:.0%}" in meaning
    assert "sales and marketing agreed on" in meaning
    definitions = page[page.index('id="definitions"') :]
    assert "log-odds" not in definitions and "cuts its odds of converting by 22% or more" in definitions


def test_campaigns_show_their_lead_source(tables, history):
    page = render_html(tables)
    leads = history.leads
    campaign = leads["campaign"].value_counts().index[0]
    sources = leads.loc[leads["campaign"] == campaign, "lead_source"].value_counts()
    assert len(sources) == 1, "the synthetic history runs each campaign in one source"
    assert f"<td>{campaign} <small>({sources.index[0]})</small></td>" in page
    assert "<td>paid_search <small>" not in page  # a source row needs no source


def test_no_change_is_never_shown_as_minus_zero() -> None:
    from serving.reports.report import _with_change

    # (value, change): the template shows the change in brackets after the value
    assert _with_change(0.31, -0.2, "{:.0%}", "{:+.0f} pp") == ("31%", "±0 pp")
    assert _with_change(4.0, -0.04, "{:.1f}", "{:+.1f}") == ("4.0", "±0.0")
    assert _with_change(0.31, -2.4, "{:.0%}", "{:+.0f} pp") == ("31%", "-2 pp")
    assert _with_change(0.31, 0.6, "{:.0%}", "{:+.0f} pp") == ("31%", "+1 pp")


def test_html_escapes_group_names(explained, history, schema):
    leads = history.leads.copy()
    leads["campaign"] = leads["campaign"].str.replace("seo-blog", "<b>seo</b>", regex=False)
    page = render_html(build_report(explained, leads, schema))
    assert "<b>seo</b>" not in page and "&lt;b&gt;seo&lt;/b&gt;" in page


def test_files_are_written_together(tables, tmp_path):
    paths = write_report(tables, tmp_path / "reports")
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [
        "report.csv",
        "report.html",
        "report_quarterly.csv",
    ]
    csv = pd.read_csv(paths["csv"])
    assert {
        "dimension",
        "group",
        "leads",
        "mean_score",
        "expected_conversions",
        "actual_final",
        "lowered_contactability",
        "lowered_contactability_change",
        "lowered_by",
    } <= set(csv.columns)
    assert (csv["quarter"] == "2026Q3").all()


# -- with the real scorer and the command line ------------------------------------------------------


def test_report_agrees_with_the_real_scorer(scorer, schema):
    """`scorer` is the session bundle from tests/serving/conftest.py: a small model trained like training does."""
    leads = generate(quarters=3, leads_per_quarter=800, seed=21).leads
    explained = scorer.explain(leads)
    tables = build_report(explained, leads, schema)
    latest = (leads["created_at"] >= "2026-07-01").to_numpy()
    overall = _row(tables, ALL, "All leads")
    assert overall["expected_conversions"] == pytest.approx(scorer.predict_proba(leads[latest]).sum())
    assert overall["lowered_contactability"] == pytest.approx(
        (explained.loc[latest, "impact_contactability"] <= LOWERED_AT).mean()
    )
    assert tables.factors == ("icp_fit", "readiness", "contactability", "timeline", "authority", "product_fit")
    assert tables.summary[0].startswith("2026Q3: 800 leads")


def test_cli_writes_the_page_and_the_tables(bundle_dir, tmp_path, capsys):
    from training.cli import main

    data = tmp_path / "leads.parquet"
    write_history(generate(quarters=3, leads_per_quarter=600, seed=4), data)
    code = main(
        [
            "report",
            "--data",
            str(data),
            "--model",
            str(bundle_dir),
            "--quarter",
            "2026Q2",
            "--out",
            str(tmp_path / "reports"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("2026Q2: 600 leads") and "report.html" in out
    page = tmp_path / "reports" / "report.html"
    assert "Lead quality report, 2026Q2" in page.read_text()
    assert page.stat().st_mode & 0o044, "the report should be readable by others, like any file"
    csv = pd.read_csv(tmp_path / "reports" / "report.csv")
    assert set(csv["quarter"]) == {"2026Q2"}
    # 2026Q2's outcomes are final in this export (which runs to 2026Q3), so actuals are reported.
    overall = csv[csv["dimension"] == ALL].iloc[0]
    assert overall["final_leads"] == overall["leads"] and overall["actual_final"] >= 0


def test_cli_refuses_an_unknown_grouping_column_in_one_line(bundle_dir, tmp_path, capsys):
    from training.cli import main

    data = tmp_path / "leads.parquet"
    write_history(generate(quarters=2, leads_per_quarter=200, seed=4), data)
    code = main(
        [
            "report",
            "--data",
            str(data),
            "--model",
            str(bundle_dir),
            "--by",
            "region",
            "--out",
            str(tmp_path / "reports"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "region" in err
    assert not (tmp_path / "reports").exists()


# -- in a real browser, offline ------------------------------------------------------------------

# Appended to a copy of the page: after load, record how many images the browser actually decoded.
PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images];
  document.body.dataset.images = imgs.length;
  document.body.dataset.decoded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
});
</script>"""


@pytest.fixture(scope="module")
def page(tables, tmp_path_factory) -> tuple[Path, tuple[str, ...]]:
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_html(tables), encoding="utf-8")
    return path, tables.summary


def test_chromium_renders_the_summary_and_decodes_every_chart(page, tmp_path, chromium):
    path, summary = page
    probed = tmp_path / "probed.html"
    probed.write_text(path.read_text().replace("</body>", PROBE + "</body>"), encoding="utf-8")
    result = chromium(probed.as_uri(), "--dump-dom")
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'id="summary"' in dom and summary[0] in dom
    images = re.search(r'data-images="(\d+)"', dom)
    decoded = re.search(r'data-decoded="(\d+)"', dom)
    assert images and decoded, "the load probe did not run"
    assert int(images.group(1)) == 3
    assert decoded.group(1) == images.group(1)


def test_chromium_screenshot_shows_the_page(page, tmp_path, chromium):
    from matplotlib.image import imread

    path, _ = page
    shot = tmp_path / "shot.png"
    result = chromium(path.as_uri(), f"--screenshot={shot}", "--window-size=1280,1600")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = imread(shot)[..., :3]
    # Not a blank page: plenty of non-white pixels, and colour from the charts (not only black text).
    assert (pixels.min(axis=2) < 0.9).mean() > 0.05
    assert (pixels.max(axis=2) - pixels.min(axis=2) > 0.3).mean() > 0.01
