"""How the worker processes of `leadscore serve --workers N` all hear of one reload.

A reload request reaches one worker. That worker, once its new model is in, writes a fresh token to
a file the workers share; every other worker checks the file twice a second and reloads when the
token changes. One process (the default) needs none of this.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from features.files import write_text_atomic


class ReloadSignal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._seen = self._read()

    def _read(self) -> str:
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return ""

    def announce(self) -> None:
        """Tell the other workers; written whole (temp file, then rename) so no one reads half a token."""
        token = f"{os.getpid()}-{time.time_ns()}"
        write_text_atomic(self.path, token)
        self._seen = token

    def changed(self) -> bool:
        """True once for each token another worker announced since the last look."""
        current = self._read()
        if current == self._seen:
            return False
        self._seen = current
        return True
