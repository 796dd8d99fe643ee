"""A report acknowledged (HTTP 2xx, SMTP 250) is never lost: `mtasts serve` is killed with
SIGKILL while reports stream in, restarted, and every acknowledged report is there."""

from __future__ import annotations

import json
import signal
import smtplib
import sqlite3
import ssl
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hosting.serving import ZONE, cli_token, serve_process
from tests.hosting.test_api_lab import prove
from tests.lab import World
from tests.lab.ports import free_port

pytestmark = [pytest.mark.lab, pytest.mark.system]

TEMPLATE = Path(__file__).resolve().parents[1] / "data" / "tlsrpt" / "cry-inc-dmarc-report-viewer"


def report(domain: str, n: int, sender: str) -> bytes:
    data: dict[str, Any] = json.loads((TEMPLATE / "google.json").read_bytes())
    data["report-id"] = f"{sender}-{n}"
    data["organization-name"] = sender
    for p in data["policies"]:
        p["policy"]["policy-domain"] = domain
    return json.dumps(data).encode()


def mail(domain: str, n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "reports@mailer.example"
    msg["To"] = f"tlsrpt@{ZONE}"
    msg["Subject"] = f"Report Domain: {domain} Submitter: mailer.example Report-ID: <m-{n}>"
    msg.set_content("TLS report attached.")
    msg.add_attachment(
        report(domain, n, "mailer.example"),
        maintype="application",
        subtype="tlsrpt+json",
        filename=f"mailer.example!{domain}!{n}.json",
    )
    return msg.as_bytes()


def stream_https(base: str, domain: str, acked: list[str], stop: threading.Event) -> None:
    n = 0
    with httpx.Client(timeout=5) as client:
        while not stop.is_set():
            n += 1
            try:
                r = client.post(
                    f"{base}/tlsrpt/{domain}",
                    content=report(domain, n, "poster.example"),
                    headers={"Content-Type": "application/tlsrpt+json"},
                )
            except httpx.TransportError:
                return  # the server is gone
            if r.status_code in (200, 201):
                acked.append(f"poster.example-{n}")


def stream_smtp(port: int, domain: str, acked: list[str], stop: threading.Event) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    n = 0
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
            smtp.starttls(context=ctx)
            smtp.ehlo("mailer.example")
            while not stop.is_set():
                n += 1
                smtp.mail("reports@mailer.example")
                smtp.rcpt(f"tlsrpt@{ZONE}")
                code, _ = smtp.data(mail(domain, n))
                if code == 250:
                    acked.append(f"mailer.example-{n}")
    except (OSError, smtplib.SMTPException):
        return


def stored_ids(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT organization, report_id FROM tls_reports").fetchall()
    return {rid for _org, rid in rows}


def test_killed_server_loses_no_acknowledged_report(tmp_path: Path, lab_world: World) -> None:
    data = tmp_path / "node"
    db = data / "mtasts.db"
    url = f"sqlite:///{db}"
    token = cli_token("o@example.org", "--database-url", url, "--data-dir", str(data))
    domain = "durable.reports.lab.test"
    lab_world.add_domain(domain, record=None, tlsrpt=None, policy=None)
    lab_world.zone.remove(f"mta-sts.{domain}")
    lab_world.zone.add(f"_mta-sts.{domain}", "CNAME", f"{domain}.policy.{ZONE}.")
    lab_world.zone.add(f"mta-sts.{domain}", "CNAME", f"policy-host.{ZONE}.")
    lab_world.zone.add(f"_smtp._tls.{domain}", "CNAME", f"{domain}.tlsrpt.{ZONE}.")
    smtp_port = free_port()
    extra = ("--smtp", f"127.0.0.1:{smtp_port}")
    https_acked: list[str] = []
    smtp_acked: list[str] = []
    with serve_process(data, lab_world.nameserver, *extra, database_url=url) as (base, proc):
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        with api:
            r = api.post("/api/v1/domains", json={"domain": domain})
            assert r.status_code == 201
            prove(lab_world, r.json())
            assert api.post(f"/api/v1/domains/{domain}/verify").json()["ok"]
        stop = threading.Event()
        workers = [
            threading.Thread(target=stream_https, args=(base, domain, https_acked, stop)),
            threading.Thread(target=stream_https, args=(base, domain, https_acked, stop)),
            threading.Thread(target=stream_smtp, args=(smtp_port, domain, smtp_acked, stop)),
        ]
        for w in workers:
            w.start()
        # Kill once both routes have acknowledged reports (an event, not a time window).
        deadline = time.monotonic() + 120
        while len(https_acked) <= 20 or len(smtp_acked) <= 5:
            assert time.monotonic() < deadline, (len(https_acked), len(smtp_acked))
            assert all(w.is_alive() for w in workers), "a sender stopped early"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # no shutdown, no flush: as a crash
        proc.wait(10)
        stop.set()
        for w in workers:
            w.join(10)
    assert len(https_acked) > 20 and len(smtp_acked) > 5, (len(https_acked), len(smtp_acked))
    stored = stored_ids(db)
    assert set(https_acked) <= stored, set(https_acked) - stored
    assert set(smtp_acked) <= stored, set(smtp_acked) - stored
    # and after a restart the store opens and the reports are served by the API
    with serve_process(data, lab_world.nameserver, *extra, database_url=url) as (base, _proc):
        r = httpx.get(
            f"{base}/api/v1/domains/{domain}/reports",
            headers={"Authorization": f"Bearer {token}"},
            params={"limit": 1},
        )
        assert r.status_code == 200 and r.json()["total"] == len(stored)
