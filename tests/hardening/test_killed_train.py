"""A `leadscore train` killed with SIGKILL at several points leaves a state the next train explains
and repairs: orphaned runs marked FAILED, a registered version finished as its run decided, and the
killed processes' temporary folders removed."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from features.synthetic import generate, write_history
from support.hardening import registry_state


@pytest.fixture(scope="module")
def small_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("small-history") / "leads.parquet"
    write_history(generate(quarters=6, leads_per_quarter=1000, seed=3), path)
    return path


def _count(db: Path, sql: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # the training holds the database for a moment: look again


def _train(data: Path, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "training.cli", "train", "--data", str(data), "--models-dir", "models"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_when(proc: subprocess.Popen[str], condition: Callable[[], bool], timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None, f"training ended before the kill point: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "the kill point never came"
        time.sleep(0.005)
    proc.kill()
    proc.communicate(timeout=60)


def test_a_train_killed_at_several_points_is_repaired_by_the_next(
    mlflow_store: str, small_history: Path, tmp_path: Path
) -> None:
    db = Path(mlflow_store[len("sqlite:///") :])
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "OMP_WAIT_POLICY": "PASSIVE"}

    # 1. killed while its MLflow run is open: a RUNNING run and a scratch folder stay behind
    _kill_when(
        _train(small_history, tmp_path, env),
        lambda: _count(db, "select count(*) from runs where status = 'RUNNING'") > 0,
    )
    assert _count(db, "select count(*) from runs where status = 'RUNNING'") == 1
    assert [p.name for p in scratch.iterdir() if p.name.startswith("leadscore-train-")]

    # 2. the next one repairs the first, then is killed the moment its version is registered
    _kill_when(_train(small_history, tmp_path, env), lambda: _count(db, "select count(*) from model_versions") > 0)
    assert _count(db, "select count(*) from runs where status = 'FAILED'") == 1
    assert registry_state(mlflow_store)["aliases"].get("champion") is None  # killed before its aliases moved

    # 3. a training that runs to the end says what it repaired and leaves a consistent registry
    done = subprocess.run(
        [sys.executable, "-m", "training.cli", "train", "--data", str(small_history), "--models-dir", "models"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    repaired = [line for line in done.stdout.splitlines() if line.startswith("repaired: ")]
    assert any("marked FAILED" in line for line in repaired), done.stdout
    assert any(
        line.startswith("repaired: version 1 was registered by an interrupted training: finished as its run decided")
        for line in repaired
    ), done.stdout
    assert any("removed" in line and "leadscore-train-" in line for line in repaired), done.stdout

    state = registry_state(mlflow_store)
    assert [str(v) for v in state["versions"]] == ["1", "2"]
    assert str(state["aliases"]["challenger"]) == "2" and str(state["aliases"]["champion"]) in ("1", "2")
    assert _count(db, "select count(*) from runs where status = 'RUNNING'") == 0
    assert _count(db, "select count(*) from model_version_tags where key = 'leadscore.complete'") == 2
    models = tmp_path / "models" / "lead-conversion"
    assert sorted(p.name for p in models.iterdir()) == ["1", "2"]  # both exported, no hidden staging folders
    assert not [p for p in scratch.iterdir() if p.name.startswith("leadscore-train-")]
