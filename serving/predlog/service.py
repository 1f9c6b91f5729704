"""The loop as the API holds it: the log's engine, its writer, and the exploration share.

Built by `Loop.from_settings` when the app is created (nothing connects, nothing imports SQLAlchemy
then: see serving.predlog.engine), started and stopped by the app's lifespan. The API's log is
written by a process of its own (serving.predlog.writer_process); a Loop given an engine object
(benchmarks, in-memory databases) writes from a thread of this process.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from serving.predlog.engine import EngineSource, engine_source
from serving.predlog.writer import PredictionLog
from serving.predlog.writer_process import WriterProcess

if TYPE_CHECKING:
    from sqlalchemy import Engine

_logger = logging.getLogger(__name__)


class Loop:
    def __init__(
        self,
        engine: Engine | EngineSource,
        *,
        registry: CollectorRegistry,
        enabled: bool = True,
        max_queue: int = 10_000,
        explore_share: float = 0.0,
        monitor_interval_s: float = 300.0,
        own_process: bool = False,
    ) -> None:
        self._engine = engine_source(engine)
        self.enabled = enabled
        self.explore_share = explore_share
        self.log: PredictionLog | WriterProcess = (
            WriterProcess(self._engine.url, registry=registry, max_queue=max_queue)
            if own_process
            else PredictionLog(self._engine, registry=registry, max_queue=max_queue)
        )
        from serving.predlog.monitor import LiveGauges

        self.gauges = LiveGauges(self._engine, registry=registry, interval_s=monitor_interval_s)
        self._migrated = False

    @classmethod
    def from_settings(cls, settings: Any, registry: CollectorRegistry) -> Loop:
        return cls(
            EngineSource(settings.database_url),
            registry=registry,
            enabled=settings.log_predictions,
            max_queue=settings.log_queue,
            explore_share=settings.explore_share,
            monitor_interval_s=settings.monitor_interval_s,
            own_process=True,
        )

    def start(self) -> None:
        if self.enabled:
            self.log.start()
            self.gauges.start()

    def stop(self) -> None:
        self.gauges.stop()
        if self.enabled:
            self.log.stop()

    def flag(self, results: list[dict[str, Any]]) -> None:
        """With an exploration share, flag the sampled leads in the answers (before they are written),
        so the CRM routes them regardless of score; the log keeps the same flag."""
        if self.explore_share > 0:
            for result in results:
                result["explore"] = explore(result.get("lead_id"), self.explore_share)

    def record(
        self, leads: Sequence[Mapping[str, Any]], results: list[dict[str, Any]], body: bytes, *, batch: bool
    ) -> None:
        """Log the answers (never blocking): `body` is the response as sent, a batch's or one lead's."""
        if not self.enabled:
            return
        if isinstance(self.log, WriterProcess):
            self.log.record(leads, body, rows=len(results), batch=batch)
        else:  # no exploration: every lead is logged with explore false
            flags = [bool(r.get("explore", False)) for r in results] if self.explore_share > 0 else None
            self.log.record(leads, results, flags)

    @property
    def engine(self) -> Engine:
        return self._engine()

    def ready_engine(self) -> Engine:
        """The engine, with the tables migrated (once); raises if the database cannot be reached."""
        from serving.predlog.db import migrate

        if not self._migrated:
            migrate(self.engine)
            self._migrated = True
        return self.engine


def explore(lead_id: str | None, share: float) -> bool:
    """Whether a lead is routed regardless of score: by a hash of its id, so a lead scored twice gets the
    same answer; leads without an id are drawn at random."""
    if share <= 0:
        return False
    if lead_id is None:
        return random.random() < share
    digest = hashlib.sha256(lead_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share
