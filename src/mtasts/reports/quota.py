"""Daily quotas on what senders may add to the store, per hosted domain and per sending
organisation of that domain (issue 11: one client filled PostgreSQL at 60 MB/s).

Usage is counted in the store (``tls_report_quota``), in the transaction that stores the
report, by one conditional UPDATE: the row lock serialises concurrent writers (PostgreSQL;
SQLite has one writer anyway), so several `mtasts serve` processes sharing a database
never add more than a domain's quota together, and a duplicate or a failed insert
(rolled back with the report) charges nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import Table, and_, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from mtasts.protocol.errors import Text
from mtasts.store.models import TlsReportQuota

QUOTA: Table = TlsReportQuota.__table__  # type: ignore[assignment]
ALL_ORGANIZATIONS = ""  # the row holding the domain's total
MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class Quotas:
    """Per UTC day. Defaults no honest sender reaches: a sending organisation sends one
    report per domain and day (a few when it splits them), of a few KiB."""

    reports_per_domain: int = 200
    bytes_per_domain: int = 20 * MiB
    reports_per_organization: int = 50
    bytes_per_organization: int = 10 * MiB

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Quotas.{name} must be a positive integer, not {value!r}")


@dataclass(frozen=True, slots=True)
class OverQuota:
    """Why a report was refused, and when the sender may try again."""

    scope: str  # "domain" or "organization"
    what: str  # "reports" or "bytes"
    limit: int
    retry_after: int  # seconds until the next UTC day

    @property
    def message(self) -> str:
        whose = Text("this domain") if self.scope == "domain" else Text("this sending organisation")
        unit = Text("reports") if self.what == "reports" else Text("bytes")
        return Text(
            "the daily quota of {limit} {unit} for {whose} is used up; "
            "retry after {seconds} s (next UTC day)",
            limit=self.limit,
            unit=unit,
            whose=whose,
            seconds=self.retry_after,
        )


def seconds_to_next_day(now: datetime) -> int:
    tomorrow = datetime.combine(now.date() + timedelta(days=1), time(), tzinfo=now.tzinfo)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


def _insert_missing(conn: Connection, rows: list[dict[str, object]]) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(QUOTA).on_conflict_do_nothing(), rows)
    elif conn.dialect.name == "sqlite":
        conn.execute(sqlite.insert(QUOTA).on_conflict_do_nothing(), rows)
    else:  # pragma: no cover - the store supports SQLite and PostgreSQL
        for row in rows:
            key = and_(*(QUOTA.c[k] == row[k] for k in ("domain", "day", "organization")))
            if conn.execute(QUOTA.select().where(key)).first() is None:
                conn.execute(QUOTA.insert(), row)


def open_day(conn: Connection, domain: str, organization: str, day: date) -> None:
    """Make sure the counters of ``day`` exist (committed by the caller before charging,
    so that concurrent first reports of a day do not collide on the insert), and forget
    days before yesterday."""
    rows: list[dict[str, object]] = [
        {"domain": domain, "day": day, "organization": org, "reports": 0, "bytes": 0}
        for org in (ALL_ORGANIZATIONS, organization)
    ]
    _insert_missing(conn, rows)
    conn.execute(delete(QUOTA).where(QUOTA.c.domain == domain, QUOTA.c.day < day - timedelta(1)))


def charge(
    conn: Connection,
    quotas: Quotas,
    *,
    domain: str,
    organization: str,
    now: datetime,
    size: int,
) -> OverQuota | None:
    """Count one report of ``size`` bytes against the day's quotas, in the caller's
    transaction; the OverQuota when it does not fit (then the caller rolls back)."""
    day = now.date()
    limits = (
        ("domain", ALL_ORGANIZATIONS, quotas.reports_per_domain, quotas.bytes_per_domain),
        (
            "organization",
            organization,
            quotas.reports_per_organization,
            quotas.bytes_per_organization,
        ),
    )
    for scope, org, max_reports, max_bytes in limits:
        key = and_(QUOTA.c.domain == domain, QUOTA.c.day == day, QUOTA.c.organization == org)
        done = conn.execute(
            update(QUOTA)
            .where(key, QUOTA.c.reports + 1 <= max_reports, QUOTA.c.bytes + size <= max_bytes)
            .values(reports=QUOTA.c.reports + 1, bytes=QUOTA.c.bytes + size)
        )
        if done.rowcount == 1:
            continue
        row = conn.execute(QUOTA.select().where(key)).first()
        over_reports = row is None or row.reports + 1 > max_reports
        return OverQuota(
            scope,
            "reports" if over_reports else "bytes",
            max_reports if over_reports else max_bytes,
            seconds_to_next_day(now),
        )
    return None
