"""Ingestion of TLS reports: limits, lenient parse, then stored once.

Every route (HTTPS POST, SMTP, IMAP, files) ends here. A report counts as accepted only
after its transaction committed; callers acknowledge (2xx, 250, IMAP move) only then.
Duplicates (same organisation and report-id, RFC 8460 §4.4) are recognised by a unique
constraint, so two routes racing with the same report still store it once.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mtasts.protocol.errors import ReportError
from mtasts.protocol.report import ParsedReport
from mtasts.reports.limits import Limits, load_report
from mtasts.reports.mime import extract_reports
from mtasts.store.models import TlsReport, TlsReportFailure, TlsReportPolicy

REPORTS: Table = TlsReport.__table__  # type: ignore[assignment]
POLICIES: Table = TlsReportPolicy.__table__  # type: ignore[assignment]
FAILURES: Table = TlsReportFailure.__table__  # type: ignore[assignment]


class Route(StrEnum):
    HTTPS = "https"
    SMTP = "smtp"
    IMAP = "imap"
    FILE = "file"


class Status(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"  # bad input: retrying will not help


@dataclass(frozen=True)
class Outcome:
    status: Status
    organization: str = ""
    report_id: str = ""
    domain: str = ""
    pk: int | None = None  # the stored report (also for a duplicate)
    code: str = ""  # why rejected
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.status is not Status.REJECTED


class StoreUnavailable(Exception):
    """The database could not take the report: the sender must retry later (HTTP 503,
    SMTP 451), and nothing was acknowledged."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class ReportIngestor:
    """Turns payloads and e-mails into stored reports."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        limits: Limits | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.limits = limits or Limits()
        self.clock = clock

    def ingest_payload(
        self,
        data: bytes,
        *,
        route: Route,
        domain: str = "",
        dkim: str | None = None,
    ) -> Outcome:
        """A report as JSON or gzip'd JSON. ``domain``: the domain the route was meant for
        (e.g. the URL path), used when the report names no policy domain."""
        ready = self.prepare_payload(data, route=route, domain=domain, dkim=dkim)
        return ready if isinstance(ready, Outcome) else self.store(ready)

    def ingest_message(
        self, message: bytes, *, route: Route, dkim: str | None = None
    ) -> list[Outcome]:
        """Every report carried by one e-mail (RFC 8460 §5.3); one rejected outcome when
        the message carries none."""
        return [
            r if isinstance(r, Outcome) else self.store(r)
            for r in self.prepare_message(message, route=route, dkim=dkim)
        ]

    # --- parse, then store -----------------------------------------------------------------

    def prepare_payload(
        self, data: bytes, *, route: Route, domain: str = "", dkim: str | None = None
    ) -> Pending | Outcome:
        """The parsed report ready to store, or the rejection."""
        try:
            parsed = load_report(data, self.limits)
        except ReportError as exc:
            return Outcome(Status.REJECTED, code=exc.code, reason=exc.message)
        return Pending(parsed, data, route, domain, dkim)

    def prepare_message(
        self, message: bytes, *, route: Route, dkim: str | None = None
    ) -> list[Pending | Outcome]:
        try:
            extracted = extract_reports(message, self.limits)
        except ReportError as exc:
            return [Outcome(Status.REJECTED, code=exc.code, reason=exc.message)]
        if not extracted:
            return [
                Outcome(
                    Status.REJECTED,
                    code="report-not-found",
                    reason="the message carries no TLS report (RFC 8460 §5.3: a "
                    "multipart/report with an application/tlsrpt+gzip or +json part)",
                )
            ]
        out: list[Pending | Outcome] = []
        for part in extracted:
            if part.error is not None:
                out.append(
                    Outcome(Status.REJECTED, code=part.error.code, reason=part.error.message)
                )
            else:
                assert part.parsed is not None
                # a report without policy-domain: the mail's TLS-Report-Domain or subject says
                domain = part.message.report_domain or ""
                out.append(Pending(part.parsed, part.payload, route, domain, dkim))
        return out

    def store(self, item: Pending) -> Outcome:
        """Store one report once, in its own transaction; raises StoreUnavailable when the
        database fails (nothing is then stored)."""
        try:
            with self.sessions.begin() as db:
                pk = self._insert(db.connection(), item)
            return Outcome(Status.STORED, item.organization, item.report_id, item.domain_of, pk)
        except IntegrityError:
            return self._duplicate(item)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"the report store is unavailable: {exc}") from exc

    def store_many(self, items: list[Pending]) -> list[Outcome]:
        """Store a batch in one transaction (imports of many reports: one commit instead of
        one per report). Reports already stored, or twice in the batch, come back as
        duplicates. If another route stores one of them meanwhile, the batch falls back to
        one transaction per report. All or nothing is acknowledged."""
        if not items:
            return []
        try:
            with self.sessions.begin() as db:
                conn = db.connection()
                known = self._known(db, items)
                outcomes: list[Outcome] = []
                for item in items:
                    key = (item.organization, item.report_id)
                    if key in known:
                        outcomes.append(Outcome(Status.DUPLICATE, *key, item.domain_of, known[key]))
                        continue
                    pk = self._insert(conn, item)
                    known[key] = pk
                    outcomes.append(Outcome(Status.STORED, *key, item.domain_of, pk))
            return outcomes
        except IntegrityError:
            return [self.store(item) for item in items]
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"the report store is unavailable: {exc}") from exc

    def _known(self, db: Session, items: list[Pending]) -> dict[tuple[str, str], int]:
        ids = {item.report_id for item in items}
        rows = db.execute(
            select(TlsReport.organization, TlsReport.report_id, TlsReport.id).where(
                TlsReport.report_id.in_(ids)
            )
        )
        return {(org, rid): pk for org, rid, pk in rows}

    def _insert(self, conn: Connection, item: Pending) -> int:
        """Table-level inserts: the ORM's unit of work costs several times more per row,
        and a report is written once and never edited."""
        report, domain = item.parsed.report, item.domain_of
        ok, failed = report.sessions()
        raw = item.raw
        values = {
            "organization": report.organization_name,
            "report_id": report.report_id,
            "domain": domain,
            "start": report.start_datetime,
            "end": report.end_datetime,
            "contact": report.contact_info,
            "received_at": self.clock(),
            "route": str(item.route),
            "dkim": item.dkim,
            "repairs": [{"code": r.code, "message": r.message} for r in item.parsed.repairs],
            "sessions_ok": ok,
            "sessions_failed": failed,
            "raw": raw if raw[:2] == b"\x1f\x8b" else gzip.compress(raw, mtime=0),
        }
        pk: int = conn.execute(insert(REPORTS).returning(REPORTS.c.id), values).scalar_one()
        for p in report.policies:
            ppk = conn.execute(
                insert(POLICIES).returning(POLICIES.c.id),
                {
                    "report_pk": pk,
                    "policy_type": p.policy_type,
                    "policy_domain": p.policy_domain or domain,
                    "policy_strings": list(p.policy_strings),
                    "mx_hosts": list(p.mx_hosts),
                    "successful": p.total_successful,
                    "failed": p.total_failure,
                },
            ).scalar_one()
            if p.failure_details:
                conn.execute(
                    insert(FAILURES),
                    [
                        {
                            "policy_pk": ppk,
                            "result_type": f.result_type,
                            "sending_mta_ip": f.sending_mta_ip,
                            "receiving_mx_hostname": f.receiving_mx_hostname,
                            "receiving_mx_helo": f.receiving_mx_helo,
                            "receiving_ip": f.receiving_ip,
                            "count": f.failed_session_count,
                            "additional_information": f.additional_information,
                            "failure_reason_code": f.failure_reason_code,
                        }
                        for f in p.failure_details
                    ],
                )
        return pk

    def _duplicate(self, item: Pending) -> Outcome:
        org, rid = item.organization, item.report_id
        try:
            with self.sessions() as db:
                pk = db.scalar(
                    select(TlsReport.id).where(
                        TlsReport.organization == org, TlsReport.report_id == rid
                    )
                )
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"the report store is unavailable: {exc}") from exc
        if pk is None:  # an integrity error that was not the duplicate: a real fault
            raise StoreUnavailable("the report could not be stored (constraint violation)")
        return Outcome(Status.DUPLICATE, org, rid, item.domain_of, pk)


@dataclass(frozen=True)
class Pending:
    """A parsed report on its way to the store."""

    parsed: ParsedReport
    raw: bytes  # as received (gzip'd or not)
    route: Route
    domain: str = ""  # the domain the route was meant for, if the report names none
    dkim: str | None = None

    @property
    def organization(self) -> str:
        return self.parsed.report.organization_name

    @property
    def report_id(self) -> str:
        return self.parsed.report.report_id

    @property
    def domain_of(self) -> str:
        return _report_domain(self.parsed) or self.domain.lower()


def _report_domain(parsed: ParsedReport) -> str:
    for p in parsed.report.policies:
        if p.policy_domain:
            return p.policy_domain.lower().rstrip(".")
    return ""
