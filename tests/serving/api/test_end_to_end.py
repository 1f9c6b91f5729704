"""The API for real: `leadscore serve` on 127.0.0.1 with a trained bundle, called over HTTP; and a
reload under concurrent load that fails no request."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from serving.api.main import create_app
from serving.api.settings import Settings
from serving.model.bundle import Bundle
from serving.model.scorer import Scorer
from training.cli import main

LEAD = {
    "lead_id": "E2E-1",
    "industry": "software",
    "company_size": 120,
    "web_visits": 3,
    "phone_present": False,
    "email_present": True,
    "email_type": "free",
    "purchase_timeline": "12+ months",
    "seniority": "manager",
}


def test_leadscore_serve_end_to_end(bundle_dir: Path, run_cli) -> None:
    with run_cli(bundle_dir) as base, httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        scored = http.post("/v1/score", json=LEAD)
        assert scored.status_code == 200
        body = scored.json()
        assert body["lead_id"] == "E2E-1" and body["model"]["version"] == "7"
        assert body["lowering_factors"] and body["lowering_factors"][0]["features"][0]["reason"]
        batch = http.post("/v1/score/batch", json={"leads": [LEAD, {**LEAD, "lead_id": "E2E-2"}]})
        assert [r["lead_id"] for r in batch.json()["results"]] == ["E2E-1", "E2E-2"]
        assert http.post("/v1/score", json={"web_visits": -3}).status_code == 422
        assert http.post("/v1/score", content=b"{oops", headers={"content-type": "application/json"}).status_code == 400
        assert http.get("/v1/model").json()["name"] == "lead-conversion"
        assert "leadscore_requests_total" in http.get("/metrics").text
        assert http.post("/v1/admin/reload").status_code == 404  # no token configured


def test_serve_with_a_missing_model_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    assert main(["serve", "--model", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no model bundle" in err


def test_serve_refuses_a_bad_setting(bundle_dir: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("LEADSCORE_PORT", "99999")
    assert main(["serve", "--model", str(bundle_dir)]) == 2
    assert "LEADSCORE_PORT" in capsys.readouterr().err


@pytest.fixture(scope="module")
def next_version(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model saved again as version 8: what a promotion would bring."""
    bundle = Bundle.load(bundle_dir)
    bundle.metadata["version"] = "8"
    return bundle.save(tmp_path_factory.mktemp("promoted") / "8")


def test_reload_under_concurrent_requests_fails_no_request(scorer, next_version: Path, run_threaded) -> None:
    settings = Settings(model=str(next_version), admin_token="t0ken")
    app = create_app(settings, scorer=scorer)
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()
    lock = threading.Lock()

    def client_loop() -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            while not stop.is_set():
                response = http.post("/v1/score", json=LEAD)
                with lock:
                    statuses.append(response.status_code)
                    if response.status_code == 200:
                        versions.add(response.json()["model"]["version"])

    with run_threaded(app) as base:
        threads = [threading.Thread(target=client_loop) for _ in range(6)]
        for t in threads:
            t.start()
        with httpx.Client(base_url=base, timeout=60) as admin:
            for _ in range(3):
                reply = admin.post("/v1/admin/reload", headers={"Authorization": "Bearer t0ken"})
                assert reply.status_code == 200, reply.text
        with httpx.Client(base_url=base, timeout=30) as http:
            for _ in range(5):
                http.post("/v1/score", json=LEAD)
        stop.set()
        for t in threads:
            t.join()
    assert len(statuses) >= 20 and set(statuses) == {200}
    assert versions == {"7", "8"}
    assert isinstance(app.state.model.scorer, Scorer) and app.state.model.scorer.bundle.version == "8"
