"""The prediction log's writer in a process of its own: the server's interpreter never builds or inserts a row.

Why: a writer thread shares the server's interpreter lock with the requests, and cost them more
than its own CPU as the two took the lock from each other. On the demo model (`bench/serve_latency.py`,
2 cores, a fresh SQLite log, alternated runs) one-lead p99 went from 4.6-5.1 to 1.6-1.8 ms when the
writer moved here, and the batch endpoint (1,000 distinct leads per request) from 7,500-8,800 to
8,500-9,900 explained leads/s (server CPU 127-149 to 103-120 µs per lead), every score written.

The server hands each request over as it already has it: the leads as parsed, and the response body
(the JSON just sent to the client, which carries every number a row keeps). `record` only appends to
a bounded queue; a sender thread turns the leads into the log's `lead` text and writes both to the
child's stdin. The child (`python -m serving.predlog.writer_process`) decodes what a row keeps and
runs the same `PredictionLog` as a thread would (batches, retries while the database is down, losses
counted); it reports its counts on stdout, which this process shows in /metrics under the same names.

    log = WriterProcess(url, registry=metrics.registry).start()   # the child starts with the first rows
    log.record(leads, body, rows=len(results), batch=True)        # after the answer is written
    log.stop()                                                     # the child writes what is queued

The child is started with the first rows, not at start-up (cold start does not pay for it), and again
after it ends unexpectedly (the rows it held are counted lost, as `writer_exited`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NamedTuple

import msgspec
import orjson
from prometheus_client import CollectorRegistry

from serving.predlog.engine import EngineSource
from serving.predlog.writer import LOST_REASONS, RAW_ANSWERS, LogMetrics, PredictionLog, RowQueue, lead_text

_logger = logging.getLogger(__name__)
# One request on the pipe: when it was scored (epoch seconds), rows to log (the first ones of the body),
# the leads' length (a JSON list of their `lead` column texts), the body's length, and whether the
# body is a batch answer.
HEADER = struct.Struct("<dIIIB")
CONFIG = struct.Struct("<I")  # the first message: the length of the JSON settings that follow
COLLECT_EVERY_S = 30.0  # the child's cyclic collection: this long after the last, once the queue is empty
COLLECT_AT_LEAST_S = 300.0  # and this long after the last whatever the queue holds
HEALTHY_S = 5.0  # a child that ended sooner is restarted only after a growing pause
STOP_S = 5.0  # the child's own time to write what it holds at shutdown (the server waits ~10 s in all)
_ROOT = str(Path(__file__).resolve().parents[2])  # so the child imports this checkout from any folder


class _Request(NamedTuple):
    leads: Sequence[Mapping[str, Any]]
    body: bytes
    rows: int
    batch: bool
    scored_at: float


class WriterProcess(RowQueue[_Request]):
    """The server's side: a bounded queue, a sender thread, and the child that writes."""

    def __init__(
        self,
        url: str | None,
        *,
        registry: CollectorRegistry,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
        send_interval_s: float = 0.1,
    ) -> None:
        self.send_interval_s = send_interval_s
        self._settings = {"url": url, "max_queue": max_queue, "batch_size": batch_size, "flush_s": flush_interval_s}
        self._child: _Child | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.registry = registry
        self.metrics = LogMetrics.register(registry, depth=self._depth)
        super().__init__(max_queue, self.metrics.lost)

    # -- the request side ---------------------------------------------------------------------------
    def record(self, leads: Sequence[Mapping[str, Any]], body: bytes, *, rows: int, batch: bool) -> None:
        """Queue a request's first `rows` answers (the body's) for the log; never blocks or raises.
        The caller must not change `leads` afterwards (the sender thread reads them later)."""
        if rows > 0:
            now = time.time()
            self._admit(rows, lambda taken: _Request(leads, body, taken, batch, now))

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> WriterProcess:
        self._thread = threading.Thread(target=self._run, name="prediction-log-sender", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Send what is queued, let the child write it and exit; count whatever is left as lost."""
        deadline = time.monotonic() + timeout_s
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive() and self._child is not None:  # stuck writing to a child that stopped reading
                self._child.proc.kill()
                self._thread.join(1.0)
        child, self._child = self._child, None
        if child is not None:
            self._end_child(child, deadline=deadline, reason="shutdown")
        with self._lock:
            left, self._queued = self._unfinished, 0
            self._unfinished = 0
            self._queue.clear()
        if left > 0:
            self.metrics.lost.labels("shutdown").inc(left)
            _logger.error("prediction log: %d scores could not be written before shutdown", left)

    # -- the sender thread --------------------------------------------------------------------------
    def _run(self) -> None:
        """Every `send_interval_s`, hand what is queued to the child (polling, like the writer thread:
        a thread woken by every request would make the request's thread hand over the interpreter)."""
        backoff = 0.1
        while True:
            stopping = self._stop.is_set()
            requests = self._take()
            if not requests:
                if stopping:
                    return
                self._stop.wait(self.send_interval_s)
                continue
            try:
                self._send(requests)
            except Exception as exc:  # noqa: BLE001 - the child could not start or has ended; rows are counted
                self._warn(f"prediction log: the writer process failed ({exc}); starting another")
                if not stopping:
                    self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            else:
                if self._child is not None and self._child.age() > HEALTHY_S:
                    backoff = 0.1

    def _send(self, requests: list[_Request]) -> None:
        """To the running child (started if need be). Rows that never reach a child are counted lost
        here; rows a child took and did not finish, when it is ended (`_end_child`)."""
        try:
            child = self._running_child()
        except Exception:
            self._lose("writer_exited", sum(r.rows for r in requests))
            raise
        try:
            self._lose("bad_row", child.send(requests))
        except Exception:
            self._child = None
            self._end_child(child, deadline=time.monotonic() + 1.0, reason="writer_exited")
            raise

    def _take(self) -> list[_Request]:
        with self._lock:
            taken = list(self._queue)
            self._queue.clear()
            self._queued = 0
        return taken

    def _running_child(self) -> _Child:
        child = self._child
        if child is not None and child.proc.poll() is not None:
            self._child = None
            self._end_child(child, deadline=time.monotonic(), reason="writer_exited")
            if child.age() < HEALTHY_S:  # one that cannot run is not restarted every few milliseconds
                raise OSError(f"it exited with code {child.proc.returncode} after {child.age():.1f} s")
            child = None
        if child is None:
            child = self._child = _Child.spawn(self._settings, self._counted)
        return child

    def _end_child(self, child: _Child, *, deadline: float, reason: str) -> None:
        """Close its input (it writes what it holds and exits), wait, and count what it never finished."""
        child.close(deadline)
        unfinished = child.unfinished()
        if unfinished > 0:
            self.metrics.lost.labels(reason).inc(unfinished)
            self._finished(unfinished)
            if reason != "shutdown":
                _logger.error("prediction log: the writer process ended holding %d scores", unfinished)

    def _counted(self, delta: Mapping[str, Any]) -> None:
        """A child's counts since its last report, mirrored into this process's /metrics."""
        self.metrics.written.inc(delta["written"])
        self.metrics.errors.inc(delta["errors"])
        for reason, rows in delta["lost"].items():
            if rows:
                self.metrics.lost.labels(reason).inc(rows)
        self._finished(delta["finished"])

    def _lose(self, reason: str, rows: int) -> None:
        if rows > 0:
            self.metrics.lost.labels(reason).inc(rows)
            self._finished(rows)

    def _depth(self) -> float:
        child = self._child
        return self._queued + (child.status["queued"] if child is not None else 0)


class _Child:
    """One writer process: its pipes, the rows sent to it, and its last reported counts."""

    def __init__(self, proc: subprocess.Popen[bytes], on_counts: Any) -> None:
        self.proc = proc
        self.started = time.monotonic()
        self.sent = 0
        self.status: dict[str, Any] = {"written": 0.0, "errors": 0.0, "lost": {}, "queued": 0.0}
        self._on_counts = on_counts
        self._reader = threading.Thread(target=self._read_counts, name="prediction-log-counts", daemon=True)
        self._reader.start()

    @classmethod
    def spawn(cls, settings: Mapping[str, Any], on_counts: Any) -> _Child:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))}
        proc = subprocess.Popen(
            [sys.executable, "-m", "serving.predlog.writer_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert proc.stdin is not None
        config = orjson.dumps(settings)
        proc.stdin.write(CONFIG.pack(len(config)) + config)
        return cls(proc, on_counts)

    def send(self, requests: list[_Request]) -> int:
        """One write for all of them (a write per request would cost a system call each); returns the
        rows of requests whose leads could not be made into the log's text (not sent)."""
        assert self.proc.stdin is not None
        parts: list[bytes] = []
        rows = bad = 0
        for request in requests:
            try:
                leads = orjson.dumps([lead_text(lead) for lead in request.leads[: request.rows]])
                head = HEADER.pack(request.scored_at, request.rows, len(leads), len(request.body), request.batch)
            except Exception:  # noqa: BLE001 - counted as bad rows by the caller
                _logger.exception("prediction log: could not send %d scored leads", request.rows)
                bad += request.rows
                continue
            parts += (head, leads, request.body)
            rows += request.rows
        self.sent += rows  # before writing: a child that dies midway may have written some of them
        self.proc.stdin.write(b"".join(parts))
        self.proc.stdin.flush()
        return bad

    def age(self) -> float:
        return time.monotonic() - self.started

    def close(self, deadline: float) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):  # its end is gone already
                self.proc.stdin.close()
        try:
            self.proc.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5.0)

    def unfinished(self) -> int:
        return self.sent - int(_finished(self.status))

    def _read_counts(self) -> None:
        """One JSON line per report, cumulative; each is handed on as the change since the last."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            before = self.status
            try:
                now = orjson.loads(line)
                delta = {
                    "written": now["written"] - before["written"],
                    "errors": now["errors"] - before["errors"],
                    "lost": {r: now["lost"].get(r, 0.0) - before["lost"].get(r, 0.0) for r in LOST_REASONS},
                    "finished": _finished(now) - _finished(before),
                }
            except Exception:  # noqa: BLE001 - a line that is not a report (nothing else writes there)
                continue
            self.status = now
            self._on_counts(delta)


def _finished(status: Mapping[str, Any]) -> float:
    return float(status["written"] + sum(status["lost"].values()))


# -- the child ------------------------------------------------------------------------------------
def main() -> int:
    """Read requests from stdin until it closes, log them, report counts on stdout."""
    # Ctrl-C reaches the whole process group: the server decides when the writer ends (it closes the
    # pipe once the last rows are sent; if the server dies, the pipe closes by itself).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s prediction-log writer: %(message)s")
    source, out = sys.stdin.buffer, sys.stdout.buffer
    head = _read_exactly(source, CONFIG.size)
    if head is None:
        return 0
    settings = orjson.loads(_read_exactly(source, CONFIG.unpack(head)[0]) or b"{}")
    log = PredictionLog(
        EngineSource(settings["url"]),
        registry=CollectorRegistry(),
        max_queue=settings["max_queue"],
        batch_size=settings["batch_size"],
        flush_interval_s=settings["flush_s"],
    ).start()
    # Rows waiting in the queue are hundreds of thousands of small objects the cyclic collector would
    # walk again and again (a writer with it on spent 87 instead of 52 µs of CPU per row); nothing
    # here makes cycles as a rule, so it runs only while the queue is empty (`_report_until`).
    gc.freeze()
    gc.disable()
    done = threading.Event()
    reporter = threading.Thread(target=_report_until, args=(log, out, done, settings["flush_s"] / 2), daemon=True)
    reporter.start()
    try:
        for leads, results, scored_at in _requests(source, log):
            log.record(leads, results, scored_at=scored_at)  # each answer carries its explore flag
    finally:
        log.stop(timeout_s=STOP_S)
        done.set()
        reporter.join()
        _report(log, out)
    return 0


def _requests(source: IO[bytes], log: PredictionLog) -> Any:
    """(leads, answers, scored_at) per request on the pipe; a request that cannot be read back is
    counted as bad rows, the others go on."""
    while (head := _read_exactly(source, HEADER.size)) is not None:
        scored_at, rows, leads_size, body_size, batch = HEADER.unpack(head)
        leads_bytes, body = _read_exactly(source, leads_size), _read_exactly(source, body_size)
        if leads_bytes is None or body is None:
            return
        try:
            # each answer is decoded with its row (`as_answer`): one that cannot be is one bad row
            results = (RAW_ANSWERS.decode(body).results if batch else [msgspec.Raw(body)])[:rows]
            yield orjson.loads(leads_bytes), results, datetime.fromtimestamp(scored_at, UTC)
        except Exception:
            log.lost.labels("bad_row").inc(rows)
            _logger.exception("could not read back %d scored leads", rows)


def _read_exactly(source: IO[bytes], size: int) -> bytes | None:
    data = source.read(size)
    return data if data is not None and len(data) == size else None


def _report_until(log: PredictionLog, out: IO[bytes], done: threading.Event, interval_s: float) -> None:
    last: dict[str, Any] | None = None
    collected = time.monotonic()
    while not done.wait(interval_s):
        status = log.status()
        if status != last:
            _report(log, out, status)
            last = status
        since = time.monotonic() - collected
        if (not status["queued"] and since > COLLECT_EVERY_S) or since > COLLECT_AT_LEAST_S:
            gc.collect()  # the rare cycle (a failed connection's traceback) freed while the heap is small
            collected = time.monotonic()


_REPORT_LOCK = threading.Lock()


def _report(log: PredictionLog, out: IO[bytes], status: dict[str, Any] | None = None) -> None:
    with _REPORT_LOCK:
        out.write(orjson.dumps(status or log.status()) + b"\n")
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
