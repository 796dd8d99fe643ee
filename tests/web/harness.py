"""The real `mtasts serve` app with the dashboard, on a loopback port, for the dashboard
tests: the same construction as the command (``build_app``), plus ``dashboard.install``
unless the app already has it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import uvicorn

from mtasts.config import Settings
from mtasts.hosting.tenants import HostingService
from mtasts.web import dashboard
from mtasts.web.dashboard.auth import set_password
from mtasts.web.serve import build_app, open_service
from tests.lab.ports import free_port

PASSWORD = "correct horse battery"


@dataclass
class Dashboard:
    service: HostingService
    base: str
    admin_token: str

    def user(self, email: str, password: str = PASSWORD, admin: bool = False) -> str:
        """A dashboard user with ``password``; returns the e-mail."""
        set_password(self.service, email, password, admin=admin)
        return email

    def api(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return httpx.Client(base_url=self.base, headers=headers, timeout=60)


@contextmanager
def running_dashboard(settings: Settings) -> Iterator[Dashboard]:
    port = free_port()
    settings = Settings(**{**settings.__dict__, "listen": f"127.0.0.1:{port}"})
    service = open_service(settings)
    token = service.first_admin_token() or service.create_token("admin@localhost", admin=True)
    app = build_app(service)
    if not any(getattr(r, "path", None) == "/login" for r in app.api.router.routes):
        dashboard.install(app.api)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        proxy_headers=False,  # as `mtasts serve` runs it
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("mtasts app did not start")
        time.sleep(0.02)
    try:
        yield Dashboard(service, f"http://127.0.0.1:{port}", token)
    finally:
        server.should_exit = True
        thread.join(15)
        service.close()
