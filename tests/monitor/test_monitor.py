"""The monitor against the lab, as senders would see a hosted domain: the real app serving
policies over HTTPS and the zone over DNS (the lab resolver follows the delegation), MX
hosts on the lab SMTP servers, alerts to a real SMTP sink and a real webhook receiver, and
a clock the test moves."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import hashlib
import hmac
import html
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from tests.hosting.serving import ZONE, Running, lab_settings, running
from tests.hosting.test_api_lab import customer, delegate
from tests.lab import TestCA, World
from tests.lab.ports import free_port
from tests.lab.trap import LAB_NETWORKS, TRAP_IP, Trap

from mtasts.check.checker import Checker, CheckOptions
from mtasts.config import Settings
from mtasts.monitor import outbox
from mtasts.monitor.alerts import verify_signature, verify_webhook
from mtasts.monitor.scheduler import Monitor
from mtasts.reports.ingest import ReportIngestor, Route
from mtasts.web.dashboard.auth import set_password

pytestmark = pytest.mark.lab

SECRET = "webhook-secret"


@dataclass
class Sink:
    """Alert mail (an aiosmtpd SMTP server) and webhooks (an HTTP server), as received."""

    mails: list[bytes] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    posts: int = 0  # webhook requests received, refused ones included
    refuse: int = 0  # answer this many more webhook requests with 503
    arrived: threading.Event = field(default_factory=threading.Event)  # a webhook request came
    # webhook requests are answered while this is set (clear it to hold them)
    answering: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.answering.set()

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.mails.append(bytes(envelope.original_content))
        return "250 OK"

    def events(self) -> list[tuple[str, str, str]]:
        return [(e["event"], e["kind"], e["subject"]) for h in self.hooks for e in h["events"]]

    def clear(self) -> None:
        self.mails.clear()
        self.hooks.clear()


@pytest.fixture
def sink() -> Iterator[tuple[Sink, str, str]]:
    s = Sink()
    smtp = Controller(s, hostname="127.0.0.1", port=free_port())
    smtp.start()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            assert verify_signature(SECRET, body, self.headers["X-Mtasts-Signature"])
            s.arrived.set()
            s.answering.wait(120)
            s.posts += 1
            if s.refuse > 0:
                s.refuse -= 1
                self.send_response(503)
                self.end_headers()
                return
            s.hooks.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield s, f"127.0.0.1:{smtp.port}", f"http://127.0.0.1:{http.server_port}/hook"
    finally:
        http.shutdown()
        http.server_close()
        smtp.stop()


@dataclass
class Lab:
    app: Running
    monitor: Monitor
    sink: Sink
    domains: list[str]
    now: list[datetime]

    def advance(self, **delta: float) -> None:
        self.now[0] += timedelta(**delta)


@pytest.fixture
def leaf_lifetime() -> timedelta:
    """Lifetime of the TLS front's certificate (override with parametrize)."""
    return timedelta(days=90)


@pytest.fixture
def lab(
    tmp_path: Path,
    lab_world: World,
    test_ca: TestCA,
    sink: tuple[Sink, str, str],
    leaf_lifetime: timedelta,
) -> Iterator[Lab]:
    box, relay, hook = sink
    domains = [customer(lab_world), customer(lab_world, mx_count=2)]
    start = datetime.now(UTC) - timedelta(hours=1)
    leaf = test_ca.issue(
        [f"mta-sts.{d}" for d in domains] + [f"policy-host.{ZONE}", "127.0.0.1"],
        not_before=start,
        not_after=start + leaf_lifetime,
    )
    dns_port, https_port = free_port(udp=True), free_port()
    settings = Settings(
        data_dir=tmp_path,
        zone=ZONE,
        nameservers=(lab_world.nameserver,),
        dns_listen=(f"127.0.0.1:{dns_port}",),
        policy_host_addresses=("127.0.0.1",),
        https_port=https_port,
        ca_file=test_ca.ca_file,
        smtp_port=lab_world.smtp_port,
        check_timeout=5.0,
        probe_allowed_networks=LAB_NETWORKS,
        txt_delay=0,
        monitor_interval=0,  # the test runs the monitor itself, on its clock
        alert_smtp_relay=relay,
        alert_smtp_starttls=False,
        alert_email="noc@example.net",
        alert_webhook_url=hook,
        alert_webhook_secret=SECRET,
    )
    lab_world.dns.forward(ZONE, f"127.0.0.1:{dns_port}")
    now = [datetime.now(UTC)]
    with running(
        settings, tls=(leaf.chain_file, leaf.key_file), ca_file=test_ca.ca_file, port=https_port
    ) as app:
        app.service.clock = lambda: now[0]
        with app.client() as c:
            for d in domains:
                r = c.post("/api/v1/domains", json={"domain": d})
                assert r.status_code == 201
                delegate(lab_world, d, claim=r.json())
                assert c.post(f"/api/v1/domains/{d}/verify").json()["ok"]
        yield Lab(app, Monitor(app.service), box, domains, now)


