"""The prediction log's engine, made on first use by whichever thread needs it first.

Why: importing SQLAlchemy costs ~0.2 CPU-s, a tenth of a server's cold start, and nothing on the way to
the first answer needs it: the score routes only put rows on the writer's queue. The writer thread
makes the engine with its first batch, the live monitor with its first refresh, an outcome request
with its first write.

    source = EngineSource("sqlite:///predictions.db")      # nothing imported, nothing connected
    source().url                                            # the engine, made once (thread-safe)
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

_logger = logging.getLogger(__name__)

ID_LENGTH = 200  # the log's column sizes, which the API validates against before anything is written
TEXT_LENGTH = 2000


class EngineSource:
    """An engine given, or one made from a URL (None: LEADSCORE_DATABASE_URL, else the default) when
    first asked for."""

    def __init__(self, engine: Engine | str | None = None) -> None:
        self._url = engine if engine is None or isinstance(engine, str) else None
        self._engine = None if engine is None or isinstance(engine, str) else engine
        self._lock = threading.Lock()

    def __call__(self) -> Engine:
        with self._lock:
            if self._engine is None:
                from serving.predlog.db import connect, describe

                self._engine = connect(self._url)
                _logger.info("prediction log: %s", describe(str(self._engine.url)))
            return self._engine

    @property
    def url(self) -> str | None:
        """The URL to make the engine from (None: the environment's or the default), for another
        process to connect to the same database; an engine given as an object has none to give."""
        if self._url is None and self._engine is not None:
            raise ValueError("this log was given an engine object, not a URL another process can open")
        return self._url

    @property
    def made(self) -> bool:
        return self._engine is not None


def engine_source(engine: Engine | EngineSource) -> EngineSource:
    return engine if isinstance(engine, EngineSource) else EngineSource(engine)
