"""Domain claims between tenants (issue 10, items 1 and 2), through the REST API of a
running `mtasts serve` against the lab DNS: each claim proves control with its own
challenge, pending claims never block or reveal anything, unproven claims expire, a
proven claim takes a name over, and data belongs to the hosting, not to the name."""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from tests.hosting.serving import Running, lab_settings, running, wait_for
from tests.hosting.test_api_lab import challenge_of, customer, delegate, prove
from tests.lab import World
from tests.lab.ports import free_port
from tests.web.harness import Dashboard
from tests.web.test_dashboard_http import sign_in

from mtasts.hosting.tenants import ServiceError
from mtasts.protocol.policy import Mode, Policy, parse_policy
from mtasts.store.models import Alert, AuditEvent, Domain, TlsReport, User

pytestmark = pytest.mark.lab


@dataclass
class MailSink:
    """Alert mail as an SMTP relay receives it."""

    mails: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.mails.append(bytes(envelope.original_content))
        return "250 OK"


@dataclass
class Lab:
    app: Running
    mails: MailSink
    shift: Callable[[timedelta], None]

    def tenant(self, name: str) -> httpx.Client:
        return self.app.client(self.app.service.create_token(f"{name}@tenants.example"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, lab_world: World) -> Iterator[Lab]:
    sink = MailSink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    settings = lab_settings(
        tmp_path_factory.mktemp("claims"),
        lab_world,
        alert_smtp_relay=f"127.0.0.1:{smtp.port}",
        alert_smtp_starttls=False,
        claim_ttl=3 * 86400,
        monitor_interval=0,  # no background checks: the only mail is the one under test
    )
    try:
        with running(settings) as app:
            offset = [timedelta(0)]
            app.service.clock = lambda: datetime.now(UTC) + offset[0]

            def shift(by: timedelta) -> None:
                offset[0] += by

            yield Lab(app, sink, shift)
    finally:
        smtp.stop()


def served(lab: Lab, d: str) -> Policy:
    """The policy the policy host serves for ``d`` now: a local change is served at once
    (the app's sync never puts an older entry back, see test_sync.py)."""
    r = lab.app.policy(d)
    return parse_policy(r.content) if r.status_code == 200 else Policy("STSv1", Mode.NONE, 0, ())


def tls_report(domain: str, report_id: str) -> bytes:
    """A small RFC 8460 §4 report for ``domain``."""
    return json.dumps(
        {
            "organization-name": "Sender Inc.",
            "date-range": {
                "start-datetime": "2026-11-01T00:00:00Z",
                "end-datetime": "2026-11-01T23:59:59Z",
            },
            "contact-info": "tlsrpt@sender.example",
            "report-id": report_id,
            "policies": [
                {
                    "policy": {
                        "policy-type": "sts",
                        "policy-string": ["version: STSv1", "mode: testing"],
                        "policy-domain": domain,
                        "mx-host": [f"mx1.{domain}"],
                    },
                    "summary": {
                        "total-successful-session-count": 10,
                        "total-failure-session-count": 1,
                    },
                    "failure-details": [
                        {
                            "result-type": "certificate-expired",
                            "sending-mta-ip": "192.0.2.7",
                            "receiving-mx-hostname": f"mx1.{domain}",
                            "failed-session-count": 1,
                        }
                    ],
                }
            ],
        }
    ).encode()


def hold(lab: Lab, world: World, c: httpx.Client, d: str, secret: str) -> dict[str, Any]:
    """``c``'s tenant adds ``d``, proves it, forces enforce with ``secret`` as the reason,
    and gets a TLS report and a (closed) alert stored for it: data to keep private."""
    r = c.post("/api/v1/domains", json={"domain": d})
    assert r.status_code == 201, r.text
    claim: dict[str, Any] = r.json()
    delegate(world, d, claim=claim)
    assert c.post(f"/api/v1/domains/{d}/verify").json()["state"] == "active"
    forced = c.put(
        f"/api/v1/domains/{d}/policy",
        json={"mode": "enforce", "mx": ["mx9.elsewhere.example"], "force": True, "reason": secret},
    )
    assert forced.status_code == 200, forced.text
    posted = httpx.post(
        f"{lab.app.base}/tlsrpt/{d}",
        content=tls_report(d, f"{secret}-report"),
        headers={"Content-Type": "application/tlsrpt+json"},
    )
    assert posted.status_code == 201, posted.text
    now = lab.app.service.clock()
    with lab.app.service.sessions.begin() as db:
        db.add(
            Alert(
                domain=d,
                kind="policy-not-served",
                subject=d,
                severity="warning",
                level=0,
                state="closed",
                message=f"alert of {secret}",
                fix="",
                opened_at=now,
                notifications=1,
                closed_at=now,
            )
        )
    assert c.get(f"/api/v1/domains/{d}/reports").json()["total"] == 1
    assert c.get(f"/api/v1/domains/{d}/alerts", params={"include_closed": True}).json()
    return claim


def assert_starts_empty(c: httpx.Client, d: str, secret: str) -> None:
    """``c``'s hosting of ``d`` shows nothing of any earlier hosting."""
    audit = c.get(f"/api/v1/domains/{d}/audit").json()
    history = c.get(f"/api/v1/domains/{d}/policy/history").json()
    alerts = c.get(f"/api/v1/domains/{d}/alerts", params={"include_closed": True}).json()
    reports = c.get(f"/api/v1/domains/{d}/reports").json()
    summary = c.get(f"/api/v1/domains/{d}/reports/summary").json()
    everything = json.dumps([audit, history, alerts, reports, summary])
    assert secret not in everything
    assert "holder@" not in everything and "alice@" not in everything
    assert {e["action"] for e in audit} <= {"domain-added", "domain-activated", "policy-set"}
    assert all(v["reason"] != secret for v in history)
    assert alerts == [] and reports["total"] == 0 and summary["reports"] == 0


def test_two_tenants_claim_one_name_and_only_the_proven_one_verifies(
    lab: Lab, lab_world: World
) -> None:
    d = customer(lab_world)
    with lab.tenant("alice") as alice, lab.tenant("bob") as bob:
        a = alice.post("/api/v1/domains", json={"domain": d})
        b = bob.post("/api/v1/domains", json={"domain": d})
        assert a.status_code == b.status_code == 201, (a.text, b.text)  # both pending
        a_name, a_token = challenge_of(a.json())
        b_name, b_token = challenge_of(b.json())
        assert a_name == b_name == f"_mtasts-challenge.{d}" and a_token != b_token
        assert a_token not in b.text and "alice@" not in b.text
        # the real owner publishes the delegation and Bob's challenge only
        delegate(lab_world, d, claim=b.json())
        a_verify = alice.post(f"/api/v1/domains/{d}/verify")
        assert a_verify.status_code == 200
        body = a_verify.json()
        assert body["ok"] is False and body["state"] == "pending"
        failed = [x for x in body["records"] if not x["ok"]]
        assert [x["name"] for x in failed] == [a_name]  # only its own challenge is missing
        assert b_token not in a_verify.text and "bob@" not in a_verify.text
        assert bob.post(f"/api/v1/domains/{d}/verify").json()["state"] == "active"
        # Alice still has her pending claim and sees nothing of Bob's hosting
        mine = alice.get(f"/api/v1/domains/{d}").json()
        assert mine["state"] == "pending" and mine["served_id"] is None
        assert mine["owner"] == "alice@tenants.example"
        leaked = alice.get(f"/api/v1/domains/{d}").text + alice.get("/api/v1/domains").text
        assert "bob@" not in leaked and b_token not in leaked
        assert alice.get(f"/api/v1/domains/{d}/alerts").json() == []
        assert alice.get(f"/api/v1/domains/{d}/reports").json()["total"] == 0
        assert alice.get(f"/api/v1/domains/{d}/reports/summary").status_code == 409
        assert [e["action"] for e in alice.get(f"/api/v1/domains/{d}/audit").json()] == [
            "domain-added"
        ]
    assert served(lab, d).mode == "testing"  # at once: a sync never undoes a local change
    # Alice's claim, verified again with her challenge still missing, stays pending
    assert lab.app.service.reverify_pending() == 0


def test_a_pending_claim_never_blocks_the_real_owner(lab: Lab, lab_world: World) -> None:
    d = customer(lab_world)
    with lab.tenant("squatter") as squatter, lab.tenant("owner") as owner:
        assert squatter.post("/api/v1/domains", json={"domain": d}).status_code == 201
        r = owner.post("/api/v1/domains", json={"domain": d})
        assert r.status_code == 201, r.text
        assert "squatter" not in r.text
        delegate(lab_world, d, claim=r.json())
        assert owner.post(f"/api/v1/domains/{d}/verify").json()["state"] == "active"
        assert squatter.post(f"/api/v1/domains/{d}/verify").json()["state"] == "pending"
        # the owner re-adding its own name gets a clear answer about its own hosting
        again = owner.post("/api/v1/domains", json={"domain": d})
        assert again.status_code == 409 and "You already host" in again.json()["error"]["message"]
    assert lab.app.policy(d).status_code == 200


def test_the_admin_and_mtasts_itself_see_the_served_hosting_not_a_newer_claim(
    lab: Lab, lab_world: World
) -> None:
    d, e = customer(lab_world), customer(lab_world)
    with lab.tenant("server") as owner, lab.tenant("latecomer") as late:
        r = owner.post("/api/v1/domains", json={"domain": d})
        delegate(lab_world, d, claim=r.json())
        assert owner.post(f"/api/v1/domains/{d}/verify").json()["state"] == "active"
        assert late.post("/api/v1/domains", json={"domain": d}).status_code == 201
        assert owner.post("/api/v1/domains", json={"domain": e}).status_code == 201
        assert late.post("/api/v1/domains", json={"domain": e}).status_code == 201
    with lab.app.client() as admin:  # an admin without a claim of their own
        view = admin.get(f"/api/v1/domains/{d}").json()
        assert (view["owner"], view["state"]) == ("server@tenants.example", "active")
        # a name only claimed: the newest claim
        view = admin.get(f"/api/v1/domains/{e}").json()
        assert (view["owner"], view["state"]) == ("latecomer@tenants.example", "pending")
    service = lab.app.service  # mtasts itself (the monitor): the served hosting only
    assert service.get_domain(None, d)["owner"] == "server@tenants.example"
    assert service.served_name(None, d) == d
    with pytest.raises(ServiceError) as missing:
        service.get_domain(None, e)
    assert missing.value.status == 404 and missing.value.code == "domain-not-found"
    assert missing.value.message == f"{e} is not hosted here."


def test_unproven_claims_expire(lab: Lab, lab_world: World) -> None:
    d, e = customer(lab_world), customer(lab_world)
    with lab.tenant("slow") as slow:
        first = slow.post("/api/v1/domains", json={"domain": d}).json()
        assert slow.post("/api/v1/domains", json={"domain": e}).status_code == 201
        expires = datetime.fromisoformat(first["claim_expires_at"])
        assert timedelta(days=3) - timedelta(minutes=5) < expires - lab.app.service.clock()
        lab.shift(timedelta(days=3, seconds=1))
        try:
            # its own expired claim: a clear answer, then it is gone
            late = slow.post(f"/api/v1/domains/{e}/verify")
            assert late.status_code == 409 and late.json()["error"]["code"] == "claim-expired"
            assert lab.app.service.reverify_pending() == 0  # purges the other one
            with lab.app.service.sessions() as db:
                left = db.scalars(select(Domain.name).where(Domain.name.in_([d, e]))).all()
            assert left == []
            assert slow.get(f"/api/v1/domains/{d}").status_code == 404
            assert d not in [x["domain"] for x in slow.get("/api/v1/domains").json()]
            events = [(x["domain"], x["action"]) for x in slow.get("/api/v1/audit").json()]
            assert (d, "domain-claim-expired") in events and (e, "domain-claim-expired") in events
            # adding it again: a new claim with a new challenge
            fresh = slow.post("/api/v1/domains", json={"domain": d})
            assert fresh.status_code == 201
            assert challenge_of(fresh.json())[1] != challenge_of(first)[1]
            # the old challenge, published now, proves nothing
            delegate(lab_world, d, claim=first)
            assert slow.post(f"/api/v1/domains/{d}/verify").json()["state"] == "pending"
        finally:
            lab.shift(-timedelta(days=3, seconds=1))


def test_a_claim_expires_at_its_deadline_and_not_a_moment_before(
    lab: Lab, lab_world: World
) -> None:
    """``claim_ttl`` is the time to prove control: a claim is removed at its deadline
    exactly, by the periodic expiry and by its owner's own verification, never earlier."""
    d, e = customer(lab_world), customer(lab_world)
    service = lab.app.service
    clock = service.clock
    with lab.tenant("punctual") as c:
        first = c.post("/api/v1/domains", json={"domain": d}).json()
        second = c.post("/api/v1/domains", json={"domain": e}).json()
        d_deadline = datetime.fromisoformat(first["claim_expires_at"])
        e_deadline = datetime.fromisoformat(second["claim_expires_at"])
        assert d_deadline < e_deadline
        tick = timedelta(microseconds=1)
        try:
            service.clock = lambda: d_deadline - tick
            service.expire_claims()
            assert c.get(f"/api/v1/domains/{d}").json()["state"] == "pending"
            service.clock = lambda: d_deadline
            service.expire_claims()
            assert c.get(f"/api/v1/domains/{d}").status_code == 404
            assert c.get(f"/api/v1/domains/{e}").json()["state"] == "pending"
            service.clock = lambda: e_deadline - tick
            assert c.post(f"/api/v1/domains/{e}/verify").json()["state"] == "pending"
            service.clock = lambda: e_deadline
            late = c.post(f"/api/v1/domains/{e}/verify")
            assert late.status_code == 409 and late.json()["error"]["code"] == "claim-expired"
            assert c.get(f"/api/v1/domains/{e}").status_code == 404
        finally:
            service.clock = clock


def test_adding_ones_own_name_again_says_what_to_do_next(lab: Lab, lab_world: World) -> None:
    """A second add of one's own name answers 409 about that hosting, by its state."""
    d = customer(lab_world)
    with lab.tenant("twice") as c:
        claim = c.post("/api/v1/domains", json={"domain": d})
        assert claim.status_code == 201, claim.text
        pending = c.post("/api/v1/domains", json={"domain": d})
        assert pending.status_code == 409
        assert pending.json()["error"] == {
            "code": "domain-exists",
            "message": f"You already added {d}; publish its records (dns_records) and verify it.",
        }
        delegate(lab_world, d, claim=claim.json())
        assert c.post(f"/api/v1/domains/{d}/verify").json()["state"] == "active"
        active = c.post("/api/v1/domains", json={"domain": d})
        assert active.status_code == 409
        assert active.json()["error"] == {
            "code": "domain-exists",
            "message": f"You already host {d}.",
        }
        assert c.delete(f"/api/v1/domains/{d}").status_code == 202
        retiring = c.post("/api/v1/domains", json={"domain": d})
        assert retiring.status_code == 409
        assert retiring.json()["error"] == {
            "code": "domain-retiring",
            "message": f"{d} is being retired; add it again once it has been removed.",
        }


def test_an_expiring_claim_leaves_the_served_hosting_s_data_alone(
    lab: Lab, lab_world: World
) -> None:
    """Only the end of the *served* hosting deletes the name's reports and alerts: another
    tenant's claim of the name, expired or removed, touches nothing of it."""
    d = customer(lab_world)
    with lab.tenant("keeper") as keeper, lab.tenant("squatter2") as squatter:
        hold(lab, lab_world, keeper, d, "keeper-secret")
        assert squatter.post("/api/v1/domains", json={"domain": d}).status_code == 201
        lab.shift(timedelta(days=3, seconds=1))
        try:
            assert lab.app.service.expire_claims() >= 1
        finally:
            lab.shift(-timedelta(days=3, seconds=1))
        assert squatter.get(f"/api/v1/domains/{d}").status_code == 404
        assert squatter.post("/api/v1/domains", json={"domain": d}).status_code == 201
        assert squatter.delete(f"/api/v1/domains/{d}").status_code == 202
        assert squatter.get(f"/api/v1/domains/{d}").status_code == 404
        assert keeper.get(f"/api/v1/domains/{d}/reports").json()["total"] == 1
        closed = keeper.get(f"/api/v1/domains/{d}/alerts", params={"include_closed": True})
        assert [a["message"] for a in closed.json()] == ["alert of keeper-secret"]


def test_a_failed_challenge_lookup_is_told_apart_from_a_missing_challenge(
    lab: Lab, lab_world: World
) -> None:
    """A claim whose challenge lookup fails (SERVFAIL) stays pending, and says the lookup
    failed (try again), not that the record is missing (publish it)."""
    d = customer(lab_world)
    name = f"_mtasts-challenge.{d}"
    with lab.tenant("unlucky") as c:
        claim = c.post("/api/v1/domains", json={"domain": d}).json()
        delegate(lab_world, d, claim=claim)
        lab_world.dns.servfail(name)
        try:
            body = c.post(f"/api/v1/domains/{d}/verify").json()
        finally:
            lab_world.dns.heal(name)
        assert body["domain"] == d and body["state"] == "pending" and body["ok"] is False
        assert [x for x in body["records"] if not x["ok"]] == [
            {
                "name": name,
                "type": "TXT",
                "expected": challenge_of(claim)[1],
                "ok": False,
                "found": "lookup failed (SERVFAIL)",
                "problem": f"The TXT lookup of {name} failed; the domain's name servers did "
                "not answer properly.",
                "fix": "Make sure every authoritative name server of the domain answers, "
                "then verify again.",
            }
        ]
        assert c.post(f"/api/v1/domains/{d}/verify").json()["state"] == "active"


def test_proof_of_control_moves_a_name_and_tells_the_previous_holder(
    lab: Lab, lab_world: World
) -> None:
    d = customer(lab_world)
    secret = "holder-secret-reason"
    with lab.tenant("holder") as holder, lab.tenant("owner2") as owner:
        old = hold(lab, lab_world, holder, d, secret)
        assert served(lab, d).mode == "enforce"
        old_served = served(lab, d)
        claim = owner.post("/api/v1/domains", json={"domain": d})
        assert claim.status_code == 201, claim.text
        assert secret not in claim.text and "holder@" not in claim.text
        # unproven: the holder keeps the name
        assert owner.post(f"/api/v1/domains/{d}/verify").json()["state"] == "pending"
        assert served(lab, d) == old_served
        lab.mails.mails.clear()
        prove(lab_world, claim.json())  # next to the holder's old challenge
        moved = owner.post(f"/api/v1/domains/{d}/verify").json()
        assert moved["ok"] is True and moved["state"] == "active", moved
        assert moved["summary"] == (
            "All four records are in place. "
            "An earlier hosting of this name by another account has ended."
        )
        assert "holder@" not in json.dumps(moved)
        # a new hosting: the owner's policy is served, under a new id, from its own versions
        assert served(lab, d).mx == (f"mx1.{d}",)
        assert served(lab, d).mode == "testing"

        def view() -> dict[str, Any]:
            return dict(owner.get(f"/api/v1/domains/{d}").json())

        wait_for(lambda: view()["served_id"] == view()["policy"]["id"], 60, "served_id")
        assert view()["policy"]["id"] != old["policy"]["id"]
        history = owner.get(f"/api/v1/domains/{d}/policy/history").json()
        assert [v["author"] for v in history] == ["owner2@tenants.example"] * 2
        assert_starts_empty(owner, d, secret)
        # the previous holder lost it, and was told
        assert holder.get(f"/api/v1/domains/{d}").status_code == 404
        assert d not in [x["domain"] for x in holder.get("/api/v1/domains").json()]
        account = holder.get("/api/v1/audit").json()
        assert {"domain": d, "action": "domain-transferred"}.items() <= account[-1].items()
        # the events of the ended hosting are nobody's now: not in the holder's account log
        assert [e["action"] for e in account if e["domain"] == d] == ["domain-transferred"]
        (mail,) = [
            email.message_from_bytes(m, policy=email.policy.default) for m in lab.mails.mails
        ]
        assert mail["To"] == "holder@tenants.example"
        assert f"{d}: {d} is no longer hosted for your account" in str(mail["Subject"])
        assert "owner2" not in mail.as_string()
        dash = Dashboard(lab.app.service, lab.app.base, lab.app.admin_token)
        dash.user("holder@tenants.example")
        with closing(sign_in(dash, "holder@tenants.example")) as page:
            settings = page.get("/settings").text
            assert d in settings and "taken over by another account" in settings
        # the holder cannot take it back without publishing a new challenge of its own
        back = holder.post("/api/v1/domains", json={"domain": d})
        assert back.status_code == 201
        assert holder.post(f"/api/v1/domains/{d}/verify").json()["state"] == "pending"
        assert owner.get(f"/api/v1/domains/{d}").json()["state"] == "active"
    with lab.app.service.sessions() as db:
        details = db.scalars(select(AuditEvent.detail).where(AuditEvent.domain == d)).all()
        assert secret not in json.dumps(list(details))
        assert db.scalars(select(TlsReport.report_id).where(TlsReport.domain == d)).all() == []


def test_the_previous_holder_is_told_in_their_own_language(lab: Lab, lab_world: World) -> None:
    """Issue 13: the domain-transferred alert speaks the previous holder's language."""
    d = customer(lab_world)
    with lab.tenant("holder-es") as holder, lab.tenant("owner-es") as owner:
        hold(lab, lab_world, holder, d, "another-secret")
        with lab.app.service.sessions.begin() as db:
            user = db.scalar(select(User).where(User.email == "holder-es@tenants.example"))
            assert user is not None
            user.language = "es"
        claim = owner.post("/api/v1/domains", json={"domain": d})
        assert claim.status_code == 201, claim.text
        lab.mails.mails.clear()
        prove(lab_world, claim.json())
        assert owner.post(f"/api/v1/domains/{d}/verify").json()["state"] == "active"
    (mail,) = [email.message_from_bytes(m, policy=email.policy.default) for m in lab.mails.mails]
    assert mail["To"] == "holder-es@tenants.example"
    assert str(mail["Subject"]) == (f"[mtasts crítica] {d}: {d} ya no está alojado para su cuenta")
    body = mail.get_content()
    assert body.startswith(f"{d} ya no está alojado para su cuenta: otra cuenta ha demostrado")
    assert "Cómo solucionarlo:" in body and f"Si sigue controlando el DNS de {d}" in body


def test_a_name_added_again_after_removal_starts_empty(lab: Lab, lab_world: World) -> None:
    d = customer(lab_world)
    secret = "first-owner-secret"
    with lab.tenant("alice") as alice, lab.tenant("carol") as carol:
        hold(lab, lab_world, alice, d, secret)
        with lab.app.service.sessions() as db:
            first_id = db.scalar(select(Domain.id).where(Domain.name == d))
        assert alice.delete(f"/api/v1/domains/{d}").status_code == 202
        lab.shift(timedelta(days=400))
        try:
            assert lab.app.service.finish_retirements() >= 1
        finally:
            lab.shift(-timedelta(days=400))
        # the name's reports and alerts went with its hosting: nobody's to keep
        with lab.app.service.sessions() as db:
            assert db.scalars(select(TlsReport.id).where(TlsReport.domain == d)).all() == []
            assert db.scalars(select(Alert.id).where(Alert.domain == d)).all() == []
        assert lab.app.policy(d).status_code == 404
        r = carol.post("/api/v1/domains", json={"domain": d})
        assert r.status_code == 201, r.text
        assert carol.post(f"/api/v1/domains/{d}/verify").json()["state"] == "pending"
        prove(lab_world, r.json())
        assert carol.post(f"/api/v1/domains/{d}/verify").json()["state"] == "active"
        assert_starts_empty(carol, d, secret)
        with lab.app.service.sessions() as db:
            second_id = db.scalar(select(Domain.id).where(Domain.name == d))
        assert second_id != first_id  # no id of a removed hosting is handed out again
        # the same owner adding it again starts empty too
        assert alice.get(f"/api/v1/domains/{d}/audit").status_code == 404


def _without(text: str, *names: str) -> str:
    for n in names:
        text = text.replace(n, "NAME")
    return text


def test_errors_never_reveal_another_tenants_domains(lab: Lab, lab_world: World) -> None:
    active, pending, nowhere = customer(lab_world), customer(lab_world), customer(lab_world)
    secret = "victim-secret"
    with lab.tenant("victim") as victim, lab.tenant("prober") as prober:
        hold(lab, lab_world, victim, active, secret)
        claim = victim.post("/api/v1/domains", json={"domain": pending}).json()
        probes: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", "/api/v1/domains/{d}", None),
            ("POST", "/api/v1/domains/{d}/verify", None),
            ("GET", "/api/v1/domains/{d}/policy/history", None),
            ("GET", "/api/v1/domains/{d}/audit", None),
            ("GET", "/api/v1/domains/{d}/alerts", None),
            ("GET", "/api/v1/domains/{d}/reports", None),
            ("GET", "/api/v1/domains/{d}/reports/summary", None),
            ("GET", "/api/v1/domains/{d}/reports/1/raw", None),
            ("POST", "/api/v1/domains/{d}/refresh-mx", None),
            ("DELETE", "/api/v1/domains/{d}", None),
            ("PUT", "/api/v1/domains/{d}/policy", {"mode": "none"}),
            ("PUT", "/api/v1/domains/{d}/policy", {"mode": "enforce", "force": True}),
            ("PUT", "/api/v1/domains/{d}/policy", {"mode": "testing", "mx": ["1.2.3.4"]}),
            ("PUT", "/api/v1/domains/{d}/policy", {"mode": "bogus"}),
        ]
        for method, path, body in probes:
            answers = {}
            for d in (active, pending, nowhere):
                r = prober.request(method, path.format(d=d), json=body)
                assert r.status_code in (404, 409, 422), (method, path, r.status_code, r.text)
                assert secret not in r.text and "victim@" not in r.text
                assert challenge_of(claim)[1] not in r.text
                answers[d] = (r.status_code, _without(r.text, d))
            # a name hosted or claimed by someone else answers exactly as an unknown one
            assert answers[active] == answers[pending] == answers[nowhere], (method, path)
        # claiming them works as for any name (no 409 that says "hosted here")
        for d in (active, pending):
            r = prober.post("/api/v1/domains", json={"domain": d})
            assert r.status_code == 201, r.text
            assert secret not in r.text and "victim@" not in r.text
            assert r.json()["served_id"] is None
            # and only its own claim answers a second add
            again = prober.post("/api/v1/domains", json={"domain": d})
            assert again.status_code == 409 and "You already added" in again.text
        # its own claim of a name served for someone else shows none of that hosting
        for method, path, body in probes[:8]:
            r = prober.request(method, path.format(d=active), json=body)
            assert secret not in r.text and "victim@" not in r.text, (path, r.text)
        assert prober.get(f"/api/v1/domains/{active}/reports").json()["total"] == 0
        assert prober.get(f"/api/v1/domains/{active}/alerts?include_closed=true").json() == []
    # nor does the dashboard: domain list, domain page, reports page
    dash = Dashboard(lab.app.service, lab.app.base, lab.app.admin_token)
    dash.user("prober@tenants.example")
    with closing(sign_in(dash, "prober@tenants.example")) as page:
        listing = page.get("/")
        assert listing.status_code == 200
        row = re.search(rf'<tr data-domain="{re.escape(active)}">.*?</tr>', listing.text, re.S)
        assert row is not None
        # its own verification (its challenge is missing) and no reports: not the victim's
        assert "failing" in row[0] and "no sessions" in row[0] and "none yet" in row[0]
        domain_page = page.get(f"/domains/{active}")
        assert domain_page.status_code == 200
        assert "All four records are in place" not in domain_page.text  # the victim's check
        reports_page = page.get(f"/domains/{active}/reports")
        assert reports_page.status_code == 409
        for r in (listing, domain_page, reports_page):
            assert secret not in r.text and "victim@" not in r.text
            assert "mx9.elsewhere.example" not in r.text  # the victim's policy


