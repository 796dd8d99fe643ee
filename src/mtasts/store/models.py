"""Tables of the store (SQLAlchemy 2). Schema changes go through Alembic migrations in
``migrations/versions``; a test checks that the models and the migrations agree."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # dashboard sessions carry this number; signing out increments it (ends them all)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # "en" or "es" (mtasts.i18n.LANGUAGES); None: no choice made (dashboard: Accept-Language)
    language: Mapped[str | None] = mapped_column(String(8), default=None)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    # an id is never given twice, also on SQLite (migration 0010): a revoked token's id
    # must not come back as a new token's
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 hex
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    user: Mapped[User] = relationship()


class DomainState:
    PENDING = "pending"  # claimed; delegation and challenge not verified yet; nothing served
    ACTIVE = "active"  # delegation and the claimant's challenge verified; policy and TXT served
    RETIRING = "retiring"  # RFC 8461 §8.3: serving mode none until retire_after
    SERVED = (ACTIVE, RETIRING)


_SERVED_SQL = text("state IN ('active', 'retiring')")


class Domain(Base):
    """One hosting: one tenant's claim on a name, from pending to removal. Several tenants
    may claim a name at once (each with its own challenge); at most one hosting of a name
    is served. Everything stored for a hosting goes with it (see hosting/lifecycle.py);
    AUTOINCREMENT keeps SQLite from handing a removed hosting's id to a new one."""

    __tablename__ = "domains"
    __table_args__ = (
        UniqueConstraint("name", "owner_id", name="uq_domains_name_owner_id"),
        Index(
            "uq_domains_served_name",
            "name",
            unique=True,
            sqlite_where=_SERVED_SQL,
            postgresql_where=_SERVED_SQL,
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(253), index=True)  # A-label
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    last_verify_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    last_verify: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    retire_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    challenge: Mapped[str] = mapped_column(String(64))  # this claim's proof token (TXT)
    claim_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), default=None
    )  # a pending claim not proven by then is removed

    owner: Mapped[User] = relationship()


