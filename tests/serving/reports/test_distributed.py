"""`leadscore score --engine dask` and Dask frames in notebooks, on a real LocalCluster of 2 worker processes.

The promise: the cluster's output is the in-process output (same ids, probabilities and factor
impacts to 1e-12), a bad cell in one partition fails the run naming the file, partition and row, and a
failed run leaves no output folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import DataError
from features.factors import FACTORS
from features.synthetic import SyntheticHistory, write_history
from serving.reports import analyst, batch, distributed
from support.readme_examples import README
from training.cli import main

NUMBERS = ["probability", "raw_score", *[f"impact_{f}" for f in FACTORS]]


@pytest.fixture(scope="module")
def leads(fresh: SyntheticHistory) -> pd.DataFrame:
    return fresh.leads.iloc[:3000].reset_index(drop=True)


@pytest.fixture(scope="module")
def files(leads: pd.DataFrame, fresh: SyntheticHistory, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 3,000 leads as one CSV, as Parquet with 5 row groups, and as 3 CSV parts in a folder."""
    folder = tmp_path_factory.mktemp("dask-input")
    csv = write_history(SyntheticHistory(leads=leads, truth=fresh.truth.iloc[:3000]), folder / "leads.csv")["leads"]
    parquet = folder / "leads.parquet"
    leads.to_parquet(parquet, row_group_size=600, index=False)
    parts = folder / "parts"
    parts.mkdir()
    for k, start in enumerate(range(0, len(leads), 1000)):
        leads.iloc[start : start + 1000].to_csv(parts / f"leads-{k}.csv", index=False)
    return {"csv": csv, "parquet": parquet, "parts": parts}