def test_migration_keeps_hosted_domains_and_gives_pending_ones_a_challenge(
    tmp_path: Path,
) -> None:
    """0004 on a store with data (SQLite: the domains table is rebuilt; its dependants'
    rows must survive)."""
    from alembic import command
    from sqlalchemy import text

    from mtasts.store.db import alembic_config, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        cfg = alembic_config(engine)
        command.upgrade(cfg, "0003")
        now = datetime.now(UTC)
        with engine.begin() as c:
            c.execute(
                text(
                    "INSERT INTO users (id, email, is_admin, created_at) VALUES (1, 'o@x', 0, :t)"
                ),
                {"t": now},
            )
            for pk, (name, state) in enumerate(
                [("a.example", "active"), ("p.example", "pending")], 1
            ):
                c.execute(
                    text(
                        "INSERT INTO domains (id, name, owner_id, state, latest_version, "
                        "created_at) VALUES (:i, :n, 1, :s, 1, :t)"
                    ),
                    {"i": pk, "n": name, "s": state, "t": now},
                )
                c.execute(
                    text(
                        "INSERT INTO policy_versions (domain_id, number, policy_id, mode, mx, "
                        "max_age, reason, forced, created_at) "
                        "VALUES (:i, 1, 'p1', 'testing', '[]', 86400, '', 0, :t)"
                    ),
                    {"i": pk, "t": now},
                )
            c.execute(
                text(
                    "INSERT INTO domain_checks (domain_id, next_check_at, claimed_by) "
                    "VALUES (1, :t, '')"
                ),
                {"t": now},
            )
            c.execute(
                text(
                    "INSERT INTO audit_log (at, user_id, domain, action, detail) "
                    "VALUES (:t, 1, 'a.example', 'domain-added', '{}')"
                ),
                {"t": now},
            )
        command.upgrade(cfg, "head")
        with engine.begin() as c:
            assert c.execute(text("SELECT count(*) FROM policy_versions")).scalar() == 2
            assert c.execute(text("SELECT count(*) FROM domain_checks")).scalar() == 1
            rows = c.execute(
                text("SELECT name, state, challenge, claim_expires_at FROM domains ORDER BY id")
            ).all()
            assert [(r[0], r[1]) for r in rows] == [
                ("a.example", "active"),
                ("p.example", "pending"),
            ]
            assert all(len(r[2]) == 32 for r in rows) and rows[0][2] != rows[1][2]
            assert rows[0][3] is None and rows[1][3] is not None
            assert c.execute(text("SELECT domain_id FROM audit_log")).scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.system
