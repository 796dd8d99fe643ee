"""The RFC 2136 publisher against a real primary: knotd (Knot DNS) on 127.0.0.1, its zone,
key and ACL in a temporary directory, queried afterwards with our Resolver."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.xfr
import dns.zone
import pytest

from mtasts.config import Settings
from mtasts.hosting.dnspublish import PublishError, Rfc2136Publisher
from mtasts.hosting.snapshot import Hosted, Snapshot
from mtasts.net.dns import DnsStatus, Resolver
from tests.lab import free_port
from tests.lab.require import require

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
ZONE = "sts.knot.test"
KEY_NAME = "mtasts-publisher."
XFR_ONLY_KEY = "transfer-only."
DELAY = 30.0

pytestmark = pytest.mark.system


@dataclass
class Knot:
    port: int
    secret: str
    xfr_only_secret: str
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def settings(self, **kw: object) -> Settings:
        base = Settings(
            zone=ZONE,
            policy_host_addresses=("192.0.2.80", "2001:db8::80"),
            txt_delay=DELAY,
            update_server=self.address,
            tsig_name=KEY_NAME,
            tsig_secret=self.secret,
            tsig_algorithm="hmac-sha256",
        )
        return replace(base, **kw)  # type: ignore[arg-type]

    def resolver(self) -> Resolver:
        return Resolver([self.address], timeout=3.0)

    def axfr(self) -> dns.zone.Zone:
        keyring = dns.tsigkeyring.from_text({KEY_NAME: ("hmac-sha256", self.secret)})
        zone = dns.zone.Zone(ZONE + ".", relativize=False)
        query, _ = dns.xfr.make_query(
            zone, serial=None, keyring=keyring, keyname=dns.name.from_text(KEY_NAME)
        )
        dns.query.inbound_xfr("127.0.0.1", zone, query=query, port=self.port, timeout=5)
        return zone


def _zonefile(extra: str) -> str:
    return (
        f"$ORIGIN {ZONE}.\n$TTL 3600\n"
        f"@ SOA ns1.{ZONE}. hostmaster.{ZONE}. 1 3600 600 1209600 60\n"
        f"@ NS ns1.{ZONE}.\n"
        "ns1 A 127.0.0.1\n"
        'www TXT "operator record, not ours"\n' + extra
    )


def _start_knot(tmp: Path, extra_records: str = "") -> tuple[subprocess.Popen[bytes], Knot]:
    for d in ("run", "db", "zones"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    (tmp / "zones" / f"{ZONE}.zone").write_text(_zonefile(extra_records))
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    xfr_secret = base64.b64encode(secrets.token_bytes(32)).decode()
    port = free_port(["127.0.0.1"], udp=True)
    user = "    user: root:root\n" if os.geteuid() == 0 else ""
    (tmp / "knot.conf").write_text(
        f"""server:
    rundir: "{tmp / "run"}"
{user}    listen: 127.0.0.1@{port}
log:
  - target: stderr
    any: info
database:
    storage: "{tmp / "db"}"
key:
  - id: {KEY_NAME}
    algorithm: hmac-sha256
    secret: {secret}
  - id: {XFR_ONLY_KEY}
    algorithm: hmac-sha256
    secret: {xfr_secret}
acl:
  - id: publisher
    key: {KEY_NAME}
    action: [update, transfer]
  - id: reader
    key: {XFR_ONLY_KEY}
    action: transfer
template:
  - id: default
    storage: "{tmp / "zones"}"
    file: "%s.zone"
zone:
  - domain: {ZONE}
    acl: [publisher, reader]
