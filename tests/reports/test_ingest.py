"""ReportIngestor on a real SQLite store: dedup, attribution, refusals."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from mtasts.reports.ingest import ReportIngestor, Route, Status
from mtasts.store.db import make_engine, migrate, session_factory
from mtasts.store.models import TlsReport

CORPUS = Path(__file__).resolve().parents[1] / "data" / "tlsrpt"


def ingestor(tmp_path: Path) -> ReportIngestor:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(engine)
    return ReportIngestor(session_factory(engine))


def test_a_mailed_report_without_policy_domain_is_filed_under_the_mail_domain(
    tmp_path: Path,
) -> None:
    ing = ingestor(tmp_path)
    msg = EmailMessage()
    msg["From"] = "noreply@sender.example"
    msg["Subject"] = "Report Domain: example.org Submitter: sender.example Report-ID: <r3>"
    msg["TLS-Report-Domain"] = "example.org"
    msg.set_content("report attached")
    msg.add_attachment(
        (CORPUS / "stalwart-mail-auth" / "rpt03.json").read_bytes(),
        maintype="application",
        subtype="tlsrpt+json",
        filename="r.json",
    )
    (outcome,) = ing.ingest_message(msg.as_bytes(), route=Route.SMTP)
    assert outcome.status is Status.STORED and outcome.domain == "example.org"
    with ing.sessions() as db:
        assert db.scalar(select(TlsReport.domain)) == "example.org"


def test_same_report_by_two_routes_is_stored_once(tmp_path: Path) -> None:
    ing = ingestor(tmp_path)
    data = (CORPUS / "parsedmarc" / "rfc8460.json").read_bytes()
    first = ing.ingest_payload(data, route=Route.HTTPS, domain="company-y.example")
    again = ing.ingest_payload(data, route=Route.FILE)
    assert first.status is Status.STORED and again.status is Status.DUPLICATE
    assert again.pk == first.pk


def test_bad_input_is_rejected_with_a_reason_and_stores_nothing(tmp_path: Path) -> None:
    ing = ingestor(tmp_path)
    bad = ing.ingest_payload(b'{"organization-name": "x"}', route=Route.HTTPS)
    assert bad.status is Status.REJECTED and bad.code and bad.reason
    (none,) = ing.ingest_message(b"Subject: hi\r\n\r\nhello\r\n", route=Route.SMTP)
    assert none.status is Status.REJECTED and none.code == "report-not-found"
    with ing.sessions() as db:
        assert db.scalar(select(TlsReport.id)) is None
