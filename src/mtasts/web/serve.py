"""Wiring of `mtasts serve`: store, snapshot, HTTP app, DNS server and publisher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from mtasts.config import Settings, split_hostport
from mtasts.hosting.snapshot import Snapshot
from mtasts.hosting.tenants import HostingService
from mtasts.store.db import make_engine, migrate, session_factory
from mtasts.web.app import MtastsApp

log = logging.getLogger("mtasts.serve")


def open_service(settings: Settings, *, cached_ok: bool = False) -> HostingService:
    """Connect to the store, bring its schema up to date and load the snapshot.

    With ``cached_ok``, an unreachable database is not fatal when a saved snapshot exists:
    policies are served from it (RFC 8461 gives senders no second chance to fetch a policy
    that is offline) until the database is back.
    """
    engine = make_engine(settings.effective_database_url)
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


def background_jobs(service: HostingService) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    """The DNS listener and the RFC 2136 publisher, when configured."""
    settings = service.settings
    jobs: list[Callable[[], Coroutine[Any, Any, None]]] = []
    if settings.dns_listen:
        from mtasts.hosting.dnsserver import AuthoritativeDnsServer, ZoneAnswerer

        host, port = split_hostport(settings.dns_listen, "dns_listen")

        async def dns_job() -> None:
            server = AuthoritativeDnsServer(
                ZoneAnswerer(settings, lambda: service.snapshot), host, port
            )
            await server.start()
            log.warning("authoritative DNS for %s on %s", settings.zone_name, settings.dns_listen)
            try:
                await asyncio.Event().wait()
            finally:
                await server.stop()

        jobs.append(dns_job)
    if settings.update_server:
        from mtasts.hosting.dnspublish import Rfc2136Publisher

        async def publish_job() -> None:
            publisher = Rfc2136Publisher(settings, lambda: service.snapshot)
            await publisher.run(1.0, asyncio.Event())

        jobs.append(publish_job)
    return jobs


def build_app(service: HostingService) -> MtastsApp:
    return MtastsApp(service, background_jobs(service))


def serve(service: HostingService) -> None:
    """Run until interrupted."""
    host, port = service.settings.listen_host_port()
    config = uvicorn.Config(
        build_app(service),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        server_header=False,
    )
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run()