@pytest.fixture(scope="module")
def in_process(scorer, files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("in-process") / "scored.parquet"
    batch.score_file(scorer=scorer, data=files["csv"], out=out, chunk_rows=700)
    return pd.read_parquet(out)


def assert_same(scored: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(scored.columns) == list(expected.columns)
    assert scored["lead_id"].tolist() == expected["lead_id"].tolist()
    np.testing.assert_allclose(scored[NUMBERS].to_numpy(float), expected[NUMBERS].to_numpy(float), rtol=0, atol=1e-12)
    for column in ("score", "grade", "top_lowering_factor", "top_lowering_reason"):
        assert (
            scored[column].astype(object).where(scored[column].notna(), None).tolist()
            == expected[column].astype(object).where(expected[column].notna(), None).tolist()
        ), column


@pytest.mark.parametrize("source", ["parquet", "parts"])
def test_cluster_output_equals_the_in_process_output(
    dask_client, scorer, files, in_process, tmp_path: Path, source: str
) -> None:
    out = tmp_path / "scored"
    summary = distributed.score_files(scorer, files[source], out, client=dask_client, chunk_rows=250)
    assert summary["rows"] == 3000 and summary["partitions"] == (5 if source == "parquet" else 3)
    assert sorted(p.name for p in out.iterdir()) == [f"part-{k:05d}.parquet" for k in range(summary["partitions"])]
    assert_same(pd.read_parquet(out), in_process)
    assert [p.name for p in tmp_path.iterdir()] == ["scored"]  # no staging folder left behind
    loaded = dask_client.run(
        lambda dask_worker: [
            name for name, plugin in dask_worker.plugins.items() if getattr(plugin, "scorer", None) is not None
        ]
    )
    assert len(loaded) == 2 and all(names for names in loaded.values())  # each worker holds the loaded bundle


def test_cli_writes_one_csv_from_csv_blocks(
    dask_client, bundle_dir: Path, files, in_process, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "scored.csv"
    code = main(
        [
            "score",
            "--engine",
            "dask",
            "--scheduler",
            dask_client.scheduler.address,
            "--data",
            str(files["parts"] / "*.csv"),
            "--model",
            str(bundle_dir),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert "scored 3,000 leads in 3 partitions" in capsys.readouterr().out
    assert_same(pd.read_csv(out, dtype={"lead_id": "string"}), in_process)
    assert [p.name for p in tmp_path.iterdir()] == ["scored.csv"]


def test_bad_cell_names_file_partition_and_row_and_leaves_no_output(dask_client, scorer, leads, tmp_path: Path) -> None:
    """Row 2,345 of one CSV, in its fourth 64 kB block: the row is counted from the start of the file."""
    bad = leads.copy()
    bad["web_visits"] = bad["web_visits"].astype(object)
    bad.loc[2344, "web_visits"] = "lots"
    data = tmp_path / "export.csv"
    bad.to_csv(data, index=False)
    out = tmp_path / "scored"
    with pytest.raises(DataError) as caught:
        distributed.score_files(scorer, data, out, client=dask_client, csv_blocksize=100_000)
    message = str(caught.value)
    assert message.startswith("export.csv (partition ")
    assert "web_visits: expected a whole number, got 'lots' (data row 2345; 1 value like it)" in message
    assert caught.value.field == "web_visits"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.csv"]  # no output, no staging folder


def test_cli_refuses_a_bad_part_with_one_line(dask_client, bundle_dir: Path, files, tmp_path: Path, capsys) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    for path in sorted(files["parts"].iterdir()):
        (parts / path.name).write_text(path.read_text())
    frame = pd.read_csv(parts / "leads-1.csv", dtype=str)
    frame.loc[6, "company_size"] = "ten"
    frame.to_csv(parts / "leads-1.csv", index=False)
    out = tmp_path / "scored"
    code = main(
        [
            "score",
            "--engine",
            "dask",
            "--scheduler",
            dask_client.scheduler.address,
            "--data",
            str(parts),
            "--model",
            str(bundle_dir),
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out.exists()
    assert err[-1].startswith(
        "leadscore score: error: leads-1.csv (partition 1): company_size: expected a whole "
        "number, got 'ten' (data row 7; 1 value like it)"
    )
    assert f"\n{err[-1]}\n" in README.read_text(encoding="utf-8"), "README.md shows this line as printed"


def test_refuses_unknown_inputs_before_starting(dask_client, scorer, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no file matches"):
        distributed.score_files(scorer, tmp_path / "*.parquet", tmp_path / "out", client=dask_client)
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="none of the model's"):
        distributed.score_files(scorer, tmp_path / "notes.csv", tmp_path / "out", client=dask_client)
    assert not (tmp_path / "out").exists()


def test_unreachable_scheduler_is_one_line(bundle_dir: Path, files, tmp_path: Path, capsys) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = main(
        [
            "score",
            "--engine",
            "dask",
            "--scheduler",
            f"tcp://127.0.0.1:{port}",
            "--data",
            str(files["parquet"]),
            "--model",
            str(bundle_dir),
            "--out",
            str(tmp_path / "scored"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"leadscore score: error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}")


def test_analyst_explain_accepts_a_dask_frame(dask_client, scorer, leads, in_process) -> None:
    import dask.dataframe as dd

    frame = dd.from_pandas(leads, npartitions=4)
    explained = analyst.explain(frame, scorer, keep=["lead_source"])
    assert isinstance(explained, dd.DataFrame)  # lazy until computed
    result = explained.compute().reset_index(drop=True)
    assert result["lead_source"].tolist() == leads["lead_source"].tolist()
    assert_same(result.drop(columns="lead_source"), in_process)


@pytest.mark.parametrize(
    "flags, problem",
    [
        (["--scheduler", "tcp://127.0.0.1:8786"], "--scheduler needs --engine dask"),
        (["--workers", "2"], "--workers needs --engine dask"),
        (["--engine", "dask", "--workers", "0"], "--workers must be at least 1, got 0"),
        (
            ["--engine", "dask", "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"],
            "--workers starts local workers; a scheduler's workers are started with `dask worker` "
            "(leave out --workers or --scheduler)",
        ),
    ],
)
def test_flags_that_do_not_fit_are_one_line(bundle_dir: Path, files, tmp_path: Path, capsys, flags, problem) -> None:
    code = main(
        [
            "score",
            "--data",
            str(files["parquet"]),
            "--model",
            str(bundle_dir),
            "--out",
            str(tmp_path / "scored"),
            *flags,
        ]
    )
    assert code == 2 and capsys.readouterr().err.strip() == f"leadscore score: error: {problem}"
    assert list(tmp_path.iterdir()) == []


def test_an_output_it_did_not_write_is_never_replaced(dask_client, scorer, files, tmp_path: Path) -> None:
    (tmp_path / "report.parquet").write_text("someone else's file")
    with pytest.raises(DataError, match="exists and is not an earlier scored folder"):
        distributed.score_files(scorer, files["parquet"], tmp_path / "report.parquet", client=dask_client)
    with pytest.raises(DataError, match="--out must end in .csv"):
        distributed.score_files(scorer, files["parquet"], tmp_path / "scored.xlsx", client=dask_client)
    assert [p.name for p in tmp_path.iterdir()] == ["report.parquet"]
    assert (tmp_path / "report.parquet").read_text() == "someone else's file"
