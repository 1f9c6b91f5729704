"""A bounded loopback load client: N concurrent clients, stopped by a request count or a time limit.

    result = run_load("http://127.0.0.1:8000", "/v1/score", bodies, concurrency=8, max_requests=2000, max_seconds=20)
    print(result.summary())        # p50/p95/p99 latency in ms, throughput, failures

Each client is a thread holding one keep-alive connection and sending one request at a time (a
closed loop, like a CRM integration waiting for its answer). Bodies are taken round-robin from the
list, so two servers measured with the same bodies see the same leads in the same order.

Why `http.client` and not httpx: on this machine the client shares two cores with the server, so
its own cost per request shows up in the server's figures. `compare_clients` measures both on the
same endpoint (CPU seconds the client thread spends per request); `bench/run.py` records it.

Only loopback addresses are accepted: this is a benchmark of our own processes, never a load test
of anything else.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np

Check = Callable[[int, bytes], str | None]  # (status, body) -> a problem, or None when the response is right
CLIENTS = ("http.client", "httpx")
_LOOPBACK = ("127.", "localhost", "::1", "[::1]")


@dataclass
class LoadResult:
    """Latencies of the requests that completed, and what went wrong with the others."""

    label: str
    concurrency: int
    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: int = 0
    problems: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1000.0) if self.latencies_s else float("nan")

    def summary(self) -> dict[str, Any]:
        """The figures a reader compares: latency percentiles in ms and completed requests per second."""
        return {
            "label": self.label,
            "concurrency": self.concurrency,
            "requests": self.requests,
            "failures": self.failures,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "p50_ms": round(self.percentile_ms(50), 3),
            "p95_ms": round(self.percentile_ms(95), 3),
            "p99_ms": round(self.percentile_ms(99), 3),
            "mean_ms": round(float(np.mean(self.latencies_s) * 1000.0), 3) if self.latencies_s else float("nan"),
            "throughput_rps": round(self.requests / self.wall_s, 1) if self.wall_s > 0 else 0.0,
            "wall_s": round(self.wall_s, 2),
            "problems": self.problems[:5],
        }


def run_load(
    base_url: str,
    path: str,
    bodies: Sequence[bytes],
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    label: str = "",
    check: Check | None = None,
    client: str = "http.client",
    headers: dict[str, str] | None = None,
    timeout_s: float = 30.0,
    stop: threading.Event | None = None,
) -> LoadResult:
    """POST `bodies` round-robin to `path` from `concurrency` clients until `max_requests`, `max_seconds`
    or `stop` is set, whichever comes first.

    A request fails when it raises, answers a non-2xx status, or `check` names a problem with it.
    """
    if not bodies:
        raise ValueError("need at least one request body")
    if client not in CLIENTS:
        raise ValueError(f"client must be one of {CLIENTS}")
    host, port = _loopback(base_url)
    result = LoadResult(label=label or path, concurrency=concurrency)
    lock = threading.Lock()
    tickets = itertools.count()
    all_headers = {"content-type": "application/json", **(headers or {})}
    start = time.perf_counter()
    deadline = start + max_seconds

    def worker() -> None:
        send = _sender(client, host, port, all_headers, timeout_s)
        try:
            while True:
                ticket = next(tickets)  # atomic under the GIL
                if ticket >= max_requests or time.perf_counter() > deadline or (stop and stop.is_set()):
                    return
                body = bodies[ticket % len(bodies)]
                began = time.perf_counter()
                try:
                    status, payload = send.post(path, body)
                    problem = None if 200 <= status < 300 else f"HTTP {status}: {payload[:200]!r}"
                    if problem is None and check is not None:
                        problem = check(status, payload)
                except Exception as exc:  # noqa: BLE001 - a failed request is a figure, not a crash of the benchmark
                    status, problem = 0, f"{type(exc).__name__}: {exc}"
                    send.reconnect()
                elapsed = time.perf_counter() - began
                with lock:
                    result.statuses[status] += 1
                    if problem is None:
                        result.latencies_s.append(elapsed)
                    else:
                        result.failures += 1
                        if len(result.problems) < 20:
                            result.problems.append(problem)
        finally:
            send.close()

    threads = [threading.Thread(target=worker, name=f"load-{i}", daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max_seconds + timeout_s + 5)
    result.wall_s = time.perf_counter() - start
    return result


def compare_clients(base_url: str, path: str, body: bytes, *, requests: int = 300) -> dict[str, dict[str, float]]:
    """Per request, for each client: CPU ms spent in the client thread, and the wall-clock latency.

    One client, sequential requests, so the server is idle between them and the client's CPU time is
    its own cost (the server runs in another process).
    """
    host, port = _loopback(base_url)
    out: dict[str, dict[str, float]] = {}
    for client in CLIENTS:
        send = _sender(client, host, port, {"content-type": "application/json"}, 30.0)
        try:
            for _ in range(20):  # warm the connection and the server
                send.post(path, body)
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            for _ in range(requests):
                send.post(path, body)
            cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
        finally:
            send.close()
        out[client] = {
            "client_cpu_ms_per_request": round(cpu / requests * 1000.0, 4),
            "latency_ms_mean": round(wall / requests * 1000.0, 4),
        }
    return out


def get(base_url: str, path: str, *, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """One GET on a fresh connection (for readiness polls)."""
    host, port = _loopback(base_url)
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def post(
    base_url: str, path: str, body: bytes, *, headers: dict[str, str] | None = None, timeout_s: float = 60.0
) -> tuple[int, bytes]:
    """One POST on a fresh connection."""
    host, port = _loopback(base_url)
    send = _sender("http.client", host, port, {"content-type": "application/json", **(headers or {})}, timeout_s)
    try:
        return send.post(path, body)
    finally:
        send.close()


# -- clients -------------------------------------------------------------------------------------


class _HttpClientSender:
    """http.client with one persistent connection (HTTP/1.1 keep-alive)."""

    def __init__(self, host: str, port: int, headers: dict[str, str], timeout_s: float) -> None:
        self.host, self.port, self.headers, self.timeout_s = host, port, headers, timeout_s
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout_s)

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.conn.request("POST", path, body=body, headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def reconnect(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)

    def close(self) -> None:
        self.conn.close()


class _HttpxSender:
    def __init__(self, host: str, port: int, headers: dict[str, str], timeout_s: float) -> None:
        import httpx

        self.client = httpx.Client(base_url=f"http://{host}:{port}", headers=headers, timeout=timeout_s)

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        response = self.client.post(path, content=body)
        return response.status_code, response.content

    def reconnect(self) -> None:  # httpx's pool replaces broken connections itself
        pass

    def close(self) -> None:
        self.client.close()


def _sender(
    client: str, host: str, port: int, headers: dict[str, str], timeout_s: float
) -> _HttpClientSender | _HttpxSender:
    cls = _HttpClientSender if client == "http.client" else _HttpxSender
    return cls(host, port, headers, timeout_s)


def _loopback(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if not (host.startswith(_LOOPBACK) or host in ("localhost", "::1")):
        raise ValueError(f"refusing to load {base_url}: only loopback addresses (127.0.0.0/8, localhost, ::1)")
    if parts.port is None:
        raise ValueError(f"{base_url} needs an explicit port")
    return host, parts.port
