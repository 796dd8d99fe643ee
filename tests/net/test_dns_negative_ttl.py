"""Negative answers carry how long they may be cached (RFC 2308 §5), when the server
sends the zone's SOA."""

from __future__ import annotations

import asyncio

from mtasts.net.dns import DnsStatus, Resolver
from tests.lab import DnsServer


def test_negative_ttl_from_soa(lab_dns: DnsServer) -> None:
    zone = lab_dns.zone
    zone.add(
        "negttl.test", "SOA", "ns1.negttl.test. hostmaster.negttl.test. 1 3600 600 86400 20", ttl=30
    )
    zone.add("host.negttl.test", "A", "127.0.0.9")
    zone.add("nosoa-negttl.test", "A", "127.0.0.9")
    resolver = Resolver([lab_dns.address], timeout=3)

    async def run() -> list[tuple[DnsStatus, int | None]]:
        answers = [
            await resolver.query("missing.negttl.test", "TXT"),  # NXDOMAIN
            await resolver.query("host.negttl.test", "TXT"),  # NODATA
            await resolver.query("host.negttl.test", "A"),  # OK: the RRset's TTL
            await resolver.query("missing.nosoa-negttl.test", "TXT"),  # no SOA: unknown
        ]
        return [(a.status, a.ttl) for a in answers]

    assert asyncio.run(run()) == [
        (DnsStatus.NXDOMAIN, 20),  # min(SOA TTL 30, MINIMUM 20)
        (DnsStatus.NODATA, 20),
        (DnsStatus.OK, 300),
        (DnsStatus.NXDOMAIN, None),
    ]
