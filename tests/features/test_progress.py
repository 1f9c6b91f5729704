"""Progress on stderr: rows done, rate and time left, only for a person at a terminal."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from features import progress


@pytest.fixture(autouse=True)
def _not_quiet():
    progress.set_quiet(False)
    yield
    progress.set_quiet(False)


def test_a_bar_shows_rows_done_rate_and_time_left(capsys) -> None:
    with progress.rows(4000, "score", enabled=True) as advance:
        for _ in range(4):
            advance(1000)
    err = capsys.readouterr().err
    final = err.replace("\r", "\n").strip().splitlines()[-1]
    assert final.startswith("score: 100%|") and "| 4,000/4,000 leads [" in final, final
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d, [\d.]+[kMG]?lead/s\]$", final), final  # elapsed<left, rate


def test_without_a_total_rows_and_rate_are_shown(capsys) -> None:
    with progress.rows(None, "score", enabled=True) as advance:
        advance(1234)
    final = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert re.fullmatch(r"score: 1,234 leads \[\d\d:\d\d, [\d.]+[kMG]?lead/s\]", final), final


def test_nothing_is_drawn_off_a_terminal_or_when_quiet(capsys) -> None:
    with progress.rows(10, "score") as advance:  # stderr is captured here, not a terminal
        advance(10)
    progress.set_quiet(True)
    with progress.rows(10, "score", enabled=True) as advance:
        advance(10)
    progress.Steps("train", ["fit"], enabled=True).start("fit")
    assert capsys.readouterr().err == ""


def test_track_advances_by_each_chunk_after_it_is_used(capsys) -> None:
    chunks = [list(range(3)), list(range(2))]
    assert list(progress.track(chunks, 5, "explain", enabled=True)) == chunks
    assert "| 5/5 leads [" in capsys.readouterr().err


def test_steps_say_which_step_runs_and_how_far_in(capsys) -> None:
    steps = progress.Steps("train", ["read the data", "fit the model"], enabled=True)
    steps.start("fit the model")
    steps.start("fit fold 2")
    assert capsys.readouterr().err.splitlines() == [
        "train: fit the model (step 2 of 2, 0s so far)",
        "train: fit fold 2 (0s so far)",
    ]


@pytest.mark.parametrize("text", ["id,x\n1,a\n2,b\n3,c\n", "id,x\n1,a\n2,b\n3,c"])
def test_rows_are_counted_without_reading_the_table(tmp_path: Path, text: str) -> None:
    csv = tmp_path / "leads.csv"
    csv.write_text(text)
    parquet = tmp_path / "leads.parquet"
    pd.DataFrame({"id": range(7)}).to_parquet(parquet)
    assert progress.count_rows(csv) == 3
    assert progress.count_rows(parquet) == 7
    assert progress.count_rows(tmp_path / "missing.csv") is None
