"""The hosted flow through the REST API of a running `mtasts serve`, against the lab:
customer domains with MX records on the lab DNS, MX hosts on the lab SMTP servers."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from tests.hosting.serving import ZONE, Running, lab_settings, running
from tests.lab import World

from mtasts.hosting.tenants import HostingService
from mtasts.protocol.policy import parse_policy
from mtasts.store.models import User

_names = itertools.count(1)

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, lab_world: World) -> Iterator[Running]:
    settings = lab_settings(tmp_path_factory.mktemp("serve"), lab_world)
    with running(settings) as r:
        yield r


def customer(world: World, mx_profile: str = "good", mx_count: int = 1) -> str:
    """A customer domain with live MX records and nothing MTA-STS published yet."""
    name = f"c{next(_names):03d}.api.lab.test"
    world.add_domain(
        name, mx_profile=mx_profile, mx_count=mx_count, record=None, tlsrpt=None, policy=None
    )
    world.zone.remove(f"mta-sts.{name}")  # the owner will publish a CNAME there
    return name


def delegate(
    world: World, domain: str, *, skip: str = "", claim: dict[str, Any] | None = None
) -> None:
    """Publish the three CNAMEs as the owner would (all but ``skip``) and, given the claim
    (the answer of adding the domain), the claim's own challenge TXT."""
    records = {
        f"_mta-sts.{domain}": f"{domain}.policy.{ZONE}.",
        f"mta-sts.{domain}": f"policy-host.{ZONE}.",
        f"_smtp._tls.{domain}": f"{domain}.tlsrpt.{ZONE}.",
    }
    for name, target in records.items():
        if name != skip:
            world.zone.add(name, "CNAME", target)
    if claim is not None:
        prove(world, claim)


def challenge_of(claim: dict[str, Any]) -> tuple[str, str]:
    """(name, value) of the challenge TXT in a claim's ``dns_records``."""
    (record,) = [r for r in claim["dns_records"] if r["type"] == "TXT"]
    return record["name"], record["value"]


def prove(world: World, claim: dict[str, Any]) -> None:
    """Publish the claim's challenge TXT (next to any other values there)."""
    name, value = challenge_of(claim)
    world.zone.add(name, "TXT", value)


def claim_in_store(service: HostingService, domain: str, email: str) -> dict[str, Any]:
    """The claim of ``domain`` by ``email`` as the API shows it (for flows that added it
    through the dashboard)."""
    with service.sessions() as db:
        user = db.scalar(select(User).where(User.email == email))
        assert user is not None
        db.expunge(user)
    return service.get_domain(user, domain)


def hosted(app: Running, world: World, **kwargs: str | int) -> str:
    """A domain added, delegated and verified: served."""
    d = customer(world, **kwargs)  # type: ignore[arg-type]
    with app.client() as c:
        r = c.post("/api/v1/domains", json={"domain": d})
        assert r.status_code == 201
        delegate(world, d, claim=r.json())
        assert c.post(f"/api/v1/domains/{d}/verify").json()["ok"] is True
    return d


def test_add_domain_gives_records_and_a_testing_policy_from_live_mx(
    app: Running, lab_world: World
) -> None:
    d = customer(lab_world, mx_count=2)
    with app.client() as c:
        r = c.post("/api/v1/domains", json={"domain": d.upper() + "."})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["domain"] == d
    assert body["state"] == "pending"
    assert body["policy"]["mode"] == "testing"
    assert body["policy"]["mx"] == [f"mx1.{d}", f"mx2.{d}"]
    assert body["policy_text"].endswith("\r\n")
    records = {(x["name"], x["type"], x["value"]) for x in body["dns_records"]}
    _, challenge = challenge_of(body)
    assert records == {
        (f"_mta-sts.{d}", "CNAME", f"{d}.policy.{ZONE}"),
        (f"mta-sts.{d}", "CNAME", f"policy-host.{ZONE}"),
        (f"_smtp._tls.{d}", "CNAME", f"{d}.tlsrpt.{ZONE}"),
        (f"_mtasts-challenge.{d}", "TXT", challenge),
    }
    assert re.fullmatch(r"mtasts-claim=[a-z2-7]{32}", challenge)  # 160 random bits
    cnames = [x for x in body["dns_records"] if x["type"] == "CNAME"]
    assert not any("_" in x["value"] for x in cnames)  # no underscore targets
    assert body["claim_expires_at"]
    # no report receiver, MX or mailbox configured: no undeliverable mailto: (issue 16)
    assert body["tlsrpt_rua"] == [f"https://policy-host.{ZONE}/tlsrpt/{d}"]
    # pending: nothing served yet, no certificate
    assert app.policy(d).status_code == 404
    assert httpx.get(f"{app.base}/tls/ask", params={"domain": f"mta-sts.{d}"}).status_code == 404
    with app.client() as c:
        again = c.post("/api/v1/domains", json={"domain": d})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "domain-exists"


