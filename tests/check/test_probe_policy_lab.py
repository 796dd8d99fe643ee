"""Checks a tenant triggers run under a ProbePolicy: against the lab, with trap listeners
on loopback addresses outside the allowed networks that must never see a connection,
counting listeners for the fan-out cap, scripted servers whose words must not be echoed,
and a DNS server that rebinds a name after its first answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from tests.lab import HTTPS_IP, DnsServer, World, Zone
from tests.lab.httpsserver import Site
from tests.lab.trap import LAB_NETWORKS, TRAP_IP, Trap
from typer.testing import CliRunner

from mtasts import i18n
from mtasts.check.checker import Checker, CheckOptions
from mtasts.check.findings import Finding, Severity, StsFetchResult
from mtasts.check.result import CheckResult
from mtasts.cli import app
from mtasts.net.addresses import ProbePolicy
from mtasts.net.dns import Resolver
from mtasts.protocol.policy import Mode, Policy

pytestmark = pytest.mark.lab

POLICY = ProbePolicy.from_cidrs(LAB_NETWORKS)
SECRET = "secret-internal-host"
COUNTER_IPS = [f"127.0.0.{n}" for n in range(91, 97)]  # inside LAB_NETWORKS
BUSY = ["554 5.3.2 busy"]  # a quick failure: one connection per probe


def checker(
    world: World, policy: ProbePolicy | None = POLICY, nameserver: str | None = None
) -> Checker:
    options = CheckOptions(
        ca_file=world.ca_file,
        https_port=world.https_port,
        smtp_port=world.smtp_port,
        timeout=20.0,  # generous: load
        probe_policy=policy,
    )
    return Checker(Resolver([nameserver or world.nameserver]), options)


def check(world: World, domain: str, **kw: object) -> CheckResult:
    return asyncio.run(checker(world, **kw).check(domain))  # type: ignore[arg-type]


def guard(world: World, domain: str, mx: tuple[str, ...], **kw: object) -> CheckResult:
    """What guarded enforce runs: the proposed policy against the live MX set."""
    policy = Policy("STSv1", Mode.ENFORCE, 86400, mx)
    return asyncio.run(checker(world, **kw).check_policy(domain, policy))  # type: ignore[arg-type]


def by_code(result: CheckResult, code: str) -> list[Finding]:
    return [f for f in result.findings if f.code == code]


@pytest.fixture(scope="module")
def smtp_trap(lab_world: World) -> Iterator[Trap]:
    """Port 25 (the lab's SMTP port) of an address no tenant may have probed; it would
    greet with a banner worth hiding."""
    with Trap(TRAP_IP, lab_world.smtp_port, replies=[f"554 {SECRET} ESMTP Exim 4.96"]) as t:
        yield t


@pytest.fixture(scope="module")
def https_trap(lab_world: World) -> Iterator[Trap]:
    with Trap(TRAP_IP, lab_world.https_port) as t:
        yield t


@pytest.fixture(scope="module")
def counters(lab_world: World) -> Iterator[list[Trap]]:
    """Allowed SMTP listeners that count connections and refuse at once."""
    traps = [Trap(ip, lab_world.smtp_port, replies=BUSY).start() for ip in COUNTER_IPS]
    try:
        yield traps
    finally:
        for t in traps:
            t.stop()


def test_an_mx_outside_the_allowed_networks_is_never_connected(
    lab_world: World, smtp_trap: Trap
) -> None:
    d = lab_world.add_domain("trap-mx.probe.test").name
    lab_world.zone.set(f"mx1.{d}", "A", [TRAP_IP])
    for result in (guard(lab_world, d, (f"mx1.{d}",)), check(lab_world, d)):
        found = by_code(result, "address-not-allowed")
        assert [f.subject for f in found] == [f"mx1.{d}"]
        assert found[0].severity is Severity.ERROR
        assert f"{TRAP_IP} (a loopback address)" in found[0].message
        assert not result.ok
        host = result.to_dict()["mx_hosts"][0]
        assert host["addresses"] == [
            {
                "ip": TRAP_IP,
                "error_code": "address-not-allowed",
                "error": f"{TRAP_IP} is a loopback address",
            }
        ]
    assert smtp_trap.connections() == []


def test_address_not_allowed_says_the_address_class_in_spanish(
    lab_world: World, smtp_trap: Trap
) -> None:
    """Issue 13: the class of a refused address is said in the reader's language, in the
    message and in the fix; the JSON keeps its English `error` (a stable contract)."""
    d = lab_world.add_domain("trap-mx-es.probe.test").name
    lab_world.zone.set(f"mx1.{d}", "A", [TRAP_IP])
    with i18n.use("es"):
        result = guard(lab_world, d, (f"mx1.{d}",))
    [found] = by_code(result, "address-not-allowed")
    assert f"resuelve a {TRAP_IP} (una dirección de loopback). Este servicio" in found.message
    assert "a loopback address" not in found.message
    assert found.fix is not None
    assert "(quite los registros A/AAAA de sus direcciones de loopback)" in found.fix
    [address] = result.to_dict()["mx_hosts"][0]["addresses"]
    assert address["error"] == f"{TRAP_IP} is a loopback address"
    english = by_code(guard(lab_world, d, (f"mx1.{d}",)), "address-not-allowed")[0]
    assert f"resolves to {TRAP_IP} (a loopback address). This service" in english.message
    assert english.fix is not None and "(remove its loopback A/AAAA records)" in english.fix
    assert smtp_trap.connections() == []


def test_a_policy_host_outside_the_allowed_networks_is_never_connected(
    lab_world: World, https_trap: Trap
) -> None:
    d = lab_world.add_domain("trap-https.probe.test").name
    lab_world.zone.set(f"mta-sts.{d}", "A", [TRAP_IP])
    result = check(lab_world, d)
    assert result.sts_fetch_result is StsFetchResult.FETCH_ERROR
    found = by_code(result, "address-not-allowed")
    assert [f.subject for f in found] == [f"mta-sts.{d}"]
    assert "loopback" in found[0].message
    assert not [f for f in result.findings if f.code.startswith("policy-fetch-")]
    assert result.fetch is not None and result.fetch.address is None
    assert https_trap.connections() == []


def test_the_operators_cli_stays_unrestricted(
    lab_world: World, smtp_trap: Trap, https_trap: Trap
) -> None:
    """The same kind of domain through `mtasts check`: probed, with the full detail."""
    d = lab_world.add_domain("trap-cli.probe.test").name
    lab_world.zone.set(f"mx1.{d}", "A", [TRAP_IP])
    lab_world.zone.set(f"mta-sts.{d}", "A", [TRAP_IP])
    out = CliRunner().invoke(
        app, ["check", d, "--format", "json", "--timeout", "3", *lab_world.cli_args()]
    )
    assert out.exit_code == 1, out.stdout
    data = json.loads(out.stdout)[0]
    assert data["mx_hosts"][0]["addresses"][0]["banner"] == f"554 {SECRET} ESMTP Exim 4.96"
    assert "address-not-allowed" not in {f["code"] for f in data["findings"]}
    assert smtp_trap.connections() and https_trap.connections()


def test_only_allowed_addresses_of_an_mx_are_probed(lab_world: World, smtp_trap: Trap) -> None:
    d = lab_world.add_domain("trap-mixed.probe.test").name
    lab_world.zone.set(f"mx1.{d}", "A", [lab_world.smtp_ip("good"), TRAP_IP])
    result = guard(lab_world, d, (f"mx1.{d}",))
    (host,) = result.mx_hosts
    assert [p.address for p in host.probes] == [lab_world.smtp_ip("good")]
    assert host.probes[0].ok  # the allowed address was checked as usual
    assert [v.address for v in host.refused] == [TRAP_IP]
    assert not host.tls_ok  # one of its addresses could not be vouched for
    assert [f.subject for f in by_code(result, "address-not-allowed")] == [f"mx1.{d}"]
    assert smtp_trap.connections() == []


def test_the_mx_hosts_probed_per_check_are_capped(lab_world: World, counters: list[Trap]) -> None:
    d = lab_world.add_domain("many-mx.probe.test", mx_count=12).name
    for i in range(1, 13):
        lab_world.zone.set(f"mx{i}.{d}", "A", [COUNTER_IPS[0]])
    for t in counters:
        t.connections()  # forget what earlier tests did
    result = guard(lab_world, d, (f"*.{d}",))
    assert len(counters[0].connections()) == 10  # one connection per probed MX
    assert [h.skipped for h in result.mx_hosts] == [False] * 10 + [True] * 2
    (limit,) = by_code(result, "probe-limit")
    assert limit.subject == d and limit.severity is Severity.WARNING
    assert f"not checked: mx11.{d}, mx12.{d}" in limit.message
    skipped = result.to_dict()["mx_hosts"][10]
    assert skipped["probed"] is False and skipped["hostname"] == f"mx11.{d}"
    # the operator's check probes them all
    unrestricted = guard(lab_world, d, (f"*.{d}",), policy=None)
    assert len(unrestricted.mx_hosts) == 12 and all(h.probes for h in unrestricted.mx_hosts)
    assert len(counters[0].connections()) == 12


def test_the_addresses_probed_per_mx_are_capped(lab_world: World, counters: list[Trap]) -> None:
    d = lab_world.add_domain("many-addresses.probe.test").name
    lab_world.zone.set(f"mx1.{d}", "A", COUNTER_IPS)
    if lab_world.ipv6:  # the good SMTP server listens on ::1 too
        lab_world.zone.set(f"mx1.{d}", "AAAA", ["::1"])
    for t in counters:
        t.connections()  # forget what earlier tests did
    result = guard(lab_world, d, (f"mx1.{d}",))
    seen = {t.host for t in counters if t.connections()}
    (host,) = result.mx_hosts
    if lab_world.ipv6:  # IPv6 is among the four checked although listed last
        assert len(seen) == 3 and "::1" in {p.address for p in host.probes}
    else:
        assert len(seen) == 4
    assert {p.address for p in host.probes} - {"::1"} == seen
    assert set(host.unprobed) == set(COUNTER_IPS) - seen
    (limit,) = by_code(result, "probe-limit")
    assert limit.subject == f"mx1.{d}"
    assert all(ip in limit.message for ip in host.unprobed)


SCRIPTS = {
    "greeting": ([f"554 5.3.2 {SECRET} ESMTP Exim 4.96 go away"], "greeting code 554"),
    "ehlo": (
        [f"220 {SECRET} ESMTP Exim 4.96", f"502 5.5.1 {SECRET} wants HELO"],
        "EHLO answer code 502",
    ),
    "starttls": (
        [
            f"220 {SECRET} ESMTP Exim 4.96",
            f"250-{SECRET} Hello\n250 STARTTLS",
            f"454 4.7.0 {SECRET} TLS unavailable",
        ],
        "STARTTLS answer code 454",
    ),
}


@pytest.mark.parametrize("stage", list(SCRIPTS))
def test_server_words_are_not_echoed(lab_world: World, stage: str) -> None:
    replies, summary = SCRIPTS[stage]
    ip = f"127.0.0.{97 + list(SCRIPTS).index(stage)}"
    d = lab_world.add_domain(f"words-{stage}.probe.test").name
    lab_world.zone.set(f"mx1.{d}", "A", [ip])
    with Trap(ip, lab_world.smtp_port, replies=replies) as server:
        for result in (guard(lab_world, d, (f"mx1.{d}",)), check(lab_world, d)):
            text = json.dumps(result.to_dict())
            assert SECRET not in text
            assert "Exim" not in text
            assert any(summary in f.message for f in result.findings), result.findings
        unrestricted = guard(lab_world, d, (f"mx1.{d}",), policy=None)
        assert SECRET in json.dumps(unrestricted.to_dict())  # the script did run
        assert len(server.connections()) == 3  # one per check: the refusal is quick


@pytest.mark.parametrize(
    "site",
    [
        Site(status=302, location=f"https://{SECRET}/admin"),
        Site(status=500, body=f"{SECRET} stack trace".encode(), content_type="text/html"),
        Site(body=b"version: STSv1\r\n", content_type=f'text/html; x="{SECRET}"'),
        Site(body=b"version: STSv1\r\n", content_type=f"{SECRET}/x y"),
    ],
    ids=["redirect", "status", "content-type", "odd-content-type"],
)
def test_policy_host_words_are_not_echoed(lab_world: World, site: Site) -> None:
    name = f"https-words-{site.status}-{len(site.content_type or '')}.probe.test"
    d = lab_world.add_domain(name, https=site)
    result = check(lab_world, d.name)
    assert result.sts_fetch_result is StsFetchResult.FETCH_ERROR
    assert SECRET not in json.dumps(result.to_dict())
    assert [f.code for f in result.findings if f.code.startswith("policy-fetch-")]
    raw = check(lab_world, d.name, policy=None)
    assert SECRET in json.dumps(raw.to_dict())


class RebindingZone(Zone):
    """Answers the A query of each name in ``rebind`` once as published, then with
    ``then``: a name that looks harmless when checked and points inside afterwards."""

    def __init__(self, rebind: set[str], then: str) -> None:
        super().__init__()
        self.rebind = {dns.name.from_text(n) for n in rebind}
        self.then = then

    def resolve(
        self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType
    ) -> tuple[dns.rcode.Rcode, list[dns.rrset.RRset], list[dns.name.Name]]:
        out = super().resolve(qname, qtype)
        if qtype == dns.rdatatype.A and qname in self.rebind:
            self.rebind.discard(qname)
            self.set(qname.to_text(), "A", [self.then])
        return out


def test_probes_connect_to_the_address_checked_not_a_later_answer(
    lab_world: World, smtp_trap: Trap, https_trap: Trap
) -> None:
    published = lab_world.add_domain("rebind.probe.test")
    d = published.name
    zone = RebindingZone({f"mx1.{d}", f"mta-sts.{d}"}, TRAP_IP)
    assert published.record is not None and published.tlsrpt is not None
    zone.add(f"_mta-sts.{d}", "TXT", published.record)
    zone.add(f"_smtp._tls.{d}", "TXT", published.tlsrpt)
    zone.add(d, "MX", f"10 mx1.{d}.")
    zone.add(f"mx1.{d}", "A", lab_world.smtp_ip("good"))
    zone.add(f"mta-sts.{d}", "A", HTTPS_IP)
    with DnsServer(zone, host="127.0.0.1", port=0) as rebinding:
        result = check(lab_world, d, nameserver=rebinding.address)
        resolver = Resolver([rebinding.address])
        later = asyncio.run(resolver.addresses(f"mx1.{d}")).addresses
    assert later == (TRAP_IP,)  # the server did rebind after its first answer
    assert result.ok, result.findings
    assert result.fetch is not None and result.fetch.address == HTTPS_IP
    assert [p.address for h in result.mx_hosts for p in h.probes] == [lab_world.smtp_ip("good")]
    assert smtp_trap.connections() == [] and https_trap.connections() == []


def test_failures_are_summarised_without_local_error_text(lab_world: World) -> None:
    d = lab_world.add_domain("summaries.probe.test", mx_profile="down", https="down").name
    result = check(lab_world, d)
    text = json.dumps(result.to_dict())
    assert "Errno" not in text and "Connect call failed" not in text
    (unreachable,) = by_code(result, "mx-unreachable")
    assert "(connection refused)" in unreachable.message
    (fetch,) = by_code(result, "policy-fetch-connect-failed")
    assert "connection refused" in fetch.message
    raw = json.dumps(check(lab_world, d, policy=None).to_dict())
    assert "Errno" in raw or "Connect call failed" in raw or "connection attempts" in raw