class PolicyVersion(Base):
    """Immutable: a policy change adds a version, never edits one."""

    __tablename__ = "policy_versions"
    __table_args__ = (UniqueConstraint("domain_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per domain
    policy_id: Mapped[str] = mapped_column(String(32))  # RFC 8461 §3.1: 1-32 alphanumerics
    mode: Mapped[str] = mapped_column(String(8))
    mx: Mapped[list[str]] = mapped_column(JSON)
    max_age: Mapped[int] = mapped_column(Integer)
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    reason: Mapped[str] = mapped_column(Text, default="")
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditEvent(Base):
    """Every change, in order. Its highest id is the store's change counter, which other
    processes poll to know when to reload their snapshot."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    domain: Mapped[str] = mapped_column(String(253), index=True, default="")
    # the hosting the event belongs to; None for account events (and for events of a
    # removed hosting, which keep only what the change counter needs: at, domain, action)
    domain_id: Mapped[int | None] = mapped_column(
        ForeignKey("domains.id", ondelete="SET NULL"), index=True, default=None
    )
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class TlsReport(Base):
    """One received TLS report (RFC 8460 §4), filed under one domain and stored once per
    domain: (domain, organization, report_id) is unique whichever route it came by.
    Deduplication is scoped to the domain so that a report-id posted first under another
    domain cannot suppress the real report. ``raw`` keeps the payload as received, gzip'd;
    ``size`` is what the report was charged against its domain's daily byte quota."""

    __tablename__ = "tls_reports"
    __table_args__ = (UniqueConstraint("domain", "organization", "report_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization: Mapped[str] = mapped_column(String(1000))
    report_id: Mapped[str] = mapped_column(String(1000))
    domain: Mapped[str] = mapped_column(String(253), index=True)  # the policy domain reported on
    start: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    contact: Mapped[str | None] = mapped_column(Text, default=None)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    route: Mapped[str] = mapped_column(String(16))  # https, smtp, imap, file
    dkim: Mapped[str | None] = mapped_column(String(16), default=None)  # pass/fail/none (mail)
    repairs: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    # 64-bit: RFC 8460 §4.4 counts are JSON integers; 2^31 sessions must not break a column
    sessions_ok: Mapped[int] = mapped_column(BigInteger)  # without sts/tlsa double counting
    sessions_failed: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    raw: Mapped[bytes] = mapped_column(LargeBinary)


class TlsReportPolicy(Base):
    """One entry of a report's ``policies`` (RFC 8460 §4.4)."""

    __tablename__ = "tls_report_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_pk: Mapped[int] = mapped_column(
        ForeignKey("tls_reports.id", ondelete="CASCADE"), index=True
    )
    policy_type: Mapped[str] = mapped_column(String(32))
    policy_domain: Mapped[str] = mapped_column(String(253))
    policy_strings: Mapped[list[str]] = mapped_column(JSON, default=list)
    mx_hosts: Mapped[list[str]] = mapped_column(JSON, default=list)
    successful: Mapped[int] = mapped_column(BigInteger)
    failed: Mapped[int] = mapped_column(BigInteger)


class TlsReportFailure(Base):
    """One ``failure-details`` entry (RFC 8460 §4.3, §4.4)."""

    __tablename__ = "tls_report_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    policy_pk: Mapped[int] = mapped_column(
        ForeignKey("tls_report_policies.id", ondelete="CASCADE"), index=True
    )
    result_type: Mapped[str] = mapped_column(String(64))
    sending_mta_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    receiving_mx_hostname: Mapped[str | None] = mapped_column(String(253), default=None)
    receiving_mx_helo: Mapped[str | None] = mapped_column(String(253), default=None)
    receiving_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    count: Mapped[int] = mapped_column(BigInteger)
    additional_information: Mapped[str | None] = mapped_column(Text, default=None)
    failure_reason_code: Mapped[str | None] = mapped_column(Text, default=None)


class TlsReportQuota(Base):
    """What one UTC day's reports used of a domain's quota: the domain's total
    (``organization`` = "") and each sending organisation's share. Counted in the store,
    in the transaction that stores the report, so several processes share one quota."""

    __tablename__ = "tls_report_quota"

    domain: Mapped[str] = mapped_column(String(253), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    organization: Mapped[str] = mapped_column(String(1000), primary_key=True)
    reports: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time that always comes back aware and in UTC, so what shows it carries
    ``+00:00``: SQLite keeps no zone (its values come back naive) and PostgreSQL answers in
    the session's TimeZone. Written in UTC (SQLite stores the wall time as given)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None and value.tzinfo else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


class DomainCheck(Base):
    """When each hosted domain is checked next, and what the last check found. The
    conditional update of ``next_check_at`` is the lease: of several processes, only the
    one whose update matched runs the check."""

    __tablename__ = "domain_checks"

    domain_id: Mapped[int] = mapped_column(
        ForeignKey("domains.id", ondelete="CASCADE"), primary_key=True
    )
    next_check_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True), index=True)
    last_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), default=None)
    claimed_by: Mapped[str] = mapped_column(String(100), default="")
    last_result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class Alert(Base):
    """One problem of one domain: opened once, re-notified on a schedule, closed when the
    condition is gone. At most one open alert per (domain, kind, subject)."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain: Mapped[str] = mapped_column(String(253), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(253), default="")
    severity: Mapped[str] = mapped_column(String(16))  # critical, warning, info
    level: Mapped[int] = mapped_column(Integer, default=0)  # escalation step, e.g. 21/7/1 days
    state: Mapped[str] = mapped_column(String(8), index=True)  # open, closed
    message: Mapped[str] = mapped_column(Text)
    fix: Mapped[str] = mapped_column(Text, default="")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True))
    last_notified_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime(timezone=True), default=None
    )
    notifications: Mapped[int] = mapped_column(Integer, default=0)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), default=None)
    # who is told: "owner" (and alert_email) or "operator" (alert_email only: the service's
    # own infrastructure, e.g. the certificate of a hosted mta-sts.<d>)
    audience: Mapped[str] = mapped_column(String(16), default="owner", server_default="owner")


class AlertDelivery(Base):
    """An alert event one channel failed to deliver, kept until that channel takes it (only
    that channel retries it; the others are not repeated), tried again at
    ``next_attempt_at`` by the monitor's retry pass."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    domain: Mapped[str] = mapped_column(String(253), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # mail, webhook
    event: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True))
    last_error: Mapped[str] = mapped_column(Text, default="")
    # None: due now; a retry pass claims a row by moving this forward (one process sends it)
    next_attempt_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime(timezone=True), default=None, index=True
    )


class Lease(Base):
    """A cluster-wide job runs where its lease is held (``holder`` until ``expires_at``)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
