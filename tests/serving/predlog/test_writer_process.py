"""The log written by its own process: the thread's rows, losses counted, a dead writer replaced."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from serving.predlog.db import connect
from serving.predlog.writer import PredictionLog
from serving.predlog.writer_process import WriterProcess
from support.predlog_rows import answer, stored


def _result(lead_id: str | None, *, explore: bool = False) -> dict[str, Any]:
    return answer(lead_id, lowering=lead_id is not None, explore=explore)


LEADS = [
    {"lead_id": "L1", "industry": "café ☕", "company_size": 2**40, "phone": None, "created_at": date(2026, 3, 1)},
    {"industry": "software", "seen_at": datetime(2026, 3, 1, 9, 30, tzinfo=UTC), "annual_revenue": 9.5e16},
]
PLAIN = [  # JSON values only, as the API's leads are (the dates above take the other way to the child)
    {"lead_id": "L7", "industry": "café ☕", "company_size": 2**40, "phone": None, "revenue": 0.1 + 0.2},
    {"industry": "software", "big": 2**70, "demo_requested": True},  # past 64 bits: orjson cannot write it
]


def _stored(url: str) -> list[dict[str, Any]]:
    return stored(url, without=("id", "scored_at"))


def _process(url: str, **kwargs: Any) -> WriterProcess:
    return WriterProcess(url, registry=CollectorRegistry(), flush_interval_s=0.01, send_interval_s=0.01, **kwargs)


def _metric(log: WriterProcess, name: str, **labels: str) -> float:
    return log.registry.get_sample_value(name, labels) or 0.0


def test_the_process_stores_what_the_thread_stores(database_url: str, tmp_path: Any) -> None:
    """A batch answer and a one-lead answer, as the API sends them, give the rows the writer thread
    gives for the same leads and answers (exploration flags included)."""
    results = [_result("L1", explore=True), _result(None)]
    thread_url = f"sqlite:///{tmp_path / 'thread.db'}"
    thread = PredictionLog(connect(thread_url), registry=CollectorRegistry(), flush_interval_s=0.01)
    thread.record(LEADS, results, [True, False])
    thread.record(LEADS[:1], results[:1], [True])
    thread.record(PLAIN[:1], results[:1], [True])
    thread.record(PLAIN, results, [True, False])
    thread.start()
    assert thread.wait_idle(20)
    thread.stop()

    process = _process(database_url).start()
    process.record(LEADS, orjson.dumps({"results": results}), rows=2, batch=True)
    process.record(LEADS[:1], orjson.dumps(results[0]), rows=1, batch=False)
    process.record(PLAIN[:1], orjson.dumps(results[0]), rows=1, batch=False)
    process.record(PLAIN, orjson.dumps({"results": results}), rows=2, batch=True)
    assert process.wait_idle(30)
    process.stop()
    assert _stored(database_url) == _stored(thread_url)
    assert _metric(process, "leadscore_prediction_log_rows_total") == 6
    assert [row["explore"] for row in _stored(database_url)] == [True, False, True, True, True, False]
    assert _stored(database_url)[3]["lead"] == {k: v for k, v in PLAIN[0].items() if v is not None}


def test_a_full_queue_keeps_the_first_rows_of_a_request_and_counts_the_rest(sqlite_url: str) -> None:
    process = _process(sqlite_url, max_queue=5)
    body = orjson.dumps({"results": [_result(f"L{i}") for i in range(8)]})
    process.record([{"industry": "software"}] * 8, body, rows=8, batch=True)
    assert _metric(process, "leadscore_prediction_log_queue") == 5
    process.start()
    assert process.wait_idle(30)
    process.stop()
    assert [row["lead_id"] for row in _stored(sqlite_url)] == ["L0", "L1", "L2", "L3", "L4"]
    assert _metric(process, "leadscore_prediction_log_lost_total", reason="queue_full") == 3
    assert _metric(process, "leadscore_prediction_log_rows_total") == 5


def test_a_writer_process_that_dies_is_replaced_and_what_it_held_is_counted(sqlite_url: str) -> None:
    process = _process(sqlite_url).start()
    process.record(LEADS[:1], orjson.dumps(_result("L1")), rows=1, batch=False)
    assert process.wait_idle(30)
    first = process._child
    assert first is not None
    first.proc.kill()
    first.proc.wait()
    body = orjson.dumps({"results": [_result("L2"), _result("L3")]})
    for _ in range(2):  # the first send may still reach the dead pipe's buffer: lost, and counted
        process.record(LEADS, body, rows=2, batch=True)
        time.sleep(0.2)
    assert process.wait_idle(30)
    process.stop()
    written = [row["lead_id"] for row in _stored(sqlite_url)]
    lost = _metric(process, "leadscore_prediction_log_lost_total", reason="writer_exited")
    assert written[0] == "L1" and written[-2:] == ["L2", "L3"]
    assert len(written) + lost == 5
    assert _metric(process, "leadscore_prediction_log_rows_total") == len(written)
    assert process._child is not first


def test_nothing_is_started_before_the_first_score(sqlite_url: str) -> None:
    process = _process(sqlite_url).start()
    time.sleep(0.1)
    assert process._child is None  # cold start does not pay for the writer's interpreter
    process.stop()


def test_an_answer_that_cannot_be_read_back_costs_its_own_row_only(sqlite_url: str) -> None:
    answers = [_result("L1"), _result("L2") | {"probability": None}, _result("L3")]
    process = _process(sqlite_url).start()
    process.record([{}, {}, {}], orjson.dumps({"results": answers}), rows=3, batch=True)
    assert process.wait_idle(30)
    process.stop()
    assert [row["lead_id"] for row in _stored(sqlite_url)] == ["L1", "L3"]
    assert _metric(process, "leadscore_prediction_log_lost_total", reason="bad_row") == 1
