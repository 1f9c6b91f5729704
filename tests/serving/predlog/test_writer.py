"""The prediction log under load, with the database down, and across restarts: real servers, real databases."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from serving.api.main import create_app
from serving.api.settings import Settings
from serving.predlog.db import connect, predictions


def _app(scorer: Any, url: str, **settings: Any):
    return create_app(Settings(database_url=url, write_token="sales-secret", **settings), scorer=scorer)


def _rows(url: str) -> int:
    engine = connect(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(predictions)).scalar_one())
    finally:
        engine.dispose()


def _metric(app: Any, name: str, **labels: str) -> float:
    value = app.state.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _eventually(condition: Any, timeout_s: float = 20.0) -> bool:
    """The log is written by another process: what it counts shows in /metrics a little later."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_concurrent_scores_are_all_logged(
    scorer: Any, lead_records: list[dict[str, Any]], database_url: str, run_threaded: Any
) -> None:
    app = _app(scorer, database_url)
    singles, batches = lead_records[:120], [lead_records[i : i + 20] for i in range(120, 200, 20)]
    with run_threaded(app) as base, httpx.Client(base_url=base, timeout=30) as client:

        def one(lead: dict[str, Any]) -> int:
            return client.post("/v1/score", json=lead).status_code

        def batch(leads: list[dict[str, Any]]) -> int:
            return client.post("/v1/score/batch", json={"leads": leads}).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(one, singles)) + list(pool.map(batch, batches))
        assert codes == [200] * (len(singles) + len(batches))
        assert app.state.loop.log.wait_idle(20)
        metrics = client.get("/metrics").text
    assert _rows(database_url) == 200
    assert "leadscore_prediction_log_rows_total 200.0" in metrics
    assert 'leadscore_prediction_log_lost_total{reason="queue_full"} 0.0' in metrics


def test_a_logged_row_keeps_the_lead_as_received_and_what_the_model_said(
    scorer: Any, lead_records: list[dict[str, Any]], sqlite_url: str
) -> None:
    lead = {k: v for k, v in lead_records[0].items() if v is not None} | {"sales_owner": "ana.silva"}
    with TestClient(_app(scorer, sqlite_url)) as client:
        result = client.post("/v1/score", json=lead).json()
        assert client.app.state.loop.log.wait_idle(10)
    with connect(sqlite_url).connect() as connection:
        row = connection.execute(select(predictions)).mappings().one()
    assert row["lead"] == lead
    assert (row["lead_id"], row["probability"], row["grade"], row["score"]) == (
        lead["lead_id"],
        result["probability"],
        result["grade"],
        result["score"],
    )
    assert (row["model_name"], row["model_version"]) == ("lead-conversion", "7")
    assert row["factors"] == {f["key"]: pytest.approx(f["impact"]) for f in result["factors"]}
    top = result["lowering_factors"][0]
    assert (row["top_factor"], row["top_reason"]) == (top["key"], top["features"][0]["reason"])
    assert row["explore"] is False


def test_database_down_scores_are_served_and_the_loss_is_counted(
    scorer: Any, lead_records: list[dict[str, Any]], tmp_path: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-folder' / 'predictions.db'}"  # cannot be opened
    app = _app(scorer, url, log_queue=5)
    with TestClient(app) as client:
        codes = [client.post("/v1/score", json=lead).status_code for lead in lead_records[:20]]
        assert codes == [200] * 20
        assert _eventually(lambda: _metric(app, "leadscore_prediction_log_write_errors_total") >= 1)
        metrics = client.get("/metrics").text
        assert _metric(app, "leadscore_prediction_log_lost_total", reason="queue_full") > 0
        assert 'leadscore_prediction_log_lost_total{reason="queue_full"}' in metrics
    # after shutdown every one of the 20 scores is either counted lost while queued or lost at exit
    lost = sum(_metric(app, "leadscore_prediction_log_lost_total", reason=r) for r in ("queue_full", "shutdown"))
    assert lost == 20 and _metric(app, "leadscore_prediction_log_rows_total") == 0


def test_an_outage_shorter_than_the_queue_loses_nothing(
    scorer: Any, lead_records: list[dict[str, Any]], postgres_server: Any
) -> None:
    url = postgres_server.new_database()
    app = _app(scorer, url)
    with TestClient(app) as client:
        assert client.post("/v1/score", json=lead_records[0]).status_code == 200
        assert app.state.loop.log.wait_idle(10)
        postgres_server.stop()
        try:
            codes = [client.post("/v1/score", json=lead).status_code for lead in lead_records[1:31]]
            assert codes == [200] * 30
            assert _eventually(lambda: _metric(app, "leadscore_prediction_log_write_errors_total") >= 1)
        finally:
            postgres_server.start()
        assert app.state.loop.log.wait_idle(40)
    assert _rows(url) == 31
    assert _metric(app, "leadscore_prediction_log_lost_total", reason="queue_full") == 0


def test_a_restart_keeps_everything_committed(
    scorer: Any, lead_records: list[dict[str, Any]], database_url: str
) -> None:
    auth = {"Authorization": "Bearer sales-secret"}
    lead = lead_records[0]
    with TestClient(_app(scorer, database_url)) as client:
        for _ in range(3):
            assert client.post("/v1/score", json=lead).status_code == 200
        outcome = {"lead_id": lead["lead_id"], "outcome": "converted", "occurred_at": "2026-09-01T10:00:00Z"}
        assert client.post("/v1/outcomes", json=outcome, headers=auth).status_code == 201
    with TestClient(_app(scorer, database_url)) as client:  # a new process would see the same
        history = client.get(f"/v1/leads/{lead['lead_id']}/history").json()
    assert len(history["scores"]) == 3
    assert history["outcome"] == {"outcome": "converted", "occurred_at": "2026-09-01T10:00:00+00:00", "owner": None}
