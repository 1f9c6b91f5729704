"""Progress on stderr for work that takes more than a few seconds: rows done, rate and time left.

A person at a terminal should see that a four-minute scoring run is alive and when it will end; a log
file, a pipe or CI should get none of it. So progress shows only when stderr is a terminal, and never
after `leadscore --quiet` (which calls `set_quiet`). Library callers may force it either way.

    with progress.rows(len(frame), "explain") as advance:
        for chunk in chunks:
            ...
            advance(len(chunk))

    steps = progress.Steps("train", ["read the data", "fit the model", ...])
    steps.start("fit the model")      # "train: fit the model (step 2 of 5, 4s so far)"
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
Advance = Callable[[int], None]

_quiet = False
# "score:  42%|████      | 100,000/240,000 leads [01:57<02:44, 851lead/s]"
_WITH_TOTAL = "{desc}: {percentage:3.0f}%|{bar}| {n:,}/{total:,} {unit}s [{elapsed}<{remaining}, {rate_fmt}]"
_WITHOUT_TOTAL = "{desc}: {n:,} {unit}s [{elapsed}, {rate_fmt}]"


def set_quiet(quiet: bool) -> None:
    """Silence every progress display of this process (`leadscore --quiet`)."""
    global _quiet
    _quiet = bool(quiet)


def shown(enabled: bool | None = None) -> bool:
    """Whether to draw progress: as asked, else when stderr is a terminal and not --quiet."""
    if _quiet:
        return False
    if enabled is not None:
        return enabled
    return sys.stderr.isatty()


@contextlib.contextmanager
def rows(total: int | None, desc: str, *, unit: str = "lead", enabled: bool | None = None) -> Iterator[Advance]:
    """A bar over `total` rows (rows done, rows/s, time left); yields `advance(n)`. No total: no time left."""
    if not shown(enabled):
        yield _ignore
        return
    from tqdm import tqdm

    layout = _WITH_TOTAL if total else _WITHOUT_TOTAL
    width = _terminal_width()
    size = {} if width else {"ncols": 100, "nrows": 20}  # tqdm hides its bar on a terminal of size 0
    with tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        file=sys.stderr,
        dynamic_ncols=bool(width),
        mininterval=0.5,
        smoothing=0.1,
        bar_format=layout,
        **size,
    ) as bar:
        yield bar.update


def track(
    chunks: Iterable[T],
    total: int | None,
    desc: str,
    *,
    unit: str = "lead",
    enabled: bool | None = None,
    size: Callable[[T], int] = len,  # type: ignore[assignment]
) -> Iterator[T]:
    """Yield each chunk, advancing the bar by its size once the caller is done with it."""
    with rows(total, desc, unit=unit, enabled=enabled) as advance:
        for chunk in chunks:
            yield chunk
            advance(size(chunk))


class Steps:
    """One line per step of a job whose steps have no row count (training): which step, how far in."""

    def __init__(self, job: str, names: Sequence[str], *, enabled: bool | None = None) -> None:
        self.job = job
        self.names = list(names)
        self.enabled = shown(enabled)
        self._start = time.perf_counter()

    def start(self, name: str) -> None:
        if not self.enabled:
            return
        where = f"step {self.names.index(name) + 1} of {len(self.names)}, " if name in self.names else ""
        elapsed = time.perf_counter() - self._start
        print(f"{self.job}: {name} ({where}{elapsed:.0f}s so far)", file=sys.stderr, flush=True)


def count_rows(path: str | Path) -> int | None:
    """Rows in a CSV or Parquet file, cheaply (Parquet metadata, or counting CSV lines), for time left.
    A CSV with line breaks inside quoted cells is over-counted a little; None when it cannot be read."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        with path.open("rb") as handle:
            lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
            handle.seek(max(path.stat().st_size - 1, 0))
            unterminated = 1 if path.stat().st_size and handle.read(1) != b"\n" else 0
        return max(lines + unterminated - 1, 0)  # less the header
    except Exception:  # noqa: BLE001 - progress is a courtesy: a file that cannot be counted is read anyway
        return None


def _terminal_width() -> int | None:
    """stderr's width; None when unknown or zero (a terminal that never said its size, e.g. under `script`)."""
    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return None
    return columns if columns > 0 else None


def _ignore(_: int) -> None:
    return None
