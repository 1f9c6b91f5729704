"""Two small ASGI middlewares: request metrics per route template, and a cap on body size and time.

Plain ASGI rather than BaseHTTPMiddleware, which costs a task and a stream copy per request.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from serving.api.metrics import Metrics

Scope = dict[str, Any]


class MetricsMiddleware:
    """Counts and times every HTTP request under its route template (never the raw path)."""

    def __init__(self, app: Any, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_record(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe(
                route=route, method=scope["method"], status=status, seconds=time.perf_counter() - start
            )


class BodyLimit:
    """One request's body limits: `max_bytes` in all, fully arrived `timeout_s` after the request began.
    Shared by BodyLimitMiddleware and the scoring routes (serving.api.hot), so both refuse alike."""

    def __init__(self, max_bytes: int, timeout_s: float) -> None:
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.seen = 0

    def check_length(self, length: bytes | None) -> None:
        """413 up front when the declared Content-Length is over the limit."""
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            raise self.too_large()

    def counted(self, chunk: bytes) -> bytes:
        """The chunk, after counting it (a chunked body declares no length)."""
        self.seen += len(chunk)
        if self.seen > self.max_bytes:
            raise self.too_large()
        return chunk

    def remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 0.0)

    def too_large(self) -> BodyRefused:
        return BodyRefused(413, f"request body is over the {self.max_bytes:,}-byte limit; send fewer leads per request")

    def too_slow(self) -> BodyRefused:
        problem = f"the request body did not arrive within {self.timeout_s:g} s (LEADSCORE_BODY_TIMEOUT_S)"
        return BodyRefused(408, problem, close=True)


class BodyRefused(Exception):
    """A 413 or 408 for the request body, as the status, JSON body and headers to send."""

    def __init__(self, status: int, problem: str, *, close: bool = False) -> None:
        super().__init__(problem)
        self.status = status
        self.body = json.dumps({"detail": [{"field": "body", "problem": problem}]}).encode()
        self.headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode())]
        if close:
            self.headers.append((b"connection", b"close"))


class BodyLimitMiddleware:
    """413 for bodies over `max_bytes`, by Content-Length up front or by counting a chunked stream;
    408 for a body that has not fully arrived `timeout_s` after the request began (a slow sender)."""

    def __init__(self, app: Any, *, max_bytes: int, timeout_s: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = BodyLimit(self.max_bytes, self.timeout_s)
        try:
            limit.check_length(dict(scope["headers"]).get(b"content-length"))
        except BodyRefused as refused:
            await _refuse(send, refused)
            return
        started = False
        complete = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal complete
            if complete:
                return await receive()  # after the body: waiting for a disconnect is not bounded here
            try:
                message = await asyncio.wait_for(receive(), limit.remaining())
            except TimeoutError:
                raise limit.too_slow() from None
            if message["type"] == "http.request":
                limit.counted(message.get("body", b""))
                complete = not message.get("more_body", False)
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyRefused as refused:
            if not started:
                await _refuse(send, refused)


async def _refuse(send: Any, refused: BodyRefused) -> None:
    await send({"type": "http.response.start", "status": refused.status, "headers": refused.headers})
    await send({"type": "http.response.body", "body": refused.body})
