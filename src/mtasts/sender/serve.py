"""Running `mtasts policyd`: the store, the socketmap listener, the metrics listener and
the proactive refresh loop in one event loop, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

from mtasts.net.dns import Resolver
from mtasts.sender.cache import PolicyStore
from mtasts.sender.cache import open_store as open_store_url
from mtasts.sender.metrics import MetricsServer
from mtasts.sender.policyd import PolicyDaemon
from mtasts.sender.settings import PolicydSettings
from mtasts.sender.socketmap import SocketmapServer

log = logging.getLogger("mtasts.policyd")


def open_store(settings: PolicydSettings) -> PolicyStore:
    return open_store_url(settings.effective_database_url)


@dataclass
class Running:
    daemon: PolicyDaemon
    socketmap: SocketmapServer
    metrics: MetricsServer | None
    refresher: asyncio.Task[None]

    async def stop(self) -> None:
        self.refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.refresher
        await self.socketmap.stop()
        if self.metrics is not None:
            await self.metrics.stop()
        await self.daemon.drain()


def build_daemon(settings: PolicydSettings, store: PolicyStore | None) -> PolicyDaemon:
    resolver = Resolver(settings.nameservers or None, timeout=settings.fetch_timeout)
    return PolicyDaemon(settings, resolver, store)


async def start(settings: PolicydSettings, daemon: PolicyDaemon) -> Running:
    """Load the persisted cache and start listening; returns the running servers."""
    loaded = daemon.load()
    if loaded:
        log.info("loaded %d cached policies still in force", loaded)
    server = SocketmapServer(
        daemon.fast,
        daemon.slow,
        max_request=settings.max_request,
        max_connections=settings.max_connections,
        idle_timeout=settings.idle_timeout,
    )
    await server.start(settings.listen)
    metrics: MetricsServer | None = None
    if settings.metrics_listen:

        def render() -> str:
            gauges = daemon.gauges()
            gauges["mtasts_policyd_connections"] = (
                "Open socketmap connections.",
                float(server.stats.connections),
            )
            gauges["mtasts_policyd_bad_requests"] = (
                "Malformed socketmap requests since start.",
                float(server.stats.bad_requests),
            )
            return daemon.metrics.render(gauges)

        metrics = MetricsServer(render)
        await metrics.start(settings.metrics_listen)
    refresher = asyncio.create_task(_refresh_loop(daemon, settings.refresh_tick))
    return Running(daemon, server, metrics, refresher)


async def _refresh_loop(daemon: PolicyDaemon, tick: float) -> None:
    while True:
        await asyncio.sleep(tick)
        try:
            await daemon.refresh_due()
        except Exception:  # one bad round must not end the refreshes
            log.exception("proactive refresh failed")


async def serve(
    settings: PolicydSettings,
    store: PolicyStore | None,
    ready: Callable[[Running], None] | None = None,
) -> None:
    """Run until SIGTERM/SIGINT."""
    daemon = build_daemon(settings, store)
    # the handlers first: a SIGTERM right after the ready line (a service manager stopping
    # what it just started) is a clean stop, not a killed process
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running = await start(settings, daemon)
    if ready is not None:
        ready(running)
    try:
        await stop.wait()
    finally:
        await running.stop()
        if store is not None:
            store.close()