def kinds(events: list[Any]) -> set[tuple[str, str, str]]:
    return {(e.event, e.kind, e.subject) for e in events}


def test_a_healthy_domain_raises_nothing(lab: Lab) -> None:
    d = lab.domains[0]
    assert lab.monitor.check_domain(d) == []
    assert lab.sink.mails == [] and lab.sink.hooks == []
    with lab.app.service.sessions() as db:
        from mtasts.store.models import Domain, DomainCheck

        dom = db.query(Domain).filter_by(name=d).one()
        check = db.get(DomainCheck, dom.id)
    # claim_due was not run yet: no schedule row; check_domain still judged the domain
    assert check is None


def test_broken_delegation_opens_repeats_and_resolves(lab: Lab, lab_world: World) -> None:
    d = lab.domains[0]
    lab_world.zone.remove(f"_mta-sts.{d}")
    events = lab.monitor.check_domain(d)
    assert ("opened", "delegation-broken", f"_mta-sts.{d}") in kinds(events)
    assert ("opened", "policy-not-served", d) in kinds(events)
    assert len(lab.sink.mails) == len(events)
    mails = [email.message_from_bytes(m, policy=email.policy.default) for m in lab.sink.mails]
    assert all(m["To"] == "admin@localhost, noc@example.net" for m in mails)
    bodies = [m.get_content() for m in mails]
    fix = f"_mta-sts.{d}. 3600 IN CNAME {d}.policy.{ZONE}."
    assert any(fix in b for b in bodies)  # the record to paste
    assert set(lab.sink.events()) == kinds(events)
    lab.sink.clear()
    assert lab.monitor.check_domain(d) == []  # still open: not sent again at once
    # the dashboard's domain page lists the open alerts with their fixes
    set_password(lab.app.service, "admin@localhost", "correct horse battery")
    with httpx.Client(base_url=lab.app.base, verify=lab.app.verify) as web:
        login = web.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', login)
        assert token
        form = {"email": "admin@localhost", "password": "correct horse battery"}
        web.post("/login", data={**form, "csrf_token": token[1]})
        page = web.get(f"/domains/{d}").text
    assert "Open alerts" in page and html.escape(fix) in page
    lab.advance(hours=25)
    again = lab.monitor.check_domain(d)
    assert {e.event for e in again} == {"repeated"} and len(again) == len(events)
    lab_world.zone.add(f"_mta-sts.{d}", "CNAME", f"{d}.policy.{ZONE}.")
    resolved = lab.monitor.check_domain(d)
    assert {e.event for e in resolved} == {"resolved"}
    assert {(e.kind, e.subject) for e in resolved} == {(e.kind, e.subject) for e in events}
    assert lab.monitor.check_domain(d) == []
    with lab.app.client() as c:
        history = c.get(f"/api/v1/domains/{d}/alerts", params={"include_closed": True}).json()
        assert c.get(f"/api/v1/domains/{d}/alerts").json() == []
    assert {(a["kind"], a["state"], a["notifications"]) for a in history} == {
        (e.kind, "closed", 3) for e in events
    }


def _with(lab: Lab, **changes: Any) -> Monitor:
    """A monitor of the lab's service with other alert settings (as after a restart)."""
    svc = lab.app.service
    svc.settings = replace(svc.settings, **changes)
    return Monitor(svc)


def _mail_events(sink: Sink) -> list[tuple[str, str]]:
    """(subject, first body line) of each alert mail received."""
    out = []
    for raw in sink.mails:
        m = email.message_from_bytes(raw, policy=email.policy.default)
        out.append((str(m["Subject"]), m.get_content().splitlines()[0]))
    return out


@pytest.mark.parametrize("dead", ["webhook", "mail"])
def test_a_dead_channel_never_makes_the_other_repeat(lab: Lab, lab_world: World, dead: str) -> None:
    """Issue 14 #1: the webhook receiver (or the relay) is down; the other channel sends
    the alert once, not on every check; the dead one gets what it missed once it is back."""
    d = lab.domains[1]
    relay, hook = lab.monitor.settings.alert_smtp_relay, lab.monitor.settings.alert_webhook_url
    down = {"webhook": {"alert_webhook_url": f"http://127.0.0.1:{free_port()}/hook"}}.get(
        dead, {"alert_smtp_relay": f"127.0.0.1:{free_port()}"}
    )
    lab_world.zone.remove(f"_smtp._tls.{d}")
    opened = _with(lab, **down).check_domain(d)
    assert [(e.event, e.kind) for e in opened] == [("opened", "delegation-broken")]

    def alive_got() -> int:
        return len(lab.sink.hooks) if dead == "mail" else len(lab.sink.mails)

    def dead_got() -> int:
        return len(lab.sink.mails) if dead == "mail" else len(lab.sink.hooks)

    assert alive_got() == 1 and dead_got() == 0
    for _ in range(3):  # checks well within renotify_interval: the live channel stays quiet
        lab.advance(minutes=1)
        assert _with(lab, **down).check_domain(d) == []
    assert alive_got() == 1 and dead_got() == 0
    with lab.app.service.sessions() as db:
        assert outbox.undelivered(db, d) == [(dead, "opened", "delegation-broken")]
    lab.advance(minutes=1)
    assert _with(lab, alert_smtp_relay=relay, alert_webhook_url=hook).retry_deliveries() == 1
    assert alive_got() == 1 and dead_got() == 1  # the missed "opened", once, to it alone
    if dead == "webhook":
        assert lab.sink.events() == [("opened", "delegation-broken", f"_smtp._tls.{d}")]
    else:
        assert "_smtp._tls" in _mail_events(lab.sink)[0][0]
    with lab.app.service.sessions() as db:
        assert outbox.undelivered(db, d) == []
    lab_world.zone.add(f"_smtp._tls.{d}", "CNAME", f"{d}.tlsrpt.{ZONE}.")


