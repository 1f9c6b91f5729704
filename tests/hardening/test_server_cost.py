"""What a small request costs a real `leadscore serve` process, in its CPU seconds (read from /proc, so
a busy machine does not move the figures as it moves wall time), and how long a slow or silent client
can hold a connection. Short deadlines (2 s) keep the tests fast; the defaults are 10 s."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from serving.api.lead_input import MAX_KEYS, MAX_PROBLEMS
from support.hardening import Registry, Served, process_cpu_s, serve_process, trickle
from support.http_load import post

LEAD = {"lead_id": "C-1", "industry": "software", "web_visits": 3, "company_size": 40}
DEADLINE_S = 2
MAX_CONNECTIONS = 4


@pytest.fixture(scope="module")
def server(registry: Registry) -> Iterator[Served]:
    env = {
        "LEADSCORE_HEADER_TIMEOUT_S": str(DEADLINE_S),
        "LEADSCORE_BODY_TIMEOUT_S": str(DEADLINE_S),
        "LEADSCORE_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "LEADSCORE_LOG_PREDICTIONS": "false",  # the requests' own cost, not the log writer's
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    with serve_process(registry.bundle_dir(registry.versions[0]), env=env) as served:
        post(served.base_url, "/v1/score/batch", json.dumps({"leads": [LEAD] * 50}).encode())  # warm the kernels
        yield served


def _cost(server: Served, path: str, body: Any) -> tuple[int, bytes, float]:
    """Status, answer and the server's CPU seconds for one request (anything it still does 0.3 s after
    answering counts too)."""
    before = process_cpu_s(server.pid)
    status, answer = post(server.base_url, path, json.dumps(body).encode(), timeout_s=300)
    time.sleep(0.3)
    return status, answer, process_cpu_s(server.pid) - before


# -- cost ------------------------------------------------------------------------------------------
def test_10000_copies_of_one_lead_cost_their_answer_not_10000_explanations(server: Served) -> None:
    """40 KB of `{}` used to cost ~10 times a batch of 1,000 distinct leads (every copy explained,
    ~6 s of CPU). Identical leads are now explained once; what is left is writing 10,000 answers
    (~49 MB), which costs about what 1,000 distinct leads cost. 3x leaves room for noise."""
    distinct = [{**LEAD, "lead_id": f"D{i}", "web_visits": i} for i in range(1_000)]
    status, answer, distinct_cpu = _cost(server, "/v1/score/batch", {"leads": distinct})
    assert status == 200
    status, answer, copies_cpu = _cost(server, "/v1/score/batch", {"leads": [{}] * 10_000})
    print(
        f"10,000 x {{}}: {copies_cpu:.2f} s CPU, {len(answer) / 1e6:.0f} MB back; 1,000 distinct: {distinct_cpu:.2f} s"
    )
    assert status == 200
    results = json.loads(answer)["results"]
    assert len(results) == 10_000 and results[0] == results[-1] and results[0]["lead_id"] is None
    assert copies_cpu < 3 * distinct_cpu


def test_a_300000_key_lead_in_a_batch_is_refused_before_parsing(server: Served) -> None:
    """The keys are counted on the bytes (serving.api.json_keys): ~0.2 s of parsing per 4 MB before."""
    warm = {"leads": [LEAD, {f"w{i}": 1 for i in range(MAX_KEYS + 1)}]}
    assert _cost(server, "/v1/score/batch", warm)[0] == 422
    body = {"leads": [LEAD, {f"field_{i}": 1 for i in range(300_000)}, LEAD]}  # ~4 MB
    # The work is the same each time; other work in the process (GC, the event loop) only adds, and
    # /proc counts in 10 ms ticks: the cheapest of five is the request's own cost (70-110 ms measured).
    runs = [_cost(server, "/v1/score/batch", body) for _ in range(5)]
    status, answer, cpu = min(runs, key=lambda r: r[2])
    print(
        f"300,000 keys in a batch: {status}, {len(answer)} bytes, ms server CPU: {[round(r[2] * 1000) for r in runs]}"
    )
    assert status == 422 and len(answer) < 1_000
    assert json.loads(answer)["detail"] == [
        {"field": "body", "problem": f"a lead object with 300,000 fields; at most {MAX_KEYS:,} are read"}
    ]
    assert cpu < 0.1


def test_a_million_non_leads_in_a_batch_are_refused_cheaply(server: Served) -> None:
    """2 MB of `1`s where leads go: the one-call batch validator stops at the first (before, it built
    an error object for each, ~0.8 s of CPU and ~340 MB, then the general path refused the batch)."""
    status, answer, cpu = _cost(server, "/v1/score/batch", {"leads": [1] * 1_000_000})
    print(f"1,000,000 non-leads: {status}, {len(answer)} bytes, {cpu * 1000:.0f} ms server CPU")
    assert status == 413 and json.loads(answer)["detail"][0]["field"] == "leads"
    assert cpu < 0.25


def test_10000_invalid_leads_are_refused_cheaply_with_a_short_answer(server: Served) -> None:
    status, answer, cpu = _cost(server, "/v1/score/batch", {"leads": [{"web_visits": -1}] * 10_000})
    print(f"10,000 invalid leads: {status}, {len(answer)} bytes, {cpu * 1000:.0f} ms server CPU")
    detail = json.loads(answer)["detail"]
    assert status == 422 and len(answer) < 4_000 and len(detail) == MAX_PROBLEMS + 1
    assert detail[0] == {"field": "leads[0].web_visits", "problem": "-1 is below the minimum 0"}
    assert detail[-1] == {
        "field": "body",
        "problem": f"1 more problems not listed; the {10_000 - MAX_PROBLEMS - 1:,} leads after them were not checked",
    }
    assert cpu < 0.25


# -- slow and silent clients -----------------------------------------------------------------------
def test_headers_sent_a_byte_at_a_time_get_a_408_at_the_deadline(server: Served) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        answer, waited = trickle(
            sock, b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n", every_s=0.25
        )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:200]
    assert json.loads(body)["detail"] == [
        {
            "field": "headers",
            "problem": f"the request line and headers did not arrive within {DEADLINE_S} s "
            "(LEADSCORE_HEADER_TIMEOUT_S)",
        }
    ]
    assert DEADLINE_S - 0.5 < waited < DEADLINE_S + 3


def test_a_body_sent_a_byte_at_a_time_gets_a_408_at_the_deadline(server: Served) -> None:
    body = json.dumps(LEAD).encode()
    head = b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head % len(body))
        answer, waited = trickle(sock, body, every_s=0.25)
    assert answer.startswith(b"HTTP/1.1 408") and b"LEADSCORE_BODY_TIMEOUT_S" in answer, answer[:200]
    assert waited < DEADLINE_S + 3


def test_idle_connections_hold_no_slot_past_the_deadline(server: Served) -> None:
    """MAX_CONNECTIONS sockets that send nothing fill the server (uvicorn answers 503); past the
    header deadline they are closed and the server answers again. Without a deadline they would stay."""
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(MAX_CONNECTIONS)]
    try:
        full, _ = post(server.base_url, "/v1/score", json.dumps(LEAD).encode())
        began = time.monotonic()
        closed = [sock.recv(100) for sock in idle]  # b"": closed by the server, with nothing sent
        waited = time.monotonic() - began
        status, _ = post(server.base_url, "/v1/score", json.dumps(LEAD).encode())
    finally:
        for sock in idle:
            sock.close()
    assert full == 503
    assert closed == [b""] * MAX_CONNECTIONS and waited < DEADLINE_S + 3
    assert status == 200
