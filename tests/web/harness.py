"""The real `mtasts serve` app (dashboard included) on a loopback port, for the dashboard
tests, with helpers to make dashboard users."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from mtasts.config import Settings
from mtasts.hosting.tenants import HostingService
from mtasts.web.dashboard.auth import set_password
from tests.hosting.serving import running

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
    with running(settings) as r:
        yield Dashboard(r.service, r.base, r.admin_token)