def test_a_resolve_a_channel_missed_is_sent_again(lab: Lab, lab_world: World) -> None:
    """Issue 14 #2: the "resolved" the webhook missed reaches it later (its incident would
    stay open for ever otherwise)."""
    d = lab.domains[1]
    hook = lab.monitor.settings.alert_webhook_url
    lab_world.zone.remove(f"_smtp._tls.{d}")
    assert lab.monitor.check_domain(d)
    lab.sink.clear()
    lab_world.zone.add(f"_smtp._tls.{d}", "CNAME", f"{d}.tlsrpt.{ZONE}.")
    down = _with(lab, alert_webhook_url=f"http://127.0.0.1:{free_port()}/hook")
    assert [e.event for e in down.check_domain(d)] == ["resolved"]
    assert lab.sink.hooks == [] and len(lab.sink.mails) == 1
    lab.advance(hours=1)
    assert _with(lab, alert_webhook_url=hook).retry_deliveries() == 1
    assert lab.sink.events() == [("resolved", "delegation-broken", f"_smtp._tls.{d}")]
    assert len(lab.sink.mails) == 1  # mail had it: not again
    lab.advance(hours=1)
    assert lab.monitor.check_domain(d) == [] and len(lab.sink.hooks) == 1


def test_undelivered_events_are_retried_on_their_own_bounded_backoff(
    lab: Lab, lab_world: World
) -> None:
    """An event the webhook refused is tried again by the retry pass, without any check
    of its domain: after 1, 2, 4 ... minutes, never more than an hour apart, never early;
    once the receiver answers, it gets the event once (and mail never again)."""
    d = lab.domains[1]
    lab.sink.refuse = 1000
    lab_world.zone.remove(f"_smtp._tls.{d}")
    opened = lab.monitor.check_domain(d)
    lab_world.zone.add(f"_smtp._tls.{d}", "CNAME", f"{d}.tlsrpt.{ZONE}.")
    assert [(e.event, e.kind) for e in opened] == [("opened", "delegation-broken")]
    assert lab.sink.posts == 1 and lab.sink.hooks == [] and len(lab.sink.mails) == 1
    checks = lab.monitor.checks_run
    for wait in (1, 2, 4, 8, 16, 32, 60, 60, 60):  # minutes: doubling, bounded at an hour
        lab.advance(minutes=wait, seconds=-1)
        posts = lab.sink.posts
        assert lab.monitor.retry_deliveries() == 0 and lab.sink.posts == posts  # not yet
        lab.advance(seconds=1)
        assert lab.monitor.retry_deliveries() == 0 and lab.sink.posts == posts + 1
    lab.sink.refuse = 0
    lab.advance(hours=1)
    assert lab.monitor.retry_deliveries() == 1
    assert lab.sink.events() == [("opened", "delegation-broken", f"_smtp._tls.{d}")]
    assert lab.monitor.retry_deliveries() == 0 and len(lab.sink.hooks) == 1  # once
    assert len(lab.sink.mails) == 1 and lab.monitor.checks_run == checks  # no check ran
    with lab.app.service.sessions() as db:
        assert outbox.undelivered(db, d) == []


def test_new_events_queue_behind_a_channels_backlog(lab: Lab, lab_world: World) -> None:
    """A channel that missed "opened" gets the later "resolved" after it, never before: the
    check queues the new event behind the backlog, and the retry pass sends both in order."""
    d = lab.domains[1]
    hook = lab.monitor.settings.alert_webhook_url
    lab_world.zone.remove(f"_smtp._tls.{d}")
    down = _with(lab, alert_webhook_url=f"http://127.0.0.1:{free_port()}/hook")
    assert [e.event for e in down.check_domain(d)] == ["opened"]
    lab_world.zone.add(f"_smtp._tls.{d}", "CNAME", f"{d}.tlsrpt.{ZONE}.")
    lab.advance(seconds=10)
    up = _with(lab, alert_webhook_url=hook)
    assert [e.event for e in up.check_domain(d)] == ["resolved"]
    assert lab.sink.posts == 0 and len(lab.sink.mails) == 2  # mail has both already
    with lab.app.service.sessions() as db:
        assert [e for _, e, _ in outbox.undelivered(db, d)] == ["opened", "resolved"]
    lab.advance(minutes=1)
    assert up.retry_deliveries() == 2
    subject = f"_smtp._tls.{d}"
    assert lab.sink.events() == [
        ("opened", "delegation-broken", subject),
        ("resolved", "delegation-broken", subject),
    ]
    assert lab.sink.posts == 1


