"""The service zone's authoritative DNS server: ZoneAnswerer on its own, and
AuthoritativeDnsServer on 127.0.0.1 asked by our Resolver and by raw dnspython."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import replace

import dns.asyncquery
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from tests.lab import ipv6_available
from tests.lab.require import require

from mtasts.config import ConfigError, Settings
from mtasts.hosting.dnspublish import PublishError, Rfc2136Publisher
from mtasts.hosting.dnsserver import (
    AuthoritativeDnsServer,
    RateLimit,
    ZoneAnswerer,
    truncated_answer,
)
from mtasts.hosting.snapshot import Hosted, Snapshot
from mtasts.net.dns import DnsStatus, Resolver

pytestmark = pytest.mark.lab

ZONE = "sts.dns.test"
SETTINGS = Settings(
    zone=ZONE,
    policy_host_addresses=("192.0.2.10", "2001:db8::10"),
    txt_delay=5.0,
)


def hosted(
    domain: str, policy_id: str, changed_at: float = 0.0, previous: str | None = None
) -> Hosted:
    return Hosted(domain, "active", policy_id, b"version: STSv1\r\n", changed_at, previous)


def snapshot(*entries: Hosted) -> Snapshot:
    return Snapshot({e.domain: e for e in entries})


class Clock:
    def __init__(self, now: float = 2_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def answerer(
    snap: Snapshot, settings: Settings = SETTINGS, clock: Clock | None = None
) -> ZoneAnswerer:
    return ZoneAnswerer(settings, lambda: snap, clock or Clock())


@contextlib.asynccontextmanager
async def serving(
    zone: ZoneAnswerer, host: str = "127.0.0.1"
) -> AsyncIterator[AuthoritativeDnsServer]:
    server = AuthoritativeDnsServer(zone, host, 0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def ask(zone: ZoneAnswerer, name: str, rdtype: str = "TXT", **kw: object) -> dns.message.Message:
    return zone.answer(dns.message.make_query(name, rdtype, **kw))  # type: ignore[arg-type]


def soa_of(response: dns.message.Message) -> dns.rrset.RRset:
    [soa] = response.authority
    assert soa.rdtype == dns.rdatatype.SOA
    return soa


# --- ZoneAnswerer ---------------------------------------------------------------------------


def test_hosted_txt_and_tlsrpt_records() -> None:
    zone = answerer(snapshot(hosted("example.com", "20240601"), hosted("example.co.uk", "7")))
    r = ask(zone, f"example.com.policy.{ZONE}")
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    [rrset] = r.answer
    assert [b"".join(rd.strings) for rd in rrset] == [b"v=STSv1; id=20240601"]
    assert rrset.ttl == 300
    # several labels in the customer domain
    r = ask(zone, f"example.co.uk.tlsrpt.{ZONE}")
    [rrset] = r.answer
    assert [b"".join(rd.strings).decode() for rd in rrset] == [
        "v=TLSRPTv1; rua=https://policy-host.sts.dns.test/tlsrpt/example.co.uk"
    ]


def test_long_tlsrpt_record_is_split_into_255_byte_strings() -> None:
    domain = ".".join(["a" * 60] * 3) + ".example"
    zone = answerer(
        snapshot(hosted(domain, "1")), replace(SETTINGS, tlsrpt_mailto="reports-" * 20 + "@x.test")
    )
    [rrset] = ask(zone, f"{domain}.tlsrpt.{ZONE}").answer
    [rdata] = rrset
    assert len(rdata.strings) > 1 and all(len(s) <= 255 for s in rdata.strings)
    assert b"".join(rdata.strings).decode() == zone.settings.tlsrpt_txt(domain)


def test_names_are_case_insensitive_and_the_query_case_is_kept() -> None:
    zone = answerer(snapshot(hosted("example.com", "1")))
    name = "ExAmPle.COM.Policy.STS.dns.TEST."
    r = ask(zone, name)
    assert r.question[0].name.to_text() == name
    assert r.answer[0].name.to_text() == name
    assert r.answer[0].name.labels == dns.name.from_text(name).labels  # byte-exact case


def test_apex_soa_ns_and_glue() -> None:
    clock = Clock(1_700_000_000.0)
    zone = answerer(snapshot(), replace(SETTINGS, hostmaster="dns-admin.ops@provider.test"), clock)
    r = ask(zone, ZONE, "SOA")
    [rrset] = r.answer
    [soa] = rrset
    assert soa.mname == dns.name.from_text(f"ns1.{ZONE}.")
    assert soa.rname.labels[0] == b"dns-admin.ops"  # RFC 1035 §8: dot in the local part
    assert soa.rname.parent() == dns.name.from_text("provider.test.")
    assert soa.minimum == 60

    listening = replace(SETTINGS, dns_listen=("192.0.2.53:53", "[2001:db8::53]:53"))
    r = ask(answerer(snapshot(), listening), ZONE, "NS")
    assert [rd.target.to_text() for rd in r.answer[0]] == [f"ns1.{ZONE}."]
    glue = {(rr.name.to_text(), rr.rdtype): [rd.address for rd in rr] for rr in r.additional}
    assert glue == {
        (f"ns1.{ZONE}.", dns.rdatatype.A): ["192.0.2.53"],
        (f"ns1.{ZONE}.", dns.rdatatype.AAAA): ["2001:db8::53"],
    }
    # explicit NS names; the out-of-zone one gets no addresses from us
    zone2 = answerer(
        snapshot(),
        replace(listening, zone_ns=("a.ns.sts.dns.test", "ns.other.test")),
    )
    r = ask(zone2, ZONE, "NS")
    assert sorted(rd.target.to_text() for rd in r.answer[0]) == [f"a.ns.{ZONE}.", "ns.other.test."]
    assert {rr.name.to_text() for rr in r.additional} == {f"a.ns.{ZONE}."}
    assert ask(zone2, f"ns.{ZONE}", "A").rcode() == dns.rcode.NOERROR  # empty non-terminal
    assert ask(zone2, f"ns1.{ZONE}", "A").rcode() == dns.rcode.NXDOMAIN


def test_policy_host_addresses() -> None:
    zone = answerer(snapshot())
    assert [rd.address for rd in ask(zone, f"policy-host.{ZONE}", "A").answer[0]] == ["192.0.2.10"]
    assert [rd.address for rd in ask(zone, f"policy-host.{ZONE}", "AAAA").answer[0]] == [
        "2001:db8::10"
    ]
    only_v4 = answerer(snapshot(), replace(SETTINGS, policy_host_addresses=("192.0.2.1",)))
    r = ask(only_v4, f"policy-host.{ZONE}", "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and soa_of(r)
    with pytest.raises(ConfigError, match="policy_host_addresses"):
        answerer(snapshot(), replace(SETTINGS, policy_host_addresses=("policy.example",)))


def test_negative_answers_carry_the_soa() -> None:
    zone = answerer(snapshot(hosted("example.com", "1"), hosted("shop.example.co.uk", "1")))
    for name in (f"missing.example.policy.{ZONE}", f"nope.{ZONE}", f"x.policy-host.{ZONE}"):
        r = ask(zone, name)
        assert r.rcode() == dns.rcode.NXDOMAIN, name
        assert r.flags & dns.flags.AA and not r.answer
        assert soa_of(r).ttl == 60  # RFC 2308 §5: min(SOA TTL, MINIMUM)
    nodata = [
        (f"example.com.policy.{ZONE}", "A"),
        (f"example.com.policy.{ZONE}", "CNAME"),
        (f"policy-host.{ZONE}", "TXT"),
        (f"policy.{ZONE}", "TXT"),
        (f"tlsrpt.{ZONE}", "A"),
        (ZONE, "TXT"),
        # parents of hosted domains are empty non-terminals (RFC 8020)
        (f"com.policy.{ZONE}", "A"),
        (f"co.uk.policy.{ZONE}", "TXT"),
        (f"uk.tlsrpt.{ZONE}", "NS"),
    ]
    for name, rdtype in nodata:
        r = ask(zone, name, rdtype)
        assert r.rcode() == dns.rcode.NOERROR and not r.answer, (name, rdtype)
        assert soa_of(r).ttl == 60
    assert ask(zone, f"uk.policy.{ZONE}").rcode() == dns.rcode.NOERROR
    assert ask(zone, f"other.co.uk.policy.{ZONE}").rcode() == dns.rcode.NXDOMAIN
    assert ask(zone, f"org.policy.{ZONE}").rcode() == dns.rcode.NXDOMAIN
    # a single label holding a dot is not the domain of two labels
    odd = dns.name.Name([b"example.com", b"policy", *dns.name.from_text(ZONE).labels])
    assert zone.answer(dns.message.make_query(odd, "TXT")).rcode() == dns.rcode.NXDOMAIN


def test_empty_non_terminals_follow_the_snapshot() -> None:
    snap = snapshot(hosted("a.example.net", "1"))
    zone = answerer(snap)
    assert ask(zone, f"net.policy.{ZONE}").rcode() == dns.rcode.NOERROR
    snap.put(hosted("b.example.org", "1"))  # the size changed: noticed without being told
    assert ask(zone, f"example.org.policy.{ZONE}").rcode() == dns.rcode.NOERROR
    assert ask(zone, f"org.policy.{ZONE}").rcode() == dns.rcode.NOERROR
    # same size after a drop and a put: the service tells the answerer (its on_change)
    snap.drop("a.example.net")
    snap.put(hosted("c.example.info", "1"))
    zone.snapshot_changed()
    assert ask(zone, f"net.policy.{ZONE}").rcode() == dns.rcode.NXDOMAIN
    assert ask(zone, f"example.net.tlsrpt.{ZONE}").rcode() == dns.rcode.NXDOMAIN
    assert ask(zone, f"info.tlsrpt.{ZONE}").rcode() == dns.rcode.NOERROR


def test_refused_notimp_formerr_badvers() -> None:
    zone = answerer(snapshot(hosted("example.com", "1")))
    for name in ("example.com", "dns.test", "policy.sts.dns.test.evil.test", "."):
        r = ask(zone, name, "A")
        assert r.rcode() == dns.rcode.REFUSED and not r.flags & dns.flags.AA, name
    q = dns.message.make_query(ZONE, "SOA", rdclass=dns.rdataclass.CH)
    assert zone.answer(q).rcode() == dns.rcode.REFUSED
    assert ask(zone, ZONE, "AXFR").rcode() == dns.rcode.REFUSED
    notify = dns.message.make_query(ZONE, "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert zone.answer(notify).rcode() == dns.rcode.NOTIMP
    two = dns.message.make_query(ZONE, "SOA")
    two.question.append(
        dns.rrset.RRset(dns.name.from_text(ZONE), dns.rdataclass.IN, dns.rdatatype.NS)
    )
    assert zone.answer(two).rcode() == dns.rcode.FORMERR
    assert ask(zone, ZONE, "OPT").rcode() == dns.rcode.FORMERR
    r = ask(zone, ZONE, "SOA", use_edns=1)
    assert r.rcode() == dns.rcode.BADVERS and r.edns == 0


def test_any_is_answered_minimally_rfc_8482() -> None:
    zone = answerer(snapshot(hosted("example.com", "1")))
    for name in (ZONE, f"policy-host.{ZONE}", f"example.com.policy.{ZONE}"):
        r = ask(zone, name, "ANY")
        [rrset] = r.answer  # one synthesized HINFO, not every RRset (RFC 8482 §4.2)
        assert rrset.rdtype == dns.rdatatype.HINFO and len(rrset) == 1
        assert rrset[0].cpu == b"RFC8482" and rrset[0].os == b""
        assert r.rcode() == dns.rcode.NOERROR and not r.additional
    r = ask(zone, f"policy.{ZONE}", "ANY")  # an empty non-terminal: still NODATA
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and soa_of(r)
    assert ask(zone, f"nope.{ZONE}", "ANY").rcode() == dns.rcode.NXDOMAIN


def test_txt_id_lags_a_policy_change_by_the_delay() -> None:
    # RFC 8461 §8.1: serve the new policy first, publish the new id `txt_delay` s later
    clock = Clock(1000.0)
    snap = snapshot(hosted("example.com", "new", changed_at=998.0, previous="old"))
    zone = answerer(snap, clock=clock)

    def txt() -> bytes:
        return b"".join(next(iter(ask(zone, f"example.com.policy.{ZONE}").answer[0])).strings)

    assert txt() == b"v=STSv1; id=old"
    clock.now = 998.0 + 5.0
    assert txt() == b"v=STSv1; id=new"


def test_udp_limits_and_truncation() -> None:
    addresses = tuple(f"2001:db8::{i:x}" for i in range(1, 61))  # 60 AAAA, ~1.7 KB
    zone = answerer(snapshot(), replace(SETTINGS, policy_host_addresses=addresses))
    wire = dns.message.make_query(f"policy-host.{ZONE}", "AAAA").to_wire()
    out = zone.respond(wire)
    assert out is not None and len(out) <= 512
    r = dns.message.from_wire(out)
    assert r.flags & dns.flags.TC and not r.answer and r.question
    # EDNS: the client's payload, capped at 1232
    for payload in (4096, 1232):
        q = dns.message.make_query(f"policy-host.{ZONE}", "AAAA", use_edns=0, payload=payload)
        out = zone.respond(q.to_wire())
        assert out is not None and len(out) <= 1232
        r = dns.message.from_wire(out)
        assert r.flags & dns.flags.TC and r.edns == 0 and r.payload == 1232
    out = zone.respond(q.to_wire(), tcp=True)
    assert out is not None
    r = dns.message.from_wire(out)
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 60

    # 30 AAAA (~900 bytes) fit with EDNS but not in 512 bytes; payloads < 512 count as 512
    zone = answerer(snapshot(), replace(SETTINGS, policy_host_addresses=addresses[:30]))
    q = dns.message.make_query(f"policy-host.{ZONE}", "AAAA", use_edns=0, payload=1232)
    r = dns.message.from_wire(zone.respond(q.to_wire()) or b"")
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 30
    q = dns.message.make_query(f"policy-host.{ZONE}", "AAAA", use_edns=0, payload=100)
    out = zone.respond(q.to_wire()) or b""
    assert len(out) <= 512 and dns.message.from_wire(out).flags & dns.flags.TC
    zone = answerer(snapshot(), replace(SETTINGS, policy_host_addresses=addresses[:5]))
    out = zone.respond(q.to_wire()) or b""  # ~200 bytes: more than 100, fits in 512
    r = dns.message.from_wire(out)
    assert len(out) > 100 and not r.flags & dns.flags.TC and len(r.answer[0]) == 5


def test_glue_is_dropped_before_truncating() -> None:
    # RFC 2181 §9: additional data that does not fit is left out without TC
    addresses = tuple(f"2001:db8::{i:x}" for i in range(1, 41))
    zone = answerer(snapshot(), replace(SETTINGS, policy_host_addresses=addresses))
    out = zone.respond(dns.message.make_query(ZONE, "NS").to_wire()) or b""
    r = dns.message.from_wire(out)
    assert not r.flags & dns.flags.TC and r.answer and not r.additional


def test_wire_handler_edge_cases() -> None:
    zone = answerer(snapshot())
    assert zone.respond(b"") is None and zone.respond(b"\x12\x34") is None
    query = dns.message.make_query(ZONE, "SOA")
    query.flags |= dns.flags.QR  # a response: never answered
    assert zone.respond(query.to_wire()) is None
    garbage = b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff"
    r = dns.message.from_wire(zone.respond(garbage) or b"")
    assert r.id == 0xABCD and r.rcode() == dns.rcode.FORMERR and r.flags & dns.flags.QR


@hsettings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    zone = answerer(snapshot(hosted("example.com", "1")))
    for tcp in (False, True):
        out = zone.respond(data, tcp=tcp)
        if out is not None:
            assert len(out) >= 12 and out[:2] == data[:2] and out[2] & 0x80
            assert tcp or len(out) <= 1232


@hsettings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=2, max_size=2),
    st.integers(0, 0xFFFF),
    st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4),
    st.binary(max_size=300),
)
def test_header_shaped_fuzz_never_raises(
    qid: bytes, flags: int, counts: list[int], body: bytes
) -> None:
    zone = answerer(snapshot(hosted("example.com", "1")))
    query = dns.message.make_query(f"example.com.policy.{ZONE}", "TXT", use_edns=0).to_wire()
    for wire in (
        qid + struct.pack("!HHHHH", flags & 0x7FFF, *counts) + body,
        query[:12] + body,
        query + body,
        qid + struct.pack("!H", flags & 0x7FFF) + query[4:],
    ):
        out = zone.respond(wire)
        assert out is None or (len(out) >= 12 and out[:2] == wire[:2])


# --- AuthoritativeDnsServer -----------------------------------------------------------------


def test_served_records_through_our_resolver() -> None:
    snap = snapshot(hosted("example.com", "20240601"), hosted("example.co.uk", "3"))
    zone = answerer(snap, replace(SETTINGS, dns_listen=("127.0.0.1:53",)))

    async def main() -> None:
        async with serving(zone) as server:
            r = Resolver([server.address], timeout=2.0)
            txt = await r.txt(f"example.com.policy.{ZONE}")
            assert (txt.status, txt.records, txt.ttl) == (
                DnsStatus.OK,
                ("v=STSv1; id=20240601",),
                300,
            )
            rpt = await r.txt(f"example.co.uk.tlsrpt.{ZONE}")
            assert rpt.records == (SETTINGS.tlsrpt_txt("example.co.uk"),)
            addresses = await r.addresses(f"policy-host.{ZONE}")
            assert addresses.addresses == ("192.0.2.10", "2001:db8::10")
            assert (await r.addresses(f"ns1.{ZONE}")).addresses == ("127.0.0.1",)
            ns = await r.query(ZONE, "NS")
            assert ns.records == (f"ns1.{ZONE}",)
            assert (await r.txt(f"missing.policy.{ZONE}")).status is DnsStatus.NXDOMAIN
            assert (await r.txt(f"policy.{ZONE}")).status is DnsStatus.NODATA
            assert (await r.txt(f"com.policy.{ZONE}")).status is DnsStatus.NODATA
            refused = await r.txt("example.com")
            assert refused.status is DnsStatus.ERROR and "REFUSED" in (refused.error or "")

            # a change to the snapshot shows on the next query
            snap.put(hosted("new.example", "9"))
            snap.drop("example.com")
            assert (await r.txt(f"new.example.policy.{ZONE}")).records == ("v=STSv1; id=9",)
            assert (await r.txt(f"example.com.policy.{ZONE}")).status is DnsStatus.NXDOMAIN

    asyncio.run(main())


def test_raw_udp_and_tcp_queries() -> None:
    zone = answerer(snapshot(hosted("example.com", "1")))

    async def main() -> None:
        async with serving(zone) as server:
            assert server.port > 0
            q = dns.message.make_query(f"nothere.policy.{ZONE}", "TXT", use_edns=0)
            for r in (
                await dns.asyncquery.udp(
                    q, "127.0.0.1", port=server.port, timeout=2, ignore_unexpected=True
                ),
                await dns.asyncquery.tcp(q, "127.0.0.1", port=server.port, timeout=2),
            ):
                assert r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.AA
                assert soa_of(r).name == dns.name.from_text(ZONE) and r.edns == 0
            q = dns.message.make_query(ZONE, "SOA")
            r = await dns.asyncquery.udp(
                q, "127.0.0.1", port=server.port, timeout=2, ignore_unexpected=True
            )
            assert r.answer[0].rdtype == dns.rdatatype.SOA and r.edns == -1  # no EDNS asked

    asyncio.run(main())


def test_truncated_over_udp_full_over_tcp() -> None:
    addresses = tuple(f"198.51.100.{i}" for i in range(1, 201))  # 200 A records, ~3.2 KB
    zone = answerer(snapshot(), replace(SETTINGS, policy_host_addresses=addresses))

    async def main() -> None:
        async with serving(zone) as server:
            q = dns.message.make_query(f"policy-host.{ZONE}", "A", use_edns=0, payload=4096)
            udp = await dns.asyncquery.udp(
                q,
                "127.0.0.1",
                port=server.port,
                timeout=2,
                raise_on_truncation=False,
                ignore_unexpected=True,
            )
            assert udp.flags & dns.flags.TC and not udp.answer
            tcp = await dns.asyncquery.tcp(q, "127.0.0.1", port=server.port, timeout=2)
            assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 200
            # our resolver retries over TCP by itself (RFC 7766 §5)
            r = Resolver([server.address], timeout=2.0)
            assert len((await r.query(f"policy-host.{ZONE}", "A")).records) == 200

    asyncio.run(main())


async def _tcp_exchange(port: int, payload: bytes, expect: int) -> list[dns.message.Message]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        out = []
        for _ in range(expect):
            (length,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 2))
            out.append(dns.message.from_wire(await reader.readexactly(length)))
        return out
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def _framed(q: dns.message.Message) -> bytes:
    wire = q.to_wire()
    return struct.pack("!H", len(wire)) + wire


def test_tcp_pipelined_queries_and_idle_timeout() -> None:
    zone = answerer(snapshot(hosted("example.com", "1")))

    async def main() -> None:
        server = AuthoritativeDnsServer(zone, "127.0.0.1", 0, idle_timeout=0.3)
        async with server:
            # RFC 7766 §6.2.1: several queries on one connection, sent at once
            qs = [
                dns.message.make_query(f"example.com.policy.{ZONE}", "TXT"),
                dns.message.make_query(ZONE, "SOA"),
                dns.message.make_query(f"x.{ZONE}", "A"),
            ]
            rs = await _tcp_exchange(server.port, b"".join(_framed(q) for q in qs), 3)
            assert [r.id for r in rs] == [q.id for q in qs]
            assert [r.rcode() for r in rs] == [
                dns.rcode.NOERROR,
                dns.rcode.NOERROR,
                dns.rcode.NXDOMAIN,
            ]

            # an idle connection is closed by the server
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            assert await asyncio.wait_for(reader.read(1), 3) == b""
            writer.close()

            # a connection left open by a client does not hold up stop()
            _r2, w2 = await asyncio.open_connection("127.0.0.1", server.port)
            w2.write(b"\x00")  # half a length prefix
            await w2.drain()
        w2.close()

    asyncio.run(main())


def test_garbage_does_not_stop_the_server() -> None:
    zone = answerer(snapshot(hosted("example.com", "1")))
    rng = random.Random(8461)

    async def main() -> None:
        async with serving(zone) as server:
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.setblocking(False)
                for size in (0, 1, 11, 12, 13, 100, 512, 4000):
                    await loop.sock_sendto(s, rng.randbytes(size), ("127.0.0.1", server.port))
                # a bogus header (QDCOUNT 1, no question): FORMERR echoing the id
                await loop.sock_sendto(
                    s,
                    b"\x42\x42\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00",
                    ("127.0.0.1", server.port),
                )
            # TCP: garbage, a length larger than what follows, an abrupt close
            for blob in (rng.randbytes(50), b"\xff\xff" + b"abc", b"\x00\x05hello"):
                _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(blob)
                await writer.drain()
                writer.transport.abort()
            formerr = await _tcp_exchange(server.port, b"\x00\x0c" + b"\x42\x42" + b"\x00" * 10, 1)
            assert formerr[0].rcode() == dns.rcode.FORMERR and formerr[0].id == 0x4242
            q = dns.message.make_query(f"example.com.policy.{ZONE}", "TXT")
            for r in (
                await dns.asyncquery.udp(
                    q, "127.0.0.1", port=server.port, timeout=2, ignore_unexpected=True
                ),
                await dns.asyncquery.tcp(q, "127.0.0.1", port=server.port, timeout=2),
            ):
                assert r.rcode() == dns.rcode.NOERROR and r.answer

    asyncio.run(main())


def test_ipv6_listener() -> None:
    require(ipv6_available(), "IPv6 loopback (::1) is not available")
    zone = answerer(snapshot(hosted("example.com", "1")))

    async def main() -> None:
        async with serving(zone, "::1") as server:
            assert server.address == f"[::1]:{server.port}"
            r = Resolver([server.address], timeout=2.0)
            assert (await r.txt(f"example.com.policy.{ZONE}")).records == ("v=STSv1; id=1",)

    asyncio.run(main())


def test_publisher_reports_a_refused_zone_transfer() -> None:
    # the built-in server offers no AXFR; a publisher pointed at it says so clearly
    zone = answerer(snapshot())

    async def main() -> None:
        async with serving(zone) as server:
            publisher = Rfc2136Publisher(
                replace(
                    SETTINGS,
                    update_server=server.address,
                    tsig_name="k.",
                    tsig_secret="c2VjcmV0c2VjcmV0c2VjcmV0",
                ),
                lambda: snapshot(),
            )
            with pytest.raises(PublishError, match="AXFR"):
                await publisher.sync()

    asyncio.run(main())


def test_apex_mx_for_mailed_reports() -> None:
    # RFC 8460 §3: rua=mailto:tlsrpt@Z needs an MX at Z once the receiver runs
    assert ask(answerer(snapshot()), ZONE, "MX").answer == []  # no receiver: NODATA
    with_receiver = answerer(snapshot(), replace(SETTINGS, smtp_listen="0.0.0.0:25"))
    [rrset] = ask(with_receiver, ZONE, "MX").answer
    assert [(rd.preference, rd.exchange.to_text()) for rd in rrset] == [
        (10, f"policy-host.{ZONE}.")
    ]
    explicit = answerer(snapshot(), replace(SETTINGS, zone_mx="Reports.Provider.test."))
    [rrset] = ask(explicit, ZONE, "MX").answer
    assert [rd.exchange.to_text() for rd in rrset] == ["reports.provider.test."]


# --- response rate limiting (issue 11) -------------------------------------------------------


def test_truncated_answer_echoes_the_question_without_records() -> None:
    q = dns.message.make_query(f"example.com.policy.{ZONE}", "ANY", use_edns=0)
    wire = truncated_answer(q.to_wire())
    assert wire is not None
    r = dns.message.from_wire(wire)
    assert r.id == q.id and r.flags & dns.flags.QR and r.flags & dns.flags.TC
    assert r.question == q.question and not r.answer and r.rcode() == dns.rcode.NOERROR
    assert truncated_answer(wire) is None  # a response is never answered
    assert truncated_answer(b"\x00" * 11) is None
    assert truncated_answer(q.to_wire()[:14]) is None  # the question is cut off


def _udp_from(source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.settimeout(3)
    return sock


def _drain(sock: socket.socket, quiet: float = 1.0) -> list[dns.message.Message]:
    """Every response that arrives until none came for ``quiet`` seconds."""
    out = []
    sock.settimeout(quiet)
    while True:
        try:
            out.append(dns.message.from_wire(sock.recv(4096)))
        except TimeoutError:
            return out


def test_rate_limit_drops_or_truncates_one_source_and_answers_another() -> None:
    zone = answerer(snapshot(hosted("example.com", "1")))
    rrl = RateLimit(10, window=1.0, slip=2)
    q = dns.message.make_query(ZONE, "ANY")

    async def main() -> None:
        server = AuthoritativeDnsServer(zone, "127.0.0.1", 0, rate_limit=rrl, own_thread=True)
        async with server:
            flooder = _udp_from("127.0.0.1")
            for _ in range(400):
                flooder.sendto(q.to_wire(), ("127.0.0.1", server.port))
            flood = await asyncio.to_thread(_drain, flooder)
            full = [r for r in flood if not r.flags & dns.flags.TC]
            truncated = [r for r in flood if r.flags & dns.flags.TC]
            assert len(full) < 100, "most of the flood got full answers"
            assert truncated and all(not r.answer for r in truncated)
            assert rrl.limited > 300 and rrl.slipped == len(truncated)
            # another /24 has its own bucket: every query is answered in full
            other = _udp_from("127.0.1.1")
            for i in range(10):
                other.sendto(q.to_wire(), ("127.0.0.1", server.port))
                r = dns.message.from_wire(other.recv(4096))
                assert r.answer and not r.flags & dns.flags.TC, i
            # over TCP no rate applies (source addresses cannot be spoofed)
            r = await dns.asyncquery.tcp(q, "127.0.0.1", port=server.port, timeout=3)
            assert r.answer[0].rdtype == dns.rdatatype.HINFO
            flooder.close()
            other.close()

    asyncio.run(main())


def test_rate_limit_table_is_bounded() -> None:
    now = [0.0]
    rrl = RateLimit(1, window=1.0, slip=0, max_prefixes=100, clock=lambda: now[0])
    for i in range(10_000):
        assert rrl.allow(f"10.{i // 256 % 256}.{i % 256}.1")
    assert len(rrl.buckets) == 100
    assert not rrl.allow("10.39.15.2")  # the most recent prefix is still limited
    now[0] += 1.0
    assert rrl.allow("10.39.15.2")  # a second later it has a token again
