"""The bounded in-process queue between the score routes and the prediction log.

`record` never blocks and never raises: it puts the request's leads and answers on a bounded queue (one
append per request, whatever its size), and a background thread turns them into rows and writes them in
batches (one prepared INSERT run over the batch). When the database is down the thread keeps the batch
and retries with a growing pause, while new rows wait on the queue; only when the queue is full are
rows dropped, and each dropped row is counted in /metrics (`leadscore_prediction_log_lost_total`) and
logged. Scores are served either way.

    log = PredictionLog(connect(), registry=metrics.registry).start()
    log.record(leads, results, explore)       # from the request, after scoring
    log.stop()                                 # at shutdown: writes what is queued

Why rows are built in the writer: building one costs ~10 µs of Python per lead, which the request (the
event loop) no longer pays. `record` keeps references to the leads and answers, so callers must not
change them afterwards (the API only serialises them).
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

import msgspec
import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from serving.predlog.engine import EngineSource, engine_source

if TYPE_CHECKING:
    from sqlalchemy import Dialect, Engine

_logger = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0

# The log's columns in the order `prediction_values` gives them (`id` is the database's).
COLUMNS = (
    "lead_id",
    "scored_at",
    "model_name",
    "model_version",
    "probability",
    "score",
    "grade",
    "raw_score",
    "factors",
    "top_factor",
    "top_reason",
    "lead",
    "explore",
)
_JSON_COLUMNS = ("factors", "lead")
_Item = TypeVar("_Item")


class _Scored(NamedTuple):
    """One request's share of the queue: its leads, answers, exploration flags and time."""

    leads: Sequence[Mapping[str, Any] | str]  # a lead, or its `lead` column text already made
    results: Sequence[Mapping[str, Any] | Answer | msgspec.Raw]
    explore: Sequence[bool] | None
    scored_at: datetime


class RowQueue(Generic[_Item]):
    """The bounded queue both writers keep (this module's thread, serving.predlog.writer_process's
    process): a request's rows go on in one step, what does not fit is dropped and counted, and the
    rows accepted and not yet written or counted lost tell when the log is idle."""

    def __init__(self, max_queue: int, lost: Counter) -> None:
        self.max_queue = max_queue
        self._lost_rows = lost
        self._lock = threading.Lock()
        self._queue: collections.deque[_Item] = collections.deque()
        self._queued = 0  # rows on the queue (bounded by max_queue)
        self._unfinished = 0  # rows accepted and not yet written or counted lost
        self._last_warning = 0.0

    def _admit(self, rows: int, item: Callable[[int], _Item]) -> None:
        """Queue `item(taken)` for the first `taken` rows that fit; count and report the rest."""
        with self._lock:
            taken = max(0, min(rows, self.max_queue - self._queued))
            if taken:
                self._queue.append(item(taken))
                self._queued += taken
                self._unfinished += taken
        if taken < rows:
            self._lost_rows.labels("queue_full").inc(rows - taken)
            self._warn(f"prediction log queue full: {rows - taken} scores not logged (database slow or down?)")

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """True once everything queued so far is written (for tests and orderly shutdowns)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._unfinished == 0:
                return True
            time.sleep(0.01)
        return False

    def _finished(self, rows: float) -> None:
        with self._lock:
            self._unfinished -= int(rows)

    def _warn(self, message: str) -> None:
        """Logged at most every 5 s, so an outage does not flood the log."""
        now = time.monotonic()
        if now - self._last_warning >= 5.0:
            self._last_warning = now
            _logger.error(message)


class PredictionLog(RowQueue[_Scored]):
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
        self._pending: list[tuple[Any, ...]] = []
        self._statement: InsertStatement | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._migrated = False
        self.registry = registry = registry or CollectorRegistry()
        metrics = LogMetrics.register(registry, depth=lambda: self._queued)
        self.written, self.lost, self.errors = metrics.written, metrics.lost, metrics.errors
        super().__init__(max_queue, self.lost)

    # -- the request side ---------------------------------------------------------------------------
    def record(
        self,
        leads: Sequence[Mapping[str, Any] | str],
        results: Sequence[Mapping[str, Any] | Answer | msgspec.Raw],
        explore: Sequence[bool] | None = None,
        *,
        scored_at: datetime | None = None,
    ) -> None:
        """Queue one row per scored lead; drops (and counts) what does not fit. Never blocks or raises."""
        count = len(results)
        if not count:
            return
        now = scored_at or datetime.now(UTC)

        def scored(taken: int) -> _Scored:
            if taken == count:
                return _Scored(leads, results, explore, now)
            return _Scored(leads[:taken], results[:taken], explore[:taken] if explore is not None else None, now)

        self._admit(count, scored)

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
        left = len(self._pending) + self._queued
        if left:
            self.lost.labels("shutdown").inc(left)
            _logger.error("prediction log: %d scores could not be written before shutdown", left)
        if self._engine.made:
            self.engine.dispose()

    @property
    def engine(self) -> Engine:
        return self._engine()

    def status(self) -> dict[str, Any]:
        """Counts so far, for a parent process to mirror (serving.predlog.writer_process)."""
        value = self.registry.get_sample_value
        return {
            "written": value("leadscore_prediction_log_rows_total") or 0.0,
            "errors": value("leadscore_prediction_log_write_errors_total") or 0.0,
            "lost": {r: value("leadscore_prediction_log_lost_total", {"reason": r}) or 0.0 for r in LOST_REASONS},
            "queued": self._queued + len(self._pending),
        }

    def _run(self) -> None:
        """Every `flush_interval_s`, write what is queued in batches. The thread polls rather than
        waiting on the queue: a waiting thread would be woken by every put, and each wake-up makes the
        request's thread hand over the interpreter (on a busy machine that doubled a score's latency)."""
        backoff = 0.1
        while True:
            stopping = self._stop.is_set()
            batch = self._pending
            try:
                batch = batch or self._take()
                if not batch:
                    if stopping:
                        return
                    self._stop.wait(self.flush_interval_s)
                    continue
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
            self._finished(len(batch))
            self.written.inc(len(batch))
            backoff = 0.1
            if len(batch) < self.batch_size and not stopping:
                self._stop.wait(self.flush_interval_s)  # the queue is drained: let rows gather

    def _take(self) -> list[tuple[Any, ...]]:
        """Whole requests off the queue until at least `batch_size` rows, as the INSERT's values."""
        if not self._queue:
            return []
        statement = self._insert_statement()  # first: an engine that cannot be made takes nothing off the queue
        taken: list[_Scored] = []
        rows = 0
        with self._lock:
            while self._queue and rows < self.batch_size:
                scored = self._queue.popleft()
                taken.append(scored)
                rows += len(scored.results)
            self._queued -= rows
        batch: list[tuple[Any, ...]] = []
        for scored in taken:
            batch += prediction_values(scored, statement, on_bad_row=self._bad_row)
        return batch

    def _bad_row(self, result: Mapping[str, Any] | Answer | msgspec.Raw) -> None:
        """A row that cannot be built must not stop the others: count it, say why."""
        self.lost.labels("bad_row").inc()
        self._finished(1)
        _logger.exception("prediction log: could not build the row for lead %r", _lead_id(result))

    def _insert_statement(self) -> InsertStatement:
        if self._statement is None:
            self._statement = InsertStatement.for_dialect(self.engine.dialect)
        return self._statement

    def _write(self, batch: list[tuple[Any, ...]]) -> None:
        from serving.predlog.db import migrate

        if not self._migrated:
            migrate(self.engine)
            self._migrated = True
        statement = self._insert_statement()
        with self.engine.begin() as connection:
            if statement.copy:
                driver = connection.connection.driver_connection
                with driver.cursor() as cursor, cursor.copy(statement.copy) as copy:  # type: ignore[union-attr]
                    for row in batch:
                        copy.write_row(row)
            else:
                connection.exec_driver_sql(statement.sql, statement.parameters(batch))


