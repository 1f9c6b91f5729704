"""Every route on its success path and on each of its failure codes, through FastAPI's TestClient."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from serving.api.main import create_app
from serving.api.settings import Settings

TOKEN = "test-admin-token"
GOOD = {
    "lead_id": "L1",
    "industry": "software",
    "company_size": 250,
    "web_visits": 12,
    "demo_requested": True,
    "phone_present": False,
    "purchase_timeline": "3-6 months",
    "seniority": "director",
}


def _client(settings: Settings, scorer=None) -> Iterator[TestClient]:
    with TestClient(create_app(settings, scorer=scorer), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture()
def client(scorer, bundle_dir: Path) -> Iterator[TestClient]:
    yield from _client(Settings(model=str(bundle_dir), admin_token=TOKEN), scorer)


@pytest.fixture()
def no_model(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(Settings(model=str(tmp_path / "missing"), admin_token=TOKEN))


# -- POST /v1/score -----------------------------------------------------------------------------
def test_score_returns_the_full_explained_response(client: TestClient) -> None:
    response = client.post("/v1/score", json=GOOD)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "lead_id",
        "probability",
        "score",
        "grade",
        "model",
        "baseline_probability",
        "log_odds",
        "factors",
        "lowering_factors",
        "what_if",
        "warnings",
    }
    assert body["lead_id"] == "L1" and 0 < body["probability"] < 1 and 1 <= body["score"] <= 99
    assert body["grade"] in "ABCD" and body["model"] == {
        "name": "lead-conversion",
        "version": "7",
        "as_of": "2026-07-01",
        "family": "lightgbm",
    }
    assert [f["key"] for f in body["factors"]][:6] == [
        "icp_fit",
        "readiness",
        "contactability",
        "timeline",
        "authority",
        "product_fit",
    ]
    assert body["warnings"] == []


def test_score_accepts_an_empty_lead_and_nulls(client: TestClient) -> None:
    assert client.post("/v1/score", json={}).status_code == 200
    response = client.post("/v1/score", json={"lead_id": None, "web_visits": None, "industry": None})
    assert response.status_code == 200 and response.json()["lead_id"] is None


def test_numeric_lead_id_is_echoed_as_text(client: TestClient) -> None:
    assert client.post("/v1/score", json={"lead_id": 12345}).json()["lead_id"] == "12345"


def test_unknown_category_value_is_accepted_and_reported(client: TestClient) -> None:
    response = client.post("/v1/score", json={**GOOD, "country": "Atlantis"})
    assert response.status_code == 200
    assert response.json()["warnings"][0]["field"] == "country"


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({"web_visits": -1}, "web_visits", "-1 is below the minimum 0"),
        ({"company_size": 10**9}, "company_size", "1000000000 is above the maximum 500000"),
        ({"company_size": "big"}, "company_size", "expected a whole number"),
        ({"company_size": True}, "company_size", "expected a whole number"),
        ({"company_size": 12.5}, "company_size", "expected a whole number"),
        ({"demo_requested": "perhaps"}, "demo_requested", "expected true or false"),
        ({"demo_requested": 1}, "demo_requested", "expected true or false"),
        ({"industry": 7}, "industry", "expected text"),
        ({"annual_revenue": "NaN"}, "annual_revenue", "expected a number"),
        ({"annual_revenue": float("inf")}, "annual_revenue", "Infinity is not a finite number"),
        ({"annual_revenue": "12.5"}, "annual_revenue", "expected a number"),
        ({"lead_id": True}, "lead_id", "expected text of at most 200 characters or a whole number"),
        ({"lead_id": "x" * 201}, "lead_id", "expected text of at most 200 characters"),
    ],
)
def test_bad_fields_are_422_naming_the_field(client: TestClient, body: dict, field: str, words: str) -> None:
    response = client.post("/v1/score", content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["field"] == field and words in problem["problem"]


# -- a CRM posts its whole record ----------------------------------------------------------------
CRM_RECORD = {
    **GOOD,
    "lead_source": "webinar",
    "campaign": "Q3 launch",
    "lead_status": "Converted",
    "converted": 1,
    "owner_email": "rep@example.com",
    "industri": "retail",
}


def test_a_whole_crm_record_is_scored_with_the_ignored_fields_named(client: TestClient) -> None:
    response = client.post("/v1/score", json=CRM_RECORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["probability"] == client.post("/v1/score", json=GOOD).json()["probability"]
    assert body["warnings"] == [
        {
            "field": "lead_status",
            "problem": "ignored: excluded from the model (filled in by sales after contact (leakage))",
        },
        {"field": "converted", "problem": "ignored: the outcome is what the model predicts, not an input"},
        {"field": "owner_email", "problem": "ignored: not in the lead schema (GET /v1/model lists the fields)"},
        {"field": "industri", "problem": "ignored: not in the lead schema (GET /v1/model lists the fields)"},
    ]  # lead_source and campaign are context fields: accepted, no warning


def test_batch_results_carry_each_leads_own_ignored_fields(client: TestClient) -> None:
    response = client.post("/v1/score/batch", json={"leads": [GOOD, {**GOOD, "crm_id": "0031x"}]})
    assert response.status_code == 200
    first, second = response.json()["results"]
    assert first["warnings"] == [] and [w["field"] for w in second["warnings"]] == ["crm_id"]


def test_strict_fields_refuses_unknown_fields_but_still_ignores_excluded_ones(scorer, bundle_dir: Path) -> None:
    for client in _client(Settings(model=str(bundle_dir), strict_fields=True), scorer):
        response = client.post("/v1/score", json=CRM_RECORD)
        assert response.status_code == 422
        assert [p["field"] for p in response.json()["detail"]] == ["owner_email", "industri"]
        assert all(p["problem"].startswith("unknown field: not in the lead schema") for p in response.json()["detail"])
        response = client.post("/v1/score/batch", json={"leads": [GOOD, {**GOOD, "industri": "x"}]})
        assert response.status_code == 422 and response.json()["detail"][0]["field"] == "leads[1].industri"
        ok = client.post("/v1/score", json={**GOOD, "lead_status": "Converted", "campaign": "Q3"})
        assert ok.status_code == 200 and [w["field"] for w in ok.json()["warnings"]] == ["lead_status"]


@pytest.mark.parametrize("raw", [b"{bad json", b"", b'{"web_visits": 1,}', b"\xff\xfe"])
def test_malformed_json_is_400(client: TestClient, raw: bytes) -> None:
    response = client.post("/v1/score", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["detail"][0]["field"] == "body"


@pytest.mark.parametrize("raw", [b"[]", b"42", b'"lead"', b"null"])
def test_a_body_that_is_not_an_object_is_422(client: TestClient, raw: bytes) -> None:
    response = client.post("/v1/score", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"] == [{"field": "body", "problem": "expected a JSON object"}]


def test_score_is_503_until_a_model_is_loaded(no_model: TestClient) -> None:
    response = no_model.post("/v1/score", json=GOOD)
    assert response.status_code == 503 and "no model loaded" in response.json()["detail"]


def test_body_over_the_limit_is_413(scorer, bundle_dir: Path) -> None:
    for client in _client(Settings(model=str(bundle_dir), max_body_bytes=2048), scorer):
        response = client.post("/v1/score", json={**GOOD, "lead_id": "x" * 5000})
        assert response.status_code == 413 and "2,048-byte limit" in response.json()["detail"][0]["problem"]


def test_scoring_slower_than_the_timeout_is_503(scorer, bundle_dir: Path) -> None:
    for client in _client(Settings(model=str(bundle_dir), scoring_timeout_s=1e-6), scorer):
        response = client.post("/v1/score/batch", json={"leads": [GOOD] * 500})
        assert response.status_code == 503 and "longer than" in response.json()["detail"]


def test_a_scorer_that_breaks_is_a_plain_500(client: TestClient) -> None:
    class Broken:
        schema = client.app.state.model.scorer.schema

        def score(self, leads, *, what_if):
            raise RuntimeError("/secret/path/model.txt exploded")

    client.app.state.model.scorer = Broken()  # what the scoring routes read, once per request
    for path, body in (("/v1/score", GOOD), ("/v1/score/batch", {"leads": [GOOD, GOOD]})):
        response = client.post(path, json=body)
        assert response.status_code == 500, path
        assert response.json() == {"detail": "internal error; the server log has the details"}


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from(list(GOOD) + ["created_at", "lead_source", "junk"]),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**12), 10**12),
        st.floats(allow_nan=False),
        st.text(max_size=30),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    ),
)
def test_any_json_value_in_any_field_is_never_a_500(client: TestClient, field: str, value: object) -> None:
    response = client.post(
        "/v1/score", content=json.dumps({**GOOD, field: value}), headers={"content-type": "application/json"}
    )
    assert response.status_code in (200, 422), response.text
    assert "Traceback" not in response.text


# -- POST /v1/score/batch ------------------------------------------------------------------------
def test_batch_keeps_the_order(client: TestClient) -> None:
    leads = [{**GOOD, "lead_id": f"B{i}", "web_visits": i} for i in range(25)]
    response = client.post("/v1/score/batch", json={"leads": leads})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["lead_id"] for r in results] == [f"B{i}" for i in range(25)]
    single = client.post("/v1/score", json=leads[7]).json()
    assert results[7]["probability"] == single["probability"]


def test_empty_batch_is_422(client: TestClient) -> None:
    response = client.post("/v1/score/batch", json={"leads": []})
    assert response.status_code == 422
    assert response.json()["detail"] == [{"field": "leads", "problem": "empty batch: send at least one lead"}]


def test_batch_over_the_maximum_is_413(scorer, bundle_dir: Path) -> None:
    for client in _client(Settings(model=str(bundle_dir), max_batch=5), scorer):
        response = client.post("/v1/score/batch", json={"leads": [GOOD] * 6})
        assert response.status_code == 413
        assert "at most 5 leads" in response.json()["detail"][0]["problem"]
        assert client.post("/v1/score/batch", json={"leads": [GOOD] * 5}).status_code == 200


def test_batch_names_the_bad_lead(client: TestClient) -> None:
    response = client.post("/v1/score/batch", json={"leads": [GOOD, {**GOOD, "web_visits": "many"}]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "leads[1].web_visits"


@pytest.mark.parametrize("body", [{}, {"leads": "x"}, {"leads": [GOOD], "extra": 1}])
def test_batch_shape_errors_are_422(client: TestClient, body: dict) -> None:
    assert client.post("/v1/score/batch", json=body).status_code == 422


def test_batch_is_503_without_a_model(no_model: TestClient) -> None:
    assert no_model.post("/v1/score/batch", json={"leads": [GOOD]}).status_code == 503


# -- GET /v1/model -------------------------------------------------------------------------------
def test_model_describes_itself(client: TestClient) -> None:
    body = client.get("/v1/model").json()
    assert body["name"] == "lead-conversion" and body["version"] == "7" and body["as_of"] == "2026-07-01"
    assert body["data_window"] == {"start": "2025-10-01", "end": "2026-07-01"}
    assert body["test_metrics"] == {"roc_auc": 0.8}
    assert list(body["grades"]) == ["A", "B", "C", "D"]
    assert body["factors"]["contactability"] == "Contact data"
    fields = {f["name"]: f for f in body["fields"]}
    assert fields["industry"]["type"] == "categorical" and "software" in fields["industry"]["values"]
    assert fields["company_size"]["type"] == "integer"


def test_model_is_503_without_a_model(no_model: TestClient) -> None:
    assert no_model.get("/v1/model").status_code == 503


# -- health, readiness, metrics, docs ------------------------------------------------------------
def test_health_and_readiness(client: TestClient, no_model: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    assert no_model.get("/healthz").status_code == 200
    not_ready = no_model.get("/readyz")
    assert not_ready.status_code == 503 and "no model bundle" in not_ready.json()["detail"]


def test_metrics_count_requests_latency_grades_and_model(client: TestClient) -> None:
    grade = client.post("/v1/score", json=GOOD).json()["grade"]
    client.post("/v1/score", json={"web_visits": -1})
    text = client.get("/metrics").text
    assert 'leadscore_requests_total{method="POST",route="/v1/score",status="200"} 1.0' in text
    assert 'leadscore_requests_total{method="POST",route="/v1/score",status="422"} 1.0' in text
    assert 'leadscore_request_seconds_count{route="/v1/score"} 2.0' in text
    assert f'leadscore_scores_total{{grade="{grade}"}} 1.0' in text
    assert 'leadscore_model_info{as_of="2026-07-01",name="lead-conversion",version="7"} 1.0' in text


def test_unknown_routes_are_404_json(client: TestClient) -> None:
    response = client.get("/v2/nothing")
    assert response.status_code == 404 and response.json() == {"detail": "Not Found"}
    assert 'route="unmatched"' in client.get("/metrics").text


def test_openapi_request_bodies_come_from_the_lead_schema(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    lead = doc["components"]["schemas"]["Lead"]
    assert lead["additionalProperties"] is True and "warnings" in lead["description"]  # a whole CRM record is read
    assert "web_visits" in lead["properties"] and "lead_status" not in lead["properties"]
    assert "enum" not in json.dumps(lead["properties"]["industry"])  # unknown categories are accepted
    example = doc["paths"]["/v1/score"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert client.post("/v1/score", json=example).status_code == 200
    batch = doc["paths"]["/v1/score/batch"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert client.post("/v1/score/batch", json=batch).status_code == 200


def test_the_documented_response_is_the_one_served(client: TestClient) -> None:
    """Every object in a served answer has the fields OpenAPI documents for it: every required one, and
    no field it does not document (`explore` is documented as optional: only with LEADSCORE_EXPLORE_SHARE)."""
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]

    def resolve(node: dict) -> dict:
        while "$ref" in node:
            node = schemas[node["$ref"].rsplit("/", 1)[-1]]
        return node

    def check(value: object, node: dict, where: str) -> int:
        node = resolve(node)
        if isinstance(value, dict) and "properties" in node:
            assert set(node["required"]) <= set(value) <= set(node["properties"]), where
            assert set(node["properties"]) - set(node["required"]) <= {"explore"}, where
            return 1 + sum(check(value[k], node["properties"][k], f"{where}.{k}") for k in value)
        if isinstance(value, list) and "items" in node:
            return sum(check(item, node["items"], f"{where}[]") for item in value)
        return 0

    body = client.post("/v1/score", json=GOOD).json()
    assert body["lowering_factors"] and body["lowering_factors"][0]["features"] and body["what_if"]
    one = doc["paths"]["/v1/score"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert check(body, one, "ScoreResponse") >= 5  # the answer, its model, log-odds, factors, what-ifs
    batch = client.post("/v1/score/batch", json={"leads": [GOOD, {"industry": "mining"}]}).json()
    many = doc["paths"]["/v1/score/batch"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert check(batch, many, "BatchResponse") >= 10


# -- POST /v1/admin/reload -----------------------------------------------------------------------
def test_reload_with_the_token_swaps_the_model(client: TestClient) -> None:
    before = client.app.state.model.scorer
    response = client.post("/v1/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response.json()["model"]["version"] == "7"
    assert client.app.state.model.scorer is not before


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer"])
def test_reload_without_the_right_token_is_401(client: TestClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.post("/v1/admin/reload", headers=headers)
    assert response.status_code == 401 and "admin token" in response.json()["detail"]


def test_reload_is_disabled_without_a_configured_token(scorer, bundle_dir: Path) -> None:
    for client in _client(Settings(model=str(bundle_dir)), scorer):
        response = client.post("/v1/admin/reload", headers={"Authorization": "Bearer anything"})
        assert response.status_code == 404 and "LEADSCORE_ADMIN_TOKEN" in response.json()["detail"]


def test_failed_reload_keeps_serving_the_old_model(scorer, tmp_path: Path) -> None:
    for client in _client(Settings(model=str(tmp_path / "gone"), admin_token=TOKEN), scorer):
        response = client.post("/v1/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 503 and "still serving version 7" in response.json()["detail"]
        assert client.post("/v1/score", json=GOOD).status_code == 200
