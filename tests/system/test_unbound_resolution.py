"""The built-in name server behind a real recursive resolver: Debian's unbound, resolving
from a fake root down referrals to the service zone, as on the internet (not through a stub
or forward zone that would skip the delegation and the NS address lookup).

    127.53.N.1:53   fake root "."            (knotd)   test. NS ns.tld.test
    127.53.N.2:53   "test." and "shop.test."  (knotd)   sts.ns.test NS ns1.sts.ns.test (glue)
    127.53.N.3:53   "sts.ns.test"            (mtasts' AuthoritativeDnsServer)
    127.53.N.10     unbound, asked by the test

Referrals carry no port, so the authoritative servers must listen on port 53: the test needs
root (or CAP_NET_BIND_SERVICE) and skips loudly otherwise. N is reserved for this run
(tests/lab/ports.py ``reserved_block``), so another run of the suite on the same machine
uses other addresses."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from mtasts.config import Settings
from mtasts.hosting.dnsserver import AuthoritativeDnsServer, ZoneAnswerer
from mtasts.hosting.snapshot import Hosted, Snapshot
from tests.lab.ports import reserved_block
from tests.lab.require import require

pytestmark = pytest.mark.system

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"
ZONE = "sts.ns.test"
CUSTOMER = "shop.test"


@dataclass(frozen=True)
class Addresses:
    """The scene's addresses in the reserved 127.53.N.0/24."""

    prefix: str

    @property
    def root(self) -> str:
        return f"{self.prefix}.1"

    @property
    def tld(self) -> str:
        return f"{self.prefix}.2"

    @property
    def mtasts(self) -> str:
        return f"{self.prefix}.3"

    @property
    def front(self) -> str:
        return f"{self.prefix}.9"

    @property
    def resolver(self) -> str:
        return f"{self.prefix}.10"


def root_zone(at: Addresses) -> str:
    return f"""$ORIGIN .
$TTL 3600
. SOA a.root.test. hostmaster.root.test. 1 3600 600 86400 60
. NS a.root.test.
test. NS ns.tld.test.
a.root.test. A {at.root}
ns.tld.test. A {at.tld}
"""


def tld_zone(at: Addresses) -> str:
    return f"""$ORIGIN test.
$TTL 3600
@ SOA ns.tld.test. hostmaster.tld.test. 1 3600 600 86400 60
@ NS ns.tld.test.
ns.tld A {at.tld}
a.root A {at.root}
sts.ns NS ns1.sts.ns.test.
ns1.sts.ns A {at.mtasts}
shop NS ns.shop.test.
ns.shop A {at.tld}
"""


def customer_zone(at: Addresses) -> str:
    return f"""$ORIGIN {CUSTOMER}.
$TTL 3600
@ SOA ns.shop.test. hostmaster.shop.test. 1 3600 600 86400 60
@ NS ns.shop.test.
ns A {at.tld}
_mta-sts CNAME {CUSTOMER}.policy.{ZONE}.
mta-sts CNAME policy-host.{ZONE}.
_smtp._tls CNAME {CUSTOMER}.tlsrpt.{ZONE}.
"""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_answers(
    host: str, port: int, name: str, log: Path, proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 120  # generous: a loaded machine
    query = dns.message.make_query(name, "SOA")
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if (
                dns.query.udp(query, host, port=port, timeout=0.3, ignore_unexpected=True).rcode()
                == dns.rcode.NOERROR
            ):
                return
        except (dns.exception.Timeout, OSError):
            pass
        assert time.monotonic() < deadline, f"{host}:{port} does not answer:\n{log.read_text()}"
        time.sleep(0.05)


def _knot(tmp: Path, host: str, zones: dict[str, str]) -> subprocess.Popen[bytes]:
    tmp.mkdir(parents=True)
    (tmp / "run").mkdir()
    for origin, text in zones.items():
        (tmp / f"{origin or 'root'}.zone").write_text(text)
    user = "    user: root:root\n" if os.geteuid() == 0 else ""
    zone_list = ""
    for origin in zones:
        path = tmp / f"{origin or 'root'}.zone"
        zone_list += f'  - domain: "{origin or "."}"\n    file: "{path}"\n'

    (tmp / "knot.conf").write_text(
        f"""server:
    rundir: "{tmp / "run"}"
{user}    listen: {host}@53
log:
  - target: stderr
    any: info
database:
    storage: "{tmp}"
template:
  - id: default
    storage: "{tmp}"
    zonefile-sync: -1
    journal-content: none
zone:
{zone_list}"""
    )
    log = tmp / "knotd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [KNOTD, "-c", str(tmp / "knot.conf")], stdout=out, stderr=subprocess.STDOUT
        )
    _wait_answers(host, 53, next(iter(zones)) or ".", log, proc)
    return proc


