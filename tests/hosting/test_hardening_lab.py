"""What the security review found leaking or too loose on a running `mtasts serve`:
`/tls/ask` approves exact names only, policies have bounded size, every error uses one
envelope and carries no internal text (not even during an outage), a hung database is
reported instead of hanging, the data directory is private and the SMTP banner names no
software."""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from tests.hosting.serving import ZONE, Running, lab_settings, running, stop, wait_for
from tests.hosting.test_api_lab import customer, hosted
from tests.hosting.test_store_outage_and_cluster import cut_off, restore
from tests.lab import World
from tests.lab.ports import free_port
from tests.reports.test_durability import report
from tests.reports.test_routes import host
from tests.web.harness import PASSWORD
from tests.web.test_dashboard_http import csrf_of

from mtasts.hosting.tenants import MAX_MX_LINES
from mtasts.protocol.policy import MAX_POLICY_BYTES
from mtasts.web.dashboard.auth import set_password

pytestmark = pytest.mark.lab

# what a response must never contain: driver and library names, SQL, the database's address
LEAKS = ("sqlalchemy", "psycopg", "operationalerror", "127.0.0.1", "5432", "select ", "mtasts_test")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, lab_world: World) -> Iterator[Running]:
    with running(lab_settings(tmp_path_factory.mktemp("hard"), lab_world)) as r:
        yield r


def _ask(app: Running, *values: str) -> int:
    params: list[tuple[str, str | int | float | bool | None]] = [("domain", v) for v in values]
    return httpx.get(f"{app.base}/tls/ask", params=params, timeout=10).status_code


def test_ask_approves_exact_hosted_names_only(app: Running, lab_world: World) -> None:
    d = hosted(app, lab_world)
    assert _ask(app, f"mta-sts.{d}") == 200
    assert _ask(app, f"policy-host.{ZONE}") == 200
    refused = [
        f"mta-sts.{d}:evil.example",
        f"mta-sts.{d}:443",
        f"mta-sts.{d}..",
        f"mta-sts.{d}.",
        f"MTA-STS.{d.upper()}",
        f"mta-sts.{d}/x",
        f"mta-sts.{d}/.well-known/mta-sts.txt",
        f"mta-sts..{d}",
        f".mta-sts.{d}",
        f"mta-sts.{d} ",
        f"evil.mta-sts.{d}",
        f"mta-sts.{d}.evil.example",
        f"mta-sts.{d}\x00",
        f"{d}",
        "",
    ]
    for name in refused:
        status = _ask(app, name)
        assert 400 <= status < 500, (name, status)
    assert 400 <= _ask(app, "mta-sts.unknown.example", f"mta-sts.{d}") < 500  # one name only
    assert 400 <= _ask(app) < 500


def test_mx_lines_are_limited(app: Running, lab_world: World) -> None:
    d = hosted(app, lab_world)
    too_many = [f"mx{i}.{d}" for i in range(MAX_MX_LINES + 1)]
    with app.client() as c:
        r = c.put(f"/api/v1/domains/{d}/policy", json={"mode": "testing", "mx": too_many})
        assert r.status_code == 422 and r.json()["error"]["code"] == "mx-too-many"
        assert str(MAX_MX_LINES) in r.json()["error"]["message"]
        most = [f"{'a' * 60}.{'b' * 60}.{'c' * 60}.mx{i}.{d}" for i in range(MAX_MX_LINES)]
        r = c.put(f"/api/v1/domains/{d}/policy", json={"mode": "testing", "mx": most})
        assert r.status_code == 200, r.text
    served = app.policy(d)
    assert served.status_code == 200 and served.content.count(b"mx: ") == MAX_MX_LINES
    assert len(served.content) <= MAX_POLICY_BYTES  # RFC 8461 §3.3


def test_a_domain_with_too_many_live_mx_is_refused(app: Running, lab_world: World) -> None:
    d = customer(lab_world)
    for i in range(2, MAX_MX_LINES + 5):
        lab_world.zone.add(d, "MX", f"{10 * i} mx{i}.{d}.")
    with app.client() as c:
        r = c.post("/api/v1/domains", json={"domain": d})
    assert r.status_code == 422 and r.json()["error"]["code"] == "mx-too-many", r.text