def test_verify_names_what_is_missing_then_activates(app: Running, lab_world: World) -> None:
    d = customer(lab_world)
    with app.client() as c:
        claim = c.post("/api/v1/domains", json={"domain": d}).json()
        first = c.post(f"/api/v1/domains/{d}/verify").json()
        assert first["ok"] is False and first["state"] == "pending"
        assert all(not x["ok"] and x["fix"].startswith("Publish:") for x in first["records"])
        assert len(first["records"]) == 4  # three CNAMEs and the claim's challenge
        delegate(lab_world, d, skip=f"mta-sts.{d}", claim=claim)
        lab_world.zone.add(f"mta-sts.{d}", "A", "192.0.2.1")  # an old A record in the way
        second = c.post(f"/api/v1/domains/{d}/verify").json()
        by_name = {x["name"]: x for x in second["records"]}
        assert second["ok"] is False
        assert by_name[f"_mta-sts.{d}"]["ok"] and by_name[f"_smtp._tls.{d}"]["ok"]
        wrong = by_name[f"mta-sts.{d}"]
        assert not wrong["ok"] and "A 192.0.2.1" in wrong["found"]
        assert f"mta-sts.{d}. 3600 IN CNAME policy-host.{ZONE}." in wrong["fix"]
        assert f"mta-sts.{d}" in second["summary"]
        lab_world.zone.remove(f"mta-sts.{d}")
        lab_world.zone.add(f"mta-sts.{d}", "CNAME", f"policy-host.{ZONE}.")
        third = c.post(f"/api/v1/domains/{d}/verify").json()
        assert third["ok"] is True and third["state"] == "active"
        assert c.get(f"/api/v1/domains/{d}").json()["state"] == "active"


def test_policy_host_serves_active_domains_only(app: Running, lab_world: World) -> None:
    d = hosted(app, lab_world)
    r = app.policy(d)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert b"\r\n" in r.content and b"\n" not in r.content.replace(b"\r\n", b"")
    policy = parse_policy(r.content)
    assert policy.mode == "testing" and policy.mx == (f"mx1.{d}",)
    head = app.policy(d, "HEAD")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(r.content)
    # any other path on a policy host, an unknown host, a POST: never the policy
    other = httpx.get(f"{app.base}/index.html", headers={"Host": f"mta-sts.{d}"})
    assert other.status_code == 404
    assert app.policy("unknown.example").status_code == 404
    post = httpx.post(f"{app.base}/.well-known/mta-sts.txt", headers={"Host": f"mta-sts.{d}"})
    assert post.status_code == 405
    # Host with port and upper case still matches (RFC 9110 §7.2; DNS names are case-blind)
    upper = httpx.get(
        f"{app.base}/.well-known/mta-sts.txt", headers={"Host": f"MTA-STS.{d.upper()}:443"}
    )
    assert upper.status_code == 200 and upper.content == r.content
    ask = httpx.get(f"{app.base}/tls/ask", params={"domain": f"mta-sts.{d}"})
    assert ask.status_code == 200
    assert httpx.get(f"{app.base}/tls/ask", params={"domain": d}).status_code == 404
    assert httpx.get(f"{app.base}/tls/ask", params={"domain": f"policy-host.{ZONE}"}).is_success


