"""Long commands show progress to a person at a terminal, and nothing to a pipe or with --quiet."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from features.synthetic import write_history


@pytest.fixture(scope="module")
def leads_csv(fresh, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_history(fresh, tmp_path_factory.mktemp("progress") / "leads.csv")["leads"]


def _run(args: list[str], *, terminal: bool) -> tuple[int, str]:
    """Run `leadscore ARGS` with stderr on a pseudo-terminal (as in a shell) or a pipe; (exit code, stderr)."""
    command = [sys.executable, "-m", "training.cli", *args]
    if not terminal:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        return done.returncode, done.stderr
    main_fd, child_fd = pty.openpty()
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))  # rows, columns as a shell has
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=child_fd, stdin=subprocess.DEVNULL)
    os.close(child_fd)
    chunks = []
    while True:
        try:
            data = os.read(main_fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main_fd)
    return proc.wait(timeout=300), b"".join(chunks).decode(errors="replace")


def test_score_shows_rows_rate_and_time_left_on_a_terminal(leads_csv: Path, bundle_dir: Path, tmp_path: Path) -> None:
    code, err = _run(
        ["score", "--data", str(leads_csv), "--model", str(bundle_dir), "--out", str(tmp_path / "scored.csv")],
        terminal=True,
    )
    assert code == 0, err
    final = err.replace("\r", "\n").strip().splitlines()[-1]
    assert final.startswith("score: 100%|") and "| 4,000/4,000 leads [" in final, final


@pytest.mark.parametrize("terminal, flags", [(True, ["--quiet"]), (False, [])])
def test_score_is_silent_with_quiet_or_off_a_terminal(
    leads_csv: Path, bundle_dir: Path, tmp_path: Path, terminal: bool, flags: list[str]
) -> None:
    code, err = _run(
        [
            "score",
            "--data",
            str(leads_csv),
            "--model",
            str(bundle_dir),
            "--out",
            str(tmp_path / "scored.parquet"),
            *flags,
        ],
        terminal=terminal,
    )
    assert code == 0 and err == ""
