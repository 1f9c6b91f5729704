"""What the writer stores, column by column, on both databases; a full queue; a row that cannot be built."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, date, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from serving.predlog.db import connect
from serving.predlog.writer import PredictionLog, _dumps
from support.predlog_rows import answer, stored


def _log(url: str, **kwargs: Any) -> PredictionLog:
    return PredictionLog(connect(url), registry=CollectorRegistry(), flush_interval_s=0.01, **kwargs)


def _metric(log: PredictionLog, name: str, **labels: str) -> float | None:
    return log.registry.get_sample_value(name, labels)


def test_every_column_is_stored_as_scored(database_url: str) -> None:
    leads = [
        {
            "lead_id": "L1",
            "industry": "café ☕",
            "company_size": 2**40,
            "annual_revenue": 9.5e16,
            "phone": None,
            "created_at": date(2026, 3, 1),
            "seen_at": datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
            "demo_requested": True,
        },
        {"industry": "software"},
    ]
    log = _log(database_url)
    log.record(leads, [answer("L1"), answer(None, lowering=False)], [True, False])
    log.start()
    assert log.wait_idle(20)
    log.stop()
    first, second = stored(database_url)
    assert {k: v for k, v in first.items() if k not in ("id", "scored_at")} == {
        "lead_id": "L1",
        "model_name": "lead-conversion",
        "model_version": "7",
        "probability": 0.1234567890123,
        "score": 12,
        "grade": "C",
        "raw_score": -1.9601,
        "factors": {"icp_fit": 0.1 + 0.2, "contactability": -1e-17},
        "top_factor": "contactability",
        "top_reason": "No phone number — Ça compte",
        "lead": {
            "lead_id": "L1",
            "industry": "café ☕",
            "company_size": 2**40,
            "annual_revenue": 9.5e16,
            "created_at": "2026-03-01",
            "seen_at": "2026-03-01T09:30:00+00:00",
            "demo_requested": True,
        },
        "explore": True,
    }
    assert (second["lead_id"], second["top_factor"], second["top_reason"], second["explore"]) == (
        None,
        None,
        None,
        False,
    )
    assert second["lead"] == {"industry": "software"}
    assert first["scored_at"] == second["scored_at"]  # one request, one time
    assert abs(first["scored_at"].replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds() < 60


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1.5, "b": "x"},
        {"nan": math.nan, "inf": -math.inf},  # orjson would write null: json.dumps's NaN/-Infinity kept
        {"big": 2**70},  # past 64 bits
        {"lone": "\ud800"},  # not UTF-8
        {"when": date(2026, 1, 2)},
        {"text": 'quote ":null inside'},
    ],
)
def test_json_text_reads_back_as_json_dumps_would(value: dict[str, Any]) -> None:
    expected = json.dumps(value, default=lambda d: d.isoformat())
    assert json.dumps(json.loads(_dumps(value))) == json.dumps(json.loads(expected))


def test_a_full_queue_keeps_the_first_rows_of_a_request_and_counts_the_rest(sqlite_url: str) -> None:
    log = _log(sqlite_url, max_queue=5)
    log.record([{"industry": "software"}] * 8, [answer(f"L{i}") for i in range(8)])
    assert _metric(log, "leadscore_prediction_log_queue") == 5
    log.start()
    assert log.wait_idle(20)
    log.stop()
    assert [row["lead_id"] for row in stored(sqlite_url)] == ["L0", "L1", "L2", "L3", "L4"]
    assert _metric(log, "leadscore_prediction_log_lost_total", reason="queue_full") == 3
    assert _metric(log, "leadscore_prediction_log_rows_total") == 5
    assert _metric(log, "leadscore_prediction_log_queue") == 0


def test_a_row_that_cannot_be_built_is_counted_and_the_others_are_written(sqlite_url: str) -> None:
    broken = answer("L2") | {"probability": None}
    log = _log(sqlite_url)
    log.record([{}, {}, {}], [answer("L1"), broken, answer("L3")])
    log.start()
    assert log.wait_idle(20)
    log.stop()
    assert [row["lead_id"] for row in stored(sqlite_url)] == ["L1", "L3"]
    assert _metric(log, "leadscore_prediction_log_lost_total", reason="bad_row") == 1
    assert _metric(log, "leadscore_prediction_log_rows_total") == 2


def test_a_database_that_cannot_be_reached_counts_every_row_as_lost(tmp_path: Any) -> None:
    log = PredictionLog(
        "nosuchdialect://nowhere/db", registry=CollectorRegistry(), max_queue=3, flush_interval_s=0.01
    ).start()
    log.record([{}, {}], [answer("L1"), answer("L2")])
    log.record([{}, {}], [answer("L3"), answer("L4")])
    time.sleep(0.3)
    log.stop(timeout_s=2)
    assert _metric(log, "leadscore_prediction_log_write_errors_total") >= 1
    assert _metric(log, "leadscore_prediction_log_lost_total", reason="queue_full") == 1
    assert _metric(log, "leadscore_prediction_log_lost_total", reason="shutdown") == 3