def test_enforce_with_good_mx_rotates_the_id(app: Running, lab_world: World) -> None:
    d = hosted(app, lab_world)
    with app.client() as c:
        before = c.get(f"/api/v1/domains/{d}").json()
        r = c.put(f"/api/v1/domains/{d}/policy", json={"mode": "enforce", "max_age": 1209600})
        assert r.status_code == 200, r.text
        after = r.json()
        history = c.get(f"/api/v1/domains/{d}/policy/history").json()
    assert after["policy"]["mode"] == "enforce" and after["policy"]["max_age"] == 1209600
    assert after["policy"]["id"] != before["policy"]["id"]
    assert after["served_id"] == after["policy"]["id"]
    assert [v["version"] for v in history] == [2, 1]
    assert history[0]["author"] == "admin@localhost" and history[0]["mode"] == "enforce"
    assert after["policy"]["author"] == "admin@localhost"  # the response says it too
    with app.client() as c:
        refreshed = c.post(f"/api/v1/domains/{d}/refresh-mx")
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["policy"]["author"] == "admin@localhost"
    served = parse_policy(app.policy(d).content)
    assert served.mode == "enforce" and served.max_age == 1209600


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        ("no-starttls", "no STARTTLS"),
        ("expired", "certificate expired"),
        ("tls11", "TLS < 1.2"),
        ("down", "connection refused"),
    ],
)
def test_enforce_is_refused_while_an_mx_would_fail(
    app: Running, lab_world: World, profile: str, reason: str
) -> None:
    if profile not in lab_world.smtp and profile != "down":
        pytest.skip(f"lab has no {profile} SMTP server")
    d = hosted(app, lab_world, mx_profile=profile)
    with app.client() as c:
        r = c.put(f"/api/v1/domains/{d}/policy", json={"mode": "enforce"})
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error["code"] == "enforce-refused"
        # every MX that would fail is named, with its reason and a fix
        assert f"mx1.{d} ({reason})" in error["message"]
        [failing] = error["failing_mx"]
        assert failing["host"] == f"mx1.{d}"
        assert [x["reason"] for x in failing["reasons"]] == [reason]
        assert all(x["fix"] for x in failing["reasons"])
        codes = {f["code"] for f in error["findings"]}
        assert "policy-cannot-enforce" in codes and failing["reasons"][0]["code"] in codes
        assert all(f["fix"] for f in error["findings"])
        # no fix points to findings "above" that the answer does not carry
        assert not any("above" in f["fix"] for f in error["findings"])
        cannot = next(f for f in error["findings"] if f["code"] == "policy-cannot-enforce")
        assert f"mx1.{d}" in cannot["fix"]
        # still testing, same version
        assert c.get(f"/api/v1/domains/{d}").json()["policy"]["version"] == 1
        assert parse_policy(app.policy(d).content).mode == "testing"
        no_reason = c.put(f"/api/v1/domains/{d}/policy", json={"mode": "enforce", "force": True})
        assert no_reason.status_code == 422
        forced = c.put(
            f"/api/v1/domains/{d}/policy",
            json={"mode": "enforce", "force": True, "reason": "moving MX tonight"},
        )
        assert forced.status_code == 200, forced.text
        assert forced.json()["policy"]["forced"] is True
        audit = c.get(f"/api/v1/domains/{d}/audit").json()
    forced_events = [e for e in audit if e["action"] == "policy-forced"]
    assert forced_events and forced_events[0]["detail"]["reason"] == "moving MX tonight"
    assert forced_events[0]["detail"]["forced_over"]
    assert parse_policy(app.policy(d).content).mode == "enforce"


def test_an_mx_outside_the_policy_blocks_enforce(app: Running, lab_world: World) -> None:
    d = hosted(app, lab_world, mx_count=2)
    with app.client() as c:
        r = c.put(f"/api/v1/domains/{d}/policy", json={"mode": "enforce", "mx": [f"mx1.{d}"]})
        assert r.status_code == 409
        findings = {f["code"]: f for f in r.json()["error"]["findings"]}
        assert f"Add mx2.{d} to the policy's mx list" in findings["mx-not-covered"]["fix"]
        ok = c.put(f"/api/v1/domains/{d}/policy", json={"mode": "enforce", "mx": [f"*.{d}"]})
        assert ok.status_code == 200, ok.text


