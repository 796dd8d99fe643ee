"""Slow and idle HTTP clients cannot lock others out (uvicorn has no request-header timeout).

Invariant: every HTTP connection either completes a request's headers within
``header_timeout`` seconds of connecting (or of the first byte of its next request), or is
closed; and no more than ``max_connections`` are open at once: a new connection over the cap
sheds the oldest connection still waiting for headers, so thousands of clients sending a
byte every few seconds hold neither descriptors nor the policy host. Between requests
uvicorn's keep-alive timeout closes idle connections (``timeout_keep_alive``).

:func:`guarded_protocol` returns a subclass of uvicorn's httptools protocol that keeps the
registry (:class:`HttpGuard`); ``web/serve.py`` passes it as ``http=`` to uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("mtasts.connections")


class HttpGuard:
    """The registry of one listener's connections: all open ones, and in connection order
    those still waiting for a request's headers ("incomplete")."""

    def __init__(self, header_timeout: float, max_connections: int) -> None:
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.open: set[asyncio.Protocol] = set()
        self.incomplete: OrderedDict[asyncio.Protocol, None] = OrderedDict()
        self.timed_out = 0  # closed for not sending headers in time
        self.shed = 0  # closed to make room for a new connection

    def admit(self, protocol: asyncio.Protocol) -> bool:
        """Register a new connection, shedding the oldest incomplete one when full; False
        when the listener is full of connections busy with requests (the new one is
        closed instead)."""
        while len(self.open) >= self.max_connections:
            if not self.incomplete:
                return False
            oldest, _ = self.incomplete.popitem(last=False)
            self.open.discard(oldest)
            self.shed += 1
            _abort(oldest)
        self.open.add(protocol)
        return True

    def forget(self, protocol: asyncio.Protocol) -> None:
        self.open.discard(protocol)
        self.incomplete.pop(protocol, None)


def _abort(protocol: asyncio.Protocol) -> None:
    transport = getattr(protocol, "transport", None)
    if transport is not None and not transport.is_closing():
        transport.abort()  # no lingering FIN_WAIT: the descriptor is freed now


def guarded_protocol(guard: HttpGuard) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with ``guard``'s header timeout and connection cap."""

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if not guard.admit(self):
                self.connections.discard(self)
                transport.abort()
                return
            self._await_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            guard.forget(self)
            self._stop_header_timer()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:  # the first byte of a later request
                self._await_headers()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.pipeline and not self.transport.is_closing():
                guard.incomplete[self] = None  # idle until the next request: sheddable

        def on_headers_complete(self) -> None:
            self._stop_header_timer()
            guard.incomplete.pop(self, None)
            super().on_headers_complete()

        def _await_headers(self) -> None:
            guard.incomplete[self] = None
            self._header_timer = self.loop.call_later(guard.header_timeout, self._too_slow)

        def _stop_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _too_slow(self) -> None:
            self._header_timer = None
            guard.incomplete.pop(self, None)
            guard.timed_out += 1
            if self.transport is not None and not self.transport.is_closing():
                self.transport.abort()

    return GuardedHttpToolsProtocol


def http_options(
    header_timeout: float, keepalive_timeout: float, max_connections: int
) -> dict[str, Any]:
    """uvicorn.Config options for a guarded listener."""
    guard = HttpGuard(header_timeout, max_connections)
    return {"http": guarded_protocol(guard), "timeout_keep_alive": keepalive_timeout}


__all__ = ["HttpGuard", "guarded_protocol", "http_options"]
