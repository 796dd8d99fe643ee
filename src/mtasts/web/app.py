"""The one HTTP application of `mtasts serve`.

The hot paths (policy host, Caddy's ``ask``, health, metrics) are plain ASGI answered from
the in-memory snapshot, before FastAPI sees the request: they never touch the database,
so they keep working when it is down, and they stay close to a bare ASGI app in speed.
Everything else goes to the REST API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy import select

from mtasts import __version__, i18n
from mtasts.generate import POLICY_PATH
from mtasts.hosting.dnspublish import Rfc2136Publisher
from mtasts.hosting.dnsserver import AuthoritativeDnsServer
from mtasts.hosting.snapshot import POLICY_HOST_PREFIX
from mtasts.hosting.tenants import HostingService
from mtasts.monitor.scheduler import Monitor
from mtasts.reports.ingest import ReportIngestor
from mtasts.reports.smtp import ReportReceiver
from mtasts.store.models import Domain
from mtasts.web import dashboard, reports_api
from mtasts.web.api import build_api
from mtasts.web.errors import StoreHealth

log = logging.getLogger("mtasts.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_TEXT = b"text/plain; charset=utf-8"
SAVE_EVERY = 10.0  # seconds between writes of the snapshot file, at most
# a host name as Caddy asks for it: LDH labels of 1-63, lower case, no trailing dot
_HOST_NAME = re.compile(
    r"(?=[a-z0-9.-]{1,253}\Z)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
)
_POLICY_HEADERS = [(b"content-type", _TEXT), (b"cache-control", b"no-cache")]


@dataclass
class Metrics:
    policy_served: int = 0
    policy_unknown: int = 0
    ask_allowed: int = 0
    ask_denied: int = 0
    sync_errors: int = 0
    last_sync_ok: float = field(default_factory=time.time)


class MtastsApp:
    """ASGI entry point: policy host, ask, health and metrics, then the API."""

    def __init__(
        self,
        service: HostingService,
        *,
        dns_server: AuthoritativeDnsServer | None = None,
        publisher: Rfc2136Publisher | None = None,
        smtp_receiver: ReportReceiver | None = None,
        ingestor: ReportIngestor | None = None,
        monitor: Monitor | None = None,
    ) -> None:
        self.service = service
        self.settings = service.settings
        self.metrics = Metrics()
        self.dns_server = dns_server
        self.publisher = publisher
        self.smtp_receiver = smtp_receiver
        self.monitor = monitor
        self.api: FastAPI = build_api(service, lifespan=self._lifespan, version=__version__)
        self.api.state.ingestor = ingestor or ReportIngestor(service.sessions)
        self.api.include_router(reports_api.receive)
        self.api.include_router(reports_api.router)
        dashboard.install(self.api)  # pages, /static and the error page; serves "/"
        self.store_health: StoreHealth = self.api.state.store_health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == POLICY_PATH:
                await self._policy(scope, send)
                return
            if path == "/tls/ask":
                await self._ask(scope, send)
                return
            if path == "/healthz":
                await self._health(send)
                return
            if path == "/metrics":
                await _respond(send, 200, self._metrics_text().encode())
                return
            if _host(scope).startswith(POLICY_HOST_PREFIX):
                # RFC 8461 §3.3: a policy host serves the policy file and nothing else
                await _respond(send, 404, b"Not found: only /.well-known/mta-sts.txt is here.\n")
                return
        with i18n.use(_language(scope)):
            await self.api(scope, receive, send)

    async def _policy(self, scope: Scope, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b"Method not allowed.\n", [(b"allow", b"GET, HEAD")])
            return
        host = _host(scope)
        entry = self.service.snapshot.lookup_host(host)
        if entry is None:
            self.metrics.policy_unknown += 1
            await _respond(send, 404, b"No MTA-STS policy is hosted for this name.\n")
            return
        self.metrics.policy_served += 1
        body = entry.body
        # RFC 8461 §3.3: 200, media type text/plain, never a redirect
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_POLICY_HEADERS, (b"content-length", str(len(body)).encode())],
            }
        )
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    async def _ask(self, scope: Scope, send: Send) -> None:
        """Caddy on-demand TLS: 200 lets Caddy obtain a certificate for ``domain``.

        Only the exact names served get one: ``mta-sts.<hosted domain>`` and the policy
        host, as Caddy sends them (lower case, no trailing dot, no port). Anything else,
        even a name that merely starts with a hosted one, is refused."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        values = query.get("domain") or []
        name = values[0] if len(values) == 1 else ""
        if not _HOST_NAME.fullmatch(name):
            self.metrics.ask_denied += 1
            await _respond(send, 400, b"not a host name\n")
            return
        hosted = name.startswith(POLICY_HOST_PREFIX) and (
            name[len(POLICY_HOST_PREFIX) :] in self.service.snapshot.hosts
        )
        if hosted or name == self.settings.policy_host:
            self.metrics.ask_allowed += 1
            await _respond(send, 200, b"ok\n")
        else:
            self.metrics.ask_denied += 1
            await _respond(send, 404, b"not hosted here\n")

    @property
    def store_ok(self) -> bool:
        """The last read of the store worked and no request failed on it lately."""
        return self.service.store_up and not self.store_health.failing()

    async def _health(self, send: Send) -> None:
        up, snap = self.store_ok, self.service.snapshot
        body = {
            "status": "ok" if up else "degraded",  # degraded: policies still served
            "store": "up" if up else "unreachable",
            "domains_served": len(snap.hosts),
            "generation": snap.generation,
            "snapshot_age_seconds": round(time.time() - snap.loaded_at, 1),
        }
        await _respond(
            send, 200, json.dumps(body).encode() + b"\n", content_type=b"application/json"
        )

    def _metrics_text(self) -> str:
        m, snap = self.metrics, self.service.snapshot
        lines = [
            "# HELP mtasts_policy_requests_total Policy requests by result.",
            "# TYPE mtasts_policy_requests_total counter",
            f'mtasts_policy_requests_total{{result="served"}} {m.policy_served}',
            f'mtasts_policy_requests_total{{result="unknown_host"}} {m.policy_unknown}',
            "# HELP mtasts_tls_ask_total Certificate ask requests by answer.",
            "# TYPE mtasts_tls_ask_total counter",
            f'mtasts_tls_ask_total{{result="allowed"}} {m.ask_allowed}',
            f'mtasts_tls_ask_total{{result="denied"}} {m.ask_denied}',
            "# HELP mtasts_hosted_domains Domains served from the snapshot.",
            "# TYPE mtasts_hosted_domains gauge",
            f"mtasts_hosted_domains {len(snap.hosts)}",
            "# HELP mtasts_store_up 1 when the last read of the database succeeded.",
            "# TYPE mtasts_store_up gauge",
            f"mtasts_store_up {int(self.store_ok)}",
            "# HELP mtasts_store_sync_errors_total Failed reads of the database.",
            "# TYPE mtasts_store_sync_errors_total counter",
            f"mtasts_store_sync_errors_total {m.sync_errors}",
            "# HELP mtasts_store_request_errors_total Requests answered 503: store failed.",
            "# TYPE mtasts_store_request_errors_total counter",
            f"mtasts_store_request_errors_total {self.store_health.failures}",
            "# HELP mtasts_store_last_sync_timestamp_seconds When the store was last read.",
            "# TYPE mtasts_store_last_sync_timestamp_seconds gauge",
            f"mtasts_store_last_sync_timestamp_seconds {m.last_sync_ok:.3f}",
            "# HELP mtasts_snapshot_age_seconds Seconds since the snapshot was last rebuilt.",
            "# TYPE mtasts_snapshot_age_seconds gauge",
            f"mtasts_snapshot_age_seconds {time.time() - snap.loaded_at:.3f}",
            *self.api.state.ingestor.metrics(),  # TLS reports: taken, refused, spooled
            *(self.monitor.metrics_lines() if self.monitor else ()),  # checks, alerts
        ]
        return "\n".join(lines) + "\n"

    # --- background work ---------------------------------------------------------------

    async def _sync_loop(self) -> None:
        """Pick up changes made by other processes; keep serving when the store is down;
        keep a copy of the snapshot on disk for a restart during an outage."""
        svc = self.service
        unsaved = True
        while True:
            await asyncio.sleep(self.settings.sync_interval)
            started = time.monotonic()
            try:
                unsaved |= await anyio.to_thread.run_sync(svc.sync)
                await anyio.to_thread.run_sync(self._probe_store)
            except Exception as exc:
                self.metrics.sync_errors += 1
                if svc.store_up:
                    log.warning("store unreachable, serving the last snapshot: %s", exc)
                svc.store_up = False
                continue
            if not svc.store_up:
                log.warning("store reachable again")
            svc.store_up = True
            self.store_health.probe_succeeded(started)
            self.metrics.last_sync_ok = time.time()
            try:
                if unsaved and await anyio.to_thread.run_sync(svc.save_snapshot, SAVE_EVERY):
                    unsaved = False
            except OSError as exc:
                log.warning("cannot save the snapshot to %s: %s", svc.snapshot_file, exc)

    def _probe_store(self) -> None:
        """Read the table every API request reads: a lock or a hung query on it fails
        here (statement timeout, ``db_timeout``) and /healthz says degraded."""
        with self.service.sessions() as db:
            db.execute(select(Domain.id).limit(1)).all()

    async def _maintenance_loop(self) -> None:
        """Re-verify pending domains and finish retirements."""
        while True:
            try:
                await anyio.to_thread.run_sync(self.service.finish_retirements)
                await anyio.to_thread.run_sync(self.service.reverify_pending)
            except Exception as exc:
                log.warning("maintenance failed: %s", exc)
            await asyncio.sleep(self.settings.verify_interval)

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        if self.dns_server is not None:  # a port in use stops the start-up with the reason
            await self.dns_server.start()
            log.warning(
                "authoritative DNS for %s on %s",
                self.settings.zone_name,
                ", ".join(self.dns_server.addresses),
            )
        if self.smtp_receiver is not None:
            await anyio.to_thread.run_sync(self.smtp_receiver.start)
            log.warning("TLS report receiver (SMTP) on %s", self.settings.smtp_listen)
        tasks = [
            asyncio.create_task(self._sync_loop()),
            asyncio.create_task(self._maintenance_loop()),
        ]
        if self.publisher is not None:
            tasks.append(asyncio.create_task(self.publisher.run(1.0)))
        if self.monitor is not None:
            tasks.append(asyncio.create_task(self.monitor.run()))
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            if self.dns_server is not None:
                await self.dns_server.stop()
            if self.smtp_receiver is not None:
                await anyio.to_thread.run_sync(self.smtp_receiver.stop)


def _language(scope: Scope) -> str:
    """The language of a request's prose (issue 13). The API (and the reports endpoint
    senders POST to) keeps its contract: codes, field names and values never change, and
    ``message``/``fix`` follow ``Accept-Language`` only when the client sends it, whatever
    the server's own locale. Everything else starts in English: the dashboard then speaks its
    reader's language (``views._language``), and background work stays English."""
    if scope["type"] == "http" and scope["path"].startswith(("/api/", "/tlsrpt/")):
        for name, value in scope.get("headers", ()):
            if name == b"accept-language":
                return i18n.from_accept_language(value.decode("latin-1")) or i18n.DEFAULT
    return i18n.DEFAULT


def _host(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == b"host":
            return str(value.decode("latin-1")).lower()
    return ""


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
    content_type: bytes = _TEXT,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})
