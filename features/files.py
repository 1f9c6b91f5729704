"""Files a reader never sees half of: written to a temp file beside the target, renamed on success.

>>> with atomic_path(Path("out/report.csv")) as tmp:    # doctest: +SKIP
...     frame.to_csv(tmp, index=False)
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@functools.cache
def readable_mode() -> int:
    """The mode a plain open() would give a new file under the umask (usually 0o644); read once,
    because reading the umask means briefly setting it."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def temp_beside(path: Path) -> Path:
    """An empty temp file in the target's folder (same file system, so the rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def commit(tmp: Path, path: Path) -> None:
    """Move a finished temp file into place; mkstemp makes owner-only files, ours are as readable as any."""
    os.chmod(tmp, readable_mode())
    os.replace(tmp, path)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces `path`, on any error it is removed."""
    path = Path(path)
    tmp = temp_beside(path)
    try:
        yield tmp
        commit(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a whole text file (UTF-8) or nothing."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_together(writers: dict[Path, Callable[[Path], object]]) -> None:
    """Each writer fills a temp file beside its path; the files are renamed in only when every writer
    succeeded, so a failure leaves the older files as they were (a report's page and its tables agree)."""
    staged: dict[Path, Path] = {}
    try:
        for path, write in writers.items():
            staged[path] = temp_beside(path)
            write(staged[path])
        for path, tmp in staged.items():
            commit(tmp, path)
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