def test_verification_failures_do_not_name_our_resolvers(app: Running, lab_world: World) -> None:
    d = customer(lab_world)
    with app.client() as c:
        claim = c.post("/api/v1/domains", json={"domain": d}).json()
        lab_world.dns.servfail(f"_mta-sts.{d}")
        lab_world.dns.servfail(f"_mtasts-challenge.{d}")
        try:
            r = c.post(f"/api/v1/domains/{d}/verify")
        finally:
            lab_world.dns.heal(f"_mta-sts.{d}")
            lab_world.dns.heal(f"_mtasts-challenge.{d}")
    assert r.status_code == 200 and r.json()["ok"] is False, r.text
    failed = [x for x in r.json()["records"] if "lookup failed" in str(x)]
    assert len(failed) == 2, r.json()["records"]  # the CNAME and this claim's challenge
    nameserver_ip = lab_world.nameserver.rsplit(":", 1)[0]
    assert nameserver_ip not in r.text and "SERVFAIL" in r.text.upper(), r.text
    assert claim["state"] == "pending"


def _enveloped(r: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


def test_framework_errors_use_the_one_envelope(app: Running) -> None:
    with app.client() as c:
        _enveloped(c.get("/api/v1/no-such-thing"), 404, "not-found")
        _enveloped(c.get("/no-such-page"), 404, "not-found")
        _enveloped(c.get("/static/no-such-file.js"), 404, "not-found")
        wrong = c.patch("/api/v1/domains")
        _enveloped(wrong, 405, "method-not-allowed")
        assert "GET" in wrong.headers["allow"]
        bad_json = c.post(
            "/api/v1/domains", content=b'{"domain": ', headers={"content-type": "application/json"}
        )
        _enveloped(bad_json, 400, "invalid-json")
        _enveloped(c.post("/api/v1/domains", json={"domain": 5}), 422, "invalid-request")
        _enveloped(c.post("/api/v1/domains", json=[1]), 422, "invalid-request")
        _enveloped(c.get("/api/v1/domains/x.example/reports?limit=abc"), 422, "invalid-request")
    _enveloped(httpx.get(f"{app.base}/api/v1/domains"), 401, "unauthorized")


def _no_leak(r: httpx.Response) -> None:
    text = r.text.lower()
    for word in LEAKS:
        assert word not in text, (word, r.text)


@pytest.mark.system
def test_no_response_carries_internal_text_during_an_outage(
    postgres_url: str, lab_world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = lab_settings(tmp_path, lab_world, database_url=postgres_url)
    domain = "leak.reports.lab.test"
    with running(settings) as app:
        host(app, lab_world, [domain])
        set_password(app.service, "owner@leak.lab.test", PASSWORD)
        browser = httpx.Client(base_url=app.base, timeout=60, follow_redirects=False)
        with browser:
            token = csrf_of(browser.get("/login").text)
            signed_in = browser.post(
                "/login",
                data={"email": "owner@leak.lab.test", "password": PASSWORD, "csrf_token": token},
            )
            assert signed_in.status_code == 303
            cut_off(postgres_url)
            try:
                caplog.set_level(logging.ERROR, logger="mtasts.web")
                with app.client() as c:
                    answers = [
                        c.get("/api/v1/domains"),
                        c.get(f"/api/v1/domains/{domain}/reports"),
                        c.post("/api/v1/domains", json={"domain": "new.example"}),
                    ]
                answers.append(
                    httpx.post(
                        f"{app.base}/tlsrpt/{domain}",
                        content=report(domain, 1, "poster.example"),
                        headers={"Content-Type": "application/tlsrpt+json"},
                        timeout=60,
                    )
                )
                answers += [browser.get("/"), browser.get(f"/domains/{domain}/reports")]
                for r in answers:
                    error = _enveloped(r, 503, "store-unavailable")
                    assert r.headers["retry-after"] == "30"
                    _no_leak(r)
                    error_id = error["error_id"]
                    assert error_id in error["message"]
                    # the operator finds the cause under the same id
                    assert any(
                        error_id in rec.getMessage() and "Error" in rec.getMessage()
                        for rec in caplog.records
                    ), error_id
                health = httpx.get(f"{app.base}/healthz", timeout=10)
                _no_leak(health)
            finally:
                restore(postgres_url)


@pytest.mark.system
def test_a_hung_database_answers_503_and_health_says_degraded(
    postgres_url: str, lab_world: World, tmp_path: Path
) -> None:
    settings = lab_settings(tmp_path, lab_world, database_url=postgres_url, db_timeout=1.0)
    with running(settings) as app:
        d = hosted(app, lab_world)
        served = app.policy(d).content
        assert httpx.get(f"{app.base}/healthz", timeout=30).json()["status"] == "ok"
        with psycopg.connect(postgres_url) as locker:  # a transaction holding the table
            locker.execute("LOCK TABLE domains IN ACCESS EXCLUSIVE MODE")
            with app.client() as c:
                r = c.get("/api/v1/domains")  # the client waits up to 60 s; the app less
            _enveloped(r, 503, "store-unavailable")
            assert r.headers["retry-after"] == "30"
            _no_leak(r)
            wait_for(
                lambda: httpx.get(f"{app.base}/healthz", timeout=30).json()["status"] == "degraded",
                60,
                "health says degraded",
            )
            assert "mtasts_store_up 0" in httpx.get(f"{app.base}/metrics", timeout=30).text
            assert app.policy(d).content == served  # policies stay served from memory
            locker.rollback()
        wait_for(
            lambda: httpx.get(f"{app.base}/healthz", timeout=30).json()["status"] == "ok",
            60,
            "health is ok again",
        )
        with app.client() as c:
            assert c.get("/api/v1/domains").status_code == 200


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_serve_keeps_its_data_directory_private(tmp_path: Path, lab_world: World) -> None:
    data = tmp_path / "fresh" / "data"  # created by serve itself
    port, smtp = free_port(), free_port()
    cmd = [sys.executable, "-m", "mtasts", "serve", "--data-dir", str(data)]
    cmd += ["--listen", f"127.0.0.1:{port}", "--smtp", f"127.0.0.1:{smtp}", "--zone", ZONE]
    cmd += ["--nameserver", lab_world.nameserver]
    env = {**os.environ, "MTASTS_SYNC_INTERVAL": "0.2", "MTASTS_MONITOR_INTERVAL": "0"}
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 120, "serve answers")
        assert httpx.get(f"{base}/login", timeout=10).status_code == 200  # makes the secret
        wait_for(lambda: (data / "snapshot.json").exists(), 30, "snapshot saved")
        assert _mode(data) == 0o700
        files = ["mtasts.db", "dashboard-secret", "snapshot.json", "smtp.key", "smtp.crt"]
        for name in files:
            assert _mode(data / name) & 0o077 == 0, (name, oct(_mode(data / name)))
        for path in data.rglob("*"):
            mask = 0o077
            assert _mode(path) & mask == 0, (path, oct(_mode(path)))
    finally:
        stop(proc)


def test_the_smtp_banner_names_no_software(tmp_path: Path, lab_world: World) -> None:
    smtp = free_port()
    settings = lab_settings(tmp_path, lab_world, smtp_listen=f"127.0.0.1:{smtp}")
    with running(settings), socket.create_connection(("127.0.0.1", smtp), timeout=10) as s:
        f = s.makefile("rwb")
        banner = f.readline().decode()
        f.write(b"EHLO sender.example\r\n")
        f.flush()
        ehlo = []
        while True:
            line = f.readline().decode()
            ehlo.append(line)
            if line[3:4] != "-":
                break
        f.write(b"HELP\r\nQUIT\r\n")
        f.flush()
        rest = f.read().decode()
    assert banner == f"220 policy-host.{ZONE} ESMTP\r\n"
    for text in (banner, *ehlo, rest):
        assert "python" not in text.lower() and "aiosmtpd" not in text.lower(), text
        assert "1.4" not in text, text
