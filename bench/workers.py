"""One server process against one per core: explained leads/s over loopback, side by side in one run.

    python bench/workers.py --model models/lead-conversion/1            # a bundle folder or models:/ URI

Starts `leadscore serve --workers N` for N in --workers (default 1 and 2), waits until ten /readyz
answers in a row are 200, warms up, then runs the bounded load client (tests/support/http_load.py) at 1 and 16
clients for --seconds each, then as many clients as workers posting --batch leads per POST /v1/score/batch
(issue 9's batch target is 10,000 explained leads/s with 1,000 per request). The client shares the
machine's cores with the server: read the ratio, and the CPU per request of the server processes and of
the load client, printed beside each figure.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "support"))  # the shared load client

from http_load import run_load  # noqa: E402

LEAD = {
    "industry": "software",
    "company_size": 80,
    "web_visits": 4,
    "phone_present": True,
    "purchase_timeline": "3-6 months",
    "seniority": "director",
}


def _wait_ready(port: int, timeout_s: float = 120.0) -> None:
    deadline, in_a_row = time.monotonic() + timeout_s, 0
    while in_a_row < 10:
        if time.monotonic() > deadline:
            raise SystemExit(f"server on port {port} did not get ready")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz")
            in_a_row = in_a_row + 1 if conn.getresponse().status == 200 else 0
            conn.close()
        except OSError:
            in_a_row = 0
            time.sleep(0.2)


def _tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children (uvicorn's workers), from /proc (Linux)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:  # a process that has just exited
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _batch_phase(base: str, pid: int, body: bytes, *, size: int, clients: int, seconds: float) -> None:
    """One client per worker, each posting `size` distinct leads per request back to back."""
    run_load(base, "/v1/score/batch", [body], concurrency=clients, max_requests=clients, max_seconds=30)  # warm-up
    server_cpu, client_cpu = _tree_cpu_s(pid), time.process_time()
    load = run_load(base, "/v1/score/batch", [body], concurrency=clients, max_requests=100_000, max_seconds=seconds)
    r, leads = load.summary(), max(load.requests, 1) * size
    print(
        f"workers={clients} batch of {size}, {clients} client(s): {r['throughput_rps'] * size:,.0f} explained leads/s "
        f"(p50 {r['p50_ms']:.0f} ms per request), {r['failures']} failed; CPU per lead: "
        f"server {1e6 * (_tree_cpu_s(pid) - server_cpu) / leads:.0f} µs, "
        f"load client {1e6 * (time.process_time() - client_cpu) / leads:.1f} µs",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=8020)
    parser.add_argument("--batch", type=int, default=1000, help="leads per batch request (0: skip that phase)")
    args = parser.parse_args()
    bodies = [json.dumps({**LEAD, "lead_id": f"W{i}", "web_visits": i % 30}).encode() for i in range(100)]
    batch_body = json.dumps(
        {
            "leads": [
                {**LEAD, "lead_id": f"B{i}", "web_visits": i % 30, "company_size": 10 + i} for i in range(args.batch)
            ]
        }
    ).encode()
    # A PYTHONPATH already set comes first (to serve another checkout's code with the same client).
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(HERE.parent)) if p)
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": path}
    run_dir = tempfile.TemporaryDirectory(prefix="leadscore-workers-")  # the prediction log goes here
    model = str(Path(args.model).resolve()) if Path(args.model).is_dir() else args.model
    for n in (int(w) for w in args.workers.split(",")):
        port = args.port + n
        server = subprocess.Popen(
            [sys.executable, "-m", "training.cli", "serve", "--port", str(port), "--workers", str(n), "--model", model],
            env=env,
            cwd=run_dir.name,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_ready(port)
            base = f"http://127.0.0.1:{port}"
            run_load(base, "/v1/score", bodies, concurrency=4, max_requests=500, max_seconds=5)  # warm-up
            for clients in (1, 16):
                server_cpu, client_cpu = _tree_cpu_s(server.pid), time.process_time()
                load = run_load(
                    base, "/v1/score", bodies, concurrency=clients, max_requests=100_000, max_seconds=args.seconds
                )
                r = load.summary()
                per_request = 1e3 / max(load.requests, 1)
                print(
                    f"workers={n} clients={clients:>2}: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                    f"{r['throughput_rps']:.0f} explained leads/s, {r['failures']} failed; CPU per request: "
                    f"server {per_request * (_tree_cpu_s(server.pid) - server_cpu):.2f} ms, "
                    f"load client {per_request * (time.process_time() - client_cpu):.2f} ms",
                    flush=True,
                )
            if args.batch:
                _batch_phase(base, server.pid, batch_body, size=args.batch, clients=n, seconds=args.seconds)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    run_dir.cleanup()
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
