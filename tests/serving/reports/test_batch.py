"""`leadscore score`: chunked, in input order, atomic output, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import DataError, LeadscoreError
from features.factors import FACTORS
from features.synthetic import SyntheticHistory, write_history
from serving.reports import batch
from training.cli import main


@pytest.fixture(scope="module")
def few(fresh) -> SyntheticHistory:
    return SyntheticHistory(leads=fresh.leads.iloc[:1500], truth=fresh.truth.iloc[:1500])


@pytest.fixture(scope="module")
def leads_files(few, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("batch")
    return {fmt: write_history(few, folder / f"leads.{fmt}")["leads"] for fmt in ("csv", "parquet")}


@pytest.mark.parametrize("src, dst", [("csv", "csv"), ("parquet", "parquet"), ("csv", "parquet")])
def test_scores_every_lead_in_input_order(
    leads_files, bundle_dir: Path, scorer, few, tmp_path: Path, src: str, dst: str, capsys
) -> None:
    out = tmp_path / f"scored.{dst}"
    code = main(
        ["score", "--data", str(leads_files[src]), "--model", str(bundle_dir), "--out", str(out), "--chunk-rows", "700"]
    )
    assert code == 0 and "scored 1,500 leads" in capsys.readouterr().out
    scored = pd.read_csv(out) if dst == "csv" else pd.read_parquet(out)
    assert list(scored.columns) == [
        "lead_id",
        "probability",
        "score",
        "grade",
        "raw_score",
        *[f"impact_{f}" for f in FACTORS],
        "top_lowering_factor",
        "top_lowering_reason",
    ]
    assert scored["lead_id"].tolist() == few.leads["lead_id"].tolist()
    np.testing.assert_allclose(scored["probability"], scorer.predict_proba(few.leads), rtol=0, atol=1e-12)
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


def test_a_failure_half_way_leaves_no_output(leads_files, scorer, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "scored.csv"
    calls = {"n": 0}
    real = scorer.explain

    def explode_on_second_chunk(frame, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise DataError("chunk 2 is broken")
        return real(frame, **kwargs)

    monkeypatch.setattr(scorer, "explain", explode_on_second_chunk)
    with pytest.raises(DataError):
        batch.score_file(scorer=scorer, data=leads_files["csv"], out=out, chunk_rows=600)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_survives_a_failed_run(leads_files, bundle_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "scored.csv"
    out.write_text("previous results\n")
    missing = tmp_path / "nope.csv"
    assert main(["score", "--data", str(missing), "--model", str(bundle_dir), "--out", str(out)]) == 2
    assert out.read_text() == "previous results\n"


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda d: d / "nothing.csv", "data file not found"),
        (lambda d: (d / "x.csv").write_text("a,b\n1,2\n") and d / "x.csv", "none of the model's 24 feature columns"),
        (lambda d: (d / "h.csv").write_text("lead_id,industry\n") and d / "h.csv", "header but no rows"),
    ],
)
def test_data_problems_are_one_line_errors(bundle_dir: Path, tmp_path: Path, capsys, make, words: str) -> None:
    data = make(tmp_path)
    assert main(["score", "--data", str(data), "--model", str(bundle_dir), "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err


def test_unsupported_output_type_is_refused_before_scoring(leads_files, tmp_path: Path) -> None:
    with pytest.raises(LeadscoreError, match="unsupported file type"):
        batch.score_command(
            data=leads_files["csv"], model=str(tmp_path / "no-model"), out=tmp_path / "o.xlsx", chunk_rows=10
        )


def test_missing_model_is_a_one_line_error(leads_files, tmp_path: Path, capsys) -> None:
    code = main(
        [
            "score",
            "--data",
            str(leads_files["csv"]),
            "--model",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "o.csv"),
        ]
    )
    assert code == 2 and "no model bundle" in capsys.readouterr().err
