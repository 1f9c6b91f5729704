"""`leadscore serve`'s first impression: the curl line it prints, and a busy port."""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from training.cli import main


def test_the_printed_curl_line_shows_a_lead_that_factors_lower(bundle_dir: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.cli", "serve", "--model", str(bundle_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[0].startswith(f"serving lead-conversion version 7 at http://127.0.0.1:{port}"), lines
        assert f"(docs: http://127.0.0.1:{port}/docs)" in lines[0]
        assert lines[1].strip() == "try:"
        args = shlex.split(lines[2])
        assert args[:3] == ["curl", "-s", f"http://127.0.0.1:{port}/v1/score"]
        body = args[args.index("-d") + 1]
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline and proc.poll() is None, "leadscore serve did not become ready"
            time.sleep(0.1)
        scored = httpx.post(args[2], content=body, headers={"content-type": "application/json"}, timeout=10)
        assert scored.status_code == 200, scored.text
        result = scored.json()
        assert result["lowering_factors"], "the example shows what lowers a lead"
        assert result["lowering_factors"][0]["features"][0]["reason"]
        assert result["what_if"] and result["what_if"][0]["probability"] > result["probability"]
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_a_busy_port_is_one_line_naming_the_port_and_the_flag(bundle_dir: Path, capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "--model", str(bundle_dir), "--port", str(port)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == "", "nothing is announced for a server that cannot start"
    assert err == (
        f"leadscore serve: error: port {port} on 127.0.0.1 is already in use (another server is running "
        "there); choose another with --port or LEADSCORE_PORT\n"
    )
