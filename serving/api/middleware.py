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


class BodyLimitMiddleware:
    """413 for bodies over `max_bytes`, by Content-Length up front or by counting a chunked stream;
    408 for a body that has not fully arrived `timeout_s` after the request began (a slow sender)."""

    def __init__(self, app: Any, *, max_bytes: int, timeout_s: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._too_large = f"request body is over the {max_bytes:,}-byte limit; send fewer leads per request"

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _refuse(send, 413, self._too_large)
            return
        seen = 0
        started = False
        complete = False
        deadline = time.monotonic() + self.timeout_s

        async def counting_receive() -> dict[str, Any]:
            nonlocal seen, complete
            if complete:
                return await receive()  # after the body: waiting for a disconnect is not bounded here
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.0))
            except TimeoutError:
                raise _BodyTooSlow from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
                complete = not message.get("more_body", False)
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _refuse(send, 413, self._too_large)
        except _BodyTooSlow:
            if not started:
                await _refuse(
                    send,
                    408,
                    f"the request body did not arrive within {self.timeout_s:g} s (LEADSCORE_BODY_TIMEOUT_S)",
                    close=True,
                )


class _BodyTooLarge(Exception):
    pass


class _BodyTooSlow(Exception):
    pass


async def _refuse(send: Any, status: int, problem: str, *, close: bool = False) -> None:
    body = json.dumps({"detail": [{"field": "body", "problem": problem}]}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
