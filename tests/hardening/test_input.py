"""Bounded cost and one judgement: a small request never costs much, and the same lead is refused by
the API, `leadscore score` and the analyst API alike, with the same words."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features.errors import DataError
from serving.api.lead_input import MAX_KEYS, MAX_PROBLEMS
from serving.api.main import create_app
from serving.api.settings import Settings
from serving.model.scorer import Scorer
from serving.reports import analyst
from support.hardening import Registry, serve
from support.http_load import get, post
from training.cli import main

LEAD = {"lead_id": "H-1", "industry": "software", "web_visits": 3, "company_size": 40}


@pytest.fixture(scope="module")
def scorer(registry: Registry) -> Scorer:
    return Scorer.load(registry.bundle_dir(registry.versions[0]))


@pytest.fixture()
def client(scorer: Scorer) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(model="unused"), scorer=scorer), raise_server_exceptions=False) as http:
        yield http


def _post(client: TestClient, path: str, body: bytes | str, content_type: str | None = "application/json"):
    headers = {"content-type": content_type} if content_type else {}
    return client.post(path, content=body, headers=headers)


# -- small requests with large costs ----------------------------------------------------------------
def test_300000_unknown_keys_cost_under_100_ms_of_server_cpu_and_get_a_short_answer(scorer: Scorer) -> None:
    body = json.dumps({f"field_{i}": 1 for i in range(300_000)}).encode()  # ~4 MB
    app = create_app(Settings(model="unused"), scorer=scorer)
    with serve(app) as base:
        post(base, "/v1/score", json.dumps(LEAD).encode())  # warm
        began = time.process_time()  # the server shares this process: its CPU is counted here
        status, answer = post(base, "/v1/score", body)
        cpu_s = time.process_time() - began
        assert get(base, "/healthz")[0] == 200
    print(f"300,000 keys ({len(body) / 1e6:.1f} MB): {status} in {cpu_s * 1000:.0f} ms CPU, {len(answer)} bytes back")
    assert status == 422 and len(answer) < 1_000
    assert json.loads(answer)["detail"] == [
        {"field": "body", "problem": f"a lead object with over {MAX_KEYS:,} fields; at most {MAX_KEYS:,} are read"}
    ]
    assert cpu_s < 0.1


def test_a_batch_lead_with_too_many_keys_is_refused_with_a_short_answer(client: TestClient) -> None:
    lead = {f"field_{i}": 1 for i in range(MAX_KEYS + 1)}
    response = client.post("/v1/score/batch", json={"leads": [LEAD, lead]})
    assert response.status_code == 422 and len(response.content) < 1_000
    assert f"{MAX_KEYS + 1:,} fields" in response.json()["detail"][0]["problem"]


def test_problems_are_listed_up_to_a_cap_then_counted(client: TestClient) -> None:
    leads = [{"lead_id": f"B{i}", "web_visits": -1, "company_size": True} for i in range(5_000)]
    began = time.perf_counter()
    response = client.post("/v1/score/batch", json={"leads": leads})
    seconds = time.perf_counter() - began
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert len(detail) == MAX_PROBLEMS + 1 and len(response.content) < 4_000
    assert detail[0] == {"field": "leads[0].company_size", "problem": "expected a whole number"}
    assert detail[1] == {"field": "leads[0].web_visits", "problem": "-1 is below the minimum 0"}
    assert detail[-1]["field"] == "body" and "more problems not listed; the " in detail[-1]["problem"]
    print(f"5,000 bad leads refused in {seconds:.3f} s")


def test_identical_leads_are_explained_once_and_answered_each_with_its_own_id(client: TestClient) -> None:
    other = {**LEAD, "web_visits": 40}
    leads = [LEAD, {**LEAD, "lead_id": 7}, other, {**LEAD, "lead_id": "H-3", "crm_stage": "new"}, {}]
    results = client.post("/v1/score/batch", json={"leads": leads}).json()["results"]
    assert [r["lead_id"] for r in results] == ["H-1", "7", "H-1", "H-3", None]
    alone = [client.post("/v1/score", json=lead).json() for lead in leads]
    assert [r["probability"] for r in results] == [r["probability"] for r in alone]
    assert results[1] == {**results[0], "lead_id": "7"} and results[2] != results[0]
    assert results[3]["warnings"][0]["field"] == "crm_stage" and results[0]["warnings"] == []


def test_a_long_lead_id_is_refused_not_echoed(client: TestClient) -> None:
    response = client.post("/v1/score", json={**LEAD, "lead_id": "x" * 1_000_000})
    assert response.status_code == 422 and len(response.content) < 500
    assert response.json()["detail"][0]["field"] == "lead_id"
    huge = _post(client, "/v1/score", '{"lead_id": ' + "9" * 40 + "}")
    assert huge.status_code == 422 and huge.json()["detail"][0]["field"] == "lead_id"


def test_a_timed_out_batch_stops_spending_cpu(scorer: Scorer) -> None:
    # distinct leads, each explained; enough that scoring them all costs many times the 0.2 s deadline
    # (one explained lead costs ~0.1-0.2 ms of CPU since the table kernel)
    leads = [{**LEAD, "lead_id": f"T{i}", "company_size": 1 + i} for i in range(40_000)]
    per_lead = _cpu_per_lead(scorer, leads[:2_000])
    settings = Settings(model="unused", scoring_timeout_s=0.2, max_batch=len(leads))
    with TestClient(create_app(settings, scorer=scorer), raise_server_exceptions=False) as http:
        began = time.process_time()
        response = http.post("/v1/score/batch", json={"leads": leads})
        time.sleep(2.0)  # whatever still runs after the 503 runs now
        spent = time.process_time() - began
    full = per_lead * len(leads)
    print(f"after a 503 at 0.2 s: {spent:.2f} s CPU in all; scoring every lead would take {full:.2f} s")
    assert response.status_code == 503
    assert spent < full / 2


def _cpu_per_lead(scorer: Scorer, leads: list[dict[str, Any]]) -> float:
    began = time.process_time()
    scorer.score(leads)
    return (time.process_time() - began) / len(leads)


def test_a_body_sent_a_byte_at_a_time_is_cut_off_with_408(scorer: Scorer) -> None:
    app = create_app(Settings(model="unused", body_timeout_s=1.0), scorer=scorer)
    body = json.dumps(LEAD).encode()
    with serve(app) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
            )
            began = time.monotonic()
            answer = b""
            for byte in body:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
                sock.settimeout(0.3)
                try:
                    answer += sock.recv(4096)
                except TimeoutError:
                    continue
                if answer:
                    break
            waited = time.monotonic() - began
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"did not arrive within 1 s" in answer
    assert waited < 5


def test_the_server_passes_its_connection_limits_to_uvicorn(
    scorer: Scorer, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from serving.api import server

    bound: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: bound.update(kwargs))
    monkeypatch.setenv("LEADSCORE_MAX_CONNECTIONS", "7")
    monkeypatch.setenv("LEADSCORE_KEEP_ALIVE_S", "2.5")
    assert server.serve_command(model=str(registry.bundle_dir(registry.versions[0]))) == 0
    assert bound["limit_concurrency"] == 7 and bound["timeout_keep_alive"] == 2.5
    assert bound["http"] == "serving.api.connections:HeaderDeadlineProtocol"  # the header deadline


# -- strict JSON -----------------------------------------------------------------------------------
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "text/csv"])
def test_a_body_declared_as_something_else_than_json_is_415(client: TestClient, content_type: str) -> None:
    for path in ("/v1/score", "/v1/score/batch"):
        response = _post(client, path, json.dumps(LEAD), content_type)
        assert response.status_code == 415 and "must be JSON" in response.json()["detail"]


@pytest.mark.parametrize("content_type", [None, "application/json; charset=utf-8", "application/vnd.crm+json"])
def test_json_bodies_are_read_with_or_without_a_declared_type(client: TestClient, content_type: str | None) -> None:
    assert _post(client, "/v1/score", json.dumps(LEAD), content_type).status_code == 200


def test_a_duplicate_key_is_refused_not_last_wins(client: TestClient) -> None:
    response = _post(client, "/v1/score", '{"company_size": 10, "web_visits": 1, "company_size": 5000}')
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"field": "company_size", "problem": "duplicate key in one JSON object: send each field once"}
    ]


# -- one judgement for the API, `leadscore score` and the analyst API -------------------------------
BAD_SIZES = [
    ("Infinity", float("inf"), "Infinity is not a finite number"),
    ("1e308", 1e308, "1e+308 is above the maximum 500000"),
    ("-1e308", -1e308, "-1e+308 is below the minimum 1"),
    ("-5", -5, "-5 is below the minimum 1"),
]


@pytest.mark.parametrize("text, value, problem", BAD_SIZES)
def test_the_three_front_doors_refuse_the_same_value_in_the_same_words(
    text: str,
    value: float,
    problem: str,
    client: TestClient,
    scorer: Scorer,
    registry: Registry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = _post(client, "/v1/score", json.dumps({**LEAD, "company_size": value}))
    assert api.status_code == 422 and api.json()["detail"] == [{"field": "company_size", "problem": problem}]

    data = tmp_path / "leads.csv"
    pd.DataFrame([LEAD, {**LEAD, "lead_id": "H-2", "company_size": text}]).to_csv(data, index=False)
    out = tmp_path / "scored.csv"
    code = main(
        ["score", "--data", str(data), "--model", str(registry.bundle_dir(registry.versions[0])), "--out", str(out)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists()
    assert err.startswith(f"leadscore score: error: leads.csv: company_size: {problem} (data row 2;"), err

    frame = pd.DataFrame([LEAD, {**LEAD, "company_size": value}])
    with pytest.raises(DataError, match=re.escape(f"company_size: {problem}")):
        analyst.explain(frame, scorer, progress=False)


def test_true_is_not_a_company_size_at_any_front_door(client: TestClient, scorer: Scorer) -> None:
    api = client.post("/v1/score", json={**LEAD, "company_size": True})
    assert api.json()["detail"] == [{"field": "company_size", "problem": "expected a whole number"}]
    frame = pd.DataFrame([LEAD, {**LEAD, "company_size": True}])
    with pytest.raises(DataError, match="company_size: expected a whole number, got True"):
        analyst.explain(frame, scorer, progress=False)


def test_valid_leads_score_the_same_through_the_api_and_the_analyst_api(client: TestClient, scorer: Scorer) -> None:
    api = client.post("/v1/score", json=LEAD).json()["probability"]
    frame = pd.DataFrame([LEAD]).reindex(columns=[scorer.schema.id_column, *scorer.schema.feature_names])
    assert analyst.explain(frame, scorer, progress=False)["probability"].iloc[0] == pytest.approx(api, abs=1e-12)
