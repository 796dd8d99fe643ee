"""Answers from the stored reports: sessions per day, per sending organisation, per result
type, per receiving MX host and per policy type, for one domain over the last N days.

One sender may list an `sts` and a `tlsa` policy for the same sessions (Microsoft does):
adding them up would double-count. Session totals therefore come from each report's
de-duplicated totals (``TlsReport.sessions_ok/failed``), and failure details of one report
are merged across its policy types by taking, per (result type, MX host), the largest count.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mtasts.reports.explain import explain
from mtasts.store.models import TlsReport, TlsReportFailure, TlsReportPolicy


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _rate(failed: int, total: int) -> float:
    return round(failed / total, 4) if total else 0.0


@dataclass
class _Count:
    successful: int = 0
    failed: int = 0
    reports: int = 0

    def as_dict(self) -> dict[str, Any]:
        total = self.successful + self.failed
        return {
            "successful": self.successful,
            "failed": self.failed,
            "failure_rate": _rate(self.failed, total),
            "reports": self.reports,
        }


def summary(db: Session, domain: str, days: int, now: datetime) -> dict[str, Any]:
    """Aggregates of ``domain``'s reports whose period starts within the last ``days``
    days (a report counts on the UTC day its period starts)."""
    since = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    reports = list(
        db.execute(
            select(
                TlsReport.id,
                TlsReport.organization,
                TlsReport.start,
                TlsReport.sessions_ok,
                TlsReport.sessions_failed,
                TlsReport.received_at,
            )
            .where(TlsReport.domain == domain, TlsReport.start >= since)
            .order_by(TlsReport.start)
        )
    )
    total = _Count()
    by_day: dict[date, _Count] = defaultdict(_Count)
    by_org: dict[str, _Count] = defaultdict(_Count)
    for _pk, org, start, ok, failed, _received in reports:
        day = _aware(start).date()
        for bucket in (total, by_day[day], by_org[org]):
            bucket.successful += ok
            bucket.failed += failed
            bucket.reports += 1
    pks = [r[0] for r in reports]
    orgs = {r[0]: r[1] for r in reports}
    by_policy: dict[str, _Count] = defaultdict(_Count)
    failures: dict[tuple[int, str, str], int] = {}  # (report, result type, mx) -> sessions
    examples: list[dict[str, Any]] = []
    if pks:
        for ptype, ok, failed in db.execute(
            select(
                TlsReportPolicy.policy_type, TlsReportPolicy.successful, TlsReportPolicy.failed
            ).where(TlsReportPolicy.report_pk.in_(pks))
        ):
            c = by_policy[ptype]
            c.successful += ok
            c.failed += failed
            c.reports += 1
        rows = db.execute(
            select(TlsReportPolicy.report_pk, TlsReportFailure)
            .join(TlsReportPolicy, TlsReportPolicy.id == TlsReportFailure.policy_pk)
            .where(TlsReportPolicy.report_pk.in_(pks))
        ).all()
        # one detail per (report, result type, sending MTA, receiving MX): the largest
        # count over the report's policy types (the same sessions, see above)
        per_report: dict[tuple[int, str, str, str], Any] = {}
        for report_pk, f in rows:
            key = (report_pk, f.result_type, (f.receiving_mx_hostname or "").lower())
            failures[key] = max(failures.get(key, 0), f.count)
            detail = (report_pk, f.result_type, f.sending_mta_ip or "", key[2])
            if detail not in per_report or f.count > per_report[detail].count:
                per_report[detail] = f
        examples = _failure_details(per_report, orgs)
    by_type: dict[str, int] = defaultdict(int)
    by_mx: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (_pk, rtype, mx), count in failures.items():
        by_type[rtype] += count
        by_mx[mx or "(not reported)"][rtype] += count
    last = max((_aware(r[5]) for r in reports), default=None)
    return {
        "domain": domain,
        "days": days,
        "since": since.isoformat(),
        "reports": len(reports),
        "last_report_received": last.isoformat() if last else None,
        "totals": total.as_dict(),
        "by_day": [
            {"day": d.isoformat(), **by_day[d].as_dict()} for d in _days(since.date(), now.date())
        ],
        "by_organization": sorted(
            ({"organization": o, **c.as_dict()} for o, c in by_org.items()),
            key=lambda x: (-(x["successful"] + x["failed"]), x["organization"]),
        ),
        "by_result_type": sorted(
            (
                {
                    "result_type": t,
                    "sessions": n,
                    "title": explain(t).title,
                    "meaning": explain(t).meaning,
                    "fix": explain(t).fix,
                    "rfc": explain(t).rfc,
                }
                for t, n in by_type.items()
            ),
            key=lambda x: (-x["sessions"], x["result_type"]),
        ),
        "by_mx_host": sorted(
            (
                {"mx_host": mx, "failed": sum(types.values()), "result_types": dict(types)}
                for mx, types in by_mx.items()
            ),
            key=lambda x: (-x["failed"], x["mx_host"]),
        ),
        "by_policy_type": sorted(
            ({"policy_type": t, **c.as_dict()} for t, c in by_policy.items()),
            key=lambda x: x["policy_type"],
        ),
        "failure_details": examples,
    }


MAX_FAILURE_DETAILS = 200


def _failure_details(
    per_report: dict[tuple[int, str, str, str], Any], orgs: dict[int, str]
) -> list[dict[str, Any]]:
    """Failure details summed across reports per sender, result type, sending MTA and
    receiving MX (largest first): a sender reporting the same failure every day is one
    line with the total, not one line per report."""
    summed: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for (report_pk, rtype, mta, mx), f in per_report.items():
        key = (orgs[report_pk], rtype, mta, mx)
        entry = summed.get(key)
        if entry is None:
            summed[key] = {
                "organization": orgs[report_pk],
                "result_type": rtype,
                "sending_mta_ip": f.sending_mta_ip,
                "receiving_mx_hostname": f.receiving_mx_hostname,
                "receiving_ip": f.receiving_ip,
                "sessions": f.count,
                "reports": 1,
                "additional_information": f.additional_information,
                "failure_reason_code": f.failure_reason_code,
            }
            continue
        entry["sessions"] += f.count
        entry["reports"] += 1
        for field in ("receiving_ip", "additional_information", "failure_reason_code"):
            entry[field] = entry[field] or getattr(f, field)
    ordered = sorted(
        summed.values(),
        key=lambda e: (
            -e["sessions"],
            e["organization"],
            e["result_type"],
            e["sending_mta_ip"] or "",
        ),
    )
    return ordered[:MAX_FAILURE_DETAILS]


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