def _unbound(tmp: Path, at: Addresses) -> subprocess.Popen[bytes]:
    tmp.mkdir(parents=True)
    (tmp / "root.hints").write_text(f". 3600 NS a.root.test.\na.root.test. 3600 A {at.root}\n")
    (tmp / "unbound.conf").write_text(
        f"""server:
    interface: {at.resolver}
    port: 53
    access-control: 127.0.0.0/8 allow
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "{tmp}"
    pidfile: "{tmp / "unbound.pid"}"
    use-syslog: no
    logfile: ""
    verbosity: 1
    num-threads: 1
    so-reuseport: no
    do-ip6: no
    root-hints: "{tmp / "root.hints"}"
    do-not-query-localhost: no
    module-config: "iterator"
    qname-minimisation: yes
    minimal-responses: yes
    # RFC 6761 §6.2: unbound answers test. itself (NXDOMAIN) unless told otherwise
    local-zone: "test." nodefault
remote-control:
    control-enable: no
"""
    )
    log = tmp / "unbound.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [UNBOUND, "-d", "-c", str(tmp / "unbound.conf")], stdout=out, stderr=subprocess.STDOUT
        )
    _wait_answers(at.resolver, 53, ".", log, proc)
    return proc


@dataclass
class Lab:
    snapshot: Snapshot
    at: Addresses
    unbound_log: Path

    def resolve(self, name: str, rdtype: str = "TXT") -> dns.message.Message:
        """Ask unbound (RD set), as a sender's MTA would."""
        query = dns.message.make_query(name, rdtype)
        return dns.query.udp(query, self.at.resolver, port=53, timeout=10, ignore_unexpected=True)

    def authoritative(self, name: str, rdtype: str = "TXT") -> dns.message.Message:
        """Ask the built-in server directly (no cache)."""
        query = dns.message.make_query(name, rdtype)
        return dns.query.udp(query, self.at.mtasts, port=53, timeout=10, ignore_unexpected=True)


def hosted(domain: str, policy_id: str) -> Hosted:
    return Hosted(domain, "active", policy_id, b"version: STSv1\r\n", 0.0, None)


def _texts(response: dns.message.Message) -> list[str]:
    return [
        b"".join(rd.strings).decode()
        for rrset in response.answer
        if rrset.rdtype == dns.rdatatype.TXT
        for rd in rrset
    ]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    require(os.path.exists(KNOTD), "knotd (Debian package knot) is not installed")
    require(os.path.exists(UNBOUND), "unbound (Debian package unbound) is not installed")
    require(os.geteuid() == 0, "port 53 on loopback needs root (or CAP_NET_BIND_SERVICE)")
    with reserved_block(53) as prefix:
        yield from _scene(tmp_path, Addresses(prefix))


