"""With the database down, reports are refused with "try again" (SMTP 451, HTTP 503), never
acknowledged and lost; once it is back they are taken."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mtasts.config import Settings
from tests.hosting.serving import ZONE, running
from tests.hosting.test_store_outage_and_cluster import cut_off, restore
from tests.lab import World
from tests.lab.ports import free_port
from tests.reports.test_dkim import _send
from tests.reports.test_durability import mail, report
from tests.reports.test_routes import host

pytestmark = [pytest.mark.lab, pytest.mark.system]

DOMAIN = "down.reports.lab.test"


def test_reports_wait_for_the_store(postgres_url: str, tmp_path: Path, lab_world: World) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=postgres_url,
        zone=ZONE,
        nameservers=(lab_world.nameserver,),
        smtp_listen=f"127.0.0.1:{free_port()}",
    )
    with running(settings) as app:
        host(app, lab_world, [DOMAIN])
        port = int(settings.smtp_listen.rsplit(":", 1)[1])
        url = f"{app.base}/tlsrpt/{DOMAIN}"
        headers = {"Content-Type": "application/tlsrpt+json"}
        cut_off(postgres_url)
        try:
            code, text = _send(port, mail(DOMAIN, 1))
            assert code == 451 and b"try again" in text
            r = httpx.post(url, content=report(DOMAIN, 2, "poster.example"), headers=headers)
            assert r.status_code == 503 and "retry" in r.json()["error"]["message"]
        finally:
            restore(postgres_url)
        assert _send(port, mail(DOMAIN, 1))[0] == 250
        r = httpx.post(url, content=report(DOMAIN, 2, "poster.example"), headers=headers)
        assert r.status_code == 201
        with app.client() as c:
            assert c.get(f"/api/v1/domains/{DOMAIN}/reports").json()["total"] == 2
