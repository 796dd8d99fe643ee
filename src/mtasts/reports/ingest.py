"""Ingestion of TLS reports: limits, lenient parse, filing, quotas, then stored once.

Every route (HTTPS POST, SMTP, IMAP, files) ends here. A report counts as accepted only
after its transaction committed; callers acknowledge (2xx, 250, IMAP move) only then.

Filing: a report is filed under one domain, the one it was sent for: the URL of the
HTTPS route (`/tlsrpt/<domain>`, a hosted domain); for mail and files its first policy
domain, else the mail's TLS-Report-Domain header (or the subject's Report Domain).
Its `policies` entries about other
domains (neither that domain nor a subdomain of it) are dropped, with a repair noted: the
sender could name any domain there, and a report sent for one domain must not add to
another's figures. A report with nothing left about its domain is refused.

Duplicates (same domain, organisation and report-id, RFC 8460 §4.4) are recognised by a
unique constraint, so two routes racing with the same report still store it once. The
domain is part of the key: a report-id posted first under another domain cannot
suppress the real report.

Routes that anyone on the internet reaches (HTTPS, SMTP) are held to daily quotas per
domain and per sending organisation (`mtasts.reports.quota`); the operator's own imports
(files, IMAP) are not.
"""

from __future__ import annotations

import dataclasses
import gzip
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mtasts.config import Settings
from mtasts.protocol.errors import ReportError, Text
from mtasts.protocol.report import MAX_COUNT, ParsedReport, Repair
from mtasts.reports.gate import ParseGate, return_large_buffers_to_the_system
from mtasts.reports.limits import Limits, load_report
from mtasts.reports.mime import extract_reports
from mtasts.reports.quota import OverQuota, Quotas, charge, open_day
from mtasts.reports.spool import DEFAULT_THRESHOLD
from mtasts.store.models import TlsReport, TlsReportFailure, TlsReportPolicy

REPORTS: Table = TlsReport.__table__  # type: ignore[assignment]
POLICIES: Table = TlsReportPolicy.__table__  # type: ignore[assignment]
FAILURES: Table = TlsReportFailure.__table__  # type: ignore[assignment]


class Route(StrEnum):
    HTTPS = "https"
    SMTP = "smtp"
    IMAP = "imap"
    FILE = "file"


# Routes anyone on the internet reaches: quotas apply, and the domain must be hosted.
PUBLIC_ROUTES = frozenset({Route.HTTPS, Route.SMTP})
ROW_BYTES = 256  # what one stored row (report, policy, failure detail) is charged


