"""Helpers for the hardening tests (a module of its own: conftest.py is not importable by tests)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL = "lead-conversion"


@dataclass(frozen=True)
class Registry:
    """An MLflow store with versions 1 (champion) and 2 (challenger) of the same history."""

    uri: str
    root: Path
    models_dir: Path
    data_path: Path
    schema_path: Path
    versions: tuple[str, ...]

    def bundle_dir(self, version: str) -> Path:
        return self.models_dir / MODEL / version


def registry_state(uri: str) -> dict[str, Any]:
    """Aliases and versions of the registered model (empty when nothing is registered)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        model = client.get_registered_model(MODEL)
    except MlflowException:
        return {"aliases": {}, "versions": []}
    versions = sorted(v.version for v in client.search_model_versions(f"name='{MODEL}'"))
    return {"aliases": dict(model.aliases), "versions": versions}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(app: Any, *, ready_timeout_s: float = 60.0) -> Iterator[str]:
    """uvicorn on 127.0.0.1 in a thread; yields the base URL once /readyz answers 200."""
    import uvicorn

    from support.http_load import get

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout_s
    try:
        while True:
            with contextlib.suppress(OSError):
                if server.started and get(base, "/readyz")[0] == 200:
                    break
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the API did not become ready")
            time.sleep(0.05)
        yield base
    finally:
        server.should_exit = True
        thread.join(30)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc; NaN elsewhere). Unlike wall
    time it does not grow when other work shares the machine, so a bound on it holds on a busy CI box."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def trickle(sock: socket.socket, data: bytes, *, every_s: float) -> tuple[bytes, float]:
    """Send `data` one byte every `every_s` seconds until the server answers or closes, as a slow client
    does; (the whole answer up to the server's close, seconds until its first bytes)."""
    began = time.monotonic()
    sock.settimeout(every_s)
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
            answer = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            break
        if answer:
            waited = time.monotonic() - began
            sock.settimeout(5)
            with contextlib.suppress(OSError):  # a server that keeps the connection open: what came
                while chunk := sock.recv(4096):
                    answer += chunk
            return answer, waited
    return b"", time.monotonic() - began


@dataclass(frozen=True)
class Served:
    """A real `leadscore serve` process: its URL and pid (for its CPU time)."""

    base_url: str
    pid: int
    port: int


@contextlib.contextmanager
def serve_process(model: Path, *, env: dict[str, str], ready_timeout_s: float = 120.0) -> Iterator[Served]:
    """`leadscore serve --model DIR` in its own process (settings from LEADSCORE_* in `env`)."""
    from support.http_load import get

    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "training.cli", "serve", "--model", str(model), "--port", str(port)],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + ready_timeout_s
            while True:
                with contextlib.suppress(OSError):
                    if get(base, "/readyz")[0] == 200:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"leadscore serve did not get ready: {log.read()[-2000:]!r}")
                time.sleep(0.1)
            yield Served(base, process.pid, port)
        finally:
            process.terminate()
            process.wait(timeout=30)
