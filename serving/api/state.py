"""The model being served, swappable while requests run.

A request takes `state.scorer` once and uses that object to the end, so a reload that swaps the
reference in between never changes a request half-way: in-flight requests finish on the old model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from features.errors import LeadscoreError, ModelNotFoundError
from serving.api import json_keys
from serving.api.errors import scrub_paths
from serving.api.heap import settle_heap
from serving.api.metrics import Metrics
from serving.api.reload_signal import ReloadSignal
from serving.model.scorer import Scorer

_logger = logging.getLogger(__name__)


class ModelState:
    def __init__(
        self, *, model: str, metrics: Metrics, scorer: Scorer | None = None, signal: ReloadSignal | None = None
    ) -> None:
        self.model = model
        self.metrics = metrics
        self.signal = signal
        self.scorer: Scorer | None = None
        self.error: str | None = None
        self._lock = asyncio.Lock()
        if scorer is not None:
            self._swap(scorer)

    async def load(self, *, announce: bool = True) -> Scorer:
        """Resolve the configured model again (the champion may have moved) and swap it in atomically.

        Loading runs in a worker thread; concurrent reloads queue on a lock. On failure the model
        being served stays, and the error is kept for /readyz. With several worker processes, a
        successful reload is announced so the others follow.
        """
        async with self._lock:
            try:
                scorer = await asyncio.to_thread(load_scorer, self.model)
            except LeadscoreError as exc:
                self.error = scrub_paths(str(exc))  # shown by /readyz; the log below keeps the full text
                self.metrics.reloads.labels("failed").inc()
                _logger.error("could not load %s: %s", self.model, exc)
                raise
            self._swap(scorer)
            settle_heap()
            self.metrics.reloads.labels("ok").inc()
            if announce and self.signal is not None:
                self.signal.announce()
            return scorer

    async def follow(self, *, interval_s: float = 0.5) -> None:
        """Reload whenever another worker process announces a reload (runs for the app's lifetime)."""
        assert self.signal is not None
        while True:
            await asyncio.sleep(interval_s)
            if self.signal.changed():
                # a failure is logged and kept for /readyz by load(); this worker serves its old model
                # and keeps following, whatever the failure: the next announced reload may succeed
                with contextlib.suppress(Exception):
                    await self.load(announce=False)

    def _swap(self, scorer: Scorer) -> None:
        self.scorer = scorer  # one reference assignment: atomic for every reader
        self.error = None
        self.metrics.serving(scorer.model_info)
        _logger.info("serving %s version %s", scorer.bundle.name, scorer.bundle.version)

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "loaded": self.scorer is not None, "error": self.error}


def load_scorer(model: str) -> Scorer:
    """The server's way to load: unverified trees parsed in a child process first, any failure a LeadscoreError
    (a bug in building the scorer must not leave /readyz saying "still loading" for ever)."""
    from serving.model.registry import load_bundle

    bundle = load_bundle(model, probe=True)
    try:
        scorer = Scorer(bundle)
    except Exception as exc:  # noqa: BLE001
        raise ModelNotFoundError(f"could not prepare {model} for scoring: {type(exc).__name__}: {exc}") from None
    json_keys.warm_up()  # the batch route's key count: its machine code loaded before the first batch
    return scorer