LOST_REASONS = ("queue_full", "shutdown", "bad_row", "writer_exited")


@dataclass(frozen=True)
class LogMetrics:
    """The log's figures in /metrics, the same whether the writer is a thread or its own process."""

    written: Counter
    lost: Counter
    errors: Counter
    depth: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry, *, depth: Callable[[], float]) -> LogMetrics:
        written = Counter("leadscore_prediction_log_rows", "Scores written to the prediction log", registry=registry)
        lost = Counter(
            "leadscore_prediction_log_lost",
            "Scores not logged, by reason (queue_full: the database was too slow or down for too long; "
            "shutdown: unwritten at exit; bad_row: a row that could not be built; writer_exited: the "
            "writer process ended before writing them)",
            ["reason"],
            registry=registry,
        )
        errors = Counter(
            "leadscore_prediction_log_write_errors",
            "Failed writes to the prediction log (the batch is retried)",
            registry=registry,
        )
        gauge = Gauge("leadscore_prediction_log_queue", "Scores waiting to be written", registry=registry)
        gauge.set_function(depth)
        for reason in LOST_REASONS:
            lost.labels(reason)
        return cls(written, lost, errors, gauge)


@dataclass(frozen=True)
class InsertStatement:
    """The log's INSERT as the database's driver takes it, and how each value is handed over: the
    conversions SQLAlchemy's own executemany would make (its bind processors), looked up once instead
    of per row. JSON columns are handed over as text (`_dumps`), which each database parses as JSON."""

    sql: str
    copy: str | None  # on PostgreSQL (psycopg): COPY, ~4x cheaper per row than the driver's executemany
    named: bool  # the driver takes a dict per row (else a tuple in COLUMNS order)
    processors: tuple[tuple[int, Any], ...]  # (column index, conversion) for each column that has one
    scored_at: Any  # the conversion of `scored_at`, applied once per request

    @classmethod
    def for_dialect(cls, dialect: Dialect) -> InsertStatement:
        from sqlalchemy import insert

        from serving.predlog.db import predictions

        compiled = insert(predictions).inline().compile(dialect=dialect, column_keys=list(COLUMNS))
        if compiled.positional and tuple(compiled.positiontup or ()) != COLUMNS:
            raise RuntimeError(f"prediction log: unexpected INSERT parameters {compiled.positiontup}")

        def processor(name: str) -> Any:
            return predictions.c[name].type.dialect_impl(dialect).bind_processor(dialect)

        processors = [
            (index, processor(name))
            for index, name in enumerate(COLUMNS)
            if name not in _JSON_COLUMNS and name != "scored_at" and processor(name) is not None
        ]
        scored_at = processor("scored_at")
        copy = f"COPY predictions ({', '.join(COLUMNS)}) FROM STDIN" if dialect.driver == "psycopg" else None
        return cls(str(compiled), copy, not compiled.positional, tuple(processors), scored_at or _same)

    def parameters(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]] | list[dict[str, Any]]:
        if self.processors:
            rows = [self._converted(row) for row in rows]
        if self.named:
            return [dict(zip(COLUMNS, row, strict=True)) for row in rows]
        return rows

    def _converted(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for index, process in self.processors:
            values[index] = process(values[index])
        return tuple(values)


class _Reason(msgspec.Struct):
    reason: str | None = None


class _Lowering(msgspec.Struct):
    key: str
    features: list[_Reason] = []


class _Factor(msgspec.Struct):
    key: str
    impact: float


class _Model(msgspec.Struct):
    name: str
    version: str | int


class _LogOdds(msgspec.Struct):
    raw_score: float


class Answer(msgspec.Struct):
    """What the log keeps of an answer (serving.model.response.ScoreResponse). Decoding the API's JSON
    into it skips the rest (what-ifs, each factor's features) at 10 µs a lead, where a full parse
    into dicts costs 25 (serving.predlog.writer_process reads every answer this way)."""

    model: _Model
    probability: float
    score: int
    grade: str
    log_odds: _LogOdds
    factors: list[_Factor]
    lowering_factors: list[_Lowering]
    lead_id: str | None = None
    explore: bool = False


class _RawAnswers(msgspec.Struct):
    results: list[msgspec.Raw]


ANSWER, RAW_ANSWERS = msgspec.json.Decoder(Answer), msgspec.json.Decoder(_RawAnswers)


def as_answer(result: Mapping[str, Any] | Answer | msgspec.Raw) -> Answer:
    """An answer as its JSON reads: a dict goes through the API's own encoding, so the thread and the
    process store the same row for it. Raises on a value the API would never send (a bad row)."""
    if isinstance(result, Answer):
        return result
    if isinstance(result, msgspec.Raw):  # an answer's JSON as the API sent it
        return ANSWER.decode(result)
    return ANSWER.decode(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_UTC_Z))


