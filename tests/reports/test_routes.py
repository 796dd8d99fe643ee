"""Every corpus report in through each route that fits it (JSON by HTTPS and by file,
e-mails by SMTP and by file), stored once, and the summary numbers match the reports."""

from __future__ import annotations

import contextlib
import gzip
import json
import mailbox
import os
import re
import smtplib
import ssl
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mtasts.config import Settings
from tests.hosting.serving import ZONE, Running, running
from tests.hosting.test_api_lab import prove
from tests.lab import World
from tests.lab.ports import free_port

pytestmark = pytest.mark.lab

CORPUS = Path(__file__).resolve().parents[1] / "data" / "tlsrpt"
JSON_FILES = sorted(p for p in CORPUS.rglob("*.json") if "decoded" not in p.parts)
EML_FILES = sorted(CORPUS.rglob("*.eml"))
DECODED = {p.stem.split("__", 1)[1]: p for p in (CORPUS / "decoded").glob("*.json")}


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_bytes())
    assert isinstance(data, dict)
    return data


def _domain(report: dict[str, Any]) -> str:
    for p in report.get("policies", []):
        d = (p.get("policy") or {}).get("policy-domain")
        if d:
            return str(d).lower()
    return ""


def expected(reports: list[dict[str, Any]], default: str = "") -> dict[str, tuple[int, int, int]]:
    """domain -> (reports, successful, failed), computed here from the raw JSON: each
    (organisation, report-id) once; per report and policy domain, the `sts` and `tlsa`
    entries describe the same sessions (the larger counts), other types are added."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for r in reports:
        seen.setdefault((r["organization-name"], r["report-id"]), r)
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in seen.values():
        validated: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        d = out[_domain(r) or default]
        d[0] += 1
        for p in r.get("policies", []):
            policy = p.get("policy") or {}
            name = (policy.get("policy-domain") or "").lower()
            s = p.get("summary", {})
            ok = int(s.get("total-successful-session-count", 0))
            bad = int(s.get("total-failure-session-count", 0))
            if policy.get("policy-type") in ("sts", "tlsa"):
                if ok + bad > sum(validated[name]):
                    validated[name] = [ok, bad]
            else:
                d[1], d[2] = d[1] + ok, d[2] + bad
        d[1] += sum(v[0] for v in validated.values())
        d[2] += sum(v[1] for v in validated.values())
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


def corpus_domains() -> list[str]:
    names = {_domain(_load(p)) for p in JSON_FILES} | {_domain(_load(p)) for p in DECODED.values()}
    return sorted(n for n in names if n)


_published: set[tuple[int, str]] = set()


def host(app: Running, world: World, domains: list[str]) -> None:
    """Host ``domains`` as an owner would: MX in DNS, added, delegated, verified."""
    with app.client() as c:
        for d in domains:
            if (id(world), d) not in _published:
                world.add_domain(d, record=None, tlsrpt=None, policy=None)
                world.zone.remove(f"mta-sts.{d}")
                world.zone.add(f"_mta-sts.{d}", "CNAME", f"{d}.policy.{ZONE}.")
                world.zone.add(f"mta-sts.{d}", "CNAME", f"policy-host.{ZONE}.")
                world.zone.add(f"_smtp._tls.{d}", "CNAME", f"{d}.tlsrpt.{ZONE}.")
                _published.add((id(world), d))
            r = c.post("/api/v1/domains", json={"domain": d})
            assert r.status_code == 201
            prove(world, r.json())
            assert c.post(f"/api/v1/domains/{d}/verify").json()["ok"], d


@contextlib.contextmanager
def hosting(data_dir: Path, world: World, domains: list[str]) -> Iterator[Running]:
    """A running service (HTTPS and SMTP report receivers) hosting ``domains``."""
    settings = Settings(
        data_dir=data_dir,
        zone=ZONE,
        nameservers=(world.nameserver,),
        smtp_listen=f"127.0.0.1:{free_port()}",
        sync_interval=0.2,
        verify_interval=3600,
    )
    with running(settings) as r:
        host(r, world, domains)
        yield r


@pytest.fixture
def app(tmp_path: Path, lab_world: World) -> Iterator[Running]:
    if not CORPUS.is_dir():
        pytest.fail(f"the TLS-RPT corpus is missing at {CORPUS}")
    with hosting(tmp_path, lab_world, corpus_domains()) as r:
        yield r


def check_summaries(app: Running, reports: list[dict[str, Any]], default: str = "") -> None:
    want = expected(reports, default)
    assert want, "no reports expected?"
    with app.client() as c:
        for domain, (count, ok, failed) in want.items():
            s = c.get(f"/api/v1/domains/{domain}/reports/summary", params={"days": 366 * 1}).json()
            listed = c.get(f"/api/v1/domains/{domain}/reports", params={"limit": 1000}).json()
            assert listed["total"] == count, domain
            # the summary window is at most a year: compare the listing for old reports
            assert sum(r["successful"] for r in listed["reports"]) == ok, domain
            assert sum(r["failed"] for r in listed["reports"]) == failed, domain
            recent = [r for r in listed["reports"] if r["start"] >= s["since"]]
            assert s["reports"] == len(recent)
            assert s["totals"]["successful"] == sum(r["successful"] for r in recent)
            assert s["totals"]["failed"] == sum(r["failed"] for r in recent)


def test_https_route_takes_every_json_report_once(app: Running) -> None:
    statuses: dict[Path, int] = {}
    for path in JSON_FILES:
        report = _load(path)
        domain = _domain(report) or "example.com"  # no policy-domain: the URL says
        body = path.read_bytes()
        gz = path.name.startswith("rpt0")  # some as gzip, as senders usually do
        r = httpx.post(
            f"{app.base}/tlsrpt/{domain}",
            content=gzip.compress(body) if gz else body,
            headers={
                "Content-Type": "application/tlsrpt+gzip" if gz else "application/tlsrpt+json"
            },
        )
        statuses[path] = r.status_code
        assert r.status_code in (200, 201), (path, r.text)
    keys = [(_load(p)["organization-name"], _load(p)["report-id"]) for p in JSON_FILES]
    assert sum(s == 201 for s in statuses.values()) == len(set(keys))  # duplicates: 200
    # again: all known now
    for path in JSON_FILES:
        domain = _domain(_load(path)) or "example.com"
        r = httpx.post(
            f"{app.base}/tlsrpt/{domain}",
            content=path.read_bytes(),
            headers={"Content-Type": "application/tlsrpt"},
        )
        assert r.status_code == 200 and r.json()["status"] == "duplicate"
    check_summaries(app, [_load(p) for p in JSON_FILES], default="example.com")


def test_https_route_refuses_bad_input_with_reasons(app: Running) -> None:
    url = f"{app.base}/tlsrpt/example.com"
    r = httpx.post(url, content=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "application/tlsrpt+gzip" in r.json()["error"]["message"]
    r = httpx.post(url, content=b"not json", headers={"Content-Type": "application/tlsrpt+json"})
    assert r.status_code == 400 and r.json()["error"]["message"]
    bomb = gzip.compress(b"{" + b" " * (200 * 1024 * 1024) + b"}", compresslevel=9)
    r = httpx.post(url, content=bomb, headers={"Content-Type": "application/tlsrpt+gzip"})
    assert r.status_code == 413, r.text
    big = b"x" * (11 * 1024 * 1024)  # more than the 10 MiB a report may have
    r = httpx.post(url, content=big, headers={"Content-Type": "application/tlsrpt+json"})
    assert r.status_code == 413
    r = httpx.post(
        f"{app.base}/tlsrpt/not-hosted.example",
        content=JSON_FILES[0].read_bytes(),
        headers={"Content-Type": "application/tlsrpt+json"},
    )
    assert r.status_code == 404
    with app.client() as c:
        assert c.get("/api/v1/domains/example.com/reports").json()["total"] == 0


def _send(port: int, message: bytes, rcpt: str = f"tlsrpt@{ZONE}") -> tuple[int, bytes]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # opportunistic TLS, as report senders do
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo("sender.example")
        assert smtp.has_extn("starttls")
        smtp.starttls(context=ctx)
        smtp.ehlo("sender.example")
        smtp.mail("noreply-smtp-tls-reporting@sender.example")
        code, text = smtp.rcpt(rcpt)
        if code != 250:
            return code, text
        return smtp.data(message)


def test_smtp_route_takes_every_mailed_report_once(app: Running) -> None:
    port = int(app.service.settings.smtp_listen.rsplit(":", 1)[1])
    for path in EML_FILES:
        code, text = _send(port, path.read_bytes())
        assert code == 250, (path, text)
    code, text = _send(port, EML_FILES[0].read_bytes())
    assert code == 250 and b"already known" in text
    code, _ = _send(port, EML_FILES[0].read_bytes(), rcpt="postmaster@elsewhere.example")
    assert code == 550
    code, text = _send(port, b"Subject: hello\r\n\r\nnot a report\r\n")
    assert code == 550 and b"report" in text
    reports = [_load(DECODED[p.stem]) for p in EML_FILES if p.stem in DECODED]
    assert len(reports) == len(EML_FILES), "every e-mail has its decoded JSON"
    check_summaries(app, reports)
    with app.client() as c:
        listed = c.get("/api/v1/domains/example.com/reports").json()["reports"]
    assert {r["route"] for r in listed} == {"smtp"}
    assert {r["dkim"] for r in listed} <= {"pass", "fail", "none"}


def test_file_route_json_eml_mbox_maildir(app: Running, tmp_path: Path) -> None:
    box = mailbox.mbox(tmp_path / "reports.mbox")
    maildir = mailbox.Maildir(tmp_path / "Maildir")
    for i, path in enumerate(EML_FILES):
        (box if i % 2 else maildir).add(path.read_bytes())
    box.close()
    gz = tmp_path / "one.json.gz"
    gz.write_bytes(gzip.compress(JSON_FILES[0].read_bytes()))
    db = app.service.settings.effective_database_url
    cmd = [sys.executable, "-m", "mtasts", "reports", "import", "--database-url", db]
    paths = [str(CORPUS / "parsedmarc"), str(CORPUS / "cry-inc-dmarc-report-viewer"), str(gz)]
    paths += [str(tmp_path / "reports.mbox"), str(tmp_path / "Maildir")]
    first = subprocess.run([*cmd, *paths], capture_output=True, text=True, timeout=120)
    # parsedmarc/ holds an .eml too: everything there is a report, so nothing is skipped
    assert first.returncode == 0, first.stderr
    assert "0 skipped" in first.stderr
    again = subprocess.run([*cmd, *paths], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert re.search(r"^0 report\(s\) stored, \d+ already known", again.stderr, re.M), again.stderr
    files = [
        *(CORPUS / "parsedmarc").glob("*.json"),
        *(CORPUS / "cry-inc-dmarc-report-viewer").glob("*.json"),
    ]
    reports = [_load(p) for p in files] + [_load(DECODED[p.stem]) for p in EML_FILES]
    check_summaries(app, [r for r in reports if _domain(r)])
    summary = subprocess.run(
        [
            sys.executable,
            "-m",
            "mtasts",
            "reports",
            "summary",
            "example.com",
            "--days",
            "366",
            "--database-url",
            db,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "150"},
    )
    assert summary.returncode == 0, summary.stderr
    assert "TLS reports for example.com" in summary.stdout


def test_raw_report_download_and_listing(app: Running) -> None:
    path = CORPUS / "mox" / "microsoft.eml"
    port = int(app.service.settings.smtp_listen.rsplit(":", 1)[1])
    assert _send(port, path.read_bytes())[0] == 250
    decoded = DECODED["microsoft"].read_bytes()
    with app.client() as c:
        listed = c.get("/api/v1/domains/test.xmox.nl/reports").json()
        (item,) = listed["reports"]
        assert item["organization"] == "Microsoft Corporation"
        assert "datetime-without-zone" in {r["code"] for r in item["repairs"]}
        raw = c.get(f"/api/v1/domains/test.xmox.nl/reports/{item['id']}/raw")
        assert raw.status_code == 200 and raw.content == decoded
        assert raw.headers["content-type"] == "application/tlsrpt+json"
        gz = c.get(f"/api/v1/domains/test.xmox.nl/reports/{item['id']}/raw?compressed=true")
        assert gzip.decompress(gz.content) == decoded
        other = c.get(f"/api/v1/domains/example.com/reports/{item['id']}/raw")
        assert other.status_code == 404
        bob = app.service.create_token("bob@example.org")
    with app.client(bob) as b:
        assert b.get("/api/v1/domains/test.xmox.nl/reports").status_code == 404