def test_new_mx_alerts_then_auto_refresh_adds_it(lab: Lab, lab_world: World) -> None:
    d = lab.domains[0]
    lab_world.zone.add(d, "MX", f"30 new.{d}.")
    lab_world.zone.add(f"new.{d}", "A", lab_world.smtp_ip("good"))
    events = lab.monitor.check_domain(d)
    assert [(e.event, e.kind, e.subject, e.severity) for e in events] == [
        ("opened", "mx-not-covered", f"new.{d}", "warning")  # testing mode: a warning
    ]
    svc = lab.app.service
    svc.settings = replace(svc.settings, mx_auto_refresh=True)
    monitor = Monitor(svc, lab.monitor.notifier)
    events = monitor.check_domain(d)
    assert ("resolved", "mx-not-covered", f"new.{d}") in kinds(events)
    policy = svc.get_domain(None, d)["policy"]
    assert f"new.{d}" in policy["mx"] and policy["version"] == 2
    admin = svc.authenticate(lab.app.admin_token)
    assert admin is not None
    assert svc.history(admin, d)[0]["author"] is None  # mtasts itself made the change


def test_enforce_makes_an_uncovered_mx_critical(lab: Lab, lab_world: World) -> None:
    d = lab.domains[1]
    with lab.app.client() as c:
        assert c.put(f"/api/v1/domains/{d}/policy", json={"mode": "enforce"}).status_code == 200
    lab_world.zone.add(d, "MX", f"40 extra.{d}.")
    lab_world.zone.add(f"extra.{d}", "A", lab_world.smtp_ip("good"))
    events = lab.monitor.check_domain(d)
    assert [(e.kind, e.severity) for e in events] == [("mx-not-covered", "critical")]


def test_monitoring_never_connects_to_refused_addresses(lab: Lab, lab_world: World) -> None:
    """A tenant points an MX and its policy host at loopback addresses outside the
    allowed networks: the monitor alerts, without a connection and without echoing."""
    d = lab.domains[1]
    secret = "secret-internal-host"
    https_port = lab.app.service.settings.https_port
    with (
        Trap(TRAP_IP, lab_world.smtp_port, replies=[f"220 {secret} ESMTP"]) as smtp_trap,
        Trap(TRAP_IP, https_port, replies=[f"HTTP/1.0 200 {secret}"]) as https_trap,
    ):
        lab_world.zone.set(f"mx2.{d}", "A", [TRAP_IP])
        lab_world.zone.remove(f"mta-sts.{d}")
        lab_world.zone.add(f"mta-sts.{d}", "A", TRAP_IP)
        events = lab.monitor.check_domain(d)
        assert smtp_trap.connections() == [] and https_trap.connections() == []
    opened = kinds(events)
    assert ("opened", "mx-tls-problem", f"mx2.{d}") in opened
    assert ("opened", "policy-not-served", d) in opened
    by_kind = {e.kind: e for e in events}
    assert "loopback" in by_kind["mx-tls-problem"].message
    assert "loopback" in by_kind["policy-not-served"].message
    mails = [email.message_from_bytes(m, policy=email.policy.default) for m in lab.sink.mails]
    bodies = " ".join(m.get_content() for m in mails)
    assert "loopback" in bodies and secret not in bodies


def test_certificate_expiry_steps_by_lifetime(lab: Lab) -> None:
    """A 90-day certificate: a warning under a third (30 days), critical under a tenth, again
    under a day."""
    d = lab.domains[0]
    mx_cert_end = lab.now[0] + timedelta(days=90)  # lab leaves live DEFAULT_LEAF_DAYS
    lab.now[0] = mx_cert_end - timedelta(days=25)  # renewal (at 30 days) overdue
    first = lab.monitor.check_domain(d)
    step1 = {(e.event, e.kind, e.subject, e.severity) for e in first}
    assert ("opened", "mx-certificate-expiring", f"mx1.{d}", "warning") in step1
    assert ("opened", "certificate-expiring", f"mta-sts.{d}", "warning") in step1
    lab.now[0] = mx_cert_end - timedelta(days=6)
    second = {(e.event, e.kind, e.severity) for e in lab.monitor.check_domain(d)}
    assert ("escalated", "mx-certificate-expiring", "critical") in second
    lab.now[0] = mx_cert_end - timedelta(hours=12)
    third = {(e.event, e.kind) for e in lab.monitor.check_domain(d)}
    assert ("escalated", "mx-certificate-expiring") in third
    assert lab.monitor.check_domain(d) == []  # same step: quiet until renotify


