"""The resolver against the lab DNS server: statuses, CNAME chains, TXT joining, MX order."""

from __future__ import annotations

import asyncio

import pytest

from mtasts.net.dns import DnsStatus, MxRecord, Resolver, parse_nameserver
from tests.lab import DnsServer, Zone, ipv6_available
from tests.lab.require import require

pytestmark = pytest.mark.lab


def resolver(server: DnsServer, timeout: float = 10.0) -> Resolver:  # generous: load
    return Resolver([server.address], timeout=timeout)


def test_txt_strings_are_joined_without_separator(lab_dns: DnsServer) -> None:
    # RFC 8461 §3.1: a record split into several strings is read as their concatenation
    lab_dns.zone.add("_mta-sts.txt.dns.test", "TXT", '"v=STSv1; " "id=2024" "0601"')
    lab_dns.zone.add("_mta-sts.txt.dns.test", "TXT", "other record")
    answer = asyncio.run(resolver(lab_dns).txt("_mta-sts.txt.dns.test."))
    assert answer.status is DnsStatus.OK and answer.error is None
    assert sorted(answer.records) == ["other record", "v=STSv1; id=20240601"]
    assert answer.name == "_mta-sts.txt.dns.test" and answer.rdtype == "TXT"
    assert answer.cname_chain == () and answer.ttl == 300


def test_txt_keeps_undecodable_bytes(lab_dns: DnsServer) -> None:
    lab_dns.zone.add("bin.dns.test", "TXT", '"caf\\233"')
    answer = asyncio.run(resolver(lab_dns).txt("bin.dns.test"))
    assert answer.records == ("caf\udce9",)
    assert answer.records[0].encode("utf-8", "surrogateescape") == b"caf\xe9"


def test_nxdomain_and_nodata_are_told_apart(lab_dns: DnsServer) -> None:
    lab_dns.zone.add("a.b.nx.dns.test", "A", "127.0.0.1")

    async def main() -> None:
        r = resolver(lab_dns)
        nx, nodata, ent = await asyncio.gather(
            r.txt("missing.nx.dns.test"), r.txt("a.b.nx.dns.test"), r.txt("b.nx.dns.test")
        )
        assert nx.status is DnsStatus.NXDOMAIN and not nx.status.temporary
        assert "NXDOMAIN" in (nx.error or "")
        assert nodata.status is DnsStatus.NODATA and nodata.records == ()
        assert ent.status is DnsStatus.NODATA  # empty non-terminal exists (RFC 8020)

    asyncio.run(main())


def test_cname_chains_are_reported(lab_dns: DnsServer) -> None:
    z = lab_dns.zone
    # the hosted-mode delegation: _mta-sts.D CNAME D.policy.Z
    z.add("_mta-sts.cust.dns.test", "CNAME", "cust.dns.test.policy.sts.dns.test.")
    z.add("cust.dns.test.policy.sts.dns.test", "CNAME", "final.sts.dns.test.")
    z.add("final.sts.dns.test", "TXT", "v=STSv1; id=1")
    z.add("mta-sts.cust.dns.test", "CNAME", "gone.sts.dns.test.")
    z.add("nodata-alias.dns.test", "CNAME", "final.sts.dns.test.")

    async def main() -> None:
        r = resolver(lab_dns)
        ok = await r.txt("_mta-sts.cust.dns.test")
        assert ok.status is DnsStatus.OK and ok.records == ("v=STSv1; id=1",)
        assert ok.cname_chain == ("cust.dns.test.policy.sts.dns.test", "final.sts.dns.test")
        dangling = await r.addresses("mta-sts.cust.dns.test")
        assert dangling.a.status is DnsStatus.NXDOMAIN
        assert dangling.a.cname_chain == ("gone.sts.dns.test",)
        assert dangling.status is DnsStatus.NXDOMAIN and dangling.addresses == ()
        nodata = await r.mx("nodata-alias.dns.test")
        assert nodata.status is DnsStatus.NODATA and nodata.cname_chain == ("final.sts.dns.test",)
        own = await r.cname("mta-sts.cust.dns.test")
        assert own.status is DnsStatus.OK and own.records == ("gone.sts.dns.test",)

    asyncio.run(main())


def test_mx_sorted_and_null_mx(lab_dns: DnsServer) -> None:
    z = lab_dns.zone
    z.add("mx.dns.test", "MX", "20 B.mx.dns.test.")
    z.add("mx.dns.test", "MX", "10 z.mx.dns.test.")
    z.add("mx.dns.test", "MX", "20 a.mx.dns.test.")
    z.add("null.dns.test", "MX", "0 .")  # RFC 7505

    async def main() -> None:
        r = resolver(lab_dns)
        mx, null = await asyncio.gather(r.mx("mx.dns.test"), r.mx("null.dns.test"))
        assert mx.status is DnsStatus.OK
        assert mx.records == (
            MxRecord(10, "z.mx.dns.test"),
            MxRecord(20, "a.mx.dns.test"),
            MxRecord(20, "b.mx.dns.test"),
        )
        assert not mx.null_mx
        assert null.records == (MxRecord(0, ""),) and null.null_mx

    asyncio.run(main())


