"""Two checkouts' servers side by side: which one answers POST /v1/score/batch faster, on this machine now.

This machine's speed drifts by up to 40% within minutes, so two runs of bench/serve_latency.py minutes
apart cannot tell a 5% change. Here both servers run at once, each from its own checkout (same model,
each logging to a fresh SQLite file), and one client posts the same 1,000 distinct leads to them in
turn (A B, B A, ...): both see the same machine, and the ratio of their median times holds where the
absolute figures do not. Session 8 used it for every change to the batch endpoint.

    git worktree add --detach ../before HEAD~1
    python bench/batch_ab.py ../before . --model models/lead-conversion/1 [--rounds 40]
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads would spin and bill CPU time

from serve_latency import _cpu_seconds, sample_leads  # noqa: E402 - bench/ is this script's folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="a checkout (e.g. a git worktree of the old commit)")
    parser.add_argument("after", type=Path, help="another checkout")
    parser.add_argument("--model", required=True, help="bundle folder both servers load")
    parser.add_argument("--rounds", type=int, default=40, help="batches per server")
    parser.add_argument("--leads", type=int, default=1000, help="distinct leads per batch")
    args = parser.parse_args()
    leads = sample_leads(args.model, args.leads)
    body = b'{"leads": [' + b",".join(leads[: args.leads]) + b"]}"
    trees = [args.before.resolve(), args.after.resolve()]
    with ExitStack() as stack:
        ports = [stack.enter_context(_server(tree, args.model)) for tree in trees]
        clients = [http.client.HTTPConnection("127.0.0.1", port, timeout=120) for port, _ in ports]
        for client in clients:  # warm-up: first-call paths, caches, the log's writer process
            for _ in range(3):
                _post(client, body)
        seconds: list[list[float]] = [[], []]
        cpu: list[list[float]] = [[], []]
        for r in range(args.rounds):
            for i in (0, 1) if r % 2 == 0 else (1, 0):
                before = _cpu_seconds(ports[i][1])
                began = time.perf_counter()
                _post(clients[i], body)
                seconds[i].append(time.perf_counter() - began)
                cpu[i].append(_cpu_seconds(ports[i][1]) - before)
    for tree, times, used in zip(trees, seconds, cpu, strict=True):
        print(
            f"{tree}: {args.leads / statistics.median(times):,.0f} explained leads/s "
            f"(median request {1e3 * statistics.median(times):.1f} ms), "
            f"server CPU {1e6 * statistics.median(used) / args.leads:.0f} µs per lead"
        )
    print(f"after/before, median time per request: {statistics.median(seconds[1]) / statistics.median(seconds[0]):.3f}")
    return 0


@contextmanager
def _server(tree: Path, model: str) -> Iterator[tuple[int, int]]:
    """(port, pid) of `leadscore serve` run from `tree`'s code, stopped on exit."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "PYTHONPATH": str(tree), "LEADSCORE_DATABASE_URL": f"sqlite:///{folder}/predictions.db"}
        cmd = [sys.executable, "-m", "training.cli", "serve", "--model", model, "--port", str(port)]
        proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_ready(port, proc)
            yield port, proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server from {proc.args} exited with {proc.returncode}")
        try:
            client = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            client.request("GET", "/readyz")
            if client.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("a server did not become ready in 120 s")


def _post(client: http.client.HTTPConnection, body: bytes) -> None:
    client.request("POST", "/v1/score/batch", body=body, headers={"content-type": "application/json"})
    response = client.getresponse()
    answer = response.read()
    if response.status != 200:
        raise SystemExit(f"POST /v1/score/batch answered {response.status}: {answer[:300]!r}")


if __name__ == "__main__":
    raise SystemExit(main())
