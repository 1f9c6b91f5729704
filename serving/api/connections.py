"""A deadline on a request's line and headers, which uvicorn does not have.

uvicorn times out an idle keep-alive connection, but not one that is opened and then sent nothing, nor
headers that trickle in a byte at a time: each such connection is held for ever and counts against
LEADSCORE_MAX_CONNECTIONS, so a few hundred of them would lock every client out. This protocol is
uvicorn's own (httptools) with one timer: from the connection's start, or the first byte of a
keep-alive connection's next request, to the end of the headers. Past LEADSCORE_HEADER_TIMEOUT_S the
client gets a 408 (nothing at all if it sent nothing) and the connection is closed. The body has its
own deadline (LEADSCORE_BODY_TIMEOUT_S, serving.api.middleware).

    uvicorn.run(app, http=PROTOCOL)   # what `leadscore serve` does
    uvicorn --factory serving.api.main:create_app --http serving.api.connections:HeaderDeadlineProtocol
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROTOCOL = "serving.api.connections:HeaderDeadlineProtocol"  # by name: uvicorn's worker processes import it


@functools.cache
def header_timeout_s() -> float:
    """Read once per process from LEADSCORE_* (how `serve --workers N` hands its settings to each worker)."""
    from serving.api.settings import Settings

    return Settings().header_timeout_s


def timeout_answer(seconds: float) -> bytes:
    body = json.dumps(
        {
            "detail": [
                {
                    "field": "headers",
                    "problem": f"the request line and headers did not arrive within {seconds:g} s "
                    "(LEADSCORE_HEADER_TIMEOUT_S)",
                }
            ]
        }
    ).encode()
    head = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head + body


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, closing connections whose headers do not arrive in time."""

    _timer: asyncio.TimerHandle | None = None
    _begun = False  # a request's first bytes have arrived (a 408 is owed, not a silent close)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        self._arm()  # a keep-alive connection's next request; the first one's timer is already running

    def on_headers_complete(self) -> None:
        self._disarm()
        self._begun = False
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(header_timeout_s(), self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._begun:
            self.transport.write(timeout_answer(header_timeout_s()))
        self.transport.close()
