"""A damaged model file never takes the service down: it is refused before any parser reads it, a
reload keeps serving the old version and counts the failure, and the CLI says so in one line (exit 2).

LightGBM's parser segfaults on a truncated `model.txt`, so these tests truncate real files.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from features.errors import ModelNotFoundError
from serving.api.main import create_app
from serving.api.metrics import Metrics
from serving.api.reload_signal import ReloadSignal
from serving.api.settings import Settings
from serving.api.state import ModelState
from serving.model.bundle import META_FILE, MODEL_FILE, Bundle
from serving.model.scorer import Scorer
from support.hardening import Registry, free_port

TOKEN = "integrity-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LEAD = {"lead_id": "I-1", "industry": "software", "web_visits": 3}


@pytest.fixture()
def bundle_copy(registry: Registry, tmp_path: Path) -> Path:
    folder = tmp_path / "lead-conversion" / registry.versions[0]
    shutil.copytree(registry.bundle_dir(registry.versions[0]), folder)
    return folder


def _truncate(path: Path, keep: int) -> None:
    with path.open("r+b") as handle:
        handle.truncate(keep)


def _drop_checksums(folder: Path) -> None:
    """What a bundle written before checksums looks like (or one whose record was rewritten to match)."""
    state = json.loads((folder / META_FILE).read_text())
    state.pop("files", None)
    (folder / META_FILE).write_text(json.dumps(state))


def _failed_reloads(http: TestClient) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith('leadscore_reloads_total{outcome="failed"}'):
            return float(line.split()[-1])
    return 0.0


def test_the_bundle_records_a_checksum_of_its_model_file(bundle_copy: Path) -> None:
    recorded = json.loads((bundle_copy / META_FILE).read_text())["files"][MODEL_FILE]
    assert recorded["bytes"] == (bundle_copy / MODEL_FILE).stat().st_size and len(recorded["sha256"]) == 64


@pytest.mark.parametrize("keep", [1_000, 50_000, -100])
def test_a_truncated_model_file_is_refused_before_lightgbm_reads_it(bundle_copy: Path, keep: int) -> None:
    size = (bundle_copy / MODEL_FILE).stat().st_size
    _truncate(bundle_copy / MODEL_FILE, keep if keep > 0 else size + keep)
    with pytest.raises(ModelNotFoundError, match=f"is damaged: {MODEL_FILE} has"):
        Bundle.load(bundle_copy)


@pytest.mark.parametrize(
    "damage", ["truncated model, checksum recorded", "truncated model, no checksum", "truncated bundle.json"]
)
def test_a_reload_onto_a_damaged_bundle_keeps_serving_and_counts_the_failure(
    registry: Registry, bundle_copy: Path, damage: str
) -> None:
    scorer = Scorer.load(bundle_copy)
    app = create_app(Settings(model=str(bundle_copy), admin_token=TOKEN), scorer=scorer)
    if damage == "truncated bundle.json":
        _truncate(bundle_copy / META_FILE, 3_000)
    else:
        if damage.endswith("no checksum"):
            _drop_checksums(bundle_copy)  # only the child-process probe stands between LightGBM and a crash
        _truncate(bundle_copy / MODEL_FILE, 400_000 if (bundle_copy / MODEL_FILE).stat().st_size > 500_000 else 20_000)
    with TestClient(app, raise_server_exceptions=False) as http:
        reload = http.post("/v1/admin/reload", headers=AUTH)
        score = http.post("/v1/score", json=LEAD)
        failed = _failed_reloads(http)
        ready = http.get("/readyz")
    version = registry.versions[0]
    assert reload.status_code == 503, reload.text
    detail = reload.json()["detail"]
    assert detail.startswith("reload failed: ") and "damaged" in detail, detail
    assert detail.endswith(f"still serving version {version}")
    assert str(bundle_copy.parent) not in detail
    assert failed == 1.0
    assert score.status_code == 200 and score.json()["model"]["version"] == version
    assert ready.status_code == 200


def test_a_damaged_bundle_at_start_up_is_reported_by_readyz(bundle_copy: Path) -> None:
    _truncate(bundle_copy / META_FILE, 100)
    app = create_app(Settings(model=str(bundle_copy)))
    with TestClient(app, raise_server_exceptions=False) as http:
        deadline = time.monotonic() + 60
        while app.state.model.error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        ready = http.get("/readyz")
    assert ready.status_code == 503
    assert "bundle.json is not valid JSON" in ready.json()["detail"]


def _cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "training.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
    )


def _one_line(done: subprocess.CompletedProcess[str], command: str, words: str) -> None:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith(f"leadscore {command}: error: "), done.stderr[-2000:]
    assert words in lines[0], lines[0]


def test_score_and_serve_on_a_truncated_model_exit_2_instead_of_crashing(
    registry: Registry, bundle_copy: Path, tmp_path: Path
) -> None:
    _truncate(bundle_copy / MODEL_FILE, 1_000)
    out = tmp_path / "scored.csv"
    done = _cli(["score", "--data", str(registry.data_path), "--model", str(bundle_copy), "--out", str(out)], tmp_path)
    _one_line(done, "score", "is damaged")
    assert not out.exists()
    _drop_checksums(bundle_copy)
    done = _cli(["serve", "--model", str(bundle_copy), "--port", str(free_port())], tmp_path)
    _one_line(done, "serve", "LightGBM could not parse model.txt")


def test_serve_with_a_locked_tracking_store_exits_2_in_one_line(registry: Registry, tmp_path: Path) -> None:
    shutil.copyfile(registry.root / "mlflow.db", tmp_path / "mlflow.db")
    lock = sqlite3.connect(tmp_path / "mlflow.db")
    lock.execute("BEGIN EXCLUSIVE")  # another process holds the database: every reader waits, then fails
    try:
        done = _cli(
            ["serve", "--port", str(free_port())],
            tmp_path,
            env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        )
    finally:
        lock.rollback()
        lock.close()
    _one_line(done, "serve", "could not load models:/lead-conversion@champion")
    assert "Traceback" not in done.stderr


def test_a_follower_keeps_following_after_a_failed_reload(bundle_copy: Path, tmp_path: Path) -> None:
    """With --workers N, a worker whose reload fails serves its old model and follows the next reload."""
    good = tmp_path / "good"
    shutil.copytree(bundle_copy, good)
    scorer = Scorer.load(good)
    _truncate(bundle_copy / META_FILE, 50)
    leader = ReloadSignal(tmp_path / "reload")
    state = ModelState(
        model=str(bundle_copy), metrics=Metrics(), scorer=scorer, signal=ReloadSignal(tmp_path / "reload")
    )

    async def run() -> None:
        follower = asyncio.create_task(state.follow(interval_s=0.05))
        try:
            leader.announce()
            await _until(lambda: state.error is not None)
            assert "not valid JSON" in state.error and state.scorer is scorer
            shutil.rmtree(bundle_copy)
            shutil.copytree(good, bundle_copy)
            leader.announce()
            await _until(lambda: state.scorer is not scorer)
            assert not follower.done()
        finally:
            follower.cancel()

    asyncio.run(run())
    assert state.error is None


async def _until(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