def test_refresh_mx_follows_dns(app: Running, lab_world: World) -> None:
    d = hosted(app, lab_world)
    lab_world.zone.add(d, "MX", f"20 backup.{d}.")
    lab_world.zone.add(f"backup.{d}", "A", lab_world.smtp_ip("good"))
    with app.client() as c:
        r = c.post(f"/api/v1/domains/{d}/refresh-mx")
    assert r.status_code == 200, r.text
    assert r.json()["policy"]["mx"] == [f"mx1.{d}", f"backup.{d}"]
    assert r.json()["policy"]["version"] == 2
    assert parse_policy(app.policy(d).content).mx == (f"mx1.{d}", f"backup.{d}")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"mode": "enforce", "mx": ["192.0.2.1"]}, "IP address"),
        ({"mode": "testing", "mx": ["mx.*.example"]}, "left-most"),
        ({"mode": "testing", "mx": []}, "at least one"),
        ({"mode": "testing", "max_age": 40_000_000}, "31557600"),
        ({"mode": "testing", "max_age": 60}, "86400"),
        ({"mode": "strict"}, "mode"),
        ({"mx": ["a.example"]}, "mode"),
    ],
)
def test_invalid_policy_input_is_422_with_a_clear_message(
    app: Running, lab_world: World, body: dict[str, object], fragment: str
) -> None:
    d = hosted(app, lab_world)
    with app.client() as c:
        r = c.put(f"/api/v1/domains/{d}/policy", json=body)
    assert r.status_code == 422, r.text
    assert fragment in r.json()["error"]["message"]


def test_idn_mx_is_stored_as_a_label(app: Running, lab_world: World) -> None:
    d = hosted(app, lab_world)
    with app.client() as c:
        r = c.put(
            f"/api/v1/domains/{d}/policy", json={"mode": "testing", "mx": ["mx.bücher.example"]}
        )
    assert r.status_code == 200, r.text
    assert r.json()["policy"]["mx"] == ["mx.xn--bcher-kva.example"]


@pytest.mark.parametrize(
    ("domain", "status", "code"),
    [
        ("not a domain", 422, "domain-invalid"),
        ("localhost", 422, "domain-invalid"),
        ("xn--zz.example", 422, "domain-invalid"),
        (f"x.{ZONE}", 422, "domain-in-service-zone"),
        ("nothing-here.api.lab.test", 422, "domain-nxdomain"),
    ],
)
def test_invalid_domains_are_refused(app: Running, domain: str, status: int, code: str) -> None:
    with app.client() as c:
        r = c.post("/api/v1/domains", json={"domain": domain})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["message"]


