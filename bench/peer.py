"""The two servers the benchmark compares, started the same way: ours and MLflow's, on one registered model.

    with mlflow_peer(tracking_uri, cwd=work) as peer, leadscore_server(tracking_uri, cwd=work) as ours:
        run_load(peer.base_url, PEER_PATH, [peer_body(lead) for lead in leads], ...)
        run_load(ours.base_url, OURS_PATH, [ours_body(lead) for lead in leads], ...)

The peer is what an MLflow user would run instead of `leadscore serve`:
`mlflow models serve -m models:/lead-conversion@champion --env-manager local` (one uvicorn worker, its
default), loading our registered pyfunc, which returns probability and grade but no explanation.
Both listen on 127.0.0.1 only and are stopped (their whole process group) when the block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))  # the shared load client

from http_load import get, post

MODEL_URI = "models:/lead-conversion@champion"
OURS_PATH = "/v1/score"
PEER_PATH = "/invocations"


@dataclass
class Server:
    """A server process we started: where it listens and how long it took to answer its readiness check."""

    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    started: float  # time.monotonic() just before the process was spawned
    ready_s: float
    log: Path


def ours_body(lead: Mapping[str, Any]) -> bytes:
    return json.dumps(lead, separators=(",", ":")).encode()


def peer_body(lead: Mapping[str, Any]) -> bytes:
    """MLflow's scoring protocol: a DataFrame as records (one lead per request, like ours)."""
    return json.dumps({"dataframe_records": [lead]}, separators=(",", ":")).encode()


def peer_batch_body(leads: list[Mapping[str, Any]]) -> bytes:
    return json.dumps({"dataframe_records": leads}, separators=(",", ":")).encode()


def checkout_pythonpath() -> str:
    """This checkout first on the path of every process the benchmark starts, so it measures the code
    beside it (not whatever an editable install elsewhere points to)."""
    root = str(Path(__file__).resolve().parents[1])
    return os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def mlflow_peer(
    tracking_uri: str, *, cwd: Path, model_uri: str = MODEL_URI, timeout_s: float = 180.0
) -> Iterator[Server]:
    """`mlflow models serve` on the registered model, in the current Python environment."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "-p",
        str(port),
        "--host",
        "127.0.0.1",
    ]
    with _process(
        "mlflow-peer",
        cmd,
        port=port,
        ready_path="/ping",
        cwd=cwd,
        timeout_s=timeout_s,
        env={"MLFLOW_TRACKING_URI": tracking_uri},
    ) as server:
        yield server


@contextlib.contextmanager
def leadscore_server(
    tracking_uri: str,
    *,
    cwd: Path,
    model: str | None = None,
    timeout_s: float = 180.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """`leadscore serve` (the champion by default), exactly as a user starts it."""
    port = free_port()
    cmd = [sys.executable, "-m", "training.cli", "serve", "--port", str(port)]
    if model is not None:
        cmd += ["--model", model]
    with _process(
        "leadscore",
        cmd,
        port=port,
        ready_path="/readyz",
        cwd=cwd,
        timeout_s=timeout_s,
        env={"MLFLOW_TRACKING_URI": tracking_uri, **(env or {})},
    ) as server:
        yield server


def first_score_s(server: Server, path: str, body: bytes) -> float:
    """Seconds from the process's start to its first successful scoring answer (call right after start)."""
    status, payload = post(server.base_url, path, body)
    if status != 200:
        raise RuntimeError(f"{server.name}: first request answered {status}: {payload[:300]!r}")
    return time.monotonic() - server.started


@contextlib.contextmanager
def _process(
    name: str, cmd: list[str], *, port: int, ready_path: str, cwd: Path, timeout_s: float, env: Mapping[str, str]
) -> Iterator[Server]:
    # MLflow launches uvicorn by name through bash, so this interpreter's bin/ must come first on PATH.
    bin_dir = str(Path(sys.executable).parent)
    full_env = {
        **os.environ,
        **env,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONPATH": checkout_pythonpath(),
    }
    log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
    base_url = f"http://127.0.0.1:{port}"
    with log.open("wb") as sink:
        started = time.monotonic()
        process = subprocess.Popen(
            cmd, cwd=cwd, env=full_env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )  # its own process group: stopped as one
        try:
            ready_s = _wait_ready(process, base_url, ready_path, started, timeout_s, log)
            yield Server(name=name, base_url=base_url, process=process, started=started, ready_s=ready_s, log=log)
        finally:
            _stop(process)


def _wait_ready(
    process: subprocess.Popen[bytes], base_url: str, path: str, started: float, timeout_s: float, log: Path
) -> float:
    while True:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{process.args[:4]} exited {process.returncode} before it was ready:\n{tail}")
        with contextlib.suppress(OSError):
            status, _ = get(base_url, path, timeout_s=2.0)
            if status == 200:
                return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"{base_url} not ready after {timeout_s:.0f} s (log: {log})")
        time.sleep(0.02)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)  # the group we created for this process, nothing else
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
