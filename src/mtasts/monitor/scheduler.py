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
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mtasts import i18n
from mtasts.check.checker import Checker, CheckOptions
from mtasts.check.diagnosis import ADDRESS_NOT_ALLOWED
from mtasts.check.findings import Severity, StsFetchResult
from mtasts.check.result import CheckResult
from mtasts.config import Settings
from mtasts.hosting.delegation import Verification, verify_delegation
from mtasts.hosting.snapshot import Hosted
from mtasts.hosting.tenants import HostingService, ServiceError
from mtasts.i18n import N_, _
from mtasts.monitor import outbox
from mtasts.monitor.alerts import Condition, Event, Notifier, reconcile
from mtasts.monitor.metrics import MonitorMetrics
from mtasts.net.addresses import ProbePolicy
from mtasts.net.certs import CertInfo, judge_expiry
from mtasts.net.dns import Resolver
from mtasts.protocol.policy import Mode, parse_policy
from mtasts.reports.aggregate import summary
from mtasts.store.models import Alert, Domain, DomainCheck, DomainState, TlsReport, User

log = logging.getLogger("mtasts.monitor")

Observation = tuple[CheckResult, Verification]
SILENT_WINDOW = 14  # days in which a sender counts as regular
MIN_WAIT = 0.05  # seconds: the shortest sleep of the monitor loop
STOP_WAIT = 30.0  # seconds `mtasts serve` waits for the monitor loop to stop, at most


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def spot(domain: str, interval: float) -> timedelta:
    """The domain's fixed spot in the interval (0 <= spot < interval, whole microseconds):
    its checks run at epoch + k * interval + spot, so a fleet spreads out evenly and stays
    so, whatever order the domains were added or caught up in."""
    h = int.from_bytes(hashlib.sha256(domain.encode()).digest()[:8], "big")
    period = max(1, round(interval * 1_000_000))
    return timedelta(microseconds=h * period >> 64)


def next_spot(domain: str, interval: float, after: datetime) -> datetime:
    """The first time at the domain's spot strictly after ``after``."""
    period = max(1_000_000, round(interval * 1_000_000))  # 0 = monitoring off: no division
    off = spot(domain, period / 1_000_000) // _US
    at = (_aware(after) - _EPOCH) // _US
    k = (at - off) // period + 1
    return _EPOCH + timedelta(microseconds=k * period + off)


