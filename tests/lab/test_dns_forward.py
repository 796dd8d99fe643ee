"""The lab DNS server's ``forward`` option: it follows a delegation as a recursive
resolver does, in and out of the forwarded zone along CNAME chains."""

from __future__ import annotations

import asyncio

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from tests.lab import DnsServer, Zone

pytestmark = pytest.mark.lab


def _ask(server: DnsServer, name: str, rdtype: str) -> dns.message.Message:
    async def ask() -> dns.message.Message:
        query = dns.message.make_query(name, rdtype)
        return await dns.asyncquery.udp(
            query, server.host, timeout=5, port=server.port, ignore_unexpected=True
        )

    return asyncio.run(ask())


def _chain(reply: dns.message.Message) -> list[str]:
    return [f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}" for rrset in reply.answer]


def test_forwarded_zone_is_asked_along_cname_chains() -> None:
    auth = Zone()  # the delegated zone's own server
    auth.add("d.policy.svc.test", "TXT", "v=STSv1; id=1")
    auth.add("host.svc.test", "CNAME", "back.customer.test.")
    auth.add("inner.svc.test", "CNAME", "d.policy.svc.test.")
    customer = Zone()  # what the recursive resolver knows without asking
    customer.add("_mta-sts.customer.test", "CNAME", "d.policy.svc.test.")
    customer.add("www.customer.test", "CNAME", "host.svc.test.")
    customer.add("back.customer.test", "A", "127.0.0.7")
    customer.add("gone.customer.test", "CNAME", "nothing.svc.test.")
    with DnsServer(auth) as server:
        # without the forward the chain dangles: NXDOMAIN, as in the customer zone alone
        with DnsServer(customer) as plain:
            assert _ask(plain, "_mta-sts.customer.test", "TXT").rcode() == dns.rcode.NXDOMAIN
        with DnsServer(customer, forward={"svc.test": server.address}) as resolver:
            r = _ask(resolver, "_mta-sts.customer.test", "TXT")
            assert r.rcode() == dns.rcode.NOERROR
            assert _chain(r) == ["_mta-sts.customer.test. CNAME", "d.policy.svc.test. TXT"]
            assert [t.to_text() for t in r.answer[-1]] == ['"v=STSv1; id=1"']
            # into the forwarded zone and out again
            r = _ask(resolver, "www.customer.test", "A")
            assert _chain(r) == [
                "www.customer.test. CNAME",
                "host.svc.test. CNAME",
                "back.customer.test. A",
            ]
            # asked directly, with a chain inside the forwarded zone
            r = _ask(resolver, "inner.svc.test", "TXT")
            assert _chain(r) == ["inner.svc.test. CNAME", "d.policy.svc.test. TXT"]
            # the forwarded zone's negative answer comes through
            r = _ask(resolver, "gone.customer.test", "A")
            assert r.rcode() == dns.rcode.NXDOMAIN
            assert _chain(r) == ["gone.customer.test. CNAME"]
        # the delegated zone's server is down: SERVFAIL, as resolvers answer
        down = server.address
    with DnsServer(customer, forward={"svc.test": down}) as resolver:
        assert _ask(resolver, "_mta-sts.customer.test", "TXT").rcode() == dns.rcode.SERVFAIL