def test_addresses_a_then_aaaa(lab_dns: DnsServer) -> None:
    z = lab_dns.zone
    z.add("host.dns.test", "AAAA", "::1")
    z.add("host.dns.test", "A", "127.0.0.7")
    z.add("v6only.dns.test", "AAAA", "::1")
    r = resolver(lab_dns)
    both = asyncio.run(r.addresses("host.dns.test"))
    assert both.addresses == ("127.0.0.7", "::1") and both.status is DnsStatus.OK
    v6 = asyncio.run(r.addresses("v6only.dns.test"))
    assert v6.a.status is DnsStatus.NODATA and v6.addresses == ("::1",)


def test_servfail_refused_and_timeout(lab_dns: DnsServer) -> None:
    lab_dns.zone.add("sf.fault.dns.test", "TXT", "x")
    lab_dns.zone.add("via.fault.dns.test", "CNAME", "sf.fault.dns.test.")
    lab_dns.servfail("sf.fault.dns.test")
    lab_dns.refuse("refused.fault.dns.test")
    lab_dns.drop("drop.fault.dns.test")
    try:

        async def main() -> None:
            # answers that come are awaited generously (a loaded machine); the dropped
            # one runs into a short timeout
            r, short = resolver(lab_dns, timeout=30), resolver(lab_dns, timeout=0.6)
            asked = lab_dns.stats.by_name["drop.fault.dns.test"]
            sf, via, refused, dropped = await asyncio.gather(
                r.txt("sf.fault.dns.test"),
                r.txt("via.fault.dns.test"),
                r.txt("refused.fault.dns.test"),
                short.mx("drop.fault.dns.test"),
            )
            assert sf.status is DnsStatus.SERVFAIL and sf.status.temporary
            assert "SERVFAIL" in (sf.error or "")
            assert via.status is DnsStatus.SERVFAIL
            assert refused.status is DnsStatus.ERROR and "REFUSED" in (refused.error or "")
            assert dropped.status is DnsStatus.TIMEOUT and dropped.status.temporary
            # The timeout bounds the lookup in total, not each try: counted by the server
            # (tries of 0.6 s each within a 0.6 s lifetime: one, two at the edge; without
            # the lifetime, dnspython's default of 5 s would send about eight).
            assert 1 <= lab_dns.stats.by_name["drop.fault.dns.test"] - asked <= 2

        asyncio.run(main())
    finally:
        for name in ("sf", "refused", "drop"):
            lab_dns.heal(f"{name}.fault.dns.test")


def test_large_answers_fall_back_to_tcp(lab_dns: DnsServer) -> None:
    for i in range(60):
        lab_dns.zone.add("big.dns.test", "TXT", f"record {i:02d} " + "x" * 60)
    before = lab_dns.stats.truncated
    answer = asyncio.run(resolver(lab_dns).txt("big.dns.test"))
    assert answer.status is DnsStatus.OK and len(answer.records) == 60
    assert lab_dns.stats.truncated == before + 1  # truncated over UDP, then asked over TCP


def test_unreachable_nameserver_is_an_error_or_timeout() -> None:
    # nothing listens on this port: ICMP port unreachable -> ERROR (or TIMEOUT)
    from tests.lab import free_port

    port = free_port(["127.0.0.1"], udp=True)
    answer = asyncio.run(Resolver([f"127.0.0.1:{port}"], timeout=0.5).txt("x.dns.test"))
    assert answer.status in (DnsStatus.ERROR, DnsStatus.TIMEOUT)
    assert answer.status.temporary


def test_invalid_name_is_an_error(lab_dns: DnsServer) -> None:
    answer = asyncio.run(resolver(lab_dns).txt("a" * 64 + ".dns.test"))
    assert answer.status is DnsStatus.ERROR and "not a valid DNS name" in (answer.error or "")


def test_hundreds_of_concurrent_lookups_share_one_resolver() -> None:
    zone = Zone()
    for i in range(400):
        zone.add(f"_mta-sts.d{i}.many.test", "TXT", f"v=STSv1; id={i}")

    async def main() -> None:
        async with DnsServer(zone, host="127.0.0.1", delay=1.0) as server:
            r = resolver(server, timeout=60)
            answers = await asyncio.gather(*(r.txt(f"_mta-sts.d{i}.many.test") for i in range(400)))
        assert [a.records for a in answers] == [(f"v=STSv1; id={i}",) for i in range(400)]
        # concurrent: the server held many of our lookups at once (a resolver asking one
        # at a time never has more than one waiting); counted, not timed
        assert server.stats.most_delaying > 1

    asyncio.run(main())


def test_ipv6_nameserver() -> None:
    require(ipv6_available(), "::1 cannot be bound (IPv6 disabled)")
    zone = Zone()
    zone.add("v6.ns.test", "A", "127.0.0.1")
    with DnsServer(zone, host="::1") as server:
        assert server.address.startswith("[::1]:")
        answer = asyncio.run(Resolver([server.address], timeout=2).addresses("v6.ns.test"))
    assert answer.addresses == ("127.0.0.1",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        (" 192.0.2.1:53 ", ("192.0.2.1", 53)),
    ],
)
def test_parse_nameserver(text: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize("text", ["ns.example", "127.0.0.1:0", "127.0.0.1:x", "[::1", "[::1]x"])
def test_parse_nameserver_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_nameserver(text)


def test_resolver_rejects_bad_nameserver() -> None:
    with pytest.raises(ValueError):
        Resolver(["not-an-ip"])


def test_resolver_lists_its_nameservers() -> None:
    assert Resolver(["127.0.0.1:5353", "::1"]).nameservers == ("127.0.0.1:5353", "[::1]:53")