def _scene(tmp_path: Path, at: Addresses) -> Iterator[Lab]:
    snapshot = Snapshot({CUSTOMER: hosted(CUSTOMER, "20260101")}, generation=1)
    settings = Settings(
        zone=ZONE,
        dns_listen=(f"{at.mtasts}:53",),
        policy_host_addresses=(at.front,),  # nothing answers DNS there: the trap
        txt_delay=0.0,
    )
    server = AuthoritativeDnsServer(
        ZoneAnswerer(settings, lambda: snapshot),
        listen=settings.dns_listen_addresses(),
        own_thread=True,
    )
    procs: list[subprocess.Popen[bytes]] = []
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(server.start())
        procs.append(_knot(tmp_path / "root", at.root, {"": root_zone(at)}))
        zones = {"test": tld_zone(at), CUSTOMER: customer_zone(at)}
        procs.append(_knot(tmp_path / "tld", at.tld, zones))
        procs.append(_unbound(tmp_path / "unbound", at))
        yield Lab(snapshot, at, tmp_path / "unbound" / "unbound.log")
    finally:
        for proc in reversed(procs):
            _stop(proc)
        loop.run_until_complete(server.stop())
        loop.close()


def test_unbound_resolves_through_referrals_to_the_built_in_server(lab: Lab) -> None:
    # issue 16 #1: one lookup of ns1.<zone> used to move the resolver to the HTTPS
    # front's address (policy_host_addresses), where every later query timed out
    ns1 = lab.resolve(f"ns1.{ZONE}", "A")
    assert ns1.rcode() == dns.rcode.NOERROR
    assert [rd.address for rr in ns1.answer for rd in rr] == [lab.at.mtasts]

    # the sender's lookups: CNAMEs in the customer's zone chased into ours (with QNAME
    # minimisation unbound walks test.policy.Z first, an empty non-terminal)
    sts = lab.resolve(f"_mta-sts.{CUSTOMER}")
    assert sts.rcode() == dns.rcode.NOERROR, lab.unbound_log.read_text()
    assert [rr.rdtype for rr in sts.answer] == [dns.rdatatype.CNAME, dns.rdatatype.TXT]
    assert _texts(sts) == ["v=STSv1; id=20260101"]
    rpt = lab.resolve(f"_smtp._tls.{CUSTOMER}")
    assert _texts(rpt) == [f"v=TLSRPTv1; rua=https://policy-host.{ZONE}/tlsrpt/{CUSTOMER}"]
    host = lab.resolve(f"mta-sts.{CUSTOMER}", "A")
    assert [rd.address for rr in host.answer if rr.rdtype == dns.rdatatype.A for rd in rr] == [
        lab.at.front
    ]

    # negative answers: NXDOMAIN and NODATA, each with the SOA for negative caching
    missing = lab.resolve(f"_mta-sts.nobody.{ZONE}")
    assert missing.rcode() == dns.rcode.NXDOMAIN
    nodata = lab.resolve(f"policy.{ZONE}")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer

    # caching: a change of the zone shows at the server at once, and at the resolver
    # only when its cached answers expire (TXT TTL 300 s, negative TTL 60 s: the
    # assertions run within milliseconds of the first answers)
    lab.snapshot.put(hosted(CUSTOMER, "20260202"))
    lab.snapshot.put(hosted("late.test", "1"))
    assert _texts(lab.authoritative(f"{CUSTOMER}.policy.{ZONE}")) == ["v=STSv1; id=20260202"]
    assert _texts(lab.resolve(f"_mta-sts.{CUSTOMER}")) == ["v=STSv1; id=20260101"]
    cached = lab.resolve(f"{CUSTOMER}.policy.{ZONE}")
    assert cached.answer and 0 < cached.answer[0].ttl <= 300
    late = f"late.test.policy.{ZONE}"
    assert lab.authoritative(late).rcode() == dns.rcode.NOERROR
    assert lab.resolve(f"_mta-sts.nobody.{ZONE}").rcode() == dns.rcode.NXDOMAIN  # cached

    # after the NS lookup, names the resolver never saw still resolve (from ns1's own
    # address; before the fix they timed out at the HTTPS front)
    fresh = lab.resolve(late)
    assert _texts(fresh) == ["v=STSv1; id=1"], lab.unbound_log.read_text()
    assert not fresh.flags & dns.flags.AA  # through the resolver, not from us