class Status(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"  # bad input: retrying will not help
    OVER_QUOTA = "over-quota"  # the day's quota is used up: retry after ``retry_after``


@dataclass(frozen=True)
class Outcome:
    status: Status
    organization: str = ""
    report_id: str = ""
    domain: str = ""
    pk: int | None = None  # the stored report (also for a duplicate)
    code: str = ""  # why rejected
    reason: str = ""
    retry_after: int = 0  # seconds, for OVER_QUOTA

    @property
    def accepted(self) -> bool:
        return self.status in (Status.STORED, Status.DUPLICATE)


class IngestCounters:
    """What the routes did, for /metrics: accepted reports by status and refusals by
    reason (``quota``, ``busy``, ``too_large``, ``invalid``, ``not_hosted``,
    ``store_unavailable``), and bodies spooled to disk. Shared by threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.spooled = 0

    def reject(self, reason: str) -> None:
        with self._lock:
            self.rejected[reason] += 1

    def spool(self) -> None:
        with self._lock:
            self.spooled += 1

    def outcome(self, outcome: Outcome) -> None:
        with self._lock:
            if outcome.accepted:
                self.received[str(outcome.status)] += 1
            elif outcome.status is Status.OVER_QUOTA:
                self.rejected["quota"] += 1
            elif outcome.code == "domain-not-hosted":
                self.rejected["not_hosted"] += 1
            elif "too-large" in outcome.code:
                self.rejected["too_large"] += 1
            else:
                self.rejected["invalid"] += 1

    def metrics(self) -> list[str]:
        """Prometheus text lines."""
        with self._lock:
            received, rejected, spooled = dict(self.received), dict(self.rejected), self.spooled
        lines = [
            "# HELP mtasts_reports_received_total TLS reports taken (stored or already known).",
            "# TYPE mtasts_reports_received_total counter",
        ]
        lines += [
            f'mtasts_reports_received_total{{result="{k}"}} {received.get(k, 0)}'
            for k in ("stored", "duplicate")
        ]
        lines += [
            "# HELP mtasts_reports_rejected_total TLS reports refused, by reason.",
            "# TYPE mtasts_reports_rejected_total counter",
        ]
        reasons = ("quota", "busy", "too_large", "invalid", "not_hosted", "store_unavailable")
        lines += [
            f'mtasts_reports_rejected_total{{reason="{k}"}} {rejected.get(k, 0)}'
            for k in sorted({*reasons, *rejected})
        ]
        lines += [
            "# HELP mtasts_reports_spooled_total Report bodies and mails spooled to disk.",
            "# TYPE mtasts_reports_spooled_total counter",
            f"mtasts_reports_spooled_total {spooled}",
        ]
        return lines


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
        *,
        quotas: Quotas | None = None,
        hosted: Callable[[str], bool] | None = None,
        gate: ParseGate | None = None,
        spool_threshold: int = DEFAULT_THRESHOLD,
        spool_dir: Path | None = None,
    ) -> None:
        """``quotas``: daily quotas of the public routes (None: unlimited). ``hosted``:
        whether reports for a domain are received here (None: any domain). ``gate``: the
        parse slots the routes share. Bodies above ``spool_threshold`` bytes wait in
        temporary files in ``spool_dir`` (None: the system's)."""
        self.sessions = sessions
        self.limits = limits or Limits()
        self.clock = clock
        self.quotas = quotas
        self.hosted = hosted
        self.gate = gate or ParseGate()
        self.spool_threshold = spool_threshold
        self.spool_dir = spool_dir
        self.counters = IngestCounters()

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
        outcome = ready if isinstance(ready, Outcome) else self.store(ready)
        self.counters.outcome(outcome)
        return outcome

    def ingest_message(
        self, message: bytes, *, route: Route, dkim: str | None = None
    ) -> list[Outcome]:
        """Every report carried by one e-mail (RFC 8460 §5.3); one rejected outcome when
        the message carries none."""
        outcomes = [
            r if isinstance(r, Outcome) else self.store(r)
            for r in self.prepare_message(message, route=route, dkim=dkim)
        ]
        for o in outcomes:
            self.counters.outcome(o)
        return outcomes

    def metrics(self) -> list[str]:
        """Prometheus text lines: the counters and the parse slots in use."""
        state = self.gate.state
        return [
            *self.counters.metrics(),
            "# HELP mtasts_reports_parsing Reports being parsed and stored now.",
            "# TYPE mtasts_reports_parsing gauge",
            f"mtasts_reports_parsing {state.active}",
            "# HELP mtasts_reports_waiting Reports waiting for a parse slot.",
            "# TYPE mtasts_reports_waiting gauge",
            f"mtasts_reports_waiting {state.waiting}",
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
        return self._file(parsed, data, route, domain, dkim)

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
                    reason=Text(
                        "the message carries no TLS report (RFC 8460 §5.3: a multipart/report "
                        "with an application/tlsrpt+gzip or +json part)"
                    ),
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
                # A mail is filed under the report's first policy domain: the shared
                # mailbox proves nothing, and the JSON is authoritative. RFC 8460 §5.3: the
                # TLS-Report-Domain header (or the subject) names it when the JSON does not.
                domain = _report_domain(part.parsed) or part.message.report_domain or ""
                out.append(self._file(part.parsed, part.payload, route, domain, dkim))
        return out

    def _file(
        self, parsed: ParsedReport, data: bytes, route: Route, domain: str, dkim: str | None
    ) -> Pending | Outcome:
        """Pick the domain to file under, keep what is about it, check what it costs."""
        name = normalise_domain(domain) or _report_domain(parsed)
        rid = (parsed.report.organization_name, parsed.report.report_id)
        if route in PUBLIC_ROUTES and self.hosted is not None and not self.hosted(name):
            return Outcome(
                Status.REJECTED,
                *rid,
                name,
                code="domain-not-hosted",
                reason=Text("no TLS reports are received for {name} here", name=name)
                if name
                else Text("no TLS reports are received for an unnamed domain here"),
            )
        try:
            check_field_lengths(parsed)
            if len(name) > 253:  # a mail's header may say anything
                raise ReportError(
                    "report-domain-invalid",
                    Text("the report's domain is too long"),
                    "RFC 1035 §2.3.4",
                )
            parsed = file_under(parsed, name)
        except ReportError as exc:
            return Outcome(Status.REJECTED, *rid, name, code=exc.code, reason=exc.message)
        stored = data if data[:2] == b"\x1f\x8b" else gzip.compress(data, mtime=0)
        if len(stored) > self.limits.max_stored_bytes:
            return Outcome(
                Status.REJECTED,
                *rid,
                name,
                code="report-stored-too-large",
                reason=Text(
                    "the report takes {size} bytes gzip'd, more than the {limit} stored per report",
                    size=len(stored),
                    limit=self.limits.max_stored_bytes,
                ),
            )
        report = parsed.report
        rows = 1 + len(report.policies) + sum(len(p.failure_details) for p in report.policies)
        return Pending(parsed, stored, route, name, dkim, len(stored) + ROW_BYTES * rows)

    def store(self, item: Pending) -> Outcome:
        """Store one report once, in its own transaction; raises StoreUnavailable when the
        database fails (nothing is then stored). On a public route the report is first
        charged to its domain's daily quotas (OVER_QUOTA when they are used up)."""
        now = self.clock()
        quotas = self.quotas if item.route in PUBLIC_ROUTES else None
        key = (item.organization, item.report_id)
        try:
            if quotas is not None:
                with self.sessions.begin() as db:
                    open_day(db.connection(), item.domain, item.organization, now.date())
            with self.sessions.begin() as db:
                known = self._known(db, [item]).get((item.domain, *key))
                if known is not None:
                    return Outcome(Status.DUPLICATE, *key, item.domain, known)
                conn = db.connection()
                over: OverQuota | None = None
                if quotas is not None:
                    over = charge(
                        conn,
                        quotas,
                        domain=item.domain,
                        organization=item.organization,
                        now=now,
                        size=item.size,
                    )
                if over is not None:
                    db.rollback()
                    return Outcome(
                        Status.OVER_QUOTA,
                        *key,
                        item.domain,
                        code="quota-exceeded",
                        reason=over.message,
                        retry_after=over.retry_after,
                    )
                pk = self._insert(conn, item, now)
            return Outcome(Status.STORED, *key, item.domain, pk)
        except IntegrityError:
            return self._duplicate(item)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"the report store is unavailable: {exc}") from exc

    def store_many(self, items: list[Pending]) -> list[Outcome]:
        """Store a batch in one transaction (imports of many reports: one commit instead of
        one per report). Reports already stored, or twice in the batch, come back as
        duplicates. If another route stores one of them meanwhile, the batch falls back to
        one transaction per report. All or nothing is acknowledged. Reports of public
        routes (quotas) are stored one by one."""
        if not items:
            return []
        if any(item.route in PUBLIC_ROUTES for item in items):
            return [self.store(item) for item in items]
        now = self.clock()
        try:
            with self.sessions.begin() as db:
                conn = db.connection()
                known = self._known(db, items)
                outcomes: list[Outcome] = []
                for item in items:
                    key = (item.domain, item.organization, item.report_id)
                    if key in known:
                        outcomes.append(
                            Outcome(Status.DUPLICATE, *key[1:], item.domain, known[key])
                        )
                        continue
                    pk = self._insert(conn, item, now)
                    known[key] = pk
                    outcomes.append(Outcome(Status.STORED, *key[1:], item.domain, pk))
            return outcomes
        except IntegrityError:
            return [self.store(item) for item in items]
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"the report store is unavailable: {exc}") from exc

    def _known(self, db: Session, items: list[Pending]) -> dict[tuple[str, str, str], int]:
        ids = {item.report_id for item in items}
        rows = db.execute(
            select(
                TlsReport.domain, TlsReport.organization, TlsReport.report_id, TlsReport.id
            ).where(TlsReport.report_id.in_(ids))
        )
        return {(d, org, rid): pk for d, org, rid, pk in rows}

    def _insert(self, conn: Connection, item: Pending, now: datetime) -> int:
        """Table-level inserts: the ORM's unit of work costs several times more per row,
        and a report is written once and never edited."""
        report, domain = item.parsed.report, item.domain
        ok, failed = report.sessions()
        values = {
            "organization": report.organization_name,
            "report_id": report.report_id,
            "domain": domain,
            "start": report.start_datetime,
            "end": report.end_datetime,
            "contact": report.contact_info,
            "received_at": now,
            "route": str(item.route),
            "dkim": item.dkim,
            "repairs": [{"code": r.code, "message": r.message} for r in item.parsed.repairs],
            "sessions_ok": ok,
            "sessions_failed": failed,
            "size": item.size,
            "raw": item.raw,
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
                        TlsReport.domain == item.domain,
                        TlsReport.organization == org,
                        TlsReport.report_id == rid,
                    )
                )
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"the report store is unavailable: {exc}") from exc
        if pk is None:  # an integrity error that was not the duplicate: a real fault
            raise StoreUnavailable("the report could not be stored (constraint violation)")
        return Outcome(Status.DUPLICATE, org, rid, item.domain, pk)