def _report(domain: str, org: str, rid: str, start: datetime, ok: int, failed: int) -> bytes:
    return json.dumps(
        {
            "organization-name": org,
            "date-range": {
                "start-datetime": start.strftime("%Y-%m-%dT00:00:00Z"),
                "end-datetime": start.strftime("%Y-%m-%dT23:59:59Z"),
            },
            "contact-info": "tls@sender.example",
            "report-id": rid,
            "policies": [
                {
                    "policy": {"policy-type": "sts", "policy-domain": domain, "mx-host": ["x"]},
                    "summary": {
                        "total-successful-session-count": ok,
                        "total-failure-session-count": failed,
                    },
                    "failure-details": [
                        {
                            "result-type": "certificate-expired",
                            "receiving-mx-hostname": f"mx1.{domain}",
                            "failed-session-count": failed,
                        }
                    ]
                    if failed
                    else [],
                }
            ],
        }
    ).encode()


def test_report_failure_rate_and_silent_senders(lab: Lab) -> None:
    d = lab.domains[1]
    ingest = ReportIngestor(lab.app.service.sessions)
    today = lab.now[0]
    ingest.ingest_payload(_report(d, "Big Mail", "b1", today, 90, 10), route=Route.FILE)
    for days_ago in (9, 8, 7, 6, 5):
        start = today - timedelta(days=days_ago)
        ingest.ingest_payload(
            _report(d, "Quiet Mail", f"q{days_ago}", start, 5, 0), route=Route.FILE
        )
    events = {(e.kind, e.subject): e for e in lab.monitor.check_domain(d)}
    failures = events[("tlsrpt-failures", d)]
    assert "10 of 100 sessions failed" in failures.message
    assert "certificate expired" in failures.message and "Renew" in failures.fix
    assert ("sender-silent", "Quiet Mail") in events
    assert ("sender-silent", "Big Mail") not in events


def test_run_due_checks_the_due_domains_together(lab: Lab, lab_world: World) -> None:
    svc = lab.app.service
    svc.settings = replace(svc.settings, monitor_interval=3600)
    monitor = Monitor(svc, lab.monitor.notifier)
    assert monitor.run_due() == []  # schedules; nothing due yet
    for d in lab.domains:
        lab_world.zone.remove(f"_smtp._tls.{d}")
    lab.advance(minutes=61)
    events = monitor.run_due()
    assert monitor.checks_run == len(lab.domains)
    assert {(e.domain, e.kind, e.subject) for e in events} == {
        (d, "delegation-broken", f"_smtp._tls.{d}") for d in lab.domains
    }
    assert monitor.run_due() == [] and monitor.checks_run == len(lab.domains)  # not due
    with svc.sessions() as db:
        from mtasts.store.models import DomainCheck

        checks = db.query(DomainCheck).all()
    assert {c.claimed_by for c in checks} == {monitor.holder}
    assert all(c.last_result and not c.last_result["delegation_ok"] for c in checks)
    for d in lab.domains:
        lab_world.zone.add(f"_smtp._tls.{d}", "CNAME", f"{d}.tlsrpt.{ZONE}.")


