"""Reloading the champion under load fails no request, and every answer names the version behind it.

The bench runs the same for 30 s (bench/run.py, stage "reload under load"); here ~5 s at 8 clients.
"""

from __future__ import annotations

import json
import threading
import time

from mlflow import MlflowClient

from serving.api.main import create_app
from serving.api.settings import Settings
from support.hardening import MODEL, Registry, serve
from support.http_load import post, run_load

TOKEN = "hardening-token"
LEAD = {
    "lead_id": "H-1",
    "industry": "software",
    "company_size": 80,
    "web_visits": 4,
    "phone_present": True,
    "purchase_timeline": "3-6 months",
    "seniority": "director",
}


def test_champion_reloads_under_load_fail_no_request(in_registry: Registry) -> None:
    registry = in_registry
    client = MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
    first, second = registry.versions
    app = create_app(Settings(admin_token=TOKEN))  # the champion, resolved from the registry at start
    seen: dict[str, int] = {}
    reloads: list[tuple[int, str, str | None]] = []
    lock = threading.Lock()

    def names_a_registered_version(status: int, body: bytes) -> str | None:
        version = str(json.loads(body)["model"]["version"])
        with lock:
            seen[version] = seen.get(version, 0) + 1
        return None if version in registry.versions else f"answered by unregistered version {version!r}"

    def reload_four_times(base: str) -> None:
        for i in range(4):
            time.sleep(0.8)
            target = second if i % 2 == 0 else first
            client.set_registered_model_alias(MODEL, "champion", target)
            status, body = post(base, "/v1/admin/reload", b"", headers={"Authorization": f"Bearer {TOKEN}"})
            served = json.loads(body)["model"]["version"] if status == 200 else None
            reloads.append((status, target, served))

    stop = threading.Event()
    try:
        with serve(app) as base:
            bodies = [json.dumps({**LEAD, "lead_id": f"H-{i}", "web_visits": i % 30}).encode() for i in range(50)]
            outcome: list = []
            load = threading.Thread(
                target=lambda: outcome.append(
                    run_load(
                        base,
                        "/v1/score",
                        bodies,
                        concurrency=8,
                        max_requests=1_000_000,
                        max_seconds=30.0,
                        check=names_a_registered_version,
                        stop=stop,
                    )
                )
            )
            began = time.perf_counter()
            load.start()
            reload_four_times(base)
            time.sleep(max(0.0, 5.0 - (time.perf_counter() - began)))  # at least ~5 s of load
            stop.set()
            load.join()
            result = outcome[0]
    finally:
        stop.set()
        client.set_registered_model_alias(MODEL, "champion", first)

    summary = result.summary()
    assert summary["failures"] == 0, summary["problems"]
    assert summary["requests"] >= 50
    assert len(reloads) == 4 and all(status == 200 and served == target for status, target, served in reloads), reloads
    assert set(seen) == {first, second}, seen


def test_a_failed_reload_keeps_serving_the_old_model(in_registry: Registry) -> None:
    from fastapi.testclient import TestClient

    app = create_app(Settings(admin_token=TOKEN))
    with TestClient(app, raise_server_exceptions=False) as http:
        deadline = time.monotonic() + 60
        while http.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        before = http.post("/v1/score", json=LEAD).json()["model"]["version"]
        app.state.model.model = "models:/lead-conversion@no-such-alias"  # the registry lost the alias
        reply = http.post("/v1/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert reply.status_code == 503
        assert f"still serving version {before}" in reply.json()["detail"]
        assert http.post("/v1/score", json=LEAD).json()["model"]["version"] == before
