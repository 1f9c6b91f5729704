"""`leadscore train` and `leadscore score` against bad files: each fails fast with one clear line
(exit 2), moves nothing in the registry, and leaves no partial output behind.

Which files are bad depends on the command: scoring needs no outcome, so one class or duplicate ids
are fine to score, and a lead dated tomorrow is still a lead to score. A training file must be clean.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from features.loading import read_table
from support.hardening import registry_state
from training.cli import main

ROWS = 3000


@pytest.fixture(scope="module")
def leads(trained_model) -> pd.DataFrame:
    """A clean slice of the trained history, as text (like a CRM's CSV export)."""
    frame = pd.read_parquet(trained_model.data_path).iloc[:ROWS]
    return frame.astype("string")


def _one_class(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(converted="0", converted_at=pd.NA)


def _mixed_types(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.loc[out.index[::7], "company_size"] = "about 50"
    return out


def _future_dates(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.loc[out.index[::10], "created_at"] = "2099-01-01 09:00:00"
    return out


def _duplicate_ids(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.loc[out.index[5], "lead_id"] = out["lead_id"].iloc[4]
    return out


def _write(frame: pd.DataFrame, path: Path, sep: str = ",") -> Path:
    frame.to_csv(path, index=False, sep=sep)
    return path


def _raw(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


# name -> (writer, words in the message); each writes one file into a folder
CASES: dict[str, tuple[Callable[[pd.DataFrame, Path], Path], str]] = {
    "empty": (lambda f, d: _raw(d / "leads.csv", b""), "the file is empty"),
    "header only": (lambda f, d: _write(f.iloc[:0], d / "leads.csv"), "header but no rows"),
    "one class": (lambda f, d: _write(_one_class(f), d / "leads.csv"), "only one class"),
    "semicolons": (lambda f, d: _write(f, d / "leads.csv", sep=";"), "separated by semicolons"),
    "mixed types": (lambda f, d: _write(_mixed_types(f), d / "leads.csv"), "company_size"),
    "future dates": (lambda f, d: _write(_future_dates(f), d / "leads.csv"), "in the future"),
    "duplicate ids": (lambda f, d: _write(_duplicate_ids(f), d / "leads.csv"), "duplicate lead ids"),
    "not tabular": (lambda f, d: _raw(d / "leads.parquet", b"PAR1 nope"), "not a readable PARQUET table"),
}
BAD_FOR_SCORING = ("empty", "header only", "semicolons", "mixed types", "not tabular")


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def _one_clear_line(err: str, command: str, words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"leadscore {command}: error: ") and words in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("case", list(CASES))
def test_training_on_a_bad_file_fails_fast_and_changes_nothing(
    case: str,
    leads: pd.DataFrame,
    trained_model,
    registry_copy: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write, words = CASES[case]
    folder = tmp_path / "in"
    folder.mkdir()
    data = write(leads, folder)
    before = registry_state(registry_copy)
    models = tmp_path / "models"
    began = time.perf_counter()
    code, err = _run(
        ["train", "--data", str(data), "--schema", str(trained_model.schema_path), "--models-dir", str(models)], capsys
    )
    assert code == 2, err
    _one_clear_line(err, "train", words)
    assert time.perf_counter() - began < 20  # it fails before any model is fitted
    assert registry_state(registry_copy) == before
    assert not models.exists() or not any(models.rglob("*"))


@pytest.mark.parametrize("case", BAD_FOR_SCORING)
def test_scoring_a_bad_file_fails_fast_and_writes_nothing(
    case: str, leads: pd.DataFrame, trained_model, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write, words = CASES[case]
    folder = tmp_path / "in"
    folder.mkdir()
    data = write(leads.drop(columns=["converted", "converted_at"]), folder)
    out = tmp_path / "out" / "scored.csv"
    code, err = _run(
        ["score", "--data", str(data), "--model", str(trained_model.bundle_dir), "--out", str(out)], capsys
    )
    assert code == 2, err
    _one_clear_line(err, "score", "company_size" if case == "mixed types" else words)
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # no temporary file left behind


@pytest.mark.parametrize("case", ["one class", "duplicate ids", "future dates"])
def test_scoring_accepts_what_only_training_refuses(
    case: str, leads: pd.DataFrame, trained_model, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write, _ = CASES[case]
    data = write(leads.iloc[:200], tmp_path)
    out = tmp_path / "scored.csv"
    code, err = _run(
        ["score", "--data", str(data), "--model", str(trained_model.bundle_dir), "--out", str(out)], capsys
    )
    assert code == 0, err
    assert len(read_table(out)) == 200


def test_a_large_file_that_does_not_fit_the_schema_fails_from_its_header(
    leads: pd.DataFrame,
    trained_model,
    registry_copy: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Stands in for a file larger than memory: the refusal must come before any row is read."""
    import features.loading
    import serving.reports.batch

    text = leads.drop(columns=["industry"]).to_csv(index=False)
    header, body = text.split("\n", 1)
    big = tmp_path / "huge.csv"
    with big.open("w") as handle:
        handle.write(header + "\n")
        for _ in range(60):  # ~180k rows, ~50 MB
            handle.write(body)
    began = time.perf_counter()
    read_table(big)
    full_read_s = time.perf_counter() - began

    rows_read: list[str] = []
    real_read_table, real_iter_table = features.loading.read_table, serving.reports.batch.iter_table
    monkeypatch.setattr(
        features.loading, "read_table", lambda *a, **k: rows_read.append("read_table") or real_read_table(*a, **k)
    )
    monkeypatch.setattr(
        serving.reports.batch, "iter_table", lambda *a, **k: rows_read.append("iter_table") or real_iter_table(*a, **k)
    )
    before = registry_state(registry_copy)
    began = time.perf_counter()
    code, err = _run(
        [
            "train",
            "--data",
            str(big),
            "--schema",
            str(trained_model.schema_path),
            "--models-dir",
            str(tmp_path / "models"),
        ],
        capsys,
    )
    train_s = time.perf_counter() - began
    _one_clear_line(err, "train", "missing feature columns named in the schema: industry")
    assert code == 2 and registry_state(registry_copy) == before

    no_features = tmp_path / "notes.csv"  # a big file sharing no column with the model but the id
    with no_features.open("w") as handle:
        handle.write("lead_id,note\n" + ("L1," + "n" * 80 + "\n") * 500_000)
    code, err = _run(
        [
            "score",
            "--data",
            str(no_features),
            "--model",
            str(trained_model.bundle_dir),
            "--out",
            str(tmp_path / "scored.csv"),
        ],
        capsys,
    )
    _one_clear_line(err, "score", "none of the model's")
    assert code == 2 and not (tmp_path / "scored.csv").exists()

    print(f"full read of {big.stat().st_size / 1e6:.0f} MB: {full_read_s:.2f} s; train refused in {train_s:.3f} s")
    assert rows_read == []  # both refused from the header alone
    assert train_s < full_read_s / 5