def cert_condition(
    kind: str, subject: str, cert: CertInfo, now: datetime, what: str, fix: str, audience: str
) -> Condition | None:
    """By the certificate's own lifetime (net.certs.judge_expiry): a warning once the
    renewal window has passed, critical when renewal is failing, under a day, expired.
    ``what`` says what the host is (translated here)."""
    expiry = judge_expiry(cert, now)
    if expiry is None:
        return None
    return Condition(
        kind,
        subject,
        expiry.severity,
        _("The certificate of {subject} ({what}) {reason}").format(
            subject=subject, what=_(what), reason=expiry.reason
        ),
        fix,
        expiry.level,
        audience,
    )


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
        self.metrics = MonitorMetrics()
        self._tools: tuple[Settings, Resolver, CheckOptions] | None = None

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
                            "next_check_at": next_spot(name, seconds, now),
                            "claimed_by": "",
                        }
                        for pk, name in missing
                    ],
                )

    def claim_due(self, limit: int = 50, schedule: bool = True) -> list[str]:
        """Domains due for a check that this process won (others skip them); with
        ``schedule``, new domains get their first check time first."""
        now = self.clock()
        interval = timedelta(seconds=self.settings.monitor_interval)
        if schedule:
            with contextlib.suppress(IntegrityError):  # another process scheduled them now
                self._schedule_new(now, interval)
        with self.service.sessions() as db:
            due = db.execute(
                select(DomainCheck.domain_id, DomainCheck.next_check_at, Domain.name)
                .join(Domain, Domain.id == DomainCheck.domain_id)
                .where(Domain.state == DomainState.ACTIVE, DomainCheck.next_check_at <= now)
                .order_by(DomainCheck.next_check_at)
                .limit(limit)
            ).all()
        if not due:
            return []
        seconds = interval.total_seconds()
        # the next check is the domain's own spot again, at least half an interval on: a
        # domain caught up late (an outage) returns to its place, not to now + interval
        # (which would keep every domain caught up together in lockstep)
        then = {pk: next_spot(name, seconds, now + interval / 2) for pk, _was, name in due}
        # One statement claims the batch: a row another process claimed meanwhile has its
        # next check in the future and no longer matches (PostgreSQL re-reads the row after
        # the other's commit), so each check runs once.
        with self.service.sessions.begin() as db:
            won = set(
                db.scalars(
                    update(DomainCheck)
                    .where(DomainCheck.domain_id.in_(then), DomainCheck.next_check_at <= now)
                    .values(
                        next_check_at=case(then, value=DomainCheck.domain_id),
                        claimed_by=self.holder,
                    )
                    .returning(DomainCheck.domain_id)
                    .execution_options(synchronize_session=False)
                )
            )
        return [name for pk, _was, name in due if pk in won]

    def run_due(self, limit: int = 50, concurrency: int = 16) -> list[Event]:
        """Check up to ``limit`` due domains this process won, ``concurrency`` at a time
        (the checks wait on the network); the events of these checks."""
        names = self.claim_due(limit)
        if not names:
            return []

        async def check_all() -> list[list[Event]]:
            sem = asyncio.Semaphore(concurrency)

            async def one(name: str) -> list[Event]:
                async with sem:
                    return await self.check_one(name)

            return await asyncio.gather(*(one(n) for n in names))

        return [e for events in asyncio.run(check_all()) for e in events]

    async def check_one(self, name: str) -> list[Event]:
        """Observe ``name`` (here) and judge it (in a worker thread: the store and the
        alert channels block); counted in the metrics, never raising."""
        started = time.perf_counter()
        try:
            language = await asyncio.to_thread(self.owner_language, name)
            with i18n.use(language):  # the findings quoted in alerts are the owner's prose
                seen = await self.observe(name)
                events, alerting = await asyncio.to_thread(self._judge, name, seen)
        except Exception:
            log.exception("monitoring %s failed", name)
            self.metrics.check_done("error", time.perf_counter() - started)
            return []
        self.metrics.check_done("alerting" if alerting else "ok", time.perf_counter() - started)
        return events

    def seconds_to_next_due(self) -> float:
        """Seconds until the earliest scheduled check (the tick when there is none)."""
        with self.service.sessions() as db:
            first = db.scalar(
                select(func.min(DomainCheck.next_check_at))
                .join(Domain, Domain.id == DomainCheck.domain_id)
                .where(Domain.state == DomainState.ACTIVE)
            )
        if first is None:
            return self.settings.monitor_tick
        return (first - self.clock()).total_seconds()

    def refresh_alert_metrics(self) -> None:
        """Count the open alerts by kind and severity for ``mtasts_alerts_open``."""
        with self.service.sessions() as db:
            rows = db.execute(
                select(Alert.kind, Alert.severity, func.count())
                .where(Alert.state == "open")
                .group_by(Alert.kind, Alert.severity)
            ).all()
        self.metrics.set_alerts_open((k, s, int(n)) for k, s, n in rows)

    def metrics_lines(self) -> list[str]:
        """The monitor's Prometheus lines (for ``/metrics``)."""
        return self.metrics.render(self.notifier.deliveries)

    async def run(self) -> None:
        """The loop inside `mtasts serve`, in a thread of its own (its own event loop, so
        checks never hold up the policy host)."""
        stop = threading.Event()
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def done() -> None:
            if not ended.done():
                ended.set_result(None)

        def body() -> None:
            try:
                self.run_forever(stop)
            finally:
                with contextlib.suppress(RuntimeError):  # the app's loop is closed already
                    loop.call_soon_threadsafe(done)

        thread = threading.Thread(target=body, name="mtasts-monitor", daemon=True)
        thread.start()
        try:
            await ended
            log.error("the monitor loop ended")
        finally:
            stop.set()
            # Wait for the loop to end (its checks cancelled, sends in flight finished):
            # the service closes the store next, and a connection the loop still held
            # would outlive the pool it came from (left open, collected later).
            await asyncio.to_thread(thread.join, STOP_WAIT)
            if thread.is_alive():
                log.warning("the monitor loop did not stop within %s s", STOP_WAIT)

    def run_forever(self, stop: threading.Event, concurrency: int | None = None) -> None:
        """Run due checks until ``stop`` is set: up to ``concurrency`` (default
        ``monitor_concurrency``) in flight, a new one as soon as one ends and another is
        due; else sleep until the next due check, a tick (``monitor_tick``) at most."""
        asyncio.run(self._pipeline(stop, concurrency or self.settings.monitor_concurrency))

    async def _pipeline(self, stop: threading.Event, limit: int) -> None:
        loop = asyncio.get_running_loop()
        # judging (store, alert channels) runs in threads: enough of them for the checks
        loop.set_default_executor(ThreadPoolExecutor(max(8, limit // 4), "mtasts-monitor"))
        active: set[asyncio.Task[list[Event]]] = set()
        retrying: asyncio.Task[None] | None = None
        ticked = -math.inf
        try:
            while not stop.is_set():
                # once a tick: schedule new domains, count the open alerts (both scan tables),
                # retry alert deliveries that are due
                tick = time.monotonic() - ticked >= self.settings.monitor_tick
                if tick:
                    ticked = time.monotonic()
                    with contextlib.suppress(Exception):
                        await asyncio.to_thread(self.refresh_alert_metrics)
                    if retrying is None or retrying.done():  # slow channels never hold checks
                        retrying = asyncio.create_task(asyncio.to_thread(self._retry_logged))
                free = limit - len(active)
                names: list[str] = []
                if free > 0:
                    try:
                        names = await asyncio.to_thread(self.claim_due, free, tick)
                    except Exception:
                        log.exception("monitor: claiming due checks failed")
                for n in names:
                    task = asyncio.create_task(self.check_one(n))
                    active.add(task)
                    task.add_done_callback(active.discard)
                if active and len(names) == free:  # full: more may be due, go on at once
                    await asyncio.wait(active, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    wait = await asyncio.to_thread(self.seconds_to_next_due)
                except Exception:
                    wait = self.settings.monitor_tick
                # intervals below the tick are honoured: wake at the next due check
                wait = min(max(wait, MIN_WAIT), self.settings.monitor_tick)
                await asyncio.to_thread(stop.wait, wait)
        finally:
            for task in list(active):
                task.cancel()
            waiting: list[asyncio.Task[Any]] = [*active, *([retrying] if retrying else [])]
            if waiting:  # a retry pass in flight finishes its sends
                await asyncio.wait(waiting)

    # --- one domain ------------------------------------------------------------------------

    def check_domain(self, name: str) -> list[Event]:
        """Check ``name`` as senders see it, update its alerts, send the events."""
        hosted = self.service.snapshot.hosts.get(name)
        if hosted is None or hosted.state != DomainState.ACTIVE:
            return []
        with i18n.use(self.owner_language(name)):
            return self.judge(name, asyncio.run(self.observe(name)))

    def owner_language(self, name: str) -> str:
        """The language of the alerts of ``name``: its owner's own (``users.language``),
        English when the owner made no choice."""
        with self.service.sessions() as db:
            chosen = db.scalar(
                select(User.language)
                .join(Domain, Domain.owner_id == User.id)
                .where(Domain.name == name, Domain.state == DomainState.ACTIVE)
            )
        return i18n.normalize(chosen) or i18n.DEFAULT

    async def observe(self, name: str) -> Observation:
        """What senders see of ``name`` now, and its delegation records."""
        s = self.settings
        if self._tools is None or self._tools[0] is not s:  # built once per settings
            options = CheckOptions(
                ca_file=s.ca_file or None,
                timeout=s.check_timeout,
                https_port=s.https_port,
                smtp_port=s.smtp_port,
                # alerts and the dashboard show tenants the result: restricted like enforce
                probe_policy=ProbePolicy.from_cidrs(s.probe_allowed_networks),
            )
            self._tools = (s, self.service.resolver(), options)
        _, resolver, options = self._tools
        checker = Checker(resolver, options, clock=self.clock)
        result, verification = await asyncio.gather(
            checker.check(name), verify_delegation(resolver, s, name)
        )
        self.checks_run += 1
        return result, verification

    def judge(self, name: str, seen: Observation) -> list[Event]:
        """Turn an observation into conditions, alerts and notifications; the events of
        this check (each channel that failed keeps them; the retry pass sends them again).
        The owner's prose is in the current language (the caller's ``i18n.use``), the
        operator's in ``alert_language``."""
        return self._judge(name, seen)[0]

    def _judge(self, name: str, seen: Observation) -> tuple[list[Event], bool]:
        svc, s = self.service, self.settings
        expected = svc.snapshot.hosts.get(name)
        if expected is None or expected.state != DomainState.ACTIVE:
            return [], False
        result, verification = seen
        now = self.clock()
        conditions = self.conditions(name, expected, result, verification, now)
        # one transaction, plain statements: this runs for every check (100k an hour)
        with svc.sessions.begin() as db:
            found = db.execute(
                select(Domain.id, User.email)
                .join(User, User.id == Domain.owner_id)
                .where(Domain.name == name, Domain.state == DomainState.ACTIVE)
            ).first()
            if found is None:  # other accounts' pending claims of the name are not it
                return [], False
            domain_id, owner_email = found
            conditions += self._report_conditions(db, name, now)
            db.execute(
                update(DomainCheck)
                .where(DomainCheck.domain_id == domain_id)
                .values(
                    last_check_at=now,
                    last_result={
                        "sts_fetch_result": str(result.sts_fetch_result),
                        "delegation_ok": verification.ok,
                        "conditions": [
                            {"kind": c.kind, "subject": c.subject, "severity": c.severity}
                            for c in conditions
                        ],
                        "findings": [f.to_dict() for f in result.findings],
                    },
                )
            )
            events = reconcile(
                db,
                name,
                conditions,
                now,
                timedelta(seconds=s.renotify_interval),
                (owner_email,),
                {"owner": i18n.current(), "operator": s.alert_language},
            )
        outbox.deliver(svc.sessions, self.notifier, name, events, now)
        return events, any(c.severity != "info" for c in conditions)

    def retry_deliveries(self) -> int:
        """The retry pass (once a tick): alert events a channel failed to take, sent again
        when their backoff has passed, whether or not their domain is checked; the number
        delivered."""
        return outbox.retry_due(self.service.sessions, self.notifier, self.clock())

    def _retry_logged(self) -> None:
        try:
            self.retry_deliveries()
        except Exception:
            log.exception("monitor: retrying alert deliveries failed")

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
                    _("Senders see {result}: {problem}").format(
                        result=result.sts_fetch_result,
                        problem=first.message if first else _("no usable MTA-STS policy."),
                    ),
                    self._hosted_fix(name, verification),
                )
            )
        else:
            if result.policy != policy:
                out.append(
                    Condition(
                        "policy-mismatch",
                        f"mta-sts.{name}",
                        "warning",
                        _(
                            "The policy senders fetch differs from the one mtasts serves: "
                            "something else answers for mta-sts.{domain}."
                        ).format(domain=name),
                        _("Point mta-sts.{domain} to {target} (CNAME).").format(
                            domain=name, target=self.settings.policy_host
                        ),
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
                        _(
                            "Senders see id={seen}, not the current id={current}: they will "
                            "not fetch the new policy."
                        ).format(seen=seen, current=expected.policy_id),
                        _("Make _mta-sts.{domain} a CNAME to {target}.").format(
                            domain=name, target=f"{name}.policy.{self.settings.zone_name}"
                        ),
                    )
                )
        fetch_cert = result.fetch.certificate if result.fetch else None
        if fetch_cert is not None:
            out += self._policy_host_cert(name, fetch_cert, verification, now)
        out += self._mx_conditions(name, result, policy.mode, now)
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
                        _(
                            "New MX {host} was added to the policy of {domain} (mx_auto_refresh)."
                        ).format(host=host, domain=name),
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
                    (
                        _(
                            "MX {host} is not in the policy of {domain}: senders refuse to "
                            "deliver to it."
                        )
                        if mode is Mode.ENFORCE
                        else _("MX {host} is not in the policy of {domain}.")
                    ).format(host=host, domain=name),
                    _(
                        "Refresh the policy's mx list from the live MX records (dashboard or "
                        "POST /api/v1/domains/{domain}/refresh-mx)."
                    ).format(domain=name),
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
        renew = _(
            "Renew it now, and check that automatic renewal works (an ACME client with a "
            "reload of the mail server)."
        )
        for h in result.mx_hosts:
            worst: Condition | None = None
            for p in h.probes:
                if p.certificate is None:
                    continue
                c = cert_condition(
                    "mx-certificate-expiring",
                    h.hostname,
                    p.certificate,
                    now,
                    N_("an MX"),
                    renew,
                    "owner",
                )
                if c is not None and (worst is None or c.level > worst.level):
                    worst = c
            if worst is not None:
                out.append(worst)
        return out

    def _hosted_fix(self, name: str, verification: Verification) -> str:
        """What the owner of a hosted domain does when senders get no policy: restore the
        delegation (never "publish a TXT record": that would freeze the policy id)."""
        mine = (f"_mta-sts.{name}", f"mta-sts.{name}")
        fixes = [rc.fix for rc in verification.checks if not rc.ok and rc.record.name in mine]
        if fixes:
            return " ".join(fixes)
        z = self.settings.zone_name
        return _(
            "mtasts hosts this policy: keep _mta-sts.{domain} a CNAME to {txt_target} and "
            "mta-sts.{domain} a CNAME to {host_target}; no TXT record or policy file of your "
            "own is needed (mtasts publishes the id and serves the file)."
        ).format(
            domain=name, txt_target=f"{name}.policy.{z}", host_target=self.settings.policy_host
        )

    def _policy_host_cert(
        self, name: str, cert: CertInfo, verification: Verification, now: datetime
    ) -> list[Condition]:
        """The certificate of mta-sts.<d>: while the delegation points the name at the
        policy host, the service's TLS front holds it, so the operator hears of it."""
        host = f"mta-sts.{name}"
        ours = any(rc.ok and rc.record.name == host for rc in verification.checks)
        if ours:
            with i18n.use(self.settings.alert_language):  # told to the operator
                fix = _(
                    "{host} is served by this service's TLS front (on-demand TLS, e.g. "
                    "Caddy): check its ACME renewals and logs, and that /tls/ask allows the "
                    "name."
                ).format(host=host)
                c = cert_condition(
                    "certificate-expiring",
                    host,
                    cert,
                    now,
                    N_("the hosted policy host"),
                    fix,
                    "operator",
                )
        else:
            fix = _(
                "Renew it now (ACME client with a reload of the server), or point {host} "
                "back to {target} (CNAME) and the service serves it."
            ).format(host=host, target=self.settings.policy_host)
            c = cert_condition(
                "certificate-expiring", host, cert, now, N_("the policy host"), fix, "owner"
            )
        return [c] if c else []

    def _report_conditions(self, db: Session, name: str, now: datetime) -> list[Condition]:
        """What the domain's TLS reports say (failures, senders gone silent)."""
        s = self.settings
        last = db.execute(
            select(TlsReport.organization, func.max(TlsReport.start))
            .where(
                TlsReport.domain == name,
                TlsReport.start >= now - timedelta(days=SILENT_WINDOW),
            )
            .group_by(TlsReport.organization)
        ).all()
        # no report in the window: none in the last two days either (saves the summary)
        recent = summary(db, name, 2, now) if last else None
        out: list[Condition] = []
        if recent is None:
            return out
        t = recent["totals"]
        if t["failed"] and t["failure_rate"] > s.tlsrpt_failure_threshold:
            top: dict[str, Any] = (recent["by_result_type"] or [{}])[0]
            out.append(
                Condition(
                    "tlsrpt-failures",
                    name,
                    "warning",
                    (
                        _(
                            "TLS reports of the last 2 days: {failed} of {total} sessions "
                            "failed ({rate:.1f} %), mostly {kind}."
                        )
                        if top
                        else _(
                            "TLS reports of the last 2 days: {failed} of {total} sessions "
                            "failed ({rate:.1f} %)."
                        )
                    ).format(
                        failed=t["failed"],
                        total=t["failed"] + t["successful"],
                        rate=t["failure_rate"] * 100,
                        kind=str(top.get("title", "")).lower(),
                    ),
                    str(top.get("fix", "")),
                )
            )
        silent_after = now - timedelta(days=s.sender_silent_days)
        for org, latest in last:
            if _aware(latest) < silent_after:
                out.append(
                    Condition(
                        "sender-silent",
                        org,
                        "warning",
                        _(
                            "{organization} sent TLS reports for {domain} until {day} and "
                            "none since."
                        ).format(organization=org, domain=name, day=f"{_aware(latest):%Y-%m-%d}"),
                        _(
                            "Check that _smtp._tls.{domain} still resolves (CNAME to {target}) "
                            "and that reports reach mtasts."
                        ).format(domain=name, target=f"{name}.tlsrpt.{s.zone_name}"),
                    )
                )
        return out
