"""The loop as the API holds it: the log's engine, its writer, and the exploration share.

Built by `Loop.from_settings` when the app is created (nothing connects, nothing imports SQLAlchemy
then: see serving.predlog.engine), started and stopped by the app's lifespan.
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
    ) -> None:
        self._engine = engine_source(engine)
        self.enabled = enabled
        self.explore_share = explore_share
        self.log = PredictionLog(self._engine, registry=registry, max_queue=max_queue)
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
        )

    def start(self) -> None:
        if self.enabled:
            self.log.start()
            self.gauges.start()

    def stop(self) -> None:
        self.gauges.stop()
        if self.enabled:
            self.log.stop()

    def record(self, leads: Sequence[Mapping[str, Any]], results: list[dict[str, Any]]) -> None:
        """Log the scores (never blocking); with an exploration share, flag the sampled leads in the
        results too, so the CRM routes them regardless of score."""
        flags = None  # no exploration: every lead is logged with explore false
        if self.explore_share > 0:
            flags = [explore(r.get("lead_id"), self.explore_share) for r in results]
            for result, flag in zip(results, flags, strict=True):
                result["explore"] = flag
        if self.enabled:
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
