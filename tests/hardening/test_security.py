"""Security: the admin token, no unpickling on the serving path, nothing internal in any response,
and loopback by default."""

from __future__ import annotations

import pickle
import re
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.api.main import create_app
from serving.api.settings import Settings
from serving.model.scorer import Scorer
from support.fuzz import LEAK_MARKERS
from support.hardening import Registry

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-admin-token"
LEAD = {"lead_id": "S-1", "industry": "retail", "web_visits": 2, "phone_present": False}

# Calls that turn bytes from a file into live objects (or run code) when given a crafted file
UNSAFE_LOADS = re.compile(
    r"\b(pickle\.(load|loads|Unpickler)|cloudpickle|joblib\.load|dill\.|shelve\.|"
    r"marshal\.loads?|read_pickle|torch\.load|allow_pickle\s*=\s*True|"
    r"yaml\.(load|unsafe_load|full_load)\(|pyfunc\.load_model|eval\(|exec\()"
)


def _admin_client(scorer: Scorer, bundle_dir: Path, token: str | None) -> TestClient:
    return TestClient(
        create_app(Settings(model=str(bundle_dir), admin_token=token), scorer=scorer), raise_server_exceptions=False
    )


@pytest.fixture(scope="module")
def bundle_dir(registry: Registry) -> Path:
    return registry.bundle_dir(registry.versions[0])


@pytest.fixture(scope="module")
def scorer(bundle_dir: Path) -> Scorer:
    return Scorer.load(bundle_dir)


# -- the admin endpoint ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token"}, 401),
        ({"Authorization": f"Bearer {TOKEN}x"}, 401),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        ({"Authorization": TOKEN}, 401),
        ({"Authorization": f"Bearer {TOKEN}"}, 200),
    ],
)
def test_admin_reload_needs_the_exact_bearer_token(
    scorer: Scorer, bundle_dir: Path, headers: dict[str, str], status: int
) -> None:
    with _admin_client(scorer, bundle_dir, TOKEN) as http:
        response = http.post("/v1/admin/reload", headers=headers)
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer" and "admin token" in response.json()["detail"]
        assert TOKEN not in response.text


@pytest.mark.parametrize("token", [None, ""])
def test_admin_reload_is_disabled_without_a_configured_token(
    scorer: Scorer, bundle_dir: Path, token: str | None
) -> None:
    with _admin_client(scorer, bundle_dir, token) as http:
        response = http.post("/v1/admin/reload", headers={"Authorization": "Bearer "})
    assert response.status_code == 404 and "LEADSCORE_ADMIN_TOKEN" in response.json()["detail"]


# -- nothing unpickles a file -----------------------------------------------------------------------
def test_no_unsafe_deserialisation_in_serving_or_features() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for folder in ("serving", "features")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if UNSAFE_LOADS.search(line) and not line.lstrip().startswith("#")
    ]
    assert found == []