def test_each_check_runs_once_per_cluster(lab: Lab) -> None:
    svc = lab.app.service
    svc.settings = replace(svc.settings, monitor_interval=3600)
    a, b = Monitor(svc, holder="node-a"), Monitor(svc, holder="node-b")
    early = a.claim_due()  # schedules the first checks within the interval
    lab.advance(minutes=61)  # past every first check time
    results: dict[str, list[str]] = {}

    def claim(m: Monitor) -> None:
        results[m.holder] = m.claim_due()

    threads = [threading.Thread(target=claim, args=(m,)) for m in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = early + results["node-a"] + results["node-b"]
    assert sorted(won) == sorted(lab.domains)  # each due domain once, by one node
    assert a.claim_due() == [] and b.claim_due() == []  # next time is an interval away


@pytest.mark.system
def test_claims_once_across_processes_on_postgresql(
    postgres_url: str, tmp_path: Path, lab_world: World
) -> None:
    """Two services (as two `mtasts serve` processes) on one PostgreSQL, racing threads."""
    from mtasts.web.serve import open_service

    settings = lab_settings(tmp_path, lab_world, database_url=postgres_url, monitor_interval=3600)
    a, b = open_service(settings), open_service(settings)
    try:
        user = a.authenticate(a.create_token("ops@example.org"))
        assert user is not None
        names = [customer(lab_world) for _ in range(6)]
        for d in names:
            delegate(lab_world, d, claim=a.add_domain(user, d))
            a.verify(user, d)
        now = [datetime.now(UTC)]
        a.clock = b.clock = lambda: now[0]
        monitors = [Monitor(svc, holder=f"node-{i}") for i, svc in enumerate((a, b, a, b))]
        won: list[str] = monitors[0].claim_due()  # schedules the first checks
        now[0] += timedelta(minutes=61)
        lock = threading.Lock()

        def claim(m: Monitor) -> None:
            got = m.claim_due()
            with lock:
                won.extend(got)

        threads = [threading.Thread(target=claim, args=(m,)) for m in monitors]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(won) == sorted(names)
    finally:
        a.close()
        b.close()


def test_retiring_a_domain_closes_its_alerts(lab: Lab, lab_world: World) -> None:
    d = lab.domains[1]
    lab_world.zone.remove(f"_smtp._tls.{d}")
    assert lab.monitor.check_domain(d)
    with lab.app.client() as c:
        assert c.get(f"/api/v1/domains/{d}/alerts").json()
        assert c.delete(f"/api/v1/domains/{d}").status_code == 202
        assert c.get(f"/api/v1/domains/{d}/alerts").json() == []
    assert lab.monitor.check_domain(d) == []  # retiring: no longer monitored
    lab_world.zone.add(f"_smtp._tls.{d}", "CNAME", f"{d}.tlsrpt.{ZONE}.")


def test_alert_mail_headers_subject_and_hosted_fix(lab: Lab, lab_world: World) -> None:
    """Issue 14 #3, #4, #5: Date and Message-ID; a short subject without URLs, folded
    without an empty first line; a hosted domain is told to restore its CNAME (never to
    publish a TXT record); the resolved notice says first that it is fixed."""
    d = lab.domains[0]
    lab_world.zone.remove(f"_mta-sts.{d}")
    events = {e.kind: e for e in lab.monitor.check_domain(d)}
    restore = f"_mta-sts.{d}. 3600 IN CNAME {d}.policy.{ZONE}."
    assert restore in events["policy-not-served"].fix
    assert "TXT" not in events["policy-not-served"].fix
    ids = set()
    for raw in lab.sink.mails:
        m = email.message_from_bytes(raw, policy=email.policy.default)
        assert m["Date"] is not None and m["Date"].datetime is not None  # RFC 5322 §3.6.1
        assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", str(m["Message-ID"]))  # §3.6.4
        ids.add(str(m["Message-ID"]))
        header = re.search(rb"^Subject:(.*(?:\r?\n[ \t].*)*)", raw, re.MULTILINE)
        assert header and header[1].split(b"\n")[0].strip()  # no empty first line
        subject = str(m["Subject"])
        assert subject.startswith("[mtasts ") and d in subject
        assert len(subject) <= 130 and "http" not in subject and "://" not in subject
        assert subject.endswith(("…",)) or not subject.endswith((" ", "-"))
    assert len(ids) == len(lab.sink.mails) == len(events)
    lab.sink.clear()
    lab_world.zone.add(f"_mta-sts.{d}", "CNAME", f"{d}.policy.{ZONE}.")
    assert {e.event for e in lab.monitor.check_domain(d)} == {"resolved"}
    for subject, first_line in _mail_events(lab.sink):
        assert subject.startswith("[mtasts resolved] ") and "fixed" in subject
        assert first_line.startswith("Fixed: ")
    bodies = [
        email.message_from_bytes(m, policy=email.policy.default).get_content()
        for m in lab.sink.mails
    ]
    assert all("The problem was:" in b and "How to fix it" not in b for b in bodies)


def test_webhook_signs_a_timestamp_and_a_delivery_id(lab: Lab, lab_world: World) -> None:
    d = lab.domains[1]
    lab_world.zone.remove(f"_smtp._tls.{d}")
    lab.monitor.check_domain(d)
    [hook] = lab.sink.hooks
    assert re.fullmatch(r"[0-9a-f]{32}", hook["delivery_id"])
    assert abs(hook["timestamp"] - datetime.now(UTC).timestamp()) < 3600
    assert hook["events"][0]["id"]
    body = lab.monitor.notifier.webhook_body([])
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    now = datetime.now(UTC)
    assert verify_webhook(SECRET, body, sig, now) is not None
    assert verify_webhook(SECRET, body, sig, now + timedelta(minutes=10)) is None  # stale
    assert verify_webhook(SECRET, body, sig, now, seen=lambda _id: True) is None  # replay
    assert verify_webhook(SECRET, body + b" ", sig, now) is None  # forged
    lab_world.zone.add(f"_smtp._tls.{d}", "CNAME", f"{d}.tlsrpt.{ZONE}.")


def _check_codes(lab: Lab, domain: str, now: datetime) -> list[str]:
    """The finding codes of `mtasts check` (the operator's, unrestricted) at ``now``."""
    s = lab.app.service.settings
    options = CheckOptions(
        ca_file=s.ca_file, timeout=5.0, https_port=s.https_port, smtp_port=s.smtp_port
    )
    checker = Checker(lab.app.service.resolver(), options, clock=lambda: now)
    return [f.code for f in asyncio.run(checker.check(domain)).findings]


@pytest.mark.parametrize("leaf_lifetime", [timedelta(hours=12)])
def test_a_short_lived_certificate_is_judged_by_its_lifetime(lab: Lab) -> None:
    """Issue 14 #6: a 12-hour certificate of the TLS front (Caddy's internal CA) is healthy
    on its first check; past the renewal window it warns the operator (alert_email), not
    the owner, in hours; then critical."""
    d = lab.domains[0]
    assert lab.monitor.check_domain(d) == []  # 11 hours of 12 left: fine
    issued = lab.now[0] - timedelta(hours=1)
    # `mtasts check` applies the same rule to its warnings
    assert "policy-certificate-expiring" not in _check_codes(lab, d, lab.now[0])
    lab.now[0] = issued + timedelta(hours=8, minutes=59)  # 3 hours left: renewal overdue
    assert "policy-certificate-expiring" in _check_codes(lab, d, lab.now[0])
    [warn] = lab.monitor.check_domain(d)
    assert (warn.event, warn.kind, warn.subject, warn.severity) == (
        "opened",
        "certificate-expiring",
        f"mta-sts.{d}",
        "warning",
    )
    assert "expires in 3 hours" in warn.message and "in 0 day" not in warn.message
    assert "lifetime" in warn.message and "renew" in warn.message
    [mail] = [email.message_from_bytes(m, policy=email.policy.default) for m in lab.sink.mails]
    assert mail["To"] == "noc@example.net"  # the operator's TLS front: not the owner
    lab.now[0] = issued + timedelta(hours=11, minutes=30)  # under a tenth left
    [worse] = lab.monitor.check_domain(d)
    assert (worse.event, worse.severity) == ("escalated", "critical")
    assert "renewal is failing" in worse.message


def test_metrics_count_checks_alerts_and_deliveries(lab: Lab, lab_world: World) -> None:
    d = lab.domains[1]
    lab_world.zone.remove(f"_smtp._tls.{d}")
    monitor = _with(
        lab, alert_webhook_url=f"http://127.0.0.1:{free_port()}/hook", monitor_interval=3600
    )
    assert monitor.run_due() == []  # schedules the first checks
    lab.advance(hours=1)
    monitor.run_due()
    monitor.refresh_alert_metrics()
    text = "\n".join(monitor.metrics_lines())
    assert 'mtasts_checks_total{outcome="alerting"} 1' in text
    assert 'mtasts_checks_total{outcome="ok"} 1' in text
    assert "mtasts_check_duration_seconds_count 2" in text
    assert 'mtasts_alerts_open{kind="delegation-broken",severity="critical"} 1' in text
    assert 'mtasts_alert_deliveries_total{channel="mail",result="ok"} 1' in text
    assert 'mtasts_alert_deliveries_total{channel="webhook",result="failed"} 1' in text
    lab_world.zone.add(f"_smtp._tls.{d}", "CNAME", f"{d}.tlsrpt.{ZONE}.")


def test_an_interval_below_the_tick_is_honoured(lab: Lab) -> None:
    """Issue 14 #7: monitor_interval 1 s with a tick of 10 minutes: the loop wakes at the
    next due check, not at the next tick (real clock; polled with a generous deadline)."""
    svc = lab.app.service
    svc.clock = lambda: datetime.now(UTC)
    monitor = _with(lab, monitor_interval=1, monitor_tick=600)
    stop = threading.Event()
    loop = threading.Thread(target=monitor.run_forever, args=(stop, 4))
    loop.start()
    wanted = 3 * len(lab.domains)  # each domain three times: two waits below the tick
    try:
        deadline = time.monotonic() + 120
        while monitor.checks_run < wanted and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        loop.join()
    assert monitor.checks_run >= wanted


def test_the_monitor_task_ends_only_after_its_loop(lab: Lab, lab_world: World) -> None:
    """`mtasts serve` closes the store as soon as the monitor's task has ended: the task
    waits for the loop's thread to end (an alert being delivered finishes first), or a
    connection the loop still held would outlive its pool (seen as a ResourceWarning)."""
    lab.app.service.clock = lambda: datetime.now(UTC)
    lab_world.zone.remove(f"_mta-sts.{lab.domains[0]}")
    monitor = _with(lab, monitor_interval=1, monitor_tick=600)
    lab.sink.answering.clear()  # the webhook holds the alert it receives

    async def scenario() -> bool:
        task = asyncio.create_task(monitor.run())
        try:
            assert await asyncio.to_thread(lab.sink.arrived.wait, 120), "no alert came"
            task.cancel()
            await asyncio.sleep(0)  # the task takes its cancellation, up to its first wait
            stopping = not task.done()
        finally:
            lab.sink.answering.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return stopping

    assert asyncio.run(scenario())  # still stopping while the delivery was held
    assert "mtasts-monitor" not in [t.name for t in threading.enumerate()]
    assert lab.sink.hooks  # the held delivery was completed, not cut off


def _set_owner_language(lab: Lab, language: str | None) -> None:
    """The owner's own choice (users.language), as the dashboard's switch stores it."""
    from sqlalchemy import select

    from mtasts.store.models import User

    with lab.app.service.sessions.begin() as db:
        owner = db.scalar(select(User).where(User.email == "admin@localhost"))
        assert owner is not None
        owner.language = language


def _parsed(raw: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_alerts_speak_the_owners_language(lab: Lab, lab_world: World) -> None:
    """Issue 13: alert mail (subject, body, the resolved notice) in the owner's language,
    RFC 5322/2045/2047 valid; the same codes, and webhook keys, as in English."""
    d = lab.domains[0]
    lab_world.zone.remove(f"_mta-sts.{d}")
    english = lab.monitor.check_domain(d)
    english_mail = _parsed(lab.sink.mails[0])
    assert str(english_mail["Subject"]).startswith("[mtasts critical] ")
    english_hooks = [e for h in lab.sink.hooks for e in h["events"]]
    lab_world.zone.add(f"_mta-sts.{d}", "CNAME", f"{d}.policy.{ZONE}.")
    assert {e.event for e in lab.monitor.check_domain(d)} == {"resolved"}
    lab.sink.clear()

    _set_owner_language(lab, "es")
    lab.advance(hours=1)
    lab_world.zone.remove(f"_mta-sts.{d}")
    spanish = lab.monitor.check_domain(d)
    assert [(e.event, e.kind, e.subject, e.severity) for e in spanish] == [
        (e.event, e.kind, e.subject, e.severity) for e in english
    ]
    assert {e.language for e in spanish} == {"es"}
    restore = f"_mta-sts.{d}. 3600 IN CNAME {d}.policy.{ZONE}."
    by_kind = {e.kind: e for e in spanish}
    assert by_kind["delegation-broken"].message == f"_mta-sts.{d} no tiene registro CNAME."
    assert by_kind["delegation-broken"].fix == f"Publique: {restore}"
    assert by_kind["policy-not-served"].message.startswith("Los remitentes ven NONE: ")
    for raw in lab.sink.mails:
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert head.isascii()  # RFC 5322 §2.2: header fields are US-ASCII
        assert all(len(line) <= 78 for line in head.split(b"\r\n"))  # §2.1.1
        assert b"Subject: =?utf-8?" in head  # RFC 2047 encoded words
        m = _parsed(raw)
        assert m.get_content_type() == "text/plain" and m.get_content_charset() == "utf-8"
        assert m["Content-Transfer-Encoding"] == "quoted-printable"  # 7-bit clean
        assert str(m["Subject"]).startswith((f"[mtasts crítica] {d}: ", f"[mtasts aviso] {d}: "))
        body = m.get_content()
        assert "Cómo solucionarlo:" in body and f"Dominio: {d}" in body
        assert "How to fix it" not in body and "Domain:" not in body
    subjects = {str(_parsed(raw)["Subject"]) for raw in lab.sink.mails}
    assert f"[mtasts crítica] {d}: el registro de delegación _mta-sts.{d} está roto" in subjects
    spanish_hooks = [e for h in lab.sink.hooks for e in h["events"]]
    assert [sorted(e) for e in spanish_hooks] == [sorted(e) for e in english_hooks]
    assert [(e["event"], e["kind"], e["severity"]) for e in spanish_hooks] == [
        (e["event"], e["kind"], e["severity"]) for e in english_hooks
    ]
    assert {e["message"] for e in spanish_hooks} == {e.message for e in spanish}
    lab.sink.clear()

    # the relay is down when the problem is gone: the missed notice stays Spanish
    relay = lab.monitor.settings.alert_smtp_relay
    lab_world.zone.add(f"_mta-sts.{d}", "CNAME", f"{d}.policy.{ZONE}.")
    down = _with(lab, alert_smtp_relay=f"127.0.0.1:{free_port()}")
    assert {e.event for e in down.check_domain(d)} == {"resolved"}
    assert lab.sink.mails == []
    lab.advance(minutes=5)
    assert _with(lab, alert_smtp_relay=relay).retry_deliveries() == len(spanish)  # the pass
    assert len(lab.sink.mails) == len(spanish)
    for subject, first_line in _mail_events(lab.sink):
        assert subject.startswith(f"[mtasts resuelta] {d}: resuelto: ")
        assert first_line.startswith("Resuelto: ")
    assert all("El problema era:" in _parsed(raw).get_content() for raw in lab.sink.mails)


def test_operator_alerts_speak_alert_language(lab: Lab) -> None:
    """The certificate of a hosted mta-sts.<d> is the operator's (alert_email only), told
    in alert_language; the owner's MX certificate alert in the owner's (no choice: English)."""
    d = lab.domains[0]
    monitor = _with(lab, alert_language="es")
    lab.now[0] += timedelta(days=90) - timedelta(days=25)  # the renewal window has passed
    events = {e.kind: e for e in monitor.check_domain(d)}
    front, mx = events["certificate-expiring"], events["mx-certificate-expiring"]
    assert (front.language, front.recipients) == ("es", ())
    assert front.message.startswith(
        f"El certificado de mta-sts.{d} (el servidor de la política alojada) caduca dentro de "
    )
    assert "ya debería haberse renovado" in front.message
    assert front.fix.startswith(f"mta-sts.{d} lo sirve el frontal TLS de este servicio")
    assert mx.language == "en"
    assert mx.message.startswith(f"The certificate of mx1.{d} (an MX) expires in ")
    subjects = {str(_parsed(raw)["Subject"]) for raw in lab.sink.mails}
    assert f"[mtasts aviso] {d}: hay que renovar el certificado de mta-sts.{d}" in subjects
    assert f"[mtasts warning] {d}: certificate of MX mx1.{d} needs renewal" in subjects
