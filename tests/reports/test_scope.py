"""Issue 10 §3: reports cannot be suppressed or misfiled. Deduplication is scoped to the
domain a report is filed under, and a report is filed only under the domain it was sent
for (and its subdomains' policies), through every route: HTTPS, SMTP, files."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from mtasts.reports.files import discover, import_items
from mtasts.reports.ingest import ReportIngestor, Route, Status
from mtasts.store.db import make_engine, migrate, session_factory
from mtasts.store.models import TlsReport, TlsReportPolicy
from tests.hosting.serving import ZONE, Running
from tests.lab import World
from tests.reports.test_routes import _send, hosting

pytestmark = pytest.mark.lab

VICTIM = "scope-victim.example"
OTHER = "scope-other.example"  # the attacker's own hosted domain
THIRD = "scope-third.example"
GOOGLE = "Google Inc."
RID = "2026-11-29T00:00:00Z_scope-victim.example"  # predictable, as Google's are


def report(
    domain: str,
    *,
    org: str = GOOGLE,
    rid: str = RID,
    ok: int = 10,
    failed: int = 0,
    extra: list[tuple[str, str, int]] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    """A TLS report (RFC 8460 §4.4) about ``domain``; ``extra``: more (domain, type, ok)
    policy entries."""
    policies = [(domain, "sts", ok), *extra]
    return {
        "organization-name": org,
        "date-range": {
            "start-datetime": "2026-11-29T00:00:00Z",
            "end-datetime": "2026-11-29T23:59:59Z",
        },
        "contact-info": "smtp-tls-reporting@example.org",
        "report-id": rid,
        "policies": [
            {
                "policy": {"policy-type": ptype, "policy-domain": d, "mx-host": [f"mx.{d}"]},
                "summary": {
                    "total-successful-session-count": n,
                    "total-failure-session-count": failed if i == 0 else 0,
                },
            }
            for i, (d, ptype, n) in enumerate(policies)
        ],
    }


def post(app: Running, domain: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{app.base}/tlsrpt/{domain}",
        content=gzip.compress(json.dumps(body).encode()),
        headers={"Content-Type": "application/tlsrpt+gzip"},
        timeout=30,
    )


def mail(body: dict[str, Any], header_domain: str | None = None, gz: bool = True) -> bytes:
    msg = EmailMessage()
    msg["From"] = "noreply-smtp-tls-reporting@google.com"
    msg["To"] = f"tlsrpt@{ZONE}"
    domain = header_domain or body["policies"][0]["policy"]["policy-domain"]
    msg["Subject"] = (
        f"Report Domain: {domain} Submitter: google.com Report-ID: <{body['report-id']}>"
    )
    msg["TLS-Report-Domain"] = domain
    msg.set_content("This is an aggregate TLS report.")
    data = json.dumps(body).encode()
    msg.add_attachment(
        gzip.compress(data) if gz else data,
        maintype="application",
        subtype="tlsrpt+gzip" if gz else "tlsrpt+json",
        filename="report.json.gz" if gz else "report.json",
    )
    return msg.as_bytes()


def listed(app: Running, domain: str) -> list[dict[str, Any]]:
    with app.client() as c:
        r = c.get(f"/api/v1/domains/{domain}/reports")
        assert r.status_code == 200, r.text
        reports: list[dict[str, Any]] = r.json()["reports"]
        return reports


@pytest.fixture
def app(tmp_path: Path, lab_world: World) -> Iterator[Running]:
    with hosting(tmp_path, lab_world, [VICTIM, OTHER, THIRD]) as r:
        yield r


def smtp_port(app: Running) -> int:
    return int(app.service.settings.smtp_listen.rsplit(":", 1)[1])


def test_https_a_report_id_posted_first_under_another_domain_does_not_suppress(
    app: Running,
) -> None:
    # The attacker files the victim's predictable report-id under a domain of their own.
    first = post(app, OTHER, report(OTHER))
    assert first.status_code == 201, first.text
    real = post(app, VICTIM, report(VICTIM, ok=1234))
    assert real.status_code == 201 and real.json()["status"] == "stored", real.text
    (mine,) = listed(app, VICTIM)
    assert mine["report_id"] == RID and mine["successful"] == 1234
    assert len(listed(app, OTHER)) == 1
    # the real sender again: now a duplicate, of the victim's own report
    again = post(app, VICTIM, report(VICTIM, ok=1234))
    assert again.status_code == 200 and again.json()["status"] == "duplicate"


def test_https_same_report_id_from_two_organisations_both_stored(app: Running) -> None:
    assert post(app, VICTIM, report(VICTIM, org="Microsoft Corporation")).status_code == 201
    assert post(app, VICTIM, report(VICTIM, org=GOOGLE)).status_code == 201
    assert {r["organization"] for r in listed(app, VICTIM)} == {"Microsoft Corporation", GOOGLE}


def test_https_a_report_is_filed_only_under_the_domain_it_was_posted_for(app: Running) -> None:
    # Posted to OTHER, about VICTIM: refused, never filed under VICTIM (today: filed there).
    r = post(app, OTHER, report(VICTIM, rid="misfiled", failed=999))
    assert r.status_code == 400 and r.json()["error"]["code"] == "report-domain-mismatch"
    assert listed(app, VICTIM) == [] and listed(app, OTHER) == []
    # About OTHER and VICTIM at once: filed under OTHER, the VICTIM entry dropped and noted.
    mixed = report(OTHER, rid="mixed", ok=5, extra=[(VICTIM, "no-policy-found", 777)])
    assert post(app, OTHER, mixed).status_code == 201
    assert listed(app, VICTIM) == []
    (item,) = listed(app, OTHER)
    assert item["successful"] == 5
    assert "policy-domain-foreign" in {r["code"] for r in item["repairs"]}
    with app.service.sessions() as db:
        domains = db.scalars(
            select(TlsReportPolicy.policy_domain).where(TlsReportPolicy.report_pk == item["id"])
        ).all()
    assert domains == [OTHER]
    # a subdomain's policy belongs to the domain
    sub = report(VICTIM, rid="sub", ok=1, extra=[(f"mail.{VICTIM}", "sts", 2)])
    assert post(app, VICTIM, sub).status_code == 201


def test_smtp_a_report_id_mailed_first_for_another_domain_does_not_suppress(
    app: Running,
) -> None:
    port = smtp_port(app)
    code, text = _send(port, mail(report(OTHER)))
    assert code == 250, text
    code, text = _send(port, mail(report(VICTIM, ok=42)))
    assert code == 250 and b"1 report(s) stored" in text, text
    (mine,) = listed(app, VICTIM)
    assert mine["successful"] == 42
    # two organisations, one report-id
    code, text = _send(port, mail(report(VICTIM, org="Microsoft Corporation")))
    assert code == 250 and b"1 report(s) stored" in text, text
    assert len(listed(app, VICTIM)) == 2
    # a header naming the victim does not file a report about OTHER under it
    code, text = _send(port, mail(report(OTHER, rid="hdr"), header_domain=VICTIM))
    assert code == 250
    assert len(listed(app, VICTIM)) == 2 and len(listed(app, OTHER)) == 2
    # a mixed report: filed under its first policy domain only
    mixed = report(THIRD, rid="mixed", extra=[(VICTIM, "sts", 5)])
    assert _send(port, mail(mixed))[0] == 250
    assert len(listed(app, VICTIM)) == 2 and len(listed(app, THIRD)) == 1
    # reports for a domain not hosted here are refused (disk is spent on hosted ones only)
    code, text = _send(port, mail(report("not-hosted.example", rid="nh")))
    assert code == 550 and b"no TLS reports are received" in text, text


def test_file_route_dedup_is_per_domain(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(engine)
    ing = ReportIngestor(session_factory(engine))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "other.json").write_text(json.dumps(report(OTHER)))
    (tmp_path / "a" / "victim.json").write_text(json.dumps(report(VICTIM, ok=7)))
    (tmp_path / "a" / "victim-ms.json").write_text(
        json.dumps(report(VICTIM, org="Microsoft Corporation"))
    )
    summary = import_items(ing, discover([tmp_path / "a"]))
    assert (summary.stored, summary.duplicate, summary.rejected) == (3, 0, [])
    again = import_items(ing, discover([tmp_path / "a"]))
    assert (again.stored, again.duplicate) == (0, 3)
    with ing.sessions() as db:
        rows = db.execute(select(TlsReport.domain, TlsReport.organization)).all()
    assert sorted(rows) == sorted(
        [(OTHER, GOOGLE), (VICTIM, GOOGLE), (VICTIM, "Microsoft Corporation")]
    )
    # one at a time as well (store, not store_many)
    one = ing.ingest_payload(json.dumps(report(THIRD)).encode(), route=Route.FILE)
    assert one.status is Status.STORED and one.domain == THIRD
