"""Policies stay served when the database goes away, and two `mtasts serve` processes on
one PostgreSQL serve the same policy within seconds of a change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest
from tests.conftest import PG_ADMIN_URL
from tests.hosting.serving import cli_token, lab_settings, running, serve_process, wait_for
from tests.hosting.test_api_lab import customer, delegate
from tests.lab import World
from tests.lab.ports import free_port
from tests.web.harness import PASSWORD
from tests.web.test_session_secret import sign_in

from mtasts.protocol.policy import parse_policy
from mtasts.web.app import SAVE_EVERY
from mtasts.web.dashboard.auth import set_password

pytestmark = [pytest.mark.lab, pytest.mark.system]
MTASTS = [sys.executable, "-m", "mtasts"]


def _db_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def cut_off(url: str) -> None:
    """A database outage: no new connections, existing ones killed."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{_db_name(url)}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (_db_name(url),),
        )


def restore(url: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{_db_name(url)}" ALLOW_CONNECTIONS true')


def test_policies_stay_served_while_the_database_is_down(
    postgres_url: str, lab_world: World, tmp_path: Path
) -> None:
    settings = lab_settings(tmp_path, lab_world, database_url=postgres_url)
    with running(settings) as app:
        d = customer(lab_world)
        with app.client() as c:
            r = c.post("/api/v1/domains", json={"domain": d})
            assert r.status_code == 201
            delegate(lab_world, d, claim=r.json())
            assert c.post(f"/api/v1/domains/{d}/verify").json()["ok"]
        before = app.policy(d).content
        set_password(app.service, "owner@example.org", PASSWORD)
        browser = sign_in(app.base, "owner@example.org")
        cut_off(postgres_url)
        try:
            wait_for(
                lambda: httpx.get(f"{app.base}/healthz").json()["store"] == "unreachable",
                60,
                "health reports the store unreachable",
            )
            for _ in range(20):  # served from memory, again and again
                r = app.policy(d)
                assert r.status_code == 200 and r.content == before
            ask = httpx.get(f"{app.base}/tls/ask", params={"domain": f"mta-sts.{d}"})
            assert ask.status_code == 200
            assert "mtasts_store_up 0" in httpx.get(f"{app.base}/metrics").text
            with app.client() as c:  # the API says so instead of hanging
                down = c.get("/api/v1/domains")
                assert down.status_code == 503 and down.headers["retry-after"] == "30"
                assert down.json()["error"]["code"] == "store-unavailable"
            # a browser gets a page saying the same, never the API's JSON envelope
            page = browser.get("/", headers={"Accept": "text/html"})
            assert page.status_code == 503 and page.headers["retry-after"] == "30"
            assert page.headers["content-type"].startswith("text/html")
            assert "The database is unavailable; policies are still served" in page.text
            assert '"error"' not in page.text and "psycopg" not in page.text
            # in the reader's language, without the store to read the user's own setting
            es = browser.get("/", headers={"Accept": "text/html", "Accept-Language": "es"})
            assert es.status_code == 503 and '<html lang="es">' in es.text
            assert "No se puede hacer" in es.text
            assert "La base de datos no está disponible" in es.text  # the message too
        finally:
            browser.close()
            restore(postgres_url)
        wait_for(
            lambda: httpx.get(f"{app.base}/healthz").json()["store"] == "up",
            60,
            "health reports the store up again",
        )
        assert app.policy(d).content == before


def _policy(base: str, domain: str) -> httpx.Response:
    return httpx.get(
        f"{base}/.well-known/mta-sts.txt", headers={"Host": f"mta-sts.{domain}"}, timeout=5
    )


def test_two_processes_on_one_postgresql_agree_within_seconds(
    postgres_url: str, lab_world: World, tmp_path: Path
) -> None:
    ns = lab_world.nameserver
    with (
        serve_process(tmp_path / "a", ns, database_url=postgres_url) as (a, _pa),
        serve_process(tmp_path / "b", ns, database_url=postgres_url) as (b, _pb),
    ):
        token = cli_token("ops@example.org", "--database-url", postgres_url)
        assert token.startswith("mtasts_") and "\n" not in token
        d = customer(lab_world)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=a, headers=headers, timeout=30) as api:
            r = api.post("/api/v1/domains", json={"domain": d})
            assert r.status_code == 201
            delegate(lab_world, d, claim=r.json())
            assert api.post(f"/api/v1/domains/{d}/verify").json()["ok"]
            wait_for(lambda: _policy(b, d).status_code == 200, 60, "B serves the domain")
            r = api.put(f"/api/v1/domains/{d}/policy", json={"mode": "none", "max_age": 86400})
            assert r.status_code == 200, r.text
        assert parse_policy(_policy(a, d).content).mode == "none"  # A at once
        # polled with a generous deadline: B picks the change up by its own sync loop
        wait_for(
            lambda: parse_policy(_policy(b, d).content).mode == "none", 60, "B serves the change"
        )


def test_a_restart_during_an_outage_serves_the_saved_snapshot(
    postgres_url: str, lab_world: World, tmp_path: Path
) -> None:
    ns, data = lab_world.nameserver, tmp_path / "node"
    token = cli_token("ops@example.org", "--database-url", postgres_url)
    d = customer(lab_world)
    with serve_process(data, ns, database_url=postgres_url) as (base, _):
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as api:
            r = api.post("/api/v1/domains", json={"domain": d})
            assert r.status_code == 201
            delegate(lab_world, d, claim=r.json())
            assert api.post(f"/api/v1/domains/{d}/verify").json()["ok"]
        served = _policy(base, d).content
        wait_for(
            lambda: (
                d in (data / "snapshot.json").read_text()
                if (data / "snapshot.json").exists()
                else False
            ),
            6 * SAVE_EVERY,  # written at most every SAVE_EVERY seconds: a generous deadline
            "snapshot saved",
        )
    cut_off(postgres_url)
    try:
        with serve_process(data, ns, database_url=postgres_url) as (base, _):
            health = httpx.get(f"{base}/healthz").json()
            assert health["store"] == "unreachable" and health["domains_served"] >= 1
            r = _policy(base, d)
            assert r.status_code == 200 and r.content == served
            restore(postgres_url)
            wait_for(lambda: httpx.get(f"{base}/healthz").json()["store"] == "up", 60, "store up")
            assert _policy(base, d).content == served
    finally:
        restore(postgres_url)
    # without a saved snapshot, an unreachable store is a clear error, not a silent start
    cut_off(postgres_url)
    try:
        proc = subprocess.run(
            [
                *MTASTS,
                "serve",
                "--database-url",
                postgres_url,
                "--data-dir",
                str(tmp_path / "new"),
                "--listen",
                f"127.0.0.1:{free_port()}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 1 and "Cannot open the store" in proc.stderr
    finally:
        restore(postgres_url)
