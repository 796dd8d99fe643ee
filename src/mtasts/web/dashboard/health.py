"""What the dashboard shows about a domain's health: badges for the domain list and the
latest check for the domain page. Read-only; the numbers come from the stores the
hosting, report and monitoring services write.

Hook for monitoring: :func:`latest_checks` prefers the monitor's last full check
(``DomainCheck.last_check_at`` / ``last_result``) and falls back to the last delegation
verification (``Domain.last_verify_at`` / ``last_verify``) for domains it has not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mtasts.i18n import ngettext
from mtasts.store.models import Domain, DomainCheck, TlsReport, User

REPORT_DAYS = 30  # the failure rate on the list covers this many days
RATE_WARN = 0.0  # any failure: amber
RATE_BAD = 0.05  # more than 5 % of sessions failing: red


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass
class Check:
    """The latest check of one domain, whichever service ran it."""

    kind: str  # "monitor" (full check) or "verification" (delegation CNAMEs only)
    at: datetime | None
    ok: bool | None
    summary: str
    findings: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    sts_fetch_result: str | None = None


@dataclass
class Health:
    delegation: str  # ok / bad / unknown
    served: str  # ok / updating / no
    check: Check | None
    reports: int
    sessions: int
    failure_rate: float | None
    last_report: datetime | None

    @property
    def rate_level(self) -> str:
        if self.failure_rate is None:
            return "unknown"
        if self.failure_rate > RATE_BAD:
            return "bad"
        return "warn" if self.failure_rate > RATE_WARN else "ok"

    @property
    def overall(self) -> str:
        levels = [
            {"ok": "ok", "bad": "bad"}.get(self.delegation, "unknown"),
            {"ok": "ok", "updating": "warn"}.get(self.served, "bad"),
            self.rate_level,
        ]
        if self.check is not None and self.check.ok is False:
            levels.append("bad")
        for level in ("bad", "warn", "unknown"):
            if level in levels:
                return level
        return "ok"


def _counts(errors: int, warnings: int) -> str:
    return ", ".join(
        (
            ngettext("{n} error", "{n} errors", errors).format(n=errors),
            ngettext("{n} warning", "{n} warnings", warnings).format(n=warnings),
        )
    )


def latest_checks(db: Session, domains: list[dict[str, Any]]) -> dict[str, Check]:
    """The latest check of each of the hostings ``domains`` (views as given by
    ``HostingService.view``; see the module docstring), by name. Other accounts' claims
    of the same names are not looked at."""
    out: dict[str, Check] = {}
    if not domains:
        return out
    wanted = {(d["domain"], d["owner"]) for d in domains}
    rows = db.execute(
        select(
            Domain.name,
            User.email,
            Domain.last_verify_at,
            Domain.last_verify,
            DomainCheck.last_check_at,
            DomainCheck.last_result,
        )
        .join(User, User.id == Domain.owner_id)
        .outerjoin(DomainCheck, DomainCheck.domain_id == Domain.id)
        .where(Domain.name.in_([n for n, _ in wanted]))
    )
    for name, owner, verify_at, verify, check_at, result in rows:
        if (name, owner) not in wanted:
            continue
        if check_at is not None and result:
            findings = list(result.get("findings") or [])
            errors = [f for f in findings if f.get("severity") == "error"]
            out[name] = Check(
                kind="monitor",
                at=check_at,
                ok=not errors and bool(result.get("delegation_ok", True)),
                summary=_counts(len(errors), sum(f.get("severity") == "warning" for f in findings)),
                findings=findings,
                sts_fetch_result=result.get("sts_fetch_result"),
            )
        elif verify is not None:
            out[name] = Check(
                kind="verification",
                at=_aware(verify_at),
                ok=bool(verify.get("ok")),
                summary=str(verify.get("summary", "")),
                records=list(verify.get("records") or []),
            )
    return out


def health(db: Session, domains: list[dict[str, Any]], now: datetime) -> dict[str, Health]:
    """Badges for the domain views ``domains`` (as given by ``HostingService.view``)."""
    checks = latest_checks(db, domains)
    # the name's reports belong to its served hosting: a pending claim shows none
    names = [d["domain"] for d in domains if d["state"] != "pending"]
    since = (now - timedelta(days=REPORT_DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
    stats: dict[str, tuple[int, int, int]] = {}
    last: dict[str, datetime | None] = {}
    if names:
        # the same per-report totals (sts/tlsa counted once) as reports.aggregate.summary
        for name, n, ok, failed in db.execute(
            select(
                TlsReport.domain,
                func.count(),
                func.coalesce(func.sum(TlsReport.sessions_ok), 0),
                func.coalesce(func.sum(TlsReport.sessions_failed), 0),
            )
            .where(TlsReport.domain.in_(names), TlsReport.start >= since)
            .group_by(TlsReport.domain)
        ):
            stats[name] = (int(n), int(ok), int(failed))
        for name, received in db.execute(
            select(TlsReport.domain, func.max(TlsReport.received_at))
            .where(TlsReport.domain.in_(names))
            .group_by(TlsReport.domain)
        ):
            last[name] = _aware(received)
    out = {}
    for d in domains:
        name = d["domain"]
        verification = d.get("last_verification")
        delegation = "unknown" if not verification else ("ok" if verification["ok"] else "bad")
        if d["state"] == "pending":
            served = "no"
        elif d["served_id"] == d["policy"]["id"]:
            served = "ok"
        else:
            served = "updating" if d["served_id"] else "no"
        n, ok, failed = stats.get(name, (0, 0, 0)) if d["state"] != "pending" else (0, 0, 0)
        out[name] = Health(
            delegation=delegation,
            served=served,
            check=checks.get(name),
            reports=n,
            sessions=ok + failed,
            failure_rate=(failed / (ok + failed)) if ok + failed else None,
            last_report=last.get(name) if d["state"] != "pending" else None,
        )
    return out
