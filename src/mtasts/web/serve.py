"""Wiring of `mtasts serve`: store, snapshot, HTTP app, DNS server and publisher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from mtasts.config import Settings, split_hostport
from mtasts.hosting.dnspublish import Rfc2136Publisher
from mtasts.hosting.dnsserver import AuthoritativeDnsServer, RateLimit, ZoneAnswerer
from mtasts.hosting.snapshot import Snapshot
from mtasts.hosting.tenants import HostingService
from mtasts.monitor.scheduler import Monitor
from mtasts.net.guard import accept_error_handler, nofile_soft
from mtasts.reports.ingest import ingestor_for
from mtasts.reports.smtp import (
    ReportHandler,
    ReportReceiver,
    SessionGuard,
    dkim_dns,
    self_signed_context,
    tls_context,
)
from mtasts.store.db import make_engine, migrate, session_factory
from mtasts.web.app import MtastsApp
from mtasts.web.connections import http_options

log = logging.getLogger("mtasts.serve")


def open_service(settings: Settings, *, cached_ok: bool = False) -> HostingService:
    """Connect to the store, bring its schema up to date and load the snapshot.

    With ``cached_ok``, an unreachable database is not fatal when a saved snapshot exists:
    policies are served from it (RFC 8461 gives senders no second chance to fetch a policy
    that is offline) until the database is back.
    """
    engine = make_engine(settings.effective_database_url, settings.db_timeout)
    service = HostingService(settings, session_factory(engine))
    try:
        migrate(engine)
        service.snapshot = service.load_snapshot()
    except SQLAlchemyError as exc:
        cache = service.snapshot_file
        if not cached_ok or not cache.exists():
            engine.dispose()
            raise
        service.snapshot = Snapshot.load(cache)
        service.store_up = False
        log.warning(
            "store unreachable (%s); serving %d domain(s) from %s until it is back",
            exc.__class__.__name__,
            len(service.snapshot.hosts),
            cache,
        )
    return service


def build_app(service: HostingService) -> MtastsApp:
    """The HTTP app with the DNS server and the RFC 2136 publisher, when configured."""
    settings = service.settings
    dns_server = publisher = None
    listen = settings.dns_listen_addresses()
    if listen:
        settings.zone_ns_glue(strict=True)  # settings built without load_settings, too
        answerer = ZoneAnswerer(settings, lambda: service.snapshot)
        service.on_change.append(answerer.snapshot_changed)
        rrl = settings.dns_rrl_rate
        dns_server = AuthoritativeDnsServer(
            answerer,
            listen=listen,
            idle_timeout=settings.dns_tcp_idle_timeout,
            max_connections=min(settings.dns_tcp_max_connections, nofile_soft() // 8),
            rate_limit=RateLimit(rrl, settings.dns_rrl_window, settings.dns_rrl_slip)
            if rrl > 0
            else None,
            own_thread=True,  # a flood of queries never queues with HTTP requests
        )
        service.on_change.append(dns_server.zone_changed)  # NOTIFY the secondaries
    if settings.update_server:
        publisher = Rfc2136Publisher(settings, lambda: service.snapshot)  # checks the settings
    ingestor = ingestor_for(
        settings, service.sessions, hosted=lambda d: service.snapshot.hosts.get(d) is not None
    )
    receiver = None
    if settings.smtp_listen:
        host, port = split_hostport(settings.smtp_listen, "smtp_listen")
        name = settings.effective_smtp_hostname
        tls = (
            tls_context(settings.smtp_tls_cert, settings.smtp_tls_key)
            if settings.smtp_tls_cert
            else self_signed_context(settings.data_dir, name)
        )
        handler = ReportHandler(
            ingestor,
            {settings.effective_mailto},
            dkim_dns(settings.nameservers),
            keep_unsigned=settings.keep_unsigned_reports,
        )
        guard = SessionGuard(
            settings.smtp_max_per_source,
            settings.smtp_max_sessions or min(1000, nofile_soft() // 8),
            settings.smtp_session_timeout,
        )
        receiver = ReportReceiver(
            handler,
            host,
            port,
            tls,
            name,
            guard=guard,
            command_timeout=settings.smtp_command_timeout,
        )
    monitor = Monitor(service) if settings.monitor_interval > 0 else None
    return MtastsApp(
        service,
        dns_server=dns_server,
        publisher=publisher,
        smtp_receiver=receiver,
        ingestor=ingestor,
        monitor=monitor,
    )


def http_max_connections(settings: Settings) -> int:
    """``http_max_connections``, or half the open files limit (at most 4000): room is left
    for SMTP, DNS over TCP, the store and files."""
    return settings.http_max_connections or max(16, min(4000, nofile_soft() // 2))


def uvicorn_config(app: MtastsApp, host: str, port: int, **options: Any) -> uvicorn.Config:
    """How `mtasts serve` runs the app (tests run it the same way): with a header
    timeout, a keep-alive timeout and a connection cap (web/connections.py)."""
    settings = app.settings
    guard = http_options(
        settings.http_header_timeout,
        settings.http_keepalive_timeout,
        http_max_connections(settings),
        settings.http_body_timeout,
    )
    options = {**guard, **options}
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        server_header=False,
        proxy_headers=False,  # the client address is not used; the Host header is
        **options,
    )


class GuardedServer(uvicorn.Server):
    """uvicorn's server whose event loop logs accept errors (EMFILE) once per interval."""

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(accept_error_handler())
        await super().serve(sockets)


def serve(service: HostingService, app: MtastsApp | None = None) -> None:
    """Run until interrupted; ``app`` when it was built beforehand (``build_app`` checks
    the DNS and RFC 2136 settings, so a command line builds it before it says it serves)."""
    host, port = service.settings.listen_host_port()
    with contextlib.suppress(KeyboardInterrupt):
        GuardedServer(uvicorn_config(app or build_app(service), host, port)).run()
