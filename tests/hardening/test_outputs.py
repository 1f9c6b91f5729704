"""What we write for people: no CSV cell a spreadsheet would run as a formula, a report that renders
any campaign name as plain text and whose files appear together or not at all, and a full disk
said in one line."""

from __future__ import annotations

import dataclasses
import resource
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from features.synthetic import generate, write_history
from support.hardening import Registry
from training.cli import main

FORMULAS = ['=HYPERLINK("http://x.example","click")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)"]
DOLLAR_SOURCES = ["Save $50 now and $100 later", "Partner $ referral"]


@pytest.fixture(scope="module")
def hostile_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small history whose ids, sources and campaigns are what a hostile or careless form would send."""
    history = generate(quarters=3, leads_per_quarter=600, seed=4)
    leads = history.leads.copy()
    leads["lead_id"] = leads["lead_id"].astype("string")
    for i, text in enumerate(FORMULAS):
        leads.loc[leads.index[i::50], "lead_id"] = [f"{text}#{k}" for k in range(len(leads.index[i::50]))]
        leads.loc[leads["campaign"] == leads["campaign"].unique()[i], "campaign"] = text
    sources = leads["lead_source"].unique()
    for source, text in zip(sources, DOLLAR_SOURCES, strict=False):
        leads.loc[leads["lead_source"] == source, "lead_source"] = text
    history = dataclasses.replace(history, leads=leads)
    path = tmp_path_factory.mktemp("hostile") / "leads.parquet"
    write_history(history, path)
    return path


def _first_chars(path: Path, columns: list[str]) -> set[str]:
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    return {cell[:1] for column in columns for cell in raw[column] if cell}


def test_scored_csv_neutralises_formula_cells(
    registry: Registry, hostile_history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scored.csv"
    code = main(
        [
            "score",
            "--data",
            str(hostile_history),
            "--model",
            str(registry.bundle_dir(registry.versions[0])),
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    raw = pd.read_csv(out, dtype=str, keep_default_na=False)
    risky = raw[raw["lead_id"].str.contains("#")]
    assert len(risky) > 100 and risky["lead_id"].str.startswith("'").all()
    assert not _first_chars(out, ["lead_id"]) & set("=+-@")
    assert raw["probability"].astype(float).between(0, 1).all()  # numbers stay numbers


def test_the_report_renders_dollar_signs_as_text_and_neutralises_formula_cells(
    registry: Registry, hostile_history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports"
    code = main(
        [
            "report",
            "--data",
            str(hostile_history),
            "--model",
            str(registry.bundle_dir(registry.versions[0])),
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    page = (out / "report.html").read_text()
    assert all(source in page for source in DOLLAR_SOURCES)
    for name in ("report.csv", "report_quarterly.csv"):
        groups = pd.read_csv(out / name, dtype=str, keep_default_na=False)["group"]
        assert set(FORMULAS) & set(groups) == set()
        assert {f"'{text}" for text in FORMULAS} <= set(groups), name
        assert set(DOLLAR_SOURCES) <= set(groups)


def test_report_files_appear_together_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.reports import report

    history = generate(quarters=2, leads_per_quarter=300, seed=5)
    explained = pd.DataFrame(
        {
            "lead_id": history.leads["lead_id"],
            "probability": 0.1,
            "score": 10,
            "grade": "C",
            "raw_score": -2.0,
            **{f"impact_{f}": 0.0 for f in report.FACTORS},
            "top_lowering_factor": None,
            "top_lowering_reason": None,
        }
    )
    from features.synthetic import bundled_schema

    tables = report.build_report(explained, history.leads, bundled_schema())
    out = tmp_path / "reports"
    out.mkdir()
    (out / "report.html").write_text("the previous report")

    def broken(*args, **kwargs):
        raise RuntimeError("a chart could not be drawn")

    monkeypatch.setattr(report, "_chart_score_trend", broken)
    with pytest.raises(RuntimeError):
        report.write_report(tables, out)
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]  # no new CSV beside the old page
    assert (out / "report.html").read_text() == "the previous report"
    monkeypatch.undo()
    report.write_report(tables, out)
    assert sorted(p.name for p in out.iterdir()) == ["report.csv", "report.html", "report_quarterly.csv"]


def test_a_full_disk_while_scoring_is_one_line_and_leaves_no_file(registry: Registry, tmp_path: Path) -> None:
    data = tmp_path / "leads.parquet"
    pd.read_parquet(registry.data_path).iloc[:3000].to_parquet(data)
    out = tmp_path / "out" / "scored.csv"
    limit = 150_000  # bytes any file of this process may grow to: writing the scores runs out of room

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.cli",
            "score",
            "--data",
            str(data),
            "--model",
            str(registry.bundle_dir(registry.versions[0])),
            "--out",
            str(out),
            "--chunk-rows",
            "500",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=small_disk,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("leadscore score: error: File too large"), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert not out.exists() and list(out.parent.iterdir()) == []
