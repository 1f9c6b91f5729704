"""What the prediction log costs a score request, and how fast its writer drains.

Measured side by side in one run, on 127.0.0.1:
  1. one client sending one lead per request to an in-process uvicorn server, with the log on and
     off (alternating blocks, so load changes hit both): p50 and p99 latency;
  2. CPU per lead with one and 1,000 leads per request, until the rows are written: `Loop.record` on
     the request's thread, the rest of the server's process, and the writer process (the API's log is
     written by a process of its own; a writer thread in the server's process is shown for comparison);
  3. writer throughput: rows per second from queue to database, in batches of 500.

    python bench/predlog.py                                  # SQLite file in a temporary folder
    python bench/predlog.py --database-url postgresql://u@127.0.0.1:5432/db

Figures are printed, never asserted. Bounded in request count and time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from serve_latency import sample_leads  # noqa: E402  (bench/ is on sys.path when run as a script)


def train_bundle(folder: Path) -> Path:
    """A champion from `leadscore train` on a small synthetic history, in a throwaway MLflow store (untimed)."""
    from features.synthetic import generate, write_history
    from training.pipeline import train

    data = write_history(generate(quarters=6, leads_per_quarter=3000, seed=5), folder / "leads.parquet")["leads"]
    return train(data, models_dir=folder / "models", tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").bundle_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="bundle folder (default: train a small one, untimed)")
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    parser.add_argument(
        "--requests", type=int, default=600, help="requests per mode (log on, log off); 0 skips the HTTP part"
    )
    parser.add_argument("--rows", type=int, default=20_000, help="rows for the writer throughput")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'predictions.db'}"
        model = args.model or str(train_bundle(Path(tmp)))
        bodies = sample_leads(model, 1000)
        latency = http_side_by_side(model, url, bodies[:300], requests=args.requests) if args.requests else {}
        costs = {
            (n, own): record_and_write_cost(model, url, bodies, per_request=n, own_process=own)
            for own in (True, False)
            for n in (1, 1000)
        }
        rows_per_s = writer_throughput(url, rows=args.rows)
    print(f"database: {url.split('@')[-1]}")
    for mode, ms in latency.items():
        print(
            f"POST /v1/score, one client, log {mode}: p50 {ms['p50']:.2f} ms, p99 {ms['p99']:.2f} ms "
            f"({ms['n']} requests)"
        )
    if latency:
        print(f"p50 ratio log on / off: {latency['on']['p50'] / latency['off']['p50']:.2f}")
    for (n, own), cost in costs.items():
        where = "writer process (the API's)" if own else "writer thread"
        print(
            f"{where}, {n:>4} lead(s) per request, CPU per lead: record (in the request) {cost['record']:.1f} µs, "
            f"rest of the server's process {cost['rest']:.1f} µs, writer process {cost['writer_process']:.1f} µs"
        )
    print(f"writer: {rows_per_s:,.0f} rows/s from queue to database (batches of 500)")
    return 0


def http_side_by_side(model: str, url: str, bodies: list[bytes], *, requests: int) -> dict[str, dict[str, float]]:
    import uvicorn

    from serving.api.main import create_app
    from serving.api.settings import Settings
    from serving.model.scorer import Scorer

    scorer = Scorer.load(model)
    times: dict[str, list[float]] = {"on": [], "off": []}
    servers = {}
    for mode in times:
        app = create_app(Settings(database_url=url, log_predictions=mode == "on"), scorer=scorer)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        servers[mode] = (server, thread, http.client.HTTPConnection("127.0.0.1", port, timeout=10))
    deadline = time.monotonic() + 120
    for block in range(requests // 50):
        for mode in ("on", "off") if block % 2 == 0 else ("off", "on"):
            connection = servers[mode][2]
            for i in range(50):
                body = bodies[(block * 50 + i) % len(bodies)]
                start = time.perf_counter()
                connection.request("POST", "/v1/score", body, {"content-type": "application/json"})
                connection.getresponse().read()
                times[mode].append(time.perf_counter() - start)
        if time.monotonic() > deadline:
            break
    for server, thread, connection in servers.values():
        connection.close()
        server.should_exit = True
        thread.join(30)
    return {
        mode: {"p50": 1e3 * statistics.median(t), "p99": 1e3 * sorted(t)[int(0.99 * len(t))], "n": len(t)}
        for mode, t in times.items()
    }


def record_and_write_cost(model: str, url: str, bodies: list[bytes], *, per_request: int, own_process: bool) -> dict:
    """CPU µs per lead until written: `Loop.record` on the request's thread, the rest of this process
    (the writer thread, or the sender thread that hands requests to the writer process), and the writer
    process (with SQLite, the database's own work is in whichever process writes)."""
    from prometheus_client import CollectorRegistry

    from serving.api import fast_json
    from serving.model.scorer import Scorer
    from serving.predlog.db import connect, migrate
    from serving.predlog.engine import EngineSource
    from serving.predlog.service import Loop

    scorer = Scorer.load(model)
    leads = [json.loads(b) for b in bodies]
    results = scorer.score(leads)
    migrate(connect(url))
    engine = EngineSource(url) if own_process else connect(url)
    loop = Loop(engine, registry=CollectorRegistry(), max_queue=1_000_000, own_process=own_process)
    requests = [(leads[i : i + per_request], results[i : i + per_request]) for i in range(0, len(leads), per_request)]
    answers = [fast_json.dump_batch(r) if per_request > 1 else fast_json.dump_result(r[0]) for _, r in requests]
    loop.start()
    loop.record(*requests[0], answers[0], batch=per_request > 1)  # the writer starts and checks the tables
    loop.log.wait_idle(60)
    writer = loop.log._child.proc.pid if own_process else None  # type: ignore[union-attr]
    total = len(leads) * 5
    writer_start = _cpu_seconds(writer) if writer else 0.0
    process_start, thread_start = time.process_time(), time.thread_time()
    for _ in range(5):
        for (chunk, answered), body in zip(requests, answers, strict=True):
            loop.record(chunk, answered, body, batch=per_request > 1)
    request_s = time.thread_time() - thread_start
    loop.log.wait_idle(120)
    spent_s = time.process_time() - process_start
    writer_s = _cpu_seconds(writer) - writer_start if writer else 0.0
    loop.stop()
    return {
        "record": 1e6 * request_s / total,
        "rest": 1e6 * (spent_s - request_s) / total,
        "writer_process": 1e6 * writer_s / total,
    }


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def writer_throughput(url: str, *, rows: int) -> float:
    from prometheus_client import CollectorRegistry

    from serving.predlog.db import connect, migrate
    from serving.predlog.writer import PredictionLog

    result: dict[str, Any] = {
        "lead_id": "L1",
        "model": {"name": "m", "version": "1"},
        "probability": 0.1,
        "score": 10,
        "grade": "C",
        "log_odds": {"raw_score": -2.2},
        "factors": [{"key": "icp_fit", "impact": -0.3}],
        "lowering_factors": [],
    }
    lead = {"lead_id": "L1", "industry": "software", "company_size": 120, "phone_present": True}
    engine = connect(url)
    migrate(engine)
    log = PredictionLog(engine, registry=CollectorRegistry(), max_queue=rows + 1)
    log.record([lead] * rows, [result] * rows)
    start = time.perf_counter()
    log.start()
    log.wait_idle(300)
    spent = time.perf_counter() - start
    log.stop()
    return rows / spent


if __name__ == "__main__":
    sys.exit(main())