def prediction_values(scored: _Scored, statement: InsertStatement, *, on_bad_row: Any = None) -> list[tuple[Any, ...]]:
    """One row per lead, in COLUMNS order: the lead as received (fields left out stay out, as JSON text),
    the model and what it said. A row that cannot be built goes to `on_bad_row` (else raises)."""
    when = statement.scored_at(scored.scored_at)
    leads, flags = scored.leads, scored.explore
    rows = []
    for index, result in enumerate(scored.results):
        try:
            answer = as_answer(result)
            lead = leads[index]
            text = lead if isinstance(lead, str) else lead_text(lead)
            rows.append(_values(text, answer, bool(flags[index]) if flags else answer.explore, when))
        except Exception:
            if on_bad_row is None:
                raise
            on_bad_row(result)
    return rows


def lead_text(lead: Mapping[str, Any]) -> str:
    """The `lead` column: the lead's fields as received, those left out (None) left out."""
    return _dumps({k: v for k, v in lead.items() if v is not None})


def _values(lead: str, answer: Answer, explore: bool, when: Any) -> tuple[Any, ...]:
    lowering = answer.lowering_factors
    top = lowering[0] if lowering else None
    top_reason = top.features[0].reason if top and top.features else None
    return (
        answer.lead_id,
        when,
        answer.model.name,
        str(answer.model.version),
        answer.probability,
        answer.score,
        answer.grade,
        answer.log_odds.raw_score,
        _dumps({f.key: f.impact for f in answer.factors}),
        top.key if top else None,
        top_reason,
        lead,
        explore,
    )


def _dumps(value: Mapping[str, Any]) -> str:
    """JSON text for a JSON column, equal as JSON to `json.dumps`'s (which SQLAlchemy's JSON type used)
    but ~20× cheaper: Python's float repr costs ~0.7 µs a number. orjson writes compact UTF-8 and
    turns NaN and ±Infinity into null, so where it finds a null (the log's dicts hold none: None fields
    are left out) or cannot write a value (ints past 64 bits, non-text keys), `json.dumps` writes it."""
    try:
        text = orjson.dumps(value, default=_iso, option=orjson.OPT_PASSTHROUGH_DATETIME)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, default=_iso)
    if b":null" in text:
        return json.dumps(value, default=_iso)
    return text.decode()


def _iso(value: Any) -> Any:
    """Dates and times as ISO text, as the log always wrote them."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _same(value: Any) -> Any:
    return value


def _lead_id(result: Any) -> Any:
    return result.get("lead_id") if isinstance(result, Mapping) else getattr(result, "lead_id", None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