def test_users_see_only_their_domains(app: Running, lab_world: World) -> None:
    alice = app.service.create_token("alice@example.org")
    bob = app.service.create_token("bob@example.org")
    d = customer(lab_world)
    with app.client(alice) as a, app.client(bob) as b, app.client() as admin:
        assert a.post("/api/v1/domains", json={"domain": d}).status_code == 201
        assert d in [x["domain"] for x in a.get("/api/v1/domains").json()]
        assert d not in [x["domain"] for x in b.get("/api/v1/domains").json()]
        for method, path in [
            ("GET", f"/api/v1/domains/{d}"),
            ("POST", f"/api/v1/domains/{d}/verify"),
            ("GET", f"/api/v1/domains/{d}/policy/history"),
            ("DELETE", f"/api/v1/domains/{d}"),
        ]:
            assert b.request(method, path).status_code == 404
        assert b.put(f"/api/v1/domains/{d}/policy", json={"mode": "none"}).status_code == 404
        assert admin.get(f"/api/v1/domains/{d}").json()["owner"] == "alice@example.org"
    assert httpx.get(f"{app.base}/api/v1/domains").status_code == 401
    bad = httpx.get(f"{app.base}/api/v1/domains", headers={"Authorization": "Bearer mtasts_nope"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"


def test_retirement_serves_none_then_removes(app: Running, lab_world: World) -> None:
    d = hosted(app, lab_world)
    with app.client() as c:
        c.put(f"/api/v1/domains/{d}/policy", json={"mode": "enforce", "max_age": 2_000_000})
        old_id = c.get(f"/api/v1/domains/{d}").json()["policy"]["id"]
        r = c.delete(f"/api/v1/domains/{d}")
        assert r.status_code == 202, r.text
        assert r.json()["state"] == "retiring"
        current = c.get(f"/api/v1/domains/{d}").json()
        assert c.delete(f"/api/v1/domains/{d}").status_code == 409
        assert c.put(f"/api/v1/domains/{d}/policy", json={"mode": "enforce"}).status_code == 409
    # RFC 8461 §8.3: mode none under a new id, for as long as the longest max_age served
    assert current["policy"]["mode"] == "none" and current["policy"]["id"] != old_id
    served = parse_policy(app.policy(d).content)
    assert served.mode == "none"
    assert app.service.finish_retirements() == 0  # not yet
    assert app.policy(d).status_code == 200
    svc = app.service
    real_clock = svc.clock
    svc.clock = lambda: real_clock() + timedelta(seconds=2_000_001)
    try:
        assert svc.finish_retirements() >= 1
    finally:
        svc.clock = real_clock
    assert app.policy(d).status_code == 404
    with app.client() as c:
        assert c.get(f"/api/v1/domains/{d}").status_code == 404
        # and the name can be hosted again
        assert c.post("/api/v1/domains", json={"domain": d}).status_code == 201


def test_pending_domain_is_removed_at_once(app: Running, lab_world: World) -> None:
    d = customer(lab_world)
    with app.client() as c:
        c.post("/api/v1/domains", json={"domain": d})
        r = c.delete(f"/api/v1/domains/{d}")
        assert r.status_code == 202 and r.json()["state"] == "removed"
        assert c.get(f"/api/v1/domains/{d}").status_code == 404


def test_pending_domains_are_reverified_in_the_background(app: Running, lab_world: World) -> None:
    d = customer(lab_world)
    with app.client() as c:
        claim = c.post("/api/v1/domains", json={"domain": d}).json()
    delegate(lab_world, d, claim=claim)
    assert app.service.reverify_pending() >= 1
    assert app.policy(d).status_code == 200


def test_openapi_health_and_metrics(app: Running, tmp_path: Path) -> None:
    spec = httpx.get(f"{app.base}/api/openapi.json").json()
    assert "/api/v1/domains/{domain}/policy" in spec["paths"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    home = httpx.get(f"{app.base}/")
    assert home.status_code == 303 and home.headers["location"].startswith("/login")
    docs = httpx.get(f"{app.base}/api/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', docs.text)
    assert len(assets) == 3  # script, stylesheet, icon: all vendored
    for asset in assets:
        assert httpx.get(f"{app.base}{asset}").status_code == 200, asset
    health = httpx.get(f"{app.base}/healthz").json()
    assert health["status"] == "ok" and health["store"] == "up"
    metrics = httpx.get(f"{app.base}/metrics").text
    assert "mtasts_hosted_domains " in metrics
    assert 'mtasts_policy_requests_total{result="served"}' in metrics
    # the monitor's (issue 14): checks, their duration, open alerts, deliveries
    assert 'mtasts_checks_total{outcome="ok"} ' in metrics
    assert "# TYPE mtasts_check_duration_seconds histogram" in metrics
    assert "# TYPE mtasts_alerts_open gauge" in metrics
    assert "# TYPE mtasts_alert_deliveries_total counter" in metrics
    synced = re.search(r"^mtasts_store_last_sync_timestamp_seconds (\S+)$", metrics, re.M)
    assert synced and float(synced[1]) > 1.7e9


def test_an_idn_domain_is_hosted_under_its_a_label(app: Running, lab_world: World) -> None:
    import idna

    ulabel = f"bücher{next(_names)}.api.lab.test"
    alabel = idna.encode(ulabel, uts46=True).decode()
    lab_world.add_domain(alabel, record=None, tlsrpt=None, policy=None)
    with app.client() as c:
        r = c.post("/api/v1/domains", json={"domain": ulabel})
        assert r.status_code == 201, r.text
        assert r.json()["domain"] == alabel.lower() and alabel.startswith("xn--")
        assert c.get(f"/api/v1/domains/{ulabel}").json()["domain"] == alabel
    records = {x["name"] for x in r.json()["dns_records"]}
    assert f"_mta-sts.{alabel}" in records  # what DNS needs: the A-label


def test_an_unchanged_policy_makes_no_new_version(app: Running, lab_world: World) -> None:
    d = hosted(app, lab_world)
    with app.client() as c:
        before = c.get(f"/api/v1/domains/{d}").json()["policy"]
        same = c.put(
            f"/api/v1/domains/{d}/policy",
            json={"mode": before["mode"], "mx": before["mx"][::-1], "max_age": before["max_age"]},
        )
        assert same.status_code == 200 and same.json()["changed"] is False
        assert same.json()["policy"]["id"] == before["id"]
        refreshed = c.post(f"/api/v1/domains/{d}/refresh-mx")
        assert refreshed.status_code == 200 and refreshed.json()["changed"] is False
        history = c.get(f"/api/v1/domains/{d}/policy/history").json()
        assert [v["version"] for v in history] == [before["version"]]
        changed = c.put(f"/api/v1/domains/{d}/policy", json={"mode": "none"})
        assert changed.json()["changed"] is True and changed.json()["policy"]["id"] != before["id"]
