"""The built-in name server as a production name server (issue 16): the addresses of its
NS names, several listen addresses and wildcards, the SOA serial, zone transfers to
secondaries with NOTIFY, and the RFC details (DO, padding, the TLS-RPT rua, the TXT TTL).
Real sockets on loopback, queried with dnspython."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import cast

import dns.asyncquery
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.xfr
import dns.zone
import pytest
from tests.hosting.serving import wait_for
from tests.lab import ipv6_available
from tests.lab.ports import free_port
from tests.lab.require import require

from mtasts.config import ConfigError, Settings, load_settings
from mtasts.hosting.dnspublish import Rfc2136Publisher
from mtasts.hosting.dnsserver import AuthoritativeDnsServer, ZoneAnswerer
from mtasts.hosting.snapshot import Hosted, Snapshot

pytestmark = pytest.mark.lab

ZONE = "sts.ns.test"
SETTINGS = Settings(
    zone=ZONE,
    policy_host_addresses=("192.0.2.10", "2001:db8::10"),
    dns_listen=("127.0.0.1:53",),
    txt_delay=5.0,
)
KEY_NAME = "xfr-key."
SECRET = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def hosted(
    domain: str, policy_id: str, changed_at: float = 0.0, previous: str | None = None
) -> Hosted:
    return Hosted(domain, "active", policy_id, b"version: STSv1\r\n", changed_at, previous)


class Clock:
    def __init__(self, now: float = 2_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def answerer(
    snap: Snapshot, settings: Settings = SETTINGS, clock: Clock | None = None
) -> ZoneAnswerer:
    return ZoneAnswerer(settings, lambda: snap, clock or Clock())


def ask(zone: ZoneAnswerer, name: str, rdtype: str = "A", **kw: object) -> dns.message.Message:
    return zone.answer(dns.message.make_query(name, rdtype, **kw))  # type: ignore[arg-type]


def addresses(response: dns.message.Message) -> list[str]:
    return [rd.address for rrset in response.answer for rd in rrset]


def serial(zone: ZoneAnswerer) -> int:
    return int(next(iter(ask(zone, ZONE, "SOA").answer[0])).serial)


# --- 1. the addresses of the NS names ---------------------------------------------------


def test_ns_names_resolve_to_the_name_server_not_the_https_front() -> None:
    # issue 16 #1: ns1.Z answered policy_host_addresses, so resolvers sent every later
    # query of the zone to the HTTPS front
    zone = answerer(Snapshot(), replace(SETTINGS, dns_listen=("127.0.0.1:53", "[::1]:53")))
    assert addresses(ask(zone, f"ns1.{ZONE}", "A")) == ["127.0.0.1"]
    assert addresses(ask(zone, f"ns1.{ZONE}", "AAAA")) == ["::1"]
    glue = ask(zone, ZONE, "NS").additional
    assert sorted(rd.address for rr in glue for rd in rr) == ["127.0.0.1", "::1"]
    # the policy host keeps the HTTPS front's addresses
    assert addresses(ask(zone, f"policy-host.{ZONE}", "A")) == ["192.0.2.10"]


def test_zone_ns_addresses_for_nat_anycast_and_a_second_name_server() -> None:
    settings = replace(
        SETTINGS,
        dns_listen=("0.0.0.0:53",),
        zone_ns=(f"ns1.{ZONE}", f"ns2.{ZONE}", "ns.elsewhere.test"),
        zone_ns_addresses=("203.0.113.53", "2001:db8::53", f"NS2.{ZONE}.=198.51.100.53"),
    )
    zone = answerer(Snapshot(), settings)
    assert addresses(ask(zone, f"ns1.{ZONE}", "A")) == ["203.0.113.53"]
    assert addresses(ask(zone, f"ns1.{ZONE}", "AAAA")) == ["2001:db8::53"]
    assert addresses(ask(zone, f"ns2.{ZONE}", "A")) == ["198.51.100.53"]
    r = ask(zone, f"ns2.{ZONE}", "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer  # NODATA, not the other's
    glue = {(rr.name.to_text(), rd.address) for rr in ask(zone, ZONE, "NS").additional for rd in rr}
    assert glue == {
        (f"ns1.{ZONE}.", "203.0.113.53"),
        (f"ns1.{ZONE}.", "2001:db8::53"),
        (f"ns2.{ZONE}.", "198.51.100.53"),
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MTASTS_DNS_LISTEN": "0.0.0.0:53"}, "zone_ns_addresses"),
        ({"MTASTS_DNS_LISTEN": "[::]:53,0.0.0.0:53"}, "no specific address"),
        (
            {"MTASTS_DNS_LISTEN": "127.0.0.1:53", "MTASTS_ZONE_NS_ADDRESSES": "ns9.x.test=1.2.3.4"},
            "not an NS name inside the zone",
        ),
        ({"MTASTS_DNS_LISTEN": "localhost:53"}, "not an IPv4 or IPv6 address"),
        ({"MTASTS_ZONE_NS_ADDRESSES": "ns1.sts.example.net=nope"}, "zone_ns_addresses"),
        ({"MTASTS_DNS_SECONDARIES": "ns2.example.net"}, "dns_secondaries"),
        ({"MTASTS_DNS_TSIG_NAME": "xfr"}, "set both"),
        ({"MTASTS_DNS_TSIG_NAME": "xfr", "MTASTS_DNS_TSIG_SECRET": "no base64!"}, "base64"),
    ],
)
def test_unpublishable_ns_addresses_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env=env)


def test_wildcard_listen_with_explicit_addresses_or_out_of_zone_ns_is_accepted() -> None:
    s = load_settings(
        env={"MTASTS_DNS_LISTEN": "0.0.0.0:53", "MTASTS_ZONE_NS_ADDRESSES": "203.0.113.53"}
    )
    assert s.zone_ns_glue(strict=True) == {"ns1.sts.example.net": ("203.0.113.53",)}
    s = load_settings(env={"MTASTS_DNS_LISTEN": "0.0.0.0:53", "MTASTS_ZONE_NS": "ns.other.test"})
    assert s.zone_ns_glue(strict=True) == {}


def test_serve_refuses_to_start_when_the_ns_names_have_no_address(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MTASTS_DATA_DIR": str(tmp_path),
        "MTASTS_LISTEN": f"127.0.0.1:{free_port()}",
        "MTASTS_MONITOR_INTERVAL": "0",
    }
    port = free_port(udp=True)
    proc = subprocess.run(
        [sys.executable, "-m", "mtasts", "serve", "--dns", f"0.0.0.0:{port}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "error: configuration" in proc.stderr and "zone_ns_addresses" in proc.stderr


# --- 2. listening on several addresses, wildcards ---------------------------------------


def test_settings_take_several_listen_addresses() -> None:
    s = load_settings(env={"MTASTS_DNS_LISTEN": "127.0.0.1:5300, [::1]:5300"})
    assert s.dns_listen_addresses() == [("127.0.0.1", 5300), ("::1", 5300)]
    assert s.zone_ns_glue() == {"ns1.sts.example.net": ("127.0.0.1", "::1")}


def test_toml_list_of_listen_addresses(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('dns_listen = ["127.0.0.2:53", "[::1]:53"]\n')
    assert load_settings(path, {}).dns_listen_addresses() == [("127.0.0.2", 53), ("::1", 53)]


def test_one_server_on_several_addresses() -> None:
    zone = answerer(Snapshot({"example.com": hosted("example.com", "7")}))
    listen = [("127.0.0.2", 0), ("127.0.0.3", 0)]
    if ipv6_available():
        listen.append(("::1", 0))

    async def main() -> None:
        async with AuthoritativeDnsServer(zone, listen=listen) as server:
            assert len(server.addresses) == len(listen)
            q = dns.message.make_query(f"example.com.policy.{ZONE}", "TXT")
            for text in server.addresses:
                host, _, port = text.rpartition(":")
                host = host.strip("[]")
                for r in (
                    await dns.asyncquery.udp(
                        q, host, port=int(port), timeout=3, ignore_unexpected=True
                    ),
                    await dns.asyncquery.tcp(q, host, port=int(port), timeout=3),
                ):
                    assert r.answer, text

    asyncio.run(main())


def _udp_query(host: str, port: int, name: str) -> dns.message.Message:
    # the answer to this query must come from the address asked: resolvers drop others
    # (RFC 5452 §4.4). Datagrams that answer no query of ours are skipped, as resolvers do:
    # on a busy machine a late answer meant for the socket that had this port before (of
    # another test run) may arrive.
    q = dns.message.make_query(name, "TXT")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        dns.query.send_udp(sock, q, (host, port))
        r, _, source = dns.query.receive_udp(
            sock, None, time.time() + 30, query=q, ignore_errors=True
        )
    assert source[:2] == (host, port), f"asked {host}, answered from {source}"
    return cast(dns.message.Message, r)


def test_wildcard_answers_from_the_address_that_was_asked() -> None:
    # issue 16 #2: on 0.0.0.0 the kernel picked the reply's source address (127.0.0.1
    # here), so a query to 127.0.0.2 was answered from 127.0.0.1 and dropped
    zone = answerer(Snapshot({"example.com": hosted("example.com", "7")}))

    async def main() -> None:
        async with AuthoritativeDnsServer(zone, "0.0.0.0", 0, own_thread=True) as server:
            port = server.port
            for host in ("127.0.0.2", "127.0.0.3", "127.0.0.1"):
                r = await asyncio.to_thread(_udp_query, host, port, f"example.com.policy.{ZONE}")
                assert r.answer, host
            r = await dns.asyncquery.tcp(
                dns.message.make_query(ZONE, "SOA"), "127.0.0.4", port=port, timeout=3
            )
            assert r.answer

    asyncio.run(main())


def test_ipv6_wildcard_listener() -> None:
    require(ipv6_available(), "IPv6 loopback (::1) is not available")
    zone = answerer(Snapshot({"example.com": hosted("example.com", "7")}))

    async def main() -> None:
        async with AuthoritativeDnsServer(zone, "::", 0) as server:
            r = await asyncio.to_thread(
                _udp_query, "::1", server.port, f"example.com.policy.{ZONE}"
            )
            assert r.answer

    asyncio.run(main())


# --- 3. the SOA serial ---------------------------------------------------------------------


def test_serial_follows_the_change_counter_not_the_clock() -> None:
    # issue 16 #4: the serial was the clock, changing every second
    clock = Clock()
    snap = Snapshot({"a.example": hosted("a.example", "1")}, generation=41)
    zone = answerer(snap, clock=clock)
    first = serial(zone)
    assert first == 2 * 41 + 1
    clock.now += 3600
    assert serial(zone) == first  # nothing changed: the same serial an hour later
    # a policy change: the generation moves, and once more when the TXT id is final (§8.1)
    snap.put(hosted("a.example", "2", changed_at=clock.now, previous="1"))
    snap.generation = 42
    assert serial(zone) == 84
    assert b"id=1" in ask(zone, "a.example.policy." + ZONE, "TXT").to_wire()
    clock.now += 5.0  # txt_delay
    assert serial(zone) == 85
    assert b"id=2" in ask(zone, "a.example.policy." + ZONE, "TXT").to_wire()


def test_serial_is_the_same_in_every_process_and_after_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    snap = Snapshot(
        {"a.example": hosted("a.example", "2", changed_at=clock.now - 2, previous="1")},
        generation=7,
    )
    one, two = answerer(snap, clock=clock), answerer(Snapshot(dict(snap.hosts), 7), clock=clock)
    assert serial(one) == serial(two) == 14
    snap.save(tmp_path / "snap.json")
    restarted = answerer(Snapshot.load(tmp_path / "snap.json"), clock=clock)
    assert serial(restarted) == 14
    clock.now += 10
    assert serial(one) == serial(two) == serial(restarted) == 15


def test_serial_never_goes_back_in_one_process() -> None:
    clock = Clock()
    snap = Snapshot({"a.example": hosted("a.example", "1")}, generation=10)
    zone = answerer(snap, clock=clock)
    assert serial(zone) == 21
    # a local change is patched in before the next sync moves the generation: the
    # TXT id of it is not final, but the serial does not drop to 20
    snap.put(hosted("a.example", "2", changed_at=clock.now, previous="1"))
    assert serial(zone) == 21
    snap.generation = 11
    assert serial(zone) == 22


# --- 4. zone transfers and NOTIFY ---------------------------------------------------------


def _transfer(
    host: str, port: int, rdtype: str = "AXFR", keyring: object = None, serial: int | None = None
) -> dns.zone.Zone:
    zone = dns.zone.Zone(ZONE + ".", relativize=False)
    kw: dict[str, object] = {}
    if keyring is not None:
        kw = {"keyring": keyring, "keyname": dns.name.from_text(KEY_NAME)}
    query, _ = dns.xfr.make_query(
        zone,
        serial=serial,
        **kw,  # type: ignore[arg-type]
    )
    if rdtype == "AXFR":
        query.question[0].rdtype = dns.rdatatype.AXFR
    dns.query.inbound_xfr(host, zone, query=query, port=port, timeout=5)
    return zone


def _txts(zone: dns.zone.Zone) -> dict[str, str]:
    out = {}
    for name, rdataset in zone.iterate_rdatasets(dns.rdatatype.TXT):
        out[name.to_text()] = b"".join(next(iter(rdataset)).strings).decode()
    return out


def test_axfr_only_to_secondaries() -> None:
    snap = Snapshot(
        {d: hosted(d, "1") for d in ("a.example", "b.example.co.uk")},
        generation=3,
    )
    zone = answerer(snap, replace(SETTINGS, dns_secondaries=("127.0.0.1:53",)))

    async def main() -> None:
        async with AuthoritativeDnsServer(zone, listen=[("127.0.0.2", 0)], own_thread=True) as s:
            copy = await asyncio.to_thread(_transfer, "127.0.0.2", s.port)
            txts = _txts(copy)
            assert txts[f"a.example.policy.{ZONE}."] == "v=STSv1; id=1"
            assert txts[f"b.example.co.uk.tlsrpt.{ZONE}."].startswith("v=TLSRPTv1; rua=")
            assert copy.get_rdataset(f"ns1.{ZONE}.", "A") is not None
            [soa] = copy.get_rdataset(ZONE + ".", "SOA")  # type: ignore[misc]
            assert soa.serial == serial(zone) == 7
            # IXFR: the whole zone (RFC 1995 §4) when behind, the SOA alone when current
            assert _txts(await asyncio.to_thread(_transfer, "127.0.0.2", s.port, "IXFR", None, 5))
            q = dns.message.make_query(ZONE, "IXFR")
            q.authority.append(zone.soa_rrset())
            r = await dns.asyncquery.tcp(q, "127.0.0.2", port=s.port, timeout=3)
            assert [rr.rdtype for rr in r.answer] == [dns.rdatatype.SOA]
            r = await dns.asyncquery.udp(
                q, "127.0.0.2", port=s.port, timeout=3, ignore_unexpected=True
            )
            assert [rr.rdtype for rr in r.answer] == [dns.rdatatype.SOA]

    asyncio.run(main())

    # anyone else is refused, over TCP and UDP
    other = answerer(snap, replace(SETTINGS, dns_secondaries=("127.0.0.9",)))

    async def refused() -> None:
        async with AuthoritativeDnsServer(other, "127.0.0.1", 0) as s:
            with pytest.raises(dns.xfr.TransferError) as err:
                await asyncio.to_thread(_transfer, "127.0.0.1", s.port)
            assert err.value.rcode == dns.rcode.REFUSED
            q = dns.message.make_query(ZONE, "IXFR")
            r = await dns.asyncquery.udp(
                q, "127.0.0.1", port=s.port, timeout=3, ignore_unexpected=True
            )
            assert r.rcode() == dns.rcode.REFUSED

    asyncio.run(refused())


def test_axfr_with_tsig_needs_the_key() -> None:
    snap = Snapshot({f"d{i}.example": hosted(f"d{i}.example", str(i)) for i in range(2000)})
    settings = replace(
        SETTINGS,
        dns_secondaries=("127.0.0.1",),
        dns_tsig_name=KEY_NAME,
        dns_tsig_secret=SECRET,
    )
    zone = answerer(snap, settings)
    keyring = dns.tsigkeyring.from_text({KEY_NAME: ("hmac-sha256", SECRET)})
    wrong = dns.tsigkeyring.from_text({KEY_NAME: ("hmac-sha256", base64.b64encode(b"x" * 32))})

    async def main() -> None:
        async with AuthoritativeDnsServer(zone, "127.0.0.1", 0) as s:
            # many messages, each signed (RFC 8945 §5.3.1); dnspython checks every one
            copy = await asyncio.to_thread(_transfer, "127.0.0.1", s.port, "AXFR", keyring)
            assert len(_txts(copy)) == 4000
            with pytest.raises(dns.xfr.TransferError) as err:
                await asyncio.to_thread(_transfer, "127.0.0.1", s.port)  # unsigned
            assert err.value.rcode == dns.rcode.REFUSED
            with pytest.raises((dns.xfr.TransferError, dns.tsig.PeerError)):
                await asyncio.to_thread(_transfer, "127.0.0.1", s.port, "AXFR", wrong)

    asyncio.run(main())


def test_the_publisher_reads_the_zone_from_the_built_in_server() -> None:
    # the AXFR the RFC 2136 publisher uses works against the built-in server too
    settings = replace(
        SETTINGS, dns_secondaries=("127.0.0.1",), dns_tsig_name=KEY_NAME, dns_tsig_secret=SECRET
    )
    zone = answerer(Snapshot({"a.example": hosted("a.example", "1")}), settings)

    async def main() -> None:
        async with AuthoritativeDnsServer(zone, "127.0.0.1", 0) as s:
            publisher = Rfc2136Publisher(
                replace(settings, update_server=s.address, tsig_name=KEY_NAME, tsig_secret=SECRET),
                Snapshot,
            )
            state = await publisher.read_zone()
            assert f"a.example.policy.{ZONE}" in state

    asyncio.run(main())


class FakeSecondary:
    """A UDP socket that records NOTIFY messages and answers them unless ``silent``."""

    def __init__(self, silent: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.5", 0))
        self.sock.settimeout(10)
        self.silent = silent  # this many NOTIFYs get no answer
        self.seen: list[tuple[dns.message.Message, str]] = []

    @property
    def address(self) -> str:
        return f"127.0.0.5:{self.sock.getsockname()[1]}"

    def receive(self, keyring: object = None) -> dns.message.Message:
        data, addr = self.sock.recvfrom(65535)
        msg = dns.message.from_wire(data, keyring=keyring)
        self.seen.append((msg, addr[0]))
        if self.silent:
            self.silent -= 1
            return msg
        response = dns.message.make_response(msg)
        self.sock.sendto(response.to_wire(), addr)
        return msg


def _notified_serial(msg: dns.message.Message) -> int:
    assert msg.opcode() == dns.opcode.NOTIFY and msg.flags & dns.flags.AA
    assert msg.question[0].name == dns.name.from_text(ZONE)
    assert msg.question[0].rdtype == dns.rdatatype.SOA
    return int(next(iter(msg.answer[0])).serial)


def test_notify_on_start_and_on_every_serial_change_with_retries() -> None:
    # issue 16 #3: no NOTIFY was ever sent
    secondary = FakeSecondary(silent=1)
    settings = replace(
        SETTINGS,
        dns_secondaries=(secondary.address,),
        dns_tsig_name=KEY_NAME,
        dns_tsig_secret=SECRET,
    )
    keyring = dns.tsigkeyring.from_text({KEY_NAME: ("hmac-sha256", SECRET)})
    clock = Clock()
    snap = Snapshot({"a.example": hosted("a.example", "1")}, generation=5)
    zone = answerer(snap, settings, clock)

    async def main() -> None:
        server = AuthoritativeDnsServer(zone, "127.0.0.2", 0, own_thread=True)
        async with server:
            first = await asyncio.to_thread(secondary.receive, keyring)  # not answered
            assert _notified_serial(first) == 11 and first.had_tsig
            again = await asyncio.to_thread(secondary.receive, keyring)  # the retry
            assert again.id != first.id and _notified_serial(again) == 11
            assert secondary.seen[0][1] == "127.0.0.2"  # from the server's address
            # the answered retry is counted once the server has read the answer (before
            # the change below: a newer serial replaces a NOTIFY still waiting for one)
            notifier = server.notifier
            assert notifier is not None
            await asyncio.to_thread(
                wait_for, lambda: notifier.sent == 1, 60, "the answered NOTIFY counted"
            )
            snap.put(hosted("b.example", "1"))
            snap.generation = 6
            server.zone_changed()
            changed = await asyncio.to_thread(secondary.receive, keyring)
            assert _notified_serial(changed) == 13

    try:
        asyncio.run(main())
    finally:
        secondary.sock.close()


# --- 5. RFC details ---------------------------------------------------------------------


def test_do_bit_is_copied() -> None:
    # issue 16 #5, RFC 3225 §3
    zone = answerer(Snapshot())
    r = ask(zone, ZONE, "SOA", use_edns=0, want_dnssec=True)
    assert r.ednsflags & dns.flags.DO
    assert not ask(zone, ZONE, "SOA", use_edns=0).ednsflags & dns.flags.DO


def test_no_padding_over_udp() -> None:
    # issue 16 #7: a padded query got a 468-byte answer (RFC 8467 pads encrypted only)
    zone = answerer(Snapshot())
    q = dns.message.make_query(
        f"x.{ZONE}", "A", use_edns=0, options=[dns.edns.GenericOption(dns.edns.PADDING, b"")]
    )
    wire = zone.respond(q.to_wire())
    assert wire is not None and len(wire) < 200
    r = dns.message.from_wire(wire)
    assert all(o.otype != dns.edns.PADDING for o in r.options)


def test_tlsrpt_mailto_only_when_mail_can_be_received() -> None:
    # issue 16 #6: rua=mailto:tlsrpt@Z was published with no MX, A or AAAA at Z
    https = f"https://policy-host.{ZONE}/tlsrpt/example.com"
    assert SETTINGS.tlsrpt_rua("example.com") == (https,)
    for extra in (
        {"smtp_listen": "127.0.0.1:25"},
        {"zone_mx": "mx.provider.test"},
    ):
        s = replace(SETTINGS, **extra)  # type: ignore[arg-type]
        assert s.tlsrpt_rua("example.com") == (f"mailto:tlsrpt@{ZONE}", https)
    own = replace(SETTINGS, tlsrpt_mailto="reports@provider.test")
    assert own.tlsrpt_rua("example.com") == ("mailto:reports@provider.test", https)
    zone = answerer(Snapshot({"example.com": hosted("example.com", "1")}))
    txt = ask(zone, f"example.com.tlsrpt.{ZONE}", "TXT").answer[0]
    assert b"".join(next(iter(txt)).strings).decode() == f"v=TLSRPTv1; rua={https}"


def test_txt_ttl_is_a_setting() -> None:
    snap = Snapshot({"example.com": hosted("example.com", "1")})
    zone = answerer(snap, replace(SETTINGS, txt_ttl=60))
    for name in (f"example.com.policy.{ZONE}", f"example.com.tlsrpt.{ZONE}"):
        assert ask(zone, name, "TXT").answer[0].ttl == 60
    assert load_settings(env={"MTASTS_TXT_TTL": "120"}).txt_ttl == 120
    with pytest.raises(ConfigError, match="txt_ttl"):
        load_settings(env={"MTASTS_TXT_TTL": "-1"})
    publisher = Rfc2136Publisher(
        replace(
            SETTINGS, txt_ttl=60, update_server="127.0.0.1", tsig_name="k.", tsig_secret=SECRET
        ),
        lambda: snap,
    )
    state = publisher.desired(snap.hosts.items(), 0.0)
    assert state[f"example.com.policy.{ZONE}"][dns.rdatatype.TXT][0] == 60


def test_serve_listens_on_every_dns_address_and_publishes_them(tmp_path: Path) -> None:
    from tests.hosting.serving import serve_process

    port = free_port(["127.0.0.2", "127.0.0.3"], udp=True)
    dns_args = ["--dns", f"127.0.0.2:{port}", "--dns", f"127.0.0.3:{port}"]
    with serve_process(tmp_path, "127.0.0.1:53", *dns_args, zone=ZONE):
        for host in ("127.0.0.2", "127.0.0.3"):
            q = dns.message.make_query(f"ns1.{ZONE}", "A")
            r = dns.query.udp(
                q, host, port=port, timeout=30, ignore_unexpected=True
            )  # generous: a loaded machine
            assert sorted(addresses(r)) == ["127.0.0.2", "127.0.0.3"], host
