"""Slow and idle HTTP clients cannot lock others out (uvicorn has no request-header timeout).

Invariant: every HTTP connection either completes a request's headers within
``header_timeout`` seconds of connecting (or of the first byte of its next request) and its
body within ``body_timeout`` seconds of the headers, or is closed; and no more than
``max_connections`` are open at once: a new connection over the cap sheds the oldest
incomplete one (waiting for headers or a body, or idle between requests), so thousands of
clients sending a byte every few seconds hold neither descriptors nor the policy host.
Between requests uvicorn's keep-alive timeout closes idle connections (``timeout_keep_alive``).

:func:`guarded_protocol` returns a subclass of uvicorn's httptools protocol that keeps the
registry (:class:`HttpGuard`); ``web/serve.py`` passes it as ``http=`` to uvicorn. The cost
per request is a few dict operations: one sweep a second closes the connections past their
deadlines (no timer per request).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("mtasts.connections")

SWEEP_EVERY = 1.0  # seconds, at most; a quarter of the header timeout when that is shorter


class HttpGuard:
    """The registry of one listener's connections: all open ones; those waiting for a
    request's headers, with the time they started (oldest first); and those idle between
    requests."""

    def __init__(
        self, header_timeout: float, max_connections: int, body_timeout: float = 120.0
    ) -> None:
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.open: set[asyncio.Protocol] = set()
        self.waiting: OrderedDict[asyncio.Protocol, float] = OrderedDict()
        self.receiving: OrderedDict[asyncio.Protocol, float] = OrderedDict()  # the body
        self.idle: OrderedDict[asyncio.Protocol, float] = OrderedDict()
        self.timed_out = 0  # closed for not sending headers in time
        self.shed = 0  # closed to make room for a new connection
        self._sweeper: asyncio.TimerHandle | None = None

    def admit(self, protocol: asyncio.Protocol, loop: asyncio.AbstractEventLoop) -> bool:
        """Register a new connection, shedding the oldest waiting or idle one when full;
        False when every connection is busy with a request (the new one is refused)."""
        while len(self.open) >= self.max_connections:
            oldest = self._oldest()
            if oldest is None:
                return False
            self.forget(oldest)
            self.shed += 1
            _abort(oldest)
        self.open.add(protocol)
        self.begin(protocol)
        if self._sweeper is None:
            self._schedule(loop)
        return True

    def begin(self, protocol: asyncio.Protocol) -> None:
        """``protocol`` waits for a request's headers from now on."""
        self.idle.pop(protocol, None)
        self.waiting.pop(protocol, None)
        self.waiting[protocol] = time.monotonic()

    def headers_done(self, protocol: asyncio.Protocol) -> None:
        self.waiting.pop(protocol, None)
        self.receiving[protocol] = time.monotonic()

    def body_done(self, protocol: asyncio.Protocol) -> None:
        self.receiving.pop(protocol, None)

    def rest(self, protocol: asyncio.Protocol) -> None:
        """``protocol`` answered its requests and waits for the next (keep-alive)."""
        if protocol in self.open:
            self.idle[protocol] = time.monotonic()

    def forget(self, protocol: asyncio.Protocol) -> None:
        self.open.discard(protocol)
        self.waiting.pop(protocol, None)
        self.receiving.pop(protocol, None)
        self.idle.pop(protocol, None)

    def sweep(self) -> None:
        """Close the connections waiting for headers longer than ``header_timeout``, or
        for a request body longer than ``body_timeout``."""
        now = time.monotonic()
        deadlines = ((self.waiting, self.header_timeout), (self.receiving, self.body_timeout))
        for table, timeout in deadlines:
            while table:
                protocol, since = next(iter(table.items()))
                if since > now - timeout:
                    break
                self.forget(protocol)
                self.timed_out += 1
                _abort(protocol)

    def _oldest(self) -> asyncio.Protocol | None:
        """The incomplete connection that started waiting first (idle ones first on a tie)."""
        heads = []
        for rank, table in enumerate((self.idle, self.waiting, self.receiving)):
            first = next(iter(table.items()), None)
            if first is not None:
                heads.append((first[1], rank, first[0]))
        return min(heads, key=lambda h: (h[0], h[1]))[2] if heads else None

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        every = min(SWEEP_EVERY, self.header_timeout / 4)

        def tick() -> None:
            self.sweep()
            self._sweeper = loop.call_later(every, tick)

        self._sweeper = loop.call_later(every, tick)


def _abort(protocol: asyncio.Protocol) -> None:
    transport = getattr(protocol, "transport", None)
    if transport is not None and not transport.is_closing():
        transport.abort()  # no lingering close: the descriptor is freed now


def guarded_protocol(guard: HttpGuard) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with ``guard``'s header timeout and connection cap."""

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if not guard.admit(self, self.loop):
                self.connections.discard(self)
                transport.abort()

        def connection_lost(self, exc: Exception | None) -> None:
            guard.forget(self)
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self not in guard.waiting:  # the first byte of a later request
                guard.begin(self)

        def on_headers_complete(self) -> None:
            guard.headers_done(self)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            guard.body_done(self)
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.pipeline and not self.transport.is_closing():
                guard.rest(self)

    return GuardedHttpToolsProtocol


def http_options(
    header_timeout: float,
    keepalive_timeout: float,
    max_connections: int,
    body_timeout: float = 120.0,
) -> dict[str, Any]:
    """uvicorn.Config options for a guarded listener."""
    guard = HttpGuard(header_timeout, max_connections, body_timeout)
    return {"http": guarded_protocol(guard), "timeout_keep_alive": keepalive_timeout}


__all__ = ["HttpGuard", "guarded_protocol", "http_options"]
