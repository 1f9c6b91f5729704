"""POST /v1/outcomes, POST /v1/feedback, GET /v1/leads/{id}/history: success paths and each failure code."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from serving.api.main import create_app
from serving.api.settings import Settings
from serving.predlog.db import connect, outcomes
from serving.predlog.service import explore

AUTH = {"Authorization": "Bearer sales-secret"}


@pytest.fixture()
def client(scorer: Any, database_url: str) -> Any:
    app = create_app(Settings(database_url=database_url, write_token="sales-secret"), scorer=scorer)
    with TestClient(app) as test_client:
        yield test_client


def test_an_outcome_is_recorded_once_however_often_it_is_posted(client: Any, database_url: str) -> None:
    body = {"lead_id": "L1", "outcome": "lost", "occurred_at": "2026-08-01T09:30:00+02:00", "owner": "ben.okafor"}
    first = client.post("/v1/outcomes", json=body, headers=AUTH)
    assert first.status_code == 201
    assert first.json() == {
        "lead_id": "L1",
        "outcome": "lost",
        "occurred_at": "2026-08-01T07:30:00+00:00",
        "owner": "ben.okafor",
        "status": "created",
    }
    repeat = client.post("/v1/outcomes", json=body, headers=AUTH)
    assert (repeat.status_code, repeat.json()["status"]) == (200, "unchanged")
    won = client.post("/v1/outcomes", json=body | {"outcome": "converted"}, headers=AUTH)
    assert (won.status_code, won.json()["status"]) == (200, "updated")
    with connect(database_url).connect() as connection:
        assert connection.execute(select(func.count()).select_from(outcomes)).scalar_one() == 1
        assert connection.execute(select(outcomes.c.converted)).scalar_one() is True


def test_numeric_lead_ids_are_the_same_ids_as_text(client: Any) -> None:
    """The score API echoes a numeric id as text; an outcome posted with the number must match it."""
    assert (
        client.post("/v1/outcomes", json={"lead_id": 12345, "outcome": "lost"}, headers=AUTH).json()["lead_id"]
        == "12345"
    )
    repeat = client.post("/v1/outcomes", json={"lead_id": "12345", "outcome": "lost"}, headers=AUTH)
    assert (repeat.status_code, repeat.json()["status"]) == (200, "unchanged")
    assert client.get("/v1/leads/12345/history").json()["outcome"]["outcome"] == "lost"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "sales-secret"}])
@pytest.mark.parametrize("path", ["/v1/outcomes", "/v1/feedback"])
def test_writes_need_the_write_token(client: Any, path: str, headers: dict[str, str]) -> None:
    response = client.post(path, json={"lead_id": "L1", "outcome": "lost"}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "missing or wrong write token (send Authorization: Bearer <token>)"}


def test_writes_are_disabled_without_a_token(scorer: Any, sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url, write_token=None, admin_token="admin"), scorer=scorer)
    with TestClient(app) as client:
        response = client.post(
            "/v1/outcomes", json={"lead_id": "L1", "outcome": "lost"}, headers={"Authorization": "Bearer admin"}
        )  # the admin token is not a write token
    assert response.status_code == 404
    assert "LEADSCORE_WRITE_TOKEN" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/outcomes", {"lead_id": "L1", "outcome": "won"}, "outcome"),
        ("/v1/outcomes", {"outcome": "lost"}, "lead_id"),
        ("/v1/outcomes", {"lead_id": "L1", "outcome": "lost", "occurred_at": "yesterday"}, "occurred_at"),
        ("/v1/outcomes", {"lead_id": "", "outcome": "lost"}, "lead_id"),
        ("/v1/outcomes", {"lead_id": "L1", "outcome": "lost", "stage": "x"}, "stage"),
        ("/v1/feedback", {"lead_id": "L1", "factor": "budget", "author": "ana"}, "factor"),
        ("/v1/feedback", {"lead_id": "L1", "factor": "authority"}, "author"),
        ("/v1/feedback", {"lead_id": "L1", "factor": "authority", "author": "ana", "comment": "x" * 2001}, "comment"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(client: Any, path: str, body: dict[str, Any], field: str) -> None:
    response = client.post(path, json=body, headers=AUTH)
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["detail"]] == [field]


def test_malformed_json_is_400(client: Any) -> None:
    response = client.post("/v1/feedback", content=b"{not json", headers=AUTH | {"content-type": "application/json"})
    assert response.status_code == 400


def test_history_shows_scores_over_time_outcome_and_feedback(client: Any, lead_records: list[dict[str, Any]]) -> None:
    lead = {k: v for k, v in lead_records[3].items() if v is not None}
    lead_id = lead["lead_id"]
    first = client.post("/v1/score", json=lead | {"demo_requested": False}).json()
    second = client.post("/v1/score", json=lead | {"demo_requested": True}).json()
    note = client.post(
        "/v1/feedback",
        json={"lead_id": lead_id, "factor": "authority", "author": "ana.silva", "comment": "talked to an intern"},
        headers=AUTH,
    )
    assert note.status_code == 201 and note.json()["factor"] == "authority"
    retry = client.post(
        "/v1/feedback",
        json={"lead_id": lead_id, "factor": "authority", "author": "ana.silva", "comment": "talked to an intern"},
        headers=AUTH,
    )
    assert retry.status_code == 200 and retry.json() == note.json()  # a retried post is not stored twice
    client.post(
        "/v1/outcomes", json={"lead_id": lead_id, "outcome": "lost", "occurred_at": "2026-09-01T00:00:00"}, headers=AUTH
    )
    assert client.app.state.loop.log.wait_idle(10)
    history = client.get(f"/v1/leads/{lead_id}/history").json()
    assert [s["score"] for s in history["scores"]] == [first["score"], second["score"]]
    assert second["score"] - first["score"] >= 2 and history["trend"] == "up"  # a demo request raises the score
    assert history["scores"][0]["model"] == {"name": "lead-conversion", "version": "7"}
    assert history["outcome"] == {"outcome": "lost", "occurred_at": "2026-09-01T00:00:00+00:00", "owner": None}
    assert [(f["factor"], f["author"], f["comment"]) for f in history["feedback"]] == [
        ("authority", "ana.silva", "talked to an intern")
    ]


def test_history_of_an_unknown_lead_is_404(client: Any) -> None:
    response = client.get("/v1/leads/nobody/history")
    assert response.status_code == 404
    assert response.json() == {"detail": "no scores, outcome or feedback logged for lead 'nobody'"}


def test_outcomes_are_503_not_lost_when_the_database_is_down(scorer: Any, tmp_path: Any) -> None:
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path / 'missing' / 'x.db'}", write_token="sales-secret"), scorer=scorer
    )
    with TestClient(app) as client:
        response = client.post("/v1/outcomes", json={"lead_id": "L1", "outcome": "lost"}, headers=AUTH)
    assert response.status_code == 503
    assert "nothing was recorded" in response.json()["detail"]


def test_an_exploration_share_flags_leads_by_id_in_the_response_and_the_log(
    scorer: Any, lead_records: list[dict[str, Any]], sqlite_url: str
) -> None:
    app = create_app(Settings(database_url=sqlite_url, explore_share=0.3), scorer=scorer)
    with TestClient(app) as client:
        results = client.post("/v1/score/batch", json={"leads": lead_records[:200]}).json()["results"]
        again = client.post("/v1/score", json=lead_records[0]).json()
        assert app.state.loop.log.wait_idle(10)
    flags = [r["explore"] for r in results]
    assert 0.2 < sum(flags) / len(flags) < 0.4
    assert flags == [explore(r["lead_id"], 0.3) for r in results] and again["explore"] == flags[0]
    from serving.predlog.monitor import scored_leads

    logged = scored_leads(connect(sqlite_url)).set_index("lead_id")["explore"]
    assert [bool(logged[r["lead_id"]]) for r in results] == flags
