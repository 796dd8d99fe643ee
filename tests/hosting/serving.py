"""A real `mtasts serve` application on a loopback port, in a background thread, for the
hosting tests: uvicorn with the same app, store and settings as the command."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from tests.lab.ports import free_port

from mtasts.config import Settings
from mtasts.hosting.tenants import HostingService
from mtasts.web.serve import build_app, open_service


@dataclass
class Running:
    service: HostingService
    base: str
    admin_token: str

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return httpx.Client(base_url=self.base, headers=headers, timeout=60, **kwargs)

    def policy(self, domain: str, method: str = "GET") -> httpx.Response:
        return httpx.request(
            method,
            f"{self.base}/.well-known/mta-sts.txt",
            headers={"Host": f"mta-sts.{domain}"},
            timeout=10,
        )


@contextmanager
def running(settings: Settings) -> Iterator[Running]:
    """Start the app of ``settings`` on a free port; stop it on exit."""
    port = free_port()
    settings = Settings(**{**settings.__dict__, "listen": f"127.0.0.1:{port}"})
    service = open_service(settings)
    token = service.first_admin_token() or service.create_token("admin@localhost", admin=True)
    config = uvicorn.Config(
        build_app(service),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
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
        yield Running(service, f"http://127.0.0.1:{port}", token)
    finally:
        server.should_exit = True
        thread.join(15)
        service.close()
