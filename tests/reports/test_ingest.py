"""ReportIngestor on a real SQLite store: dedup, attribution, refusals."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from mtasts.reports.ingest import Pending, ReportIngestor, Route, Status
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


def test_store_many_commits_a_batch_and_recognises_duplicates(tmp_path: Path) -> None:
    ing = ingestor(tmp_path)
    rfc = (CORPUS / "parsedmarc" / "rfc8460.json").read_bytes()
    known = ing.ingest_payload(rfc, route=Route.HTTPS)
    files = [CORPUS / "cry-inc-dmarc-report-viewer" / n for n in ("google.json", "microsoft.json")]
    batch = [ing.prepare_payload(p.read_bytes(), route=Route.FILE) for p in files]
    batch += [ing.prepare_payload(files[0].read_bytes(), route=Route.FILE)]  # twice
    batch += [ing.prepare_payload(rfc, route=Route.FILE)]  # already stored
    ready = [b for b in batch if isinstance(b, Pending)]
    assert len(ready) == 4
    outcomes = ing.store_many(ready)
    assert [o.status for o in outcomes] == [
        Status.STORED,
        Status.STORED,
        Status.DUPLICATE,
        Status.DUPLICATE,
    ]
    assert outcomes[2].pk == outcomes[0].pk and outcomes[3].pk == known.pk
    with ing.sessions() as db:
        assert len(db.scalars(select(TlsReport.id)).all()) == 3
    assert ing.store_many([]) == []
