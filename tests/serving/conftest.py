"""A small real bundle for the serving tests: trained once per session on synthetic leads (~3 s)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn

from features.synthetic import SyntheticHistory, bundled_schema, generate
from features.target import labels
from support.databases import database_url, postgres_server, postgres_url, sqlite_url  # noqa: F401  (fixtures)

TRAIN = {"quarters": 4, "leads_per_quarter": 3000, "seed": 3}
FRESH = {"quarters": 4, "leads_per_quarter": 1000, "seed": 99}
METADATA = {
    "name": "lead-conversion",
    "version": "7",
    "as_of": "2026-07-01",
    "data_window": {"start": "2025-10-01", "end": "2026-07-01"},
    "metrics": {"roc_auc": 0.8},
}


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained, calibrated LightGBM bundle folder (model.txt + bundle.json): trees fitted with early
    stopping, calibrated on later held-out leads, TreeSHAP's expected value as the baseline."""
    from serving.model.bundle import Bundle, expected_raw
    from training.calibrate import fit_calibrator
    from training.model import fit_lightgbm

    schema = bundled_schema()
    leads = generate(**TRAIN).leads
    y = labels(leads, schema)
    a, b = int(len(leads) * 0.6), int(len(leads) * 0.8)
    fitted = fit_lightgbm(leads.iloc[:a], y[:a], leads.iloc[a:b], y[a:b], schema)
    X_calib = fitted.encoder.transform(leads.iloc[b:])
    bundle = Bundle(
        booster=fitted.booster,
        schema=schema,
        encoder=fitted.encoder,
        calibrator=fit_calibrator(fitted.booster.predict(X_calib, raw_score=True), y[b:]),
        baseline_raw=expected_raw(fitted.booster, None, 1.0, X_calib),
        metadata=dict(METADATA),
    )
    return bundle.save(tmp_path_factory.mktemp("models") / "lead-conversion" / "7")


@pytest.fixture(scope="session")
def scorer(bundle_dir: Path):
    from serving.model.scorer import Scorer

    return Scorer.load(bundle_dir)


@pytest.fixture(scope="session")
def fresh() -> SyntheticHistory:
    """Leads the model never saw, with the generator's truth beside them."""
    return generate(**FRESH)


def as_records(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """DataFrame rows as the JSON-like dicts a CRM would send (missing as None, plain Python types)."""
    out = []
    for row in frame[columns].astype(object).to_numpy():
        out.append({c: _plain(v) for c, v in zip(columns, row, strict=True)})
    return out


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


@pytest.fixture(scope="session")
def lead_records(fresh: SyntheticHistory) -> list[dict[str, Any]]:
    schema = bundled_schema()
    return as_records(fresh.leads.iloc[:300], [schema.id_column] + schema.feature_names)


# -- the API for real on 127.0.0.1 ---------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def threaded_server(app, *, timeout_s: float = 30.0) -> Iterator[str]:
    """Serve `app` with uvicorn in a background thread; yields the base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)


@contextlib.contextmanager
def cli_server(model: Path, *, env: dict[str, str] | None = None, timeout_s: float = 90.0) -> Iterator[str]:
    """`leadscore serve --model MODEL --port P` in a subprocess, ready when /readyz says so."""
    port = free_port()
    cmd = [sys.executable, "-m", "training.cli", "serve", "--model", str(model), "--port", str(port)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})}
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"leadscore serve exited {proc.returncode}: {proc.stdout.read()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("leadscore serve did not become ready")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def run_threaded() -> Callable[..., Any]:
    """`with run_threaded(app) as base_url:` serves the app with uvicorn in a thread."""
    return threaded_server


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., Any]:
    """`with run_cli(bundle_dir) as base_url:` runs `leadscore serve` in a subprocess."""
    return cli_server


# -- a real browser, offline ---------------------------------------------------------------------
@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`chromium(url, "--dump-dom")`: headless Chromium with every host name unresolvable except the
    loopback address, so a page that needs the internet (a CDN) shows it. Skips where it is missing."""
    import shutil

    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if binary is None:
        pytest.skip("chromium is not installed here (apt-get install -y chromium); .ci/run installs it")

    def run(url: str, *mode: str) -> subprocess.CompletedProcess[str]:
        profile = tmp_path_factory.mktemp("chromium-profile")
        command = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no network beyond this machine
            "--virtual-time-budget=10000",
            *mode,
            url,
        ]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    return run