"""
    )
    log = tmp / "knotd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [KNOTD, "-c", str(tmp / "knot.conf")], stdout=out, stderr=subprocess.STDOUT
        )
    knot = Knot(port, secret, xfr_secret, log)
    deadline = time.monotonic() + 120  # generous: a loaded machine
    query = dns.message.make_query(ZONE + ".", "SOA")
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"knotd exited with {proc.returncode}:\n{log.read_text()}")
        try:
            answer = dns.query.udp(
                query, "127.0.0.1", port=port, timeout=0.2, ignore_unexpected=True
            )
            if answer.rcode() == dns.rcode.NOERROR and answer.answer:
                return proc, knot
        except (dns.exception.Timeout, OSError):
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"knotd did not answer within 120 s:\n{log.read_text()}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def knot(tmp_path: Path) -> Iterator[Knot]:
    require(os.path.exists(KNOTD), "knotd (Debian package knot) is not installed")
    proc, server = _start_knot(tmp_path / "knot")
    try:
        yield server
    finally:
        _stop(proc)


@pytest.fixture
def knot_with_leftovers(tmp_path: Path) -> Iterator[Knot]:
    """A zone already holding names of domains an earlier publisher run hosted."""
    require(os.path.exists(KNOTD), "knotd (Debian package knot) is not installed")
    proc, server = _start_knot(
        tmp_path / "knot",
        'gone.example.policy TXT "v=STSv1; id=old"\n'
        'gone.example.tlsrpt TXT "v=TLSRPTv1; rua=mailto:x@gone.example"\n'
        'deep.gone.example.policy TXT "v=STSv1; id=old"\n',
    )
    try:
        yield server
    finally:
        _stop(proc)


def hosted(
    domain: str, policy_id: str, changed_at: float = 0.0, previous: str | None = None
) -> Hosted:
    return Hosted(domain, "active", policy_id, b"version: STSv1\r\n", changed_at, previous)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def txt(resolver: Resolver, name: str) -> tuple[DnsStatus, tuple[str, ...]]:
    answer = await resolver.txt(name)
    return answer.status, answer.records


def test_publish_policy_change_after_delay_and_removal(knot: Knot) -> None:
    clock = Clock()
    snap = Snapshot(
        {
            d: hosted(d, f"{i}001")
            for i, d in enumerate(["a.example", "b.example.co.uk", "c.example"], start=1)
        }
    )
    settings = knot.settings()
    publisher = Rfc2136Publisher(settings, lambda: snap, clock)
    r = knot.resolver()

    async def main() -> None:
        assert await publisher.sync() == 7  # 3 x (policy TXT + TLS-RPT TXT) + policy-host
        assert await txt(r, f"a.example.policy.{ZONE}") == (DnsStatus.OK, ("v=STSv1; id=1001",))
        assert await txt(r, f"b.example.co.uk.policy.{ZONE}") == (
            DnsStatus.OK,
            ("v=STSv1; id=2001",),
        )
        assert await txt(r, f"b.example.co.uk.tlsrpt.{ZONE}") == (
            DnsStatus.OK,
            (settings.tlsrpt_txt("b.example.co.uk"),),
        )
        addresses = await r.addresses(f"policy-host.{ZONE}")
        assert addresses.addresses == ("192.0.2.80", "2001:db8::80")
        assert await publisher.sync() == 0  # nothing changed: nothing sent

        # RFC 8461 §8.1: the new id reaches the primary only after the delay
        snap.put(hosted("a.example", "1002", changed_at=clock.now, previous="1001"))
        clock.now += DELAY / 2
        assert await publisher.sync() == 0
        assert await txt(r, f"a.example.policy.{ZONE}") == (DnsStatus.OK, ("v=STSv1; id=1001",))
        clock.now += DELAY
        assert await publisher.sync() == 1
        assert await txt(r, f"a.example.policy.{ZONE}") == (DnsStatus.OK, ("v=STSv1; id=1002",))

        # dropping a domain deletes both of its TXT names
        snap.drop("c.example")
        assert await publisher.sync() == 2
        assert (await r.txt(f"c.example.policy.{ZONE}")).status is DnsStatus.NXDOMAIN
        assert (await r.txt(f"c.example.tlsrpt.{ZONE}")).status is DnsStatus.NXDOMAIN
        assert (await r.txt(f"a.example.tlsrpt.{ZONE}")).status is DnsStatus.OK

        # a changed address list replaces the A/AAAA of policy-host
        moved = Rfc2136Publisher(
            knot.settings(policy_host_addresses=("192.0.2.81",)), lambda: snap, clock
        )
        assert await moved.sync() == 1
        assert (await r.addresses(f"policy-host.{ZONE}")).addresses == ("192.0.2.81",)

    asyncio.run(main())


def test_new_publisher_removes_stale_names_read_by_axfr(knot_with_leftovers: Knot) -> None:
    knot = knot_with_leftovers
    clock = Clock()
    snap = Snapshot({d: hosted(d, "1") for d in ("keep.example", "go.example", "also.example")})
    r = knot.resolver()

    async def main() -> None:
        first = Rfc2136Publisher(knot.settings(), lambda: snap, clock)
        # 3 x 2 new names + policy-host + 3 leftovers from the zone file
        assert await first.sync() == 10
        for name in ("gone.example.policy", "gone.example.tlsrpt", "deep.gone.example.policy"):
            assert (await r.txt(f"{name}.{ZONE}")).status is DnsStatus.NXDOMAIN, name

        # a restart (new instance, nothing remembered) with fewer domains
        fewer = Snapshot({"keep.example": hosted("keep.example", "1")})
        second = Rfc2136Publisher(knot.settings(), lambda: fewer, clock)
        assert await second.sync() == 4
        for d in ("go.example", "also.example"):
            for kind in ("policy", "tlsrpt"):
                status = (await r.txt(f"{d}.{kind}.{ZONE}")).status
                assert status is DnsStatus.NXDOMAIN, (d, kind)
        assert await txt(r, f"keep.example.policy.{ZONE}") == (DnsStatus.OK, ("v=STSv1; id=1",))
        # records outside policy.Z / tlsrpt.Z are the operator's: left alone
        assert (await r.txt(f"www.{ZONE}")).records == ("operator record, not ours",)
        assert (await r.addresses(f"ns1.{ZONE}")).addresses == ("127.0.0.1",)
        assert await second.sync() == 0

    asyncio.run(main())


def test_wrong_secret_or_missing_right_raise_publish_error(knot: Knot) -> None:
    snap = Snapshot({"x.example": hosted("x.example", "1")})
    wrong = base64.b64encode(secrets.token_bytes(32)).decode()
    bad = Rfc2136Publisher(knot.settings(tsig_secret=wrong), lambda: snap)
    with pytest.raises(PublishError, match=r"AXFR.*(BADSIG|NOTAUTH)") as excinfo:
        asyncio.run(bad.sync())
    print(excinfo.value)

    # a key that may transfer but not update: the AXFR works, the UPDATE is refused
    reader = Rfc2136Publisher(
        knot.settings(tsig_name=XFR_ONLY_KEY, tsig_secret=knot.xfr_only_secret), lambda: snap
    )
    with pytest.raises(PublishError, match=r"UPDATE.*(BADKEY|REFUSED|NOTAUTH)"):
        asyncio.run(reader.sync())
    with pytest.raises(PublishError):  # nothing counted as pushed: retried, fails again
        asyncio.run(reader.sync())
    assert (asyncio.run(knot.resolver().txt(f"x.example.policy.{ZONE}"))).status is (
        DnsStatus.NXDOMAIN
    )

    # the right key afterwards publishes everything; a name DNS cannot carry (a label
    # over 63 bytes) is left out with a warning instead of failing every sync
    snap.put(hosted("x" * 64 + ".example", "1"))
    good = Rfc2136Publisher(knot.settings(), lambda: snap)
    assert asyncio.run(good.sync()) == 3
    assert asyncio.run(good.sync()) == 0


def test_thousand_domains_are_published_in_batches(knot: Knot) -> None:
    snap = Snapshot(
        {f"d{i}.bulk.example": hosted(f"d{i}.bulk.example", f"{i}") for i in range(1000)}
    )
    publisher = Rfc2136Publisher(knot.settings(), lambda: snap, batch_rrs=1000)
    r = knot.resolver()

    async def main() -> None:
        assert await publisher.sync() == 2001  # how fast: not a test's business (bench/)
        for i in (0, 499, 999):
            assert await txt(r, f"d{i}.bulk.example.policy.{ZONE}") == (
                DnsStatus.OK,
                (f"v=STSv1; id={i}",),
            )

    asyncio.run(main())
    zone = knot.axfr()
    txt_names = [n for n, rds in zone.iterate_rdatasets() if rds.rdtype == dns.rdatatype.TXT]
    assert len(txt_names) == 2000 + 1  # + the operator's www TXT
    # 2001 names, 2 RRs per replaced RRset (delete + add): more than one message was needed
    # (a single UPDATE of ~4000 RRs would not fit the 64 KiB TCP message)
    updates = knot.log.read_text().count("DDNS, processing")
    assert updates >= 4, knot.log.read_text()[-2000:]

    snap.hosts.clear()
    assert asyncio.run(publisher.sync()) == 2000
    zone = knot.axfr()
    assert [n for n, rds in zone.iterate_rdatasets() if rds.rdtype == dns.rdatatype.TXT] == [
        dns.name.from_text(f"www.{ZONE}.")
    ]


def test_run_loop_publishes_and_survives_errors(
    knot: Knot, caplog: pytest.LogCaptureFixture
) -> None:
    snap = Snapshot()
    r = knot.resolver()
    closed = free_port()  # reserved for this run: nobody listens there

    async def main() -> None:
        stop = asyncio.Event()
        down = Rfc2136Publisher(
            knot.settings(update_server=f"127.0.0.1:{closed}"), lambda: snap, timeout=1.0
        )
        with pytest.raises(PublishError, match="refused"):
            await down.sync()
        failing = asyncio.create_task(down.run(0.05, stop))
        publisher = Rfc2136Publisher(knot.settings(), lambda: snap)
        task = asyncio.create_task(publisher.run(0.05, stop))
        snap.put(hosted("loop.example", "7"))
        for _ in range(100):
            if (await r.txt(f"loop.example.policy.{ZONE}")).status is DnsStatus.OK:
                break
            await asyncio.sleep(0.05)
        assert await txt(r, f"loop.example.policy.{ZONE}") == (DnsStatus.OK, ("v=STSv1; id=7",))
        assert not failing.done() and not task.done()  # errors never end the loop
        stop.set()
        await asyncio.wait_for(asyncio.gather(failing, task), 5)

    with caplog.at_level(logging.WARNING, logger="mtasts.hosting.dnspublish"):
        asyncio.run(main())
    assert any("connection refused" in rec.getMessage() for rec in caplog.records)
