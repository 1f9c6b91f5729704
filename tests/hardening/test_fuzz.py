"""The API, fuzzed from its own OpenAPI document: no 5xx, every 4xx a JSON body naming the problem,
no stack trace or file path in any body. A few hundred requests here; the bench sends thousands."""

from __future__ import annotations

import logging

import pytest

from support.fuzz import build_app, fuzz, response_problem
from support.hardening import Registry


def test_generated_and_malformed_requests_break_no_promise(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="serving")
    report = fuzz(build_app(registry.bundle_dir(registry.versions[0])), cases=200, derandomize=True)
    assert report.cases >= 200
    assert report.ok, report.failures
    statuses = {key.rsplit(" ", 1)[1] for key in report.statuses}
    assert {"200", "400", "401", "413", "422"} <= statuses, report.statuses  # every kind of answer was reached


@pytest.mark.parametrize(
    "status, body, verdict",
    [
        (500, b'{"detail": "internal error; the server log has the details"}', "5xx"),
        (422, b"not json", "4xx"),
        (422, b'{"detail": []}', "4xx"),
        (400, b'{"detail": [{"field": "body", "problem": ""}]}', "4xx"),
        (422, b'{"detail": "Traceback (most recent call last):"}', "leak"),
        (503, b'{"detail": "no model bundle at /work/main/models/x"}', "leak"),
        (200, b'{"detail": "File \\"/srv/app/serving/model/scorer.py\\", line 3"}', "leak"),
        (422, b'{"detail": [{"field": "web_visits", "problem": "must be >= 0"}]}', None),
        (401, b'{"detail": "missing or wrong admin token"}', None),
    ],
)
def test_the_fuzz_oracle_flags_what_it_should(status: int, body: bytes, verdict: str | None) -> None:
    problem = response_problem(status, body)
    assert (problem.split(":", 1)[0] if problem else None) == verdict


def test_the_clients_own_text_echoed_back_is_not_a_leak() -> None:
    body = b'{"warnings": [{"field": "industry", "problem": "value \'File \\"x\' was not seen in training"}]}'
    assert response_problem(200, body, sent='{"industry": "File \\"x"}') is None
    assert response_problem(200, body, sent='{"industry": "software"}').startswith("leak:")