@dataclass(frozen=True)
class Pending:
    """A parsed report on its way to the store, filed under ``domain`` (its policies
    about other domains already dropped)."""

    parsed: ParsedReport
    raw: bytes  # as stored: gzip'd
    route: Route
    domain: str = ""  # the domain the report is filed under
    dkim: str | None = None
    size: int = 0  # bytes charged to the daily quotas

    @property
    def organization(self) -> str:
        return self.parsed.report.organization_name

    @property
    def report_id(self) -> str:
        return self.parsed.report.report_id

    @property
    def domain_of(self) -> str:
        return self.domain


def normalise_domain(name: str) -> str:
    return name.strip().strip("<>").strip().lower().rstrip(".")


def in_domain(name: str, domain: str) -> bool:
    """``name`` is ``domain`` or a name below it (its owner controls both)."""
    name = normalise_domain(name)
    return name == domain or name.endswith("." + domain)


# Columns of the store have widths (PostgreSQL enforces them; its index entries hold at
# most ~2.7 KB): longer values are refused with a reason, never a database error and a 503
# that the sender would retry for ever. Identifiers: at most 255 characters and 1,020
# UTF-8 bytes each, so (domain, organization, report_id) always fits the unique index.
MAX_ID_CHARS, MAX_ID_BYTES = 255, 1020
_WIDTHS = {
    "policy-type": 32,
    "policy-domain": 253,
    "result-type": 64,
    "sending-mta-ip": 64,
    "receiving-mx-hostname": 253,
    "receiving-mx-helo": 253,
    "receiving-ip": 64,
}


