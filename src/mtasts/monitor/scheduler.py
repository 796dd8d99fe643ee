"""The monitor: re-checks every active hosted domain on a schedule (spread over the
interval), turns what it sees into conditions and alerts, before senders start failing.

Each domain's next check time lives in the store; a process runs a check only when its
conditional update of that time matched (a lease in the database), so with several
`mtasts serve` processes on one PostgreSQL each check runs once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from mtasts.check.checker import Checker, CheckOptions
from mtasts.check.diagnosis import ADDRESS_NOT_ALLOWED
from mtasts.check.findings import Severity, StsFetchResult
from mtasts.check.result import CheckResult
from mtasts.hosting.delegation import Verification, verify_delegation
from mtasts.hosting.snapshot import Hosted
from mtasts.hosting.tenants import HostingService, ServiceError
from mtasts.monitor.alerts import Condition, Event, Notifier, reconcile
from mtasts.net.addresses import ProbePolicy
from mtasts.protocol.policy import Mode, parse_policy
from mtasts.reports.aggregate import summary
from mtasts.store.models import Alert, Domain, DomainCheck, DomainState, TlsReport

log = logging.getLogger("mtasts.monitor")

Observation = tuple[CheckResult, Verification]
CERT_STEPS = ((1, 3, "critical"), (7, 2, "critical"), (21, 1, "warning"))  # days, level
SILENT_WINDOW = 14  # days in which a sender counts as regular


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _offset(domain: str, interval: float) -> timedelta:
    """A stable spot in the interval per domain, so checks spread out evenly."""
    h = int.from_bytes(hashlib.sha256(domain.encode()).digest()[:8], "big")
    return timedelta(seconds=h % max(1, int(interval)))


def cert_condition(kind: str, subject: str, days_left: int, what: str) -> Condition | None:
    """21/7/1 days before expiry: a warning, then critical, then critical again."""
    for days, level, severity in CERT_STEPS:
        if days_left <= days:
            when = "has expired" if days_left < 0 else f"expires in {days_left} day(s)"
            return Condition(
                kind,
                subject,
                severity,
                f"The certificate of {subject} ({what}) {when}.",
                "Renew it now (and check that automatic renewal works: an ACME client "
                "with a reload of the server).",
                level,
            )
    return None


class Monitor:
    def __init__(
        self,
        service: HostingService,
        notifier: Notifier | None = None,
        holder: str | None = None,
    ) -> None:
        self.service = service
        self.settings = service.settings
        self.notifier = notifier or Notifier(service.settings)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self.checks_run = 0

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.service.clock

    # --- scheduling ----------------------------------------------------------------------

    def _schedule_new(self, now: datetime, interval: timedelta) -> None:
        """Give every active domain without one a schedule row (one bulk insert): the first
        check of a domain comes within the interval, at a spot fixed by its name, so a
        whole fleet spreads out evenly."""
        with self.service.sessions.begin() as db:
            missing = db.execute(
                select(Domain.id, Domain.name)
                .outerjoin(DomainCheck, DomainCheck.domain_id == Domain.id)
                .where(Domain.state == DomainState.ACTIVE, DomainCheck.domain_id.is_(None))
            ).all()
            if missing:
                seconds = interval.total_seconds()
                db.execute(
                    insert(DomainCheck),
                    [
                        {
                            "domain_id": pk,
                            "next_check_at": now + _offset(name, seconds),
                            "claimed_by": "",
                        }
                        for pk, name in missing
                    ],
                )

    def claim_due(self, limit: int = 50) -> list[str]:
        """Domains due for a check that this process won (others skip them)."""
        now = self.clock()
        interval = timedelta(seconds=self.settings.monitor_interval)
        with contextlib.suppress(IntegrityError):  # another process scheduled them just now
            self._schedule_new(now, interval)
        with self.service.sessions() as db:
            due = db.execute(
                select(DomainCheck.domain_id, DomainCheck.next_check_at, Domain.name)
                .join(Domain, Domain.id == DomainCheck.domain_id)
                .where(Domain.state == DomainState.ACTIVE, DomainCheck.next_check_at <= now)
                .order_by(DomainCheck.next_check_at)
                .limit(limit)
            ).all()
        won = []
        for pk, was, name in due:
            with self.service.sessions.begin() as db:
                result = db.execute(
                    update(DomainCheck)
                    .where(DomainCheck.domain_id == pk, DomainCheck.next_check_at == was)
                    .values(next_check_at=now + interval, claimed_by=self.holder)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    won.append(name)
        return won

    def run_due(self, limit: int = 50, concurrency: int = 16) -> list[Event]:
        """Check up to ``limit`` due domains this process won, ``concurrency`` at a time
        (the checks wait on the network); the events delivered."""
        names = self.claim_due(limit)
        if not names:
            return []

        async def observe_all() -> list[Observation | BaseException]:
            sem = asyncio.Semaphore(concurrency)

            async def one(name: str) -> Observation:
                async with sem:
                    return await self.observe(name)

            return await asyncio.gather(*(one(n) for n in names), return_exceptions=True)

        events: list[Event] = []
        for name, seen in zip(names, asyncio.run(observe_all()), strict=True):
            try:
                if isinstance(seen, BaseException):
                    raise seen
                events += self.judge(name, seen)
            except Exception:
                log.exception("monitoring %s failed", name)
        return events

    async def run(self) -> None:
        """The loop inside `mtasts serve`: checks what is due (at once again while a full
        batch was due), else waits a tick."""
        batch = 50
        while True:
            checked = 0
            try:
                before = self.checks_run
                await anyio.to_thread.run_sync(self.run_due, batch)
                checked = self.checks_run - before
            except Exception:
                log.exception("monitor tick failed")
            if checked < batch:
                await asyncio.sleep(self.settings.monitor_tick)

    # --- one domain ------------------------------------------------------------------------

    def check_domain(self, name: str) -> list[Event]:
        """Check ``name`` as senders see it, update its alerts, send the events."""
        hosted = self.service.snapshot.hosts.get(name)
        if hosted is None or hosted.state != DomainState.ACTIVE:
            return []
        return self.judge(name, asyncio.run(self.observe(name)))

    async def observe(self, name: str) -> Observation:
        """What senders see of ``name`` now, and its delegation records."""
        svc, s = self.service, self.settings
        options = CheckOptions(
            ca_file=s.ca_file or None,
            timeout=s.check_timeout,
            https_port=s.https_port,
            smtp_port=s.smtp_port,
            # alerts and the dashboard show tenants the result: restricted like enforce
            probe_policy=ProbePolicy.from_cidrs(s.probe_allowed_networks),
        )
        checker = Checker(svc.resolver(), options, clock=self.clock)
        result, verification = await asyncio.gather(
            checker.check(name), verify_delegation(svc.resolver(), s, name)
        )
        self.checks_run += 1
        return result, verification

    def judge(self, name: str, seen: Observation) -> list[Event]:
        """Turn an observation into conditions, alerts and notifications."""
        svc, s = self.service, self.settings
        expected = svc.snapshot.hosts.get(name)
        if expected is None or expected.state != DomainState.ACTIVE:
            return []
        result, verification = seen
        now = self.clock()
        conditions = self.conditions(name, expected, result, verification, now)
        with svc.sessions.begin() as db:
            domain = db.scalar(
                select(Domain).where(Domain.name == name, Domain.state == DomainState.ACTIVE)
            )
            if domain is None:  # other accounts' pending claims of the name are not it
                return []
            check = db.get(DomainCheck, domain.id)
            if check is not None:
                check.last_check_at = now
                check.last_result = {
                    "sts_fetch_result": str(result.sts_fetch_result),
                    "delegation_ok": verification.ok,
                    "conditions": [
                        {"kind": c.kind, "subject": c.subject, "severity": c.severity}
                        for c in conditions
                    ],
                    "findings": [f.to_dict() for f in result.findings],
                }
            events = reconcile(
                db,
                name,
                conditions,
                now,
                timedelta(seconds=s.renotify_interval),
                (domain.owner.email,),
            )
        failed = self.notifier.deliver(events)
        if failed:  # not sent: the next check sends them again
            with svc.sessions.begin() as db:
                db.execute(
                    update(Alert)
                    .where(Alert.id.in_(failed), Alert.state == "open")
                    .values(last_notified_at=None)
                )
        return [e for e in events if e.alert_id not in failed]

    def conditions(
        self,
        name: str,
        expected: Hosted,
        result: CheckResult,
        verification: Verification,
        now: datetime,
    ) -> list[Condition]:
        out: list[Condition] = []
        temporary = verification.temporary
        for rc in verification.checks:
            if not rc.ok and not temporary:
                out.append(
                    Condition("delegation-broken", rc.record.name, "critical", rc.problem, rc.fix)
                )
        policy = parse_policy(expected.body)
        if result.sts_fetch_result is not StsFetchResult.VALID:
            errors = [f for f in result.findings if f.severity is Severity.ERROR]
            first = errors[0] if errors else None
            out.append(
                Condition(
                    "policy-not-served",
                    name,
                    "critical" if policy.mode is Mode.ENFORCE else "warning",
                    f"Senders see {result.sts_fetch_result}: "
                    + (first.message if first else "no usable MTA-STS policy."),
                    (first.fix or "") if first else "",
                )
            )
        else:
            if result.policy != policy:
                out.append(
                    Condition(
                        "policy-mismatch",
                        f"mta-sts.{name}",
                        "warning",
                        "The policy senders fetch differs from the one mtasts serves: "
                        "something else answers for mta-sts." + name + ".",
                        f"Point mta-sts.{name} to {self.settings.policy_host} (CNAME).",
                    )
                )
            seen = result.record.id if result.record else None
            delay = self.settings.effective_txt_delay
            allowed = {expected.policy_id, expected.txt_id(now.timestamp(), delay)}
            if seen not in allowed:
                out.append(
                    Condition(
                        "txt-id-mismatch",
                        f"_mta-sts.{name}",
                        "warning",
                        f"Senders see id={seen}, not the current id={expected.policy_id}: "
                        "they will not fetch the new policy.",
                        f"Make _mta-sts.{name} a CNAME to {name}.policy.{self.settings.zone_name}.",
                    )
                )
        fetch_cert = result.fetch.certificate if result.fetch else None
        if fetch_cert is not None:
            c = cert_condition(
                "certificate-expiring",
                f"mta-sts.{name}",
                fetch_cert.days_left(now),
                "the policy host",
            )
            if c:
                out.append(c)
        out += self._mx_conditions(name, result, policy.mode, now)
        out += self._report_conditions(name, now)
        return out

    def _mx_conditions(
        self, name: str, result: CheckResult, mode: Mode, now: datetime
    ) -> list[Condition]:
        out: list[Condition] = []
        loud = "critical" if mode is Mode.ENFORCE else "warning"
        uncovered = [h.hostname for h in result.mx_hosts if h.matches_policy is False]
        if uncovered and mode is Mode.TESTING and self.settings.mx_auto_refresh:
            try:
                self.service.refresh_mx(None, name)
                out += [
                    Condition(
                        "mx-refreshed",
                        host,
                        "info",
                        f"New MX {host} was added to the policy of {name} (mx_auto_refresh).",
                    )
                    for host in uncovered
                ]
                uncovered = []
            except ServiceError as exc:
                log.warning("automatic mx refresh of %s failed: %s", name, exc.message)
        for host in uncovered:
            out.append(
                Condition(
                    "mx-not-covered",
                    host,
                    loud,
                    f"MX {host} is not in the policy of {name}"
                    + (": senders refuse to deliver to it." if mode is Mode.ENFORCE else "."),
                    "Refresh the policy's mx list from the live MX records (dashboard or "
                    f"POST /api/v1/domains/{name}/refresh-mx).",
                )
            )
        problems: dict[str, list[str]] = {}
        fixes: dict[str, str] = {}
        skip = ("mx-not-covered", "mx-certificate-expiring", "mx-implicit", "mx-null")
        mx_names = {h.hostname for h in result.mx_hosts}
        for f in result.findings:
            about_mx = f.code.startswith("mx-") or (
                f.code == ADDRESS_NOT_ALLOWED and f.subject in mx_names
            )
            if about_mx and f.code not in skip and f.severity is not Severity.INFO:
                problems.setdefault(f.subject, []).append(f.message)
                fixes.setdefault(f.subject, f.fix or "")
        for host, messages in problems.items():
            out.append(Condition("mx-tls-problem", host, loud, " ".join(messages), fixes[host]))
        for h in result.mx_hosts:
            days = [p.certificate.days_left(now) for p in h.probes if p.certificate is not None]
            if days:
                c = cert_condition("mx-certificate-expiring", h.hostname, min(days), "an MX")
                if c:
                    out.append(c)
        return out

    def _report_conditions(self, name: str, now: datetime) -> list[Condition]:
        s = self.settings
        with self.service.sessions() as db:
            recent = summary(db, name, 2, now)
        out: list[Condition] = []
        t = recent["totals"]
        if t["failed"] and t["failure_rate"] > s.tlsrpt_failure_threshold:
            top: dict[str, Any] = (recent["by_result_type"] or [{}])[0]
            out.append(
                Condition(
                    "tlsrpt-failures",
                    name,
                    "warning",
                    f"TLS reports of the last 2 days: {t['failed']} of "
                    f"{t['failed'] + t['successful']} sessions failed "
                    f"({t['failure_rate'] * 100:.1f} %)"
                    + (f", mostly {top['title'].lower()}." if top else "."),
                    str(top.get("fix", "")),
                )
            )
        silent_after = now - timedelta(days=s.sender_silent_days)
        with self.service.sessions() as db:
            last = db.execute(
                select(TlsReport.organization, func.max(TlsReport.start))
                .where(
                    TlsReport.domain == name,
                    TlsReport.start >= now - timedelta(days=SILENT_WINDOW),
                )
                .group_by(TlsReport.organization)
            ).all()
        for org, latest in last:
            if _aware(latest) < silent_after:
                out.append(
                    Condition(
                        "sender-silent",
                        org,
                        "warning",
                        f"{org} sent TLS reports for {name} until "
                        f"{_aware(latest):%Y-%m-%d} and none since.",
                        f"Check that _smtp._tls.{name} still resolves (CNAME to "
                        f"{name}.tlsrpt.{s.zone_name}) and that reports reach mtasts.",
                    )
                )
        return out
