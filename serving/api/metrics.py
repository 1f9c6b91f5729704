"""Prometheus metrics for one app: requests and latency per route, scores per grade, the model version.

Each app owns its registry (not the process-global one), so tests and reloads never clash.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "leadscore_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "leadscore_request_seconds",
            "Request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.scores = Counter("leadscore_scores", "Leads scored, by grade", ["grade"], registry=self.registry)
        self.model = Gauge(
            "leadscore_model_info",
            "The model being served (value 1)",
            ["name", "version", "as_of"],
            registry=self.registry,
        )
        self.reloads = Counter("leadscore_reloads", "Model reloads by outcome", ["outcome"], registry=self.registry)
        # Labelled series by their labels: `labels()` checks and locks on every call (~2 µs); the keys
        # are route templates, methods, statuses and grades, so these stay small.
        self._per_request: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._per_grade: dict[str, Any] = {}

    def observe(self, *, route: str, method: str, status: int, seconds: float) -> None:
        series = self._per_request.get((route, method, status))
        if series is None:
            series = (self.requests.labels(route, method, str(status)), self.latency.labels(route))
            self._per_request[(route, method, status)] = series
        series[0].inc()
        series[1].observe(seconds)

    def scored(self, grades: list[str]) -> None:
        for grade, count in collections.Counter(grades).items():  # one locked increment per grade, not per lead
            counter = self._per_grade.get(grade)
            if counter is None:
                counter = self._per_grade[grade] = self.scores.labels(grade)
            counter.inc(count)

    def serving(self, info: Mapping[str, Any]) -> None:
        self.model.clear()
        self.model.labels(str(info["name"]), str(info["version"]), str(info.get("as_of") or "")).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