def check_field_lengths(parsed: ParsedReport) -> None:
    """Raise ReportError ``report-field-too-long`` for a value wider than its column."""

    def refuse(field: str, limit: int, unit: str = Text("characters")) -> ReportError:
        return ReportError(
            "report-field-too-long",
            Text(
                "the report's {field} is longer than the {limit} {unit} stored",
                field=field,
                limit=limit,
                unit=unit,
            ),
            "RFC 8460 §4.4",
            Text("nothing to change on your side: the sending organisation produced this report"),
        )

    report = parsed.report
    for field, value in (
        ("organization-name", report.organization_name),
        ("report-id", report.report_id),
    ):
        if len(value) > MAX_ID_CHARS:
            raise refuse(field, MAX_ID_CHARS)
        if len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
            raise refuse(field, MAX_ID_BYTES, Text("bytes"))
    for p in report.policies:
        values: list[tuple[str, str | None]] = [
            ("policy-type", p.policy_type),
            ("policy-domain", p.policy_domain),
        ]
        for d in p.failure_details:
            values += [
                ("result-type", d.result_type),
                ("sending-mta-ip", d.sending_mta_ip),
                ("receiving-mx-hostname", d.receiving_mx_hostname),
                ("receiving-mx-helo", d.receiving_mx_helo),
                ("receiving-ip", d.receiving_ip),
            ]
        for field, text in values:
            if text is not None and len(text) > _WIDTHS[field]:
                raise refuse(field, _WIDTHS[field])


