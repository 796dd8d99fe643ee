"""policyd's counters and a tiny HTTP listener for Prometheus (``GET /metrics``).

The listener answers only ``GET /metrics`` (404 otherwise), reads at most 8 KiB of request
head with a 10 s bound, and closes every connection after one answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from mtasts.sender.socketmap import split_listen

log = logging.getLogger("mtasts.policyd")

HEAD_LIMIT = 8192
HEAD_TIMEOUT = 10.0
MAX_CONNECTIONS = 32  # scrapers at once; more are closed unanswered (descriptors are bounded)


@dataclass
class Metrics:
    answers: Counter[str] = field(default_factory=Counter)  # OK / NOTFOUND / TEMP / PERM
    cache_hits: int = 0
    cache_misses: int = 0
    fetches: Counter[str] = field(default_factory=Counter)  # VALID / NONE / FETCH_ERROR
    failures: Counter[str] = field(default_factory=Counter)  # finding code of the cause
    txt_checks: int = 0
    refreshes: int = 0

    def render(self, gauges: dict[str, tuple[str, float]]) -> str:
        """Prometheus text format; ``gauges``: name -> (help, value)."""
        lines = [
            "# HELP mtasts_policyd_answers_total Socketmap answers by kind.",
            "# TYPE mtasts_policyd_answers_total counter",
        ]
        for kind in ("OK", "NOTFOUND", "TEMP", "PERM"):
            lines.append(f'mtasts_policyd_answers_total{{kind="{kind}"}} {self.answers[kind]}')
        lines += [
            "# HELP mtasts_policyd_cache_hits_total Lookups answered from the cache.",
            "# TYPE mtasts_policyd_cache_hits_total counter",
            f"mtasts_policyd_cache_hits_total {self.cache_hits}",
            "# HELP mtasts_policyd_cache_misses_total Lookups that had to resolve the domain.",
            "# TYPE mtasts_policyd_cache_misses_total counter",
            f"mtasts_policyd_cache_misses_total {self.cache_misses}",
            "# HELP mtasts_policyd_fetches_total Policy resolutions by result.",
            "# TYPE mtasts_policyd_fetches_total counter",
        ]
        for result in ("VALID", "NONE", "FETCH_ERROR"):
            lines.append(
                f'mtasts_policyd_fetches_total{{result="{result}"}} {self.fetches[result]}'
            )
        lines += [
            "# HELP mtasts_policyd_fetch_failures_total Failed resolutions by finding code.",
            "# TYPE mtasts_policyd_fetch_failures_total counter",
        ]
        for cause, n in sorted(self.failures.items()):
            lines.append(f'mtasts_policyd_fetch_failures_total{{cause="{cause}"}} {n}')
        lines += [
            "# HELP mtasts_policyd_txt_checks_total TXT id checks of cached policies.",
            "# TYPE mtasts_policyd_txt_checks_total counter",
            f"mtasts_policyd_txt_checks_total {self.txt_checks}",
            "# HELP mtasts_policyd_refreshes_total Proactive refreshes before expiry.",
            "# TYPE mtasts_policyd_refreshes_total counter",
            f"mtasts_policyd_refreshes_total {self.refreshes}",
        ]
        for name, (help_text, value) in gauges.items():
            lines += [
                f"# HELP {name} {help_text}",
                f"# TYPE {name} gauge",
                f"{name} {value:g}",
            ]
        return "\n".join(lines) + "\n"


class MetricsServer:
    """Serves ``render()`` at ``GET /metrics`` on ``listen`` (HOST:PORT)."""

    def __init__(self, render: Callable[[], str], max_connections: int = MAX_CONNECTIONS) -> None:
        self.render = render
        self.max_connections = max_connections
        self.open = 0  # connections being served
        self.refused = 0  # connections closed at once: max_connections were open
        self._server: asyncio.Server | None = None
        self.address = ""

    async def start(self, listen: str) -> str:
        host, port = split_listen(listen)
        self._server = await asyncio.start_server(self._handle, host, port, limit=HEAD_LIMIT)
        sock = self._server.sockets[0].getsockname()
        self.address = f"{sock[0]}:{sock[1]}"
        return self.address

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open >= self.max_connections:
            self.refused += 1
            writer.transport.abort()
            return
        self.open += 1
        try:
            async with asyncio.timeout(HEAD_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split(" ")
            if len(parts) == 3 and parts[0] == "GET" and parts[1].split("?")[0] == "/metrics":
                body = self.render().encode()
                status, ctype = "200 OK", "text/plain; version=0.0.4; charset=utf-8"
            else:
                body, status, ctype = b"not found\n", "404 Not Found", "text/plain"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            self.open -= 1
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
