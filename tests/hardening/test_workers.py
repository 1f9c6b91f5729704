"""`leadscore serve --workers 2`: one reload request reaches one worker, and every worker follows it."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time

from mlflow import MlflowClient

from support.hardening import MODEL, Registry, free_port

TOKEN = "workers-token"
LEAD = {"lead_id": "W-1", "industry": "software", "web_visits": 3}


def _request(
    port: int, method: str, path: str, body: dict | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict]:
    """A fresh connection per request, so the kernel may hand it to either worker process."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        payload = None if body is None else json.dumps(body)
        conn.request(method, path, body=payload, headers={"content-type": "application/json", **(headers or {})})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read() or b"null")
    finally:
        conn.close()


def _versions_seen(port: int, n: int) -> set[str]:
    """The versions n requests were answered with; "loading" for a worker that has no model yet."""
    replies = [_request(port, "POST", "/v1/score", LEAD) for _ in range(n)]
    failed = [reply for reply in replies if reply[0] != 200 and "no model loaded yet" not in str(reply[1])]
    assert not failed, failed[0]
    return {str(body["model"]["version"]) if status == 200 else "loading" for status, body in replies}


def _wait_for(port: int, wanted: set[str], deadline: float) -> set[str]:
    """Until every answer comes from `wanted` (a worker may still be loading on a busy machine: the
    kernel can hand every connection of a short burst to the other one)."""
    seen = _versions_seen(port, 30)
    while seen != wanted and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = _versions_seen(port, 30)
    return seen


def test_a_reload_reaches_every_worker_process(in_registry: Registry) -> None:
    registry = in_registry
    first, second = registry.versions
    client = MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
    port = free_port()
    env = {**os.environ, "LEADSCORE_ADMIN_TOKEN": TOKEN, "OMP_WAIT_POLICY": "PASSIVE"}
    server = subprocess.Popen(
        [sys.executable, "-m", "training.cli", "serve", "--port", str(port), "--workers", "2"],
        cwd=registry.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        ready = 0
        while ready < 10 and time.monotonic() < deadline:  # both workers up: ten ready answers in a row
            try:
                ready = ready + 1 if _request(port, "GET", "/readyz")[0] == 200 else 0
            except OSError:
                ready = 0
                time.sleep(0.2)
        assert ready == 10, "the server did not get ready"
        # /readyz may have been answered by one worker only: wait until no worker says it is still loading.
        assert _wait_for(port, {first}, deadline) == {first}, "before the reload, every worker serves the champion"

        client.set_registered_model_alias(MODEL, "champion", second)
        status, body = _request(port, "POST", "/v1/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and str(body["model"]["version"]) == second
        # The other worker looks twice a second, then loads in a thread: give it time on a busy machine.
        assert _wait_for(port, {second}, time.monotonic() + 60) == {second}
    finally:
        client.set_registered_model_alias(MODEL, "champion", first)
        server.terminate()
        server.wait(timeout=30)