def test_loading_from_the_registry_and_scoring_never_unpickle(
    in_registry: Registry, scorer: Scorer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scorer.explain(_frame(scorer))  # compiled kernels are in memory before the trap is set

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("something unpickled data on the serving path")

    class RefusingUnpickler:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            refuse()

    for name in ("load", "loads"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(pickle, "Unpickler", RefusingUnpickler)
    monkeypatch.chdir(tmp_path)  # no ./models export here: the bundle is downloaded from the registry
    loaded = Scorer.load("models:/lead-conversion@champion")
    assert loaded.score([LEAD])[0]["model"]["version"] == in_registry.versions[0]
    assert len(loaded.explain(_frame(loaded))) == 3


# Run in a fresh interpreter: the trap is armed before anything is imported, so start-up is covered,
# including numba loading its compiled kernels. numba's cache index is a pickle: it may be read only
# by numba, only from the owner-only folder serving.model.forest.compiled_cache_dir() names.
_STARTUP_PROBE = """
import pickle, sys
from pathlib import Path
cache = Path(sys.argv[2]).resolve()
seen = []
real_load, real_loads = pickle.load, pickle.loads
def _source():
    frame = sys._getframe(2)
    if not frame.f_code.co_filename.replace("\\\\", "/").endswith("numba/core/caching.py"):
        raise AssertionError(f"unpickling on the serving path from {frame.f_code.co_filename}")
    where = frame.f_locals.get("path") or getattr(frame.f_locals.get("self"), "_index_path", None)
    if where is None or cache not in Path(where).resolve().parents:
        raise AssertionError(f"numba read a cached pickle outside its owned folder: {where}")
    seen.append(str(where))
def load(*a, **k):
    _source(); return real_load(*a, **k)
def loads(*a, **k):
    _source(); return real_loads(*a, **k)
class Refusing:
    def __init__(self, *a, **k): raise AssertionError("pickle.Unpickler on the serving path")
pickle.load, pickle.loads, pickle.Unpickler = load, loads, Refusing
from serving.model.scorer import Scorer
scorer = Scorer.load(sys.argv[1])
print(scorer.engine, scorer.score([{"lead_id": "S-1", "web_visits": 2}])[0]["grade"], len(seen))
"""


def test_start_up_reads_no_pickle_but_numbas_own_cache(bundle_dir: Path, tmp_path: Path) -> None:
    """First start compiles into the owned folder; the second reads it back, and nothing else."""
    import os
    import subprocess
    import sys

    folder = tmp_path / "numba-cache"
    env = {**os.environ, "LEADSCORE_NUMBA_CACHE_DIR": str(folder)}
    reads = []
    for _ in ("fresh", "warm"):
        done = subprocess.run(
            [sys.executable, "-c", _STARTUP_PROBE, str(bundle_dir), str(folder)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        engine, grade, count = done.stdout.split()
        assert engine == "forest" and grade in "ABCD"
        reads.append(int(count))
    assert (folder.stat().st_mode & 0o077) == 0  # owner-only
    assert reads[1] > 0  # the second start used the cache, and only from the owned folder


def test_a_cache_folder_others_can_write_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.model.forest import compiled_cache_dir

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("LEADSCORE_NUMBA_CACHE_DIR", str(shared))
    chosen = compiled_cache_dir()
    assert chosen != shared and chosen.name.startswith("leadscore-numba-")
    chosen.rmdir()


def _frame(scorer: Scorer):
    import pandas as pd

    return pd.DataFrame([LEAD, {**LEAD, "lead_id": "S-2"}, {"lead_id": "S-3"}]).reindex(
        columns=[scorer.schema.id_column, *scorer.schema.feature_names]
    )


# -- nothing internal in a response ------------------------------------------------------------------
class _Exploding:
    """A scorer whose failure message carries a file path, as a real bug's might."""

    schema = None

    def score(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError('File "/work/main/serving/model/scorer.py", line 1, in score: broke')


def _assert_nothing_internal(text: str) -> None:
    assert not [marker for marker in LEAK_MARKERS if marker in text], text


def test_an_unexpected_error_is_a_plain_500_without_trace_or_path(scorer: Scorer, bundle_dir: Path) -> None:
    exploding = _Exploding()
    exploding.schema = scorer.schema
    exploding.bundle = scorer.bundle  # type: ignore[attr-defined]
    app = create_app(Settings(model=str(bundle_dir)), scorer=scorer)
    app.state.model.scorer = exploding
    with TestClient(app, raise_server_exceptions=False) as http:
        response = http.post("/v1/score", json=LEAD)
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error; the server log has the details"}
    _assert_nothing_internal(response.text)


def test_a_missing_model_is_reported_without_the_servers_paths(tmp_path: Path) -> None:
    missing = tmp_path / "deep" / "models" / "lead-conversion" / "9"
    app = create_app(Settings(model=str(missing), admin_token=TOKEN))
    with TestClient(app, raise_server_exceptions=False) as http:
        deadline = time.monotonic() + 30
        while app.state.model.error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        ready = http.get("/readyz")
        reload = http.post("/v1/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        score = http.post("/v1/score", json=LEAD)
    assert ready.status_code == 503 and "no model bundle" in ready.json()["detail"]
    assert reload.status_code == 503 and score.status_code == 503
    for response in (ready, reload, score):
        _assert_nothing_internal(response.text)
        assert str(tmp_path) not in response.text


# -- loopback unless told otherwise -------------------------------------------------------------------
def test_the_server_binds_loopback_by_default(
    scorer: Scorer, bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from serving.api import server

    monkeypatch.delenv("LEADSCORE_HOST", raising=False)
    assert Settings().host == "127.0.0.1"
    bound: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: bound.update(kwargs))
    monkeypatch.setattr(Scorer, "load", classmethod(lambda cls, model=None, **kw: scorer))
    assert server.serve_command(model=str(bundle_dir)) == 0
    assert bound["host"] == "127.0.0.1"
    monkeypatch.setenv("LEADSCORE_HOST", "0.0.0.0")  # told otherwise
    server.serve_command(model=str(bundle_dir))
    assert bound["host"] == "0.0.0.0"


# -- a stale local export is never served in place of the registry's version --------------------------
def test_a_local_export_from_another_run_is_not_served(in_registry: Registry, tmp_path: Path) -> None:
    import shutil

    from serving.model.bundle import Bundle
    from serving.model.registry import load_bundle

    first, second = in_registry.versions
    stale = tmp_path / "models" / "lead-conversion" / first  # version 1's number, version 2's run
    shutil.copytree(in_registry.bundle_dir(second), stale)
    expected = Bundle.load(in_registry.bundle_dir(first)).metadata["run_id"]
    assert Bundle.load(stale).metadata["run_id"] != expected
    loaded = load_bundle("models:/lead-conversion@champion", models_dir=tmp_path / "models")
    assert loaded.metadata["run_id"] == expected
