"""The bounded in-process queue between the score routes and the prediction log.

`record` never blocks and never raises: it puts rows on a bounded queue, and a background thread
writes them in batches (one INSERT per batch). When the database is down the thread keeps the batch
and retries with a growing pause, while new rows wait on the queue; only when the queue is full are
rows dropped, and each dropped row is counted in /metrics (`leadscore_prediction_log_lost_total`) and
logged. Scores are served either way.

    log = PredictionLog(connect(), registry=metrics.registry).start()
    log.record(leads, results, explore)       # from the request, after scoring
    log.stop()                                 # at shutdown: writes what is queued
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from serving.predlog.engine import EngineSource, engine_source

if TYPE_CHECKING:
    from sqlalchemy import Engine

_logger = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0


class PredictionLog:
    def __init__(
        self,
        engine: Engine | EngineSource,
        *,
        registry: CollectorRegistry | None = None,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
    ) -> None:
        self._engine = engine_source(engine)  # made by this thread with its first batch (see EngineSource)
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=max_queue)
        self._pending: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._migrated = False
        self._last_warning = 0.0
        registry = registry or CollectorRegistry()
        self.written = Counter(
            "leadscore_prediction_log_rows", "Scores written to the prediction log", registry=registry
        )
        self.lost = Counter(
            "leadscore_prediction_log_lost",
            "Scores not logged, by reason (queue_full: the "
            "database was too slow or down for too long; shutdown: unwritten at exit)",
            ["reason"],
            registry=registry,
        )
        self.errors = Counter(
            "leadscore_prediction_log_write_errors",
            "Failed writes to the prediction log (the batch is retried)",
            registry=registry,
        )
        self.depth = Gauge("leadscore_prediction_log_queue", "Scores waiting to be written", registry=registry)
        self.depth.set_function(self._queue.qsize)
        for reason in ("queue_full", "shutdown", "bad_row"):
            self.lost.labels(reason)

    # -- the request side ---------------------------------------------------------------------------
    def record(
        self,
        leads: Sequence[Mapping[str, Any]],
        results: Sequence[Mapping[str, Any]],
        explore: Sequence[bool] | None = None,
    ) -> None:
        """Queue one row per scored lead; drops (and counts) what does not fit. Never blocks or raises."""
        now = datetime.now(UTC)
        flags = explore or [False] * len(results)
        dropped = 0
        for lead, result, flag in zip(leads, results, flags, strict=True):
            try:
                self._queue.put_nowait(prediction_row(lead, result, scored_at=now, explore=flag))
            except queue.Full:
                dropped += 1
            except Exception:  # a row that cannot be built must not fail the score: count it, say why
                self.lost.labels("bad_row").inc()
                _logger.exception("prediction log: could not build the row for lead %r", result.get("lead_id"))
        if dropped:
            self.lost.labels("queue_full").inc(dropped)
            self._warn(f"prediction log queue full: {dropped} scores not logged (database slow or down?)")

    # -- the writer thread --------------------------------------------------------------------------
    def start(self) -> PredictionLog:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is queued (one last try if the database is down), then count the rest as lost."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        left = len(self._pending) + self._queue.qsize()
        if left:
            self.lost.labels("shutdown").inc(left)
            _logger.error("prediction log: %d scores could not be written before shutdown", left)
        if self._engine.made:
            self.engine.dispose()

    @property
    def engine(self) -> Engine:
        return self._engine()

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """True once everything queued so far is written (for tests and orderly shutdowns)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0 and not self._pending:
                return True
            time.sleep(0.01)
        return False

    def _run(self) -> None:
        """Every `flush_interval_s`, write what is queued in batches. The thread polls rather than
        waiting on the queue: a waiting thread would be woken by every put, and each wake-up makes the
        request's thread hand over the interpreter (on a busy machine that doubled a score's latency)."""
        backoff = 0.1
        while True:
            stopping = self._stop.is_set()
            batch = self._pending or self._take()
            if not batch:
                if stopping:
                    return
                self._stop.wait(self.flush_interval_s)
                continue
            try:
                self._write(batch)
            except Exception as exc:  # the database is down or refuses: keep the batch, retry later
                self._pending = batch
                self.errors.inc()
                self._warn(f"prediction log: write failed, retrying in {backoff:.1f} s: {_first_line(exc)}")
                if stopping:
                    return
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            self._pending = []
            for _ in batch:
                self._queue.task_done()
            self.written.inc(len(batch))
            backoff = 0.1
            if len(batch) < self.batch_size and not stopping:
                self._stop.wait(self.flush_interval_s)  # the queue is drained: let rows gather

    def _take(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[dict[str, Any]]) -> None:
        from sqlalchemy import insert

        from serving.predlog.db import migrate, predictions

        if not self._migrated:
            migrate(self.engine)
            self._migrated = True
        with self.engine.begin() as connection:
            connection.execute(insert(predictions), batch)

    def _warn(self, message: str) -> None:
        """Logged at most every 5 s, so a database outage does not flood the log."""
        now = time.monotonic()
        if now - self._last_warning >= 5.0:
            self._last_warning = now
            _logger.error(message)


def prediction_row(
    lead: Mapping[str, Any], result: Mapping[str, Any], *, scored_at: datetime, explore: bool = False
) -> dict[str, Any]:
    """One log row: the lead as received (fields left out stay out), the model and what it said."""
    lowering = result.get("lowering_factors") or []
    top = lowering[0] if lowering else None
    top_reason = top["features"][0]["reason"] if top and top.get("features") else None
    return {
        "lead_id": result.get("lead_id"),
        "scored_at": scored_at,
        "model_name": str(result["model"]["name"]),
        "model_version": str(result["model"]["version"]),
        "probability": float(result["probability"]),
        "score": int(result["score"]),
        "grade": str(result["grade"]),
        "raw_score": float(result["log_odds"]["raw_score"]),
        "factors": {f["key"]: float(f["impact"]) for f in result["factors"]},
        "top_factor": top["key"] if top else None,
        "top_reason": top_reason,
        "lead": {k: _json_value(v) for k, v in lead.items() if v is not None},
        "explore": bool(explore),
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