def file_under(parsed: ParsedReport, domain: str) -> ParsedReport:
    """``parsed`` with only the policies about ``domain`` (or its subdomains, or naming no
    domain); each entry dropped is noted as a ``policy-domain-foreign`` repair. Raise
    ReportError ``report-domain-mismatch`` when no entry is left, and
    ``report-count-overflow`` when the sessions counted for the report pass 2^63-1
    (each count is checked when parsed; their sums are checked here)."""
    report = parsed.report
    if not domain:
        kept = report.policies
    else:
        kept = tuple(
            p for p in report.policies if not p.policy_domain or in_domain(p.policy_domain, domain)
        )
    repairs = list(parsed.repairs)
    for i, p in enumerate(report.policies):
        if p not in kept:
            repairs.append(
                Repair(
                    "policy-domain-foreign",
                    f"policies[{i}] is about {p.policy_domain}, not {domain}: not filed "
                    f"under {domain}, dropped",
                )
            )
    if report.policies and not kept:
        named = sorted({normalise_domain(p.policy_domain or "") for p in report.policies})
        raise ReportError(
            "report-domain-mismatch",
            Text(
                "the report is about {named}, not {domain}, which it was sent for",
                named=", ".join(named),
                domain=domain,
            ),
            "RFC 8460 §4.4",
            Text("send reports about a domain to the rua that domain publishes"),
        )
    if len(kept) != len(report.policies):
        parsed = ParsedReport(dataclasses.replace(report, policies=kept), tuple(repairs))
    ok, failed = parsed.report.sessions()
    if ok > MAX_COUNT or failed > MAX_COUNT:
        raise ReportError(
            "report-count-overflow",
            Text("the report's session counts add up to more than 2^63-1"),
            "RFC 8460 §4.4",
            Text("nothing to change on your side: the sending organisation produced this report"),
        )
    return parsed


def _report_domain(parsed: ParsedReport) -> str:
    for p in parsed.report.policies:
        if p.policy_domain:
            return p.policy_domain.lower().rstrip(".")
    return ""


def ingestor_for(
    settings: Settings,
    sessions: sessionmaker[Session],
    hosted: Callable[[str], bool] | None = None,
) -> ReportIngestor:
    """The ingestor of `mtasts serve`, bounded by ``settings`` (report_* settings)."""
    return_large_buffers_to_the_system()  # process-wide; see its docstring
    limits = Limits(
        max_compressed_bytes=settings.report_max_bytes,
        max_decompressed_bytes=settings.report_max_bytes,
        max_message_bytes=settings.report_max_message_bytes,
        max_stored_bytes=settings.report_max_stored_bytes,
    )
    quotas = Quotas(
        reports_per_domain=settings.report_quota_reports,
        bytes_per_domain=settings.report_quota_bytes,
        reports_per_organization=settings.report_quota_org_reports,
        bytes_per_organization=settings.report_quota_org_bytes,
    )
    gate = ParseGate(
        settings.report_parse_slots, settings.report_parse_queue, settings.report_parse_wait
    )
    return ReportIngestor(
        sessions,
        limits,
        quotas=quotas,
        hosted=hosted,
        gate=gate,
        spool_threshold=settings.report_spool_bytes,
        spool_dir=settings.data_dir / "spool",
    )
