"""Limits: request body size, batch size and scoring time; each refusal is a clear JSON answer.

Status codes: 413 for a body or a batch over its limit; 503 (Service Unavailable) when scoring takes
longer than LEADSCORE_SCORING_TIMEOUT_S, because the request was valid and may succeed later or
smaller (408 would blame the client for sending slowly, 504 is for gateways).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from serving.api.main import create_app
from serving.api.settings import Settings
from serving.model.scorer import Scorer
from support.hardening import Registry
from support.http_load import post

LEAD = {"lead_id": "L-1", "industry": "software", "web_visits": 3}


@pytest.fixture(scope="module")
def scorer(registry: Registry) -> Scorer:
    return Scorer.load(registry.bundle_dir(registry.versions[0]))


def client_for(scorer: Scorer, **settings: object) -> TestClient:
    return TestClient(create_app(Settings(model="unused", **settings), scorer=scorer), raise_server_exceptions=False)


@pytest.fixture()
def small(scorer: Scorer) -> Iterator[TestClient]:
    with client_for(scorer, max_body_bytes=4096, max_batch=5) as client:
        yield client


def detail_of(response) -> list[dict[str, str]]:
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail and all(d["problem"] for d in detail)
    return detail


def test_a_body_over_the_limit_is_413_naming_the_limit(small: TestClient) -> None:
    big = json.dumps({"leads": [{**LEAD, "lead_id": "x" * 150}] * 40})
    response = small.post("/v1/score/batch", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    [problem] = detail_of(response)
    assert problem["field"] == "body" and "4,096-byte limit" in problem["problem"]


def test_a_streamed_body_without_length_is_cut_at_the_limit(small: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"leads": ['
        for _ in range(200):
            yield json.dumps(LEAD).encode() + b","
        yield b"{}]}"

    response = small.post("/v1/score/batch", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and detail_of(response)[0]["field"] == "body"


def test_a_batch_over_the_limit_is_413_naming_leads(small: TestClient) -> None:
    response = small.post("/v1/score/batch", json={"leads": [LEAD] * 6})
    assert response.status_code == 413
    [problem] = detail_of(response)
    assert problem["field"] == "leads" and "at most 5 leads" in problem["problem"]
    assert small.post("/v1/score/batch", json={"leads": [LEAD] * 5}).status_code == 200


def test_scoring_past_the_timeout_is_503_saying_so(scorer: Scorer) -> None:
    with client_for(scorer, scoring_timeout_s=1e-6) as client:
        response = client.post("/v1/score/batch", json={"leads": [LEAD] * 2000})
        time.sleep(0.5)  # the worker thread finishes what it started
        scored = client.get("/metrics").text
    assert response.status_code == 503
    assert "scoring took longer than" in response.json()["detail"]
    assert "leadscore_scores_total{" not in scored  # answered 503: no grade counted (nor a row logged)


@pytest.mark.parametrize(
    "setting", [{"max_batch": 0}, {"max_body_bytes": 10}, {"scoring_timeout_s": 0}, {"port": 70_000}]
)
def test_settings_refuse_limits_that_make_no_sense(setting: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**setting)


def test_limits_hold_on_a_real_socket(scorer: Scorer) -> None:
    from support.hardening import serve

    app = create_app(Settings(model="unused", max_body_bytes=2048), scorer=scorer)
    with serve(app) as base:
        status, body = post(base, "/v1/score", json.dumps({"lead_id": "y" * 5000}).encode())
    assert status == 413 and json.loads(body)["detail"][0]["field"] == "body"