def test_takeover_on_postgresql_and_one_served_hosting_per_name(
    postgres_url: str, lab_world: World, tmp_path: Path
) -> None:
    """The same rules on PostgreSQL, with two processes: the partial unique index allows
    one served hosting per name, and the other process follows a takeover."""
    from sqlalchemy.exc import IntegrityError

    from mtasts.web.serve import open_service

    settings = lab_settings(tmp_path, lab_world, database_url=postgres_url)
    a, b = open_service(settings), open_service(settings)
    try:
        first = a.authenticate(a.create_token("first@tenants.example"))
        second = a.authenticate(a.create_token("second@tenants.example"))
        assert first is not None and second is not None
        d = customer(lab_world)
        one = a.add_domain(first, d)
        two = a.add_domain(second, d)  # a pending claim never blocks
        delegate(lab_world, d, claim=one)
        assert a.verify(first, d)["state"] == "active"
        b.sync()
        assert b.snapshot.hosts[d].policy_id == one["policy"]["id"]
        # the store itself refuses a second served hosting of the name
        with pytest.raises(IntegrityError), a.sessions.begin() as db:
            claim = db.scalar(select(Domain).where(Domain.owner_id == second.id))
            assert claim is not None
            claim.state = "active"
        prove(lab_world, two)
        assert a.verify(second, d)["state"] == "active"
        assert b.sync() is True
        served = b.snapshot.hosts[d]
        assert served.policy_id == a.get_domain(second, d)["policy"]["id"]
        assert served.policy_id != one["policy"]["id"]
        with a.sessions() as db:
            hostings = db.execute(select(Domain.owner_id, Domain.state).where(Domain.name == d))
            assert list(hostings) == [(second.id, "active")]
    finally:
        a.close()
        b.close()
