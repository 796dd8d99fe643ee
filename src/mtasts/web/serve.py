"""Wiring of `mtasts serve`: store, snapshot, HTTP app, DNS server and publisher."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from mtasts.config import Settings, split_hostport
from mtasts.hosting.dnspublish import Rfc2136Publisher
from mtasts.hosting.dnsserver import AuthoritativeDnsServer, ZoneAnswerer
from mtasts.hosting.snapshot import Snapshot
from mtasts.hosting.tenants import HostingService
from mtasts.monitor.scheduler import Monitor
from mtasts.reports.ingest import ingestor_for
from mtasts.reports.smtp import (
    ReportHandler,
    ReportReceiver,
    dkim_dns,
    self_signed_context,
    tls_context,
)
from mtasts.store.db import make_engine, migrate, session_factory
from mtasts.web.app import MtastsApp

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
    if settings.dns_listen:
        host, port = split_hostport(settings.dns_listen, "dns_listen")
        answerer = ZoneAnswerer(settings, lambda: service.snapshot)
        service.on_change.append(answerer.snapshot_changed)
        dns_server = AuthoritativeDnsServer(answerer, host, port)
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
        receiver = ReportReceiver(handler, host, port, tls, name)
    monitor = Monitor(service) if settings.monitor_interval > 0 else None
    return MtastsApp(
        service,
        dns_server=dns_server,
        publisher=publisher,
        smtp_receiver=receiver,
        ingestor=ingestor,
        monitor=monitor,
    )


def uvicorn_config(app: MtastsApp, host: str, port: int, **options: Any) -> uvicorn.Config:
    """How `mtasts serve` runs the app (tests run it the same way)."""
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


def serve(service: HostingService) -> None:
    """Run until interrupted."""
    host, port = service.settings.listen_host_port()
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(uvicorn_config(build_app(service), host, port)).run()
