"""The authoritative DNS server of the service zone ``Z`` (design.md "Delegation layout").

Names of the zone, all answered from the in-memory :class:`Snapshot` (never the database):

    Z                  SOA, NS, and MX when the report receiver runs (zone_mx)
    policy-host.Z      A/AAAA of the HTTPS front (``policy_host_addresses``)
    ns1.Z ...          A/AAAA of in-zone NS names: the DNS server's own (Settings.zone_ns_glue)
    <d>.policy.Z       TXT "v=STSv1; id=<id>"  (RFC 8461 §3.1; id lags by §8.1)
    <d>.tlsrpt.Z       TXT "v=TLSRPTv1; rua=..." (RFC 8460 §3)
    policy.Z, tlsrpt.Z and every parent of a hosted <d> below them: empty non-terminals

:class:`ZoneAnswerer` turns a query into a response without I/O; :class:`AuthoritativeDnsServer`
serves it over UDP and TCP with asyncio, in `mtasts serve` on its own thread and event loop so
that a flood of queries never waits in line with the policy host's HTTP requests. ANY queries
get one synthesized HINFO record (RFC 8482 §4.2). Zone transfers (AXFR, IXFR) go to the
secondaries of ``dns_secondaries`` only, which are sent NOTIFY on every change
(secondaries.py); the RFC 2136 publisher (dnspublish.py) is the other way to put the zone
on other servers.

The SOA serial follows the store's change counter (:meth:`ZoneAnswerer.serial`), so it
moves only when the zone may have changed, and several processes sharing one database
agree on it.

Listening: any number of addresses. On a wildcard address (0.0.0.0, ::) each UDP answer
is sent from the address the query was sent to (IP_PKTINFO / IPV6_PKTINFO), or resolvers
would drop it; specific addresses keep the batched ``recvfrom`` fast path.

Response rate limiting (:class:`RateLimit`, in the spirit of BIND's and Knot's RRL): UDP
queries are counted per source prefix (/24, /56) in a token bucket before they are parsed;
over the rate most are dropped unparsed and every ``slip``-th gets a bare truncated answer
(TC=1), so an honest resolver behind a busy prefix retries over TCP, where source addresses
cannot be spoofed and no rate applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset
import dns.tsig

from mtasts.config import ConfigError, Settings
from mtasts.hosting.secondaries import Notifier, TransferPolicy, transfer_messages
from mtasts.hosting.snapshot import Hosted, Snapshot
from mtasts.i18n import _
from mtasts.net.guard import TokenBuckets, accept_error_handler, fast_prefix

log = logging.getLogger(__name__)

IN = dns.rdataclass.IN
SOA = dns.rdatatype.SOA
NS = dns.rdatatype.NS
MX = dns.rdatatype.MX
A = dns.rdatatype.A
AAAA = dns.rdatatype.AAAA
TXT = dns.rdatatype.TXT
ANY = dns.rdatatype.ANY
HINFO = dns.rdatatype.HINFO

TXT_TTL = 300  # default of txt_ttl: a policy change reaches senders soon after the §8.1 delay
ADDRESS_TTL = 300
ZONE_TTL = 3600  # SOA and NS
SOA_REFRESH = 3600
SOA_RETRY = 600
SOA_EXPIRE = 1209600
SOA_MINIMUM = 60  # RFC 2308 §4: the negative-caching TTL
UDP_MAX_PAYLOAD = 1232  # DNS flag day 2020: no IP fragmentation
UDP_DEFAULT_PAYLOAD = 512  # RFC 1035 §4.2.1
TCP_MAX_MESSAGE = 65535  # RFC 1035 §4.2.2: two-byte length prefix
TCP_IDLE_TIMEOUT = 10.0  # RFC 7766 §6.2.3: seconds, not minutes
TCP_MAX_CONNECTIONS = 1024
PARENT_INDEX_MAX_AGE = 5.0  # seconds; see _ParentIndex
ANY_TTL = 86400  # RFC 8482 §6: the synthesized HINFO may be cached long
RRL_MAX_PREFIXES = 65536  # bounded table: ~10 MB at most
UDP_BATCH = 512  # datagrams read per readiness of the socket
UDP_RECEIVE_BUFFER = 4 << 20  # bytes; the kernel caps it at net.core.rmem_max
UDP_MAX_QUERY = 4096

RecordMap = dict[dns.rdatatype.RdataType, tuple[int, list[dns.rdata.Rdata]]]


def zone_origin(settings: Settings) -> dns.name.Name:
    return dns.name.from_text(settings.zone_name + ".")


def txt_rdata(text: str) -> dns.rdtypes.ANY.TXT.TXT:
    """One TXT record holding ``text``, split into strings of at most 255 bytes (RFC 1035
    §3.3.14); readers concatenate them (RFC 8461 §3.1, RFC 8460 §3)."""
    data = text.encode("utf-8")
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    return dns.rdtypes.ANY.TXT.TXT(IN, TXT, chunks)


def address_rdatas(
    addresses: Iterable[str],
) -> tuple[list[dns.rdata.Rdata], list[dns.rdata.Rdata]]:
    """(A rdatas, AAAA rdatas) of ``addresses``; ConfigError for anything not an IP."""
    a: list[dns.rdata.Rdata] = []
    aaaa: list[dns.rdata.Rdata] = []
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text.strip())
        except ValueError:
            raise ConfigError(
                _("{key}: {text} is not an IPv4 or IPv6 address").format(
                    key="policy_host_addresses", text=repr(text)
                )
            ) from None
        if ip.version == 4:
            a.append(dns.rdata.from_text(IN, A, str(ip)))
        else:
            aaaa.append(dns.rdata.from_text(IN, AAAA, str(ip)))
    return a, aaaa


def sts_txt(entry: Hosted, now: float, delay: float) -> str:
    """RFC 8461 §3.1 record; ``Hosted.txt_id`` keeps the old id for ``delay`` (§8.1)."""
    return f"v=STSv1; id={entry.txt_id(now, delay)}"


def hostmaster_name(settings: Settings) -> dns.name.Name:
    """SOA RNAME (RFC 1035 §3.3.13): ``hostmaster`` as a name or mailbox, else hostmaster.Z."""
    text = settings.hostmaster.strip().rstrip(".")
    if not text:
        return dns.name.from_text(f"hostmaster.{settings.zone_name}.")
    if "@" in text:
        local, domain = text.rsplit("@", 1)
        return dns.name.Name([local.encode()]).concatenate(dns.name.from_text(domain + "."))
    return dns.name.from_text(text + ".")


@dataclass(frozen=True)
class Layout:
    """The fixed names of the zone (everything except the hosted domains)."""

    origin: dns.name.Name
    policy: dns.name.Name
    tlsrpt: dns.name.Name
    policy_host: dns.name.Name
    ns: tuple[dns.name.Name, ...]
    hostmaster: dns.name.Name
    a: tuple[dns.rdata.Rdata, ...]
    aaaa: tuple[dns.rdata.Rdata, ...]
    # in-zone NS name -> its records (A/AAAA of the name server, never the HTTPS front's)
    glue: dict[dns.name.Name, RecordMap] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Layout:
        try:
            origin = zone_origin(settings)
            ns = tuple(
                dns.name.from_text(n.strip().rstrip(".") + ".") for n in settings.effective_zone_ns
            )
            hostmaster = hostmaster_name(settings)
        except dns.exception.DNSException as exc:
            raise ConfigError(
                _("zone / zone_ns / hostmaster: not a valid DNS name: {error}").format(error=exc)
            ) from exc
        a, aaaa = address_rdatas(settings.policy_host_addresses)
        glue: dict[dns.name.Name, RecordMap] = {}
        for name, addresses in settings.zone_ns_glue().items():
            ga, gaaaa = address_rdatas(addresses)
            records: RecordMap = {}
            if ga:
                records[A] = (ADDRESS_TTL, ga)
            if gaaaa:
                records[AAAA] = (ADDRESS_TTL, gaaaa)
            glue[dns.name.from_text(name + ".")] = records
        return cls(
            origin=origin,
            policy=dns.name.Name([b"policy"]).concatenate(origin),
            tlsrpt=dns.name.Name([b"tlsrpt"]).concatenate(origin),
            policy_host=dns.name.from_text(settings.policy_host + "."),
            ns=ns,
            hostmaster=hostmaster,
            a=tuple(a),
            aaaa=tuple(aaaa),
            glue=glue,
        )

    def address_records(self) -> RecordMap:
        out: RecordMap = {}
        if self.a:
            out[A] = (ADDRESS_TTL, list(self.a))
        if self.aaaa:
            out[AAAA] = (ADDRESS_TTL, list(self.aaaa))
        return out

    def in_zone_ns(self) -> list[dns.name.Name]:
        return [n for n in self.ns if n.is_subdomain(self.origin) and n != self.origin]


def hosted_domain(name: dns.name.Name, parent: dns.name.Name) -> str | None:
    """``example.co.uk`` for ``example.co.uk.<parent>`` (lower case), None when ``name`` is
    not strictly below ``parent``. Labels holding dots or odd bytes never match a domain:
    the text form escapes them."""
    if not name.is_subdomain(parent) or name == parent:
        return None
    return name.relativize(parent).to_text(omit_final_dot=True).lower()


class _ParentIndex:
    """Which names are proper parents of hosted domains (``co.uk`` and ``uk`` for
    ``example.co.uk``): below policy.Z and tlsrpt.Z they are empty non-terminals and must
    answer NODATA, not NXDOMAIN (RFC 8020 §2), or a resolver minimising its queries (RFC
    9156) stops at ``uk.policy.Z``. The snapshot is patched in place, so the index follows
    it by set difference (C speed) when told (:meth:`ZoneAnswerer.snapshot_changed`), when
    the snapshot looks changed (other dict, size or generation) and every few seconds."""

    def __init__(self) -> None:
        self._domains: set[str] = set()
        self._parents: Counter[str] = Counter()
        self._key: tuple[object, ...] | None = None
        self._refreshed = 0.0

    def invalidate(self) -> None:
        self._key = None

    def contains(self, snap: Snapshot, name: str) -> bool:
        self._refresh(snap)
        return self._parents.get(name, 0) > 0

    def _refresh(self, snap: Snapshot) -> None:
        hosts = snap.hosts
        key = (id(snap), id(hosts), len(hosts), snap.generation, snap.version)
        now = time.monotonic()
        if key == self._key and now - self._refreshed < PARENT_INDEX_MAX_AGE:
            return
        keys = hosts.keys()
        added = keys - self._domains
        removed = self._domains - keys
        for domain in removed:
            self._count(domain, -1)
        for domain in added:
            self._count(domain, +1)
        self._domains -= removed
        self._domains |= added
        self._key = key
        self._refreshed = now

    def _count(self, domain: str, delta: int) -> None:
        labels = domain.split(".")
        for i in range(1, len(labels)):
            parent = ".".join(labels[i:])
            self._parents[parent] += delta
            if self._parents[parent] <= 0:
                del self._parents[parent]


class ZoneAnswerer:
    """Answers queries for ``settings.zone_name`` from ``snapshot()`` (no I/O)."""

    def __init__(
        self,
        settings: Settings,
        snapshot: Callable[[], Snapshot],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.snapshot = snapshot
        self.clock = clock
        self.delay = settings.effective_txt_delay
        self.txt_ttl = settings.txt_ttl
        self._serial_floor = 0  # the highest serial handed out (see serial())
        self.layout = Layout.from_settings(settings)
        self._parents = _ParentIndex()
        self.transfers = TransferPolicy.from_settings(settings)
        lay = self.layout
        # RFC 1035 §3.3.13: MNAME, RNAME, SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM
        mname = lay.ns[0] if lay.ns else lay.origin
        self._soa = dns.rdata.from_text(
            IN,
            SOA,
            f"{mname} {lay.hostmaster} 0 {SOA_REFRESH} {SOA_RETRY} {SOA_EXPIRE} {SOA_MINIMUM}",
        )
        # fixed names -> their records; their parents up to Z are empty non-terminals
        self._static: dict[dns.name.Name, RecordMap] = {}
        for name in (lay.origin, lay.policy, lay.tlsrpt):
            self._static[name] = {}
        if lay.policy_host.is_subdomain(lay.origin):
            self._static[lay.policy_host] = lay.address_records()
        for name in lay.in_zone_ns():
            # RFC 1034 §4.2.2: the name servers' own addresses, which resolvers will use
            self._static[name] = dict(lay.glue.get(name, {}))
        self._static[lay.origin] = {NS: (ZONE_TTL, self._ns_rdatas())}
        if settings.effective_zone_mx:
            # RFC 8460 §3: the mailto: rua is tlsrpt@Z, so Z needs an MX (RFC 5321 §5.1)
            mx = dns.rdata.from_text(IN, MX, f"10 {settings.effective_zone_mx}.")
            self._static[lay.origin][MX] = (ZONE_TTL, [mx])
        for name in list(self._static):
            parent = name
            while parent != lay.origin and parent.is_subdomain(lay.origin):
                parent = parent.parent()
                self._static.setdefault(parent, {})

    def snapshot_changed(self) -> None:
        """Call after patching the snapshot (e.g. from the service's ``on_change``): the
        empty non-terminals below policy.Z and tlsrpt.Z are recomputed on the next query.
        Without it they follow changes of size or generation at once, others within 5 s."""
        self._parents.invalidate()

    # --- records ------------------------------------------------------------------------

    def _ns_rdatas(self) -> list[dns.rdata.Rdata]:
        return [dns.rdata.from_text(IN, NS, n.to_text()) for n in self.layout.ns]

    def serial(self) -> int:
        """SOA serial: ``2 * generation + settled`` modulo 2**32, where ``generation`` is
        the store's change counter (the highest audit id) the snapshot reflects, and
        ``settled`` is 1 once every TXT id of the latest changes is final (the §8.1 delay
        after the latest policy change has passed), since that step changes the zone
        without a store change.

        So the serial moves only when the store changed (a few changes outside the zone,
        such as new API tokens, count too: a needless transfer, never a missed one), never
        goes backwards across restarts, and is the same in every process sharing one
        database. RFC 1982 arithmetic: a secondary takes a serial as newer when it is
        less than 2**31 ahead, so the wrap after 2**31 changes is harmless as long as a
        secondary never misses 2**30 changes in a row. Within one process it never
        decreases: a local change patched in before the next sync (which moves the
        generation) keeps the serial it had."""
        snap = self.snapshot()
        settled = self.clock() >= snap.latest_change + self.delay
        value = 2 * max(snap.generation, 0) + int(settled)
        if value < self._serial_floor:
            value = self._serial_floor
        self._serial_floor = value
        return value % 2**32

    def soa_rdata(self) -> dns.rdata.Rdata:
        return self._soa.replace(serial=self.serial())

    def records(self, name: dns.name.Name) -> RecordMap | None:
        """Records owned by ``name`` (lower case, absolute); {} for a name that exists
        without records (empty non-terminal); None when the name does not exist."""
        static = self._static.get(name)
        if static is not None:
            if name == self.layout.origin:
                return {**static, SOA: (ZONE_TTL, [self.soa_rdata()])}
            return static
        lay = self.layout
        snap = self.snapshot()
        domain = hosted_domain(name, lay.policy)
        if domain is not None:
            entry = snap.hosts.get(domain)
            if entry is not None:  # RFC 8461 §3.1
                txt = sts_txt(entry, self.clock(), self.delay)
                return {TXT: (self.txt_ttl, [txt_rdata(txt)])}
        else:
            domain = hosted_domain(name, lay.tlsrpt)
            if domain is not None and domain in snap.hosts:  # RFC 8460 §3
                return {TXT: (self.txt_ttl, [txt_rdata(self.settings.tlsrpt_txt(domain))])}
        if domain is not None and self._parents.contains(snap, domain):
            return {}  # RFC 8020 §2: an empty non-terminal exists
        return None

    # --- answering ----------------------------------------------------------------------

    def answer(
        self, query: dns.message.Message, *, tcp: bool = False, source: str | None = None
    ) -> dns.message.Message:
        """The response to ``query`` (a parsed query, QR clear) from ``source`` (an IP;
        transfers are allowed by address). AXFR and IXFR over TCP are answered by
        :meth:`transfer`, not here."""
        # No EDNS padding: RFC 8467's policies are for encrypted transports (DoT, DoH),
        # which this server does not offer, and in cleartext a padded 468-byte answer to a
        # 50-byte UDP query only amplifies (issue 16)
        response = dns.message.make_response(query, our_payload=UDP_MAX_PAYLOAD, pad=0)
        if query.edns >= 0 and query.ednsflags & dns.flags.DO:
            response.ednsflags |= dns.flags.DO  # RFC 3225 §3: copy DO into the response
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)  # RFC 1035 §4.1.1
            return response
        if query.edns > 0:
            response.set_rcode(dns.rcode.BADVERS)  # RFC 6891 §6.1.3: we speak EDNS(0)
            return response
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)  # RFC 9619 §4: exactly one question
            return response
        q = query.question[0]
        qtype = q.rdtype
        if qtype in (dns.rdatatype.OPT, dns.rdatatype.TSIG, dns.rdatatype.TKEY):
            response.set_rcode(dns.rcode.FORMERR)  # RFC 6895 §3.1: not valid as QTYPE
            return response
        name = q.name.canonicalize()  # RFC 4343 §3: names compare case-insensitively
        if q.rdclass != IN or not name.is_subdomain(self.layout.origin):
            response.set_rcode(dns.rcode.REFUSED)  # RFC 8906 §3.1.3: not our zone
            return response
        if qtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            if (
                qtype == dns.rdatatype.IXFR
                and not tcp
                and name == self.layout.origin
                and self.transfers.allows(query, source)
            ):
                # RFC 1995 §2: over UDP the SOA alone: "current", or "ask again over TCP"
                response.flags |= dns.flags.AA
                response.answer.append(self.soa_rrset(q.name))
                return response
            response.set_rcode(dns.rcode.REFUSED)  # RFC 5936 §2.2.1: secondaries only
            return response
        if qtype in (dns.rdatatype.MAILA, dns.rdatatype.MAILB):
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        response.flags |= dns.flags.AA  # RFC 1035 §4.1.1: we are the zone's authority
        records = self.records(name)
        if records is None:
            response.set_rcode(dns.rcode.NXDOMAIN)  # RFC 1035 §4.3.2 step 3c
            self._negative(response)
            return response
        if qtype == ANY and records:
            # RFC 8482 §4.2: one synthesized HINFO instead of every RRset, so ANY is no
            # amplifier; a name without records answers NODATA as for any other type
            hinfo = dns.rdata.from_text(IN, HINFO, '"RFC8482" ""')
            response.answer.append(dns.rrset.from_rdata_list(q.name, ANY_TTL, [hinfo]))
            return response
        wanted = [qtype] if qtype in records else []
        for rdtype in wanted:
            ttl, rdatas = records[rdtype]
            # the owner keeps the query's case (RFC 4343 §4.1 asks no more than that)
            response.answer.append(dns.rrset.from_rdata_list(q.name, ttl, rdatas))
        if not wanted:
            self._negative(response)  # NODATA, RFC 2308 §2.2 (CNAME queries land here)
        elif NS in wanted and name == self.layout.origin:
            self._glue(response)
        return response

    def _negative(self, response: dns.message.Message) -> None:
        # RFC 2308 §3: the SOA in the authority section, TTL = min(SOA TTL, MINIMUM) (§5)
        soa = dns.rrset.from_rdata_list(
            self.layout.origin, min(ZONE_TTL, SOA_MINIMUM), [self.soa_rdata()]
        )
        response.authority.append(soa)

    def _glue(self, response: dns.message.Message) -> None:
        # RFC 1034 §4.3.2 step 6: addresses of in-zone name servers as additional data
        for ns in self.layout.in_zone_ns():
            for ttl, rdatas in self.layout.glue.get(ns, {}).values():
                response.additional.append(dns.rrset.from_rdata_list(ns, ttl, rdatas))

    # --- zone transfers (secondaries.py) ------------------------------------------------

    def soa_rrset(self, owner: dns.name.Name | None = None) -> dns.rrset.RRset:
        return dns.rrset.from_rdata_list(owner or self.layout.origin, ZONE_TTL, [self.soa_rdata()])

    def zone_rrsets(self, now: float | None = None) -> Iterator[dns.rrset.RRset]:
        """Every RRset of the zone except the SOA, as the snapshot holds it at the call
        (the hosted domains are copied first, so the transfer is one consistent zone)."""
        now = self.clock() if now is None else now
        hosts = list(self.snapshot().hosts.values())
        for name, records in self._static.items():
            for ttl, rdatas in records.values():
                yield dns.rrset.from_rdata_list(name, ttl, rdatas)
        policy, tlsrpt = self.layout.policy, self.layout.tlsrpt
        for entry in hosts:
            try:
                label = dns.name.from_text(entry.domain, origin=None)
            except dns.exception.DNSException:
                continue  # the store validates domains: never happens
            # RFC 8461 §3.1 with the §8.1 lag, and RFC 8460 §3
            yield dns.rrset.from_rdata_list(
                label.concatenate(policy),
                self.txt_ttl,
                [txt_rdata(sts_txt(entry, now, self.delay))],
            )
            yield dns.rrset.from_rdata_list(
                label.concatenate(tlsrpt),
                self.txt_ttl,
                [txt_rdata(self.settings.tlsrpt_txt(entry.domain))],
            )

    def transfer(self, query: dns.message.Message, source: str | None) -> Iterator[bytes] | None:
        """The wire messages answering an AXFR or IXFR over TCP (RFC 5936 §2.2; IXFR in
        AXFR form, RFC 1995 §4, or the SOA alone when the secondary is current), or None
        when ``query`` is no transfer this server gives ``source``."""
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            return None
        q = query.question[0]
        if q.rdtype not in (dns.rdatatype.AXFR, dns.rdatatype.IXFR) or q.rdclass != IN:
            return None
        if q.name.canonicalize() != self.layout.origin or not self.transfers.allows(query, source):
            return None
        soa = self.soa_rrset()
        if q.rdtype == dns.rdatatype.IXFR:
            theirs = [
                rr for rr in query.authority if rr.rdtype == SOA and rr.name == self.layout.origin
            ]
            serial = int(next(iter(soa)).serial)
            if theirs and theirs[0] and _serial_le(serial, int(next(iter(theirs[0])).serial)):
                # RFC 1995 §4: the client is current: our SOA alone
                response = dns.message.make_response(query, pad=0)
                response.flags |= dns.flags.AA
                response.answer = [soa]
                return iter([response.to_wire(max_size=TCP_MAX_MESSAGE)])
        return transfer_messages(query, soa, self.zone_rrsets())

    # --- wire format --------------------------------------------------------------------

    def respond(self, wire: bytes, *, tcp: bool = False, source: str | None = None) -> bytes | None:
        """The response to a query in wire format from ``source``, or None when nothing
        must be sent (too short for a header, or itself a response). Never raises. Zone
        transfers are refused here: TCP connections use :meth:`respond_tcp`."""
        return cast("bytes | None", self._respond(wire, tcp, source, transfers=False))

    def respond_tcp(self, wire: bytes, source: str | None = None) -> Iterator[bytes]:
        """The messages answering a query received over TCP: one, none, or a zone
        transfer's many (built as they are taken, so a big zone never stalls the loop)."""
        out = self._respond(wire, True, source, transfers=True)
        if isinstance(out, bytes):
            return iter((out,))
        return out if out is not None else iter(())

    def _respond(
        self, wire: bytes, tcp: bool, source: str | None, *, transfers: bool
    ) -> bytes | Iterator[bytes] | None:
        if len(wire) < 12:
            return None  # RFC 1035 §4.1.1: not even a header to answer to
        if wire[2] & 0x80:
            return None  # QR set: a response, never answered (no loops between servers)
        try:
            query = dns.message.from_wire(wire, keyring=self.transfers.keyring)
        except (dns.message.UnknownTSIGKey, dns.tsig.BadSignature, dns.tsig.BadTime):
            # RFC 8945 §5.2: unknown key, bad signature or time: NOTAUTH, unsigned
            return _not_authenticated(wire)
        except Exception:
            return _header_only(wire, dns.rcode.FORMERR)  # RFC 1035 §4.1.1
        try:
            if transfers:
                messages = self.transfer(query, source)
                if messages is not None:
                    return messages
            response = self.answer(query, tcp=tcp, source=source)
            if tcp:
                limit = TCP_MAX_MESSAGE
            elif query.edns >= 0:
                # RFC 6891 §6.2.5: payloads below 512 count as 512; our cap is 1232
                limit = max(UDP_DEFAULT_PAYLOAD, min(query.payload, UDP_MAX_PAYLOAD))
            else:
                limit = UDP_DEFAULT_PAYLOAD  # RFC 1035 §4.2.1
            return render(response, limit)
        except Exception:
            log.exception("DNS: failed to answer a query; SERVFAIL")
            return _header_only(wire, dns.rcode.SERVFAIL)


def _serial_le(a: int, b: int) -> bool:
    """RFC 1982 §3.2: serial ``a`` is not newer than ``b``."""
    return a == b or (a < b and b - a < 2**31) or (a > b and a - b > 2**31)


def render(response: dns.message.Message, limit: int) -> bytes:
    """``response`` in wire format within ``limit`` bytes: additional data is dropped
    first (no TC, RFC 2181 §9), then the answer is truncated to the header, question and
    OPT with TC set, so the client retries over TCP (RFC 7766 §5, RFC 1035 §4.2.1)."""
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        pass
    if response.additional:
        response.additional = []
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            pass
    response.answer = []
    response.authority = []
    response.flags |= dns.flags.TC
    return response.to_wire(max_size=limit)


def truncated_answer(wire: bytes) -> bytes | None:
    """A bare truncated response (TC=1, the question echoed, no records) built from the
    header and question bytes without parsing the message; None for anything not a
    one-question query. The cheap answer of rate limiting (RFC 7766 §5: retry over TCP)."""
    if len(wire) < 17 or wire[2] & 0x80 or wire[4:6] != b"\x00\x01":
        return None
    pos = 12
    end = len(wire)
    while pos < end:
        length = wire[pos]
        if length == 0:
            break
        if length & 0xC0:
            return None  # RFC 1035 §4.1.4: no compression in a first question
        pos += length + 1
    pos += 5  # the root label, QTYPE, QCLASS
    if pos > end:
        return None
    (qid, flags) = struct.unpack("!HH", wire[:4])
    flags = 0x8000 | (flags & 0x7900) | 0x0200  # QR, opcode, RD, TC
    return struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 0) + wire[12:pos]


def _not_authenticated(wire: bytes) -> bytes:
    """NOTAUTH for a query whose TSIG failed, echoing its question (RFC 8945 §5.2)."""
    try:
        query = dns.message.from_wire(wire, keyring=False)  # parsed, not verified
        response = dns.message.make_response(query, pad=0)
        response.keyring = None
        response.tsig = None
        response.set_rcode(dns.rcode.NOTAUTH)
        return response.to_wire()
    except Exception:
        return _header_only(wire, dns.rcode.NOTAUTH)


def _header_only(wire: bytes, rcode: dns.rcode.Rcode) -> bytes:
    """A bare header echoing id, opcode and RD, with QR and ``rcode`` (no sections)."""
    (qid, flags) = struct.unpack("!HH", wire[:4])
    flags = 0x8000 | (flags & 0x7900) | (int(rcode) & 0xF)  # QR, opcode, RD
    return struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)


# --- the server ---------------------------------------------------------------------------


class RateLimit:
    """Response rate limiting over UDP: ``rate`` answers a second per source prefix (IPv4
    /24, IPv6 /56), ``window`` seconds of it at once; over it every ``slip``-th query gets
    a truncated answer and the others none (0: none at all)."""

    def __init__(
        self,
        rate: float,
        window: float = 2.0,
        slip: int = 2,
        *,
        max_prefixes: int = RRL_MAX_PREFIXES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.buckets = TokenBuckets(rate, rate * window, max_prefixes, clock)
        self.slip = slip
        self.limited = 0  # queries over the rate
        self.slipped = 0  # of which answered truncated

    def allow(self, source: str) -> bool:
        return self.buckets.take(fast_prefix(source))

    def over(self, wire: bytes) -> bytes | None:
        """What to send for a query over the rate: a truncated answer, or None (drop)."""
        self.limited += 1
        if self.slip and self.limited % self.slip == 0:
            out = truncated_answer(wire)
            if out is not None:
                self.slipped += 1
            return out
        return None


IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux <linux/in.h>; not in every Python
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
ANCILLARY_BYTES = socket.CMSG_SPACE(20)  # room for one in_pktinfo or in6_pktinfo


def _wildcard(host: str) -> bool:
    return ipaddress.ip_address(host).is_unspecified


class _UdpListener:
    """A UDP socket, read by the event loop in batches: every readiness drains up to
    UDP_BATCH datagrams (asyncio's datagram transport reads one per loop iteration, too few
    to keep up with a flood when the thread waits for the GIL between iterations), and a
    large receive buffer absorbs bursts meanwhile, so honest queries are not lost behind
    a flood in the kernel's queue.

    On a wildcard address the kernel would send each answer from its preferred source
    address, not from the one the query was sent to, and resolvers drop such answers
    (RFC 5452 §4.4 has them match the address they asked). There every datagram is read
    with ``recvmsg`` and the packet-info of its destination, and answered with ``sendmsg``
    from that address (IP_PKTINFO, RFC 3542 §6 for IPv6)."""

    def __init__(
        self, sock: socket.socket, answerer: ZoneAnswerer, rate_limit: RateLimit | None
    ) -> None:
        self.sock = sock
        self.answerer = answerer
        self.rate_limit = rate_limit
        self.loop = asyncio.get_running_loop()
        self.v6 = sock.family == socket.AF_INET6
        self.wildcard = _wildcard(str(sock.getsockname()[0]))
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        if self.wildcard:
            if self.v6:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        self.loop.add_reader(sock.fileno(), self._drain_pktinfo if self.wildcard else self._drain)

    def _drain(self) -> None:
        sock, rrl, respond = self.sock, self.rate_limit, self.answerer.respond
        for _batch in range(UDP_BATCH):
            try:
                data, addr = sock.recvfrom(UDP_MAX_QUERY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP port unreachable reported on the socket
                continue
            if rrl is not None and not rrl.allow(addr[0]):
                out = rrl.over(data)  # decided before parsing: a flood costs little
            else:
                out = respond(data, tcp=False, source=addr[0])
            if out is not None:
                with contextlib.suppress(OSError):  # a full send buffer drops the answer
                    sock.sendto(out, addr)

    def _drain_pktinfo(self) -> None:
        sock, rrl, respond = self.sock, self.rate_limit, self.answerer.respond
        level, kind = (
            (socket.IPPROTO_IPV6, IPV6_PKTINFO) if self.v6 else (socket.IPPROTO_IP, IP_PKTINFO)
        )
        for _batch in range(UDP_BATCH):
            try:
                data, ancillary, _flags, addr = sock.recvmsg(UDP_MAX_QUERY, ANCILLARY_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            reply_from: list[tuple[int, int, bytes]] = []
            for cmsg_level, cmsg_type, cmsg_data in ancillary:
                if cmsg_level == level and cmsg_type == kind:
                    if self.v6 and len(cmsg_data) >= 20:
                        # struct in6_pktinfo {in6_addr ipi6_addr; int ipi6_ifindex}
                        reply_from = [(level, kind, bytes(cmsg_data[:20]))]
                    elif len(cmsg_data) >= 12:
                        # struct in_pktinfo {int ifindex; in_addr spec_dst; in_addr addr}:
                        # answer from the header's destination address, any interface
                        dst = bytes(cmsg_data[8:12])
                        reply_from = [(level, kind, struct.pack("=I4s4s", 0, dst, dst))]
            if rrl is not None and not rrl.allow(addr[0]):
                out = rrl.over(data)
            else:
                out = respond(data, tcp=False, source=addr[0])
            if out is not None:
                with contextlib.suppress(OSError):
                    sock.sendmsg([out], reply_from, 0, addr)

    def sockname(self) -> tuple[str, int]:
        name = self.sock.getsockname()
        return str(name[0]), int(name[1])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class AuthoritativeDnsServer:
    """Serves ``answerer`` on ``host``:``port`` over UDP and TCP (same port; 0 picks a free
    one, see :attr:`port`), or on every (host, port) of ``listen``. A host may be an IPv4
    or IPv6 literal, wildcards ("0.0.0.0", "::") included.

        server = AuthoritativeDnsServer(ZoneAnswerer(settings, lambda: snap), "127.0.0.1", 53)
        await server.start()   # e.g. in an ASGI lifespan
        ...
        await server.stop()

    With ``own_thread``, :meth:`start` runs the server on a new thread with its own event
    loop (``mtasts serve`` does). The answerer reads the snapshot that the HTTP thread
    patches: single dict lookups and the set difference of its keys (_ParentIndex) run
    under the GIL without calling back into Python, so they see a dict before or after a
    change, never during one, and no lock is needed. ``rate_limit`` limits UDP answers.
    When the settings name secondaries, a :class:`Notifier` runs on the server's loop and
    sends them NOTIFY (:meth:`zone_changed` checks at once).
    """

    def __init__(
        self,
        answerer: ZoneAnswerer,
        host: str = "127.0.0.1",
        port: int = 53,
        *,
        listen: Sequence[tuple[str, int]] | None = None,
        idle_timeout: float = TCP_IDLE_TIMEOUT,
        max_connections: int = TCP_MAX_CONNECTIONS,
        rate_limit: RateLimit | None = None,
        own_thread: bool = False,
        notify_interval: float = 1.0,
    ) -> None:
        self.answerer = answerer
        self._listen = [(h.strip("[]"), p) for h, p in (listen or [(host, port)])]
        if not self._listen:
            raise ValueError("no address to listen on")
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.rate_limit = rate_limit
        self.own_thread = own_thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._udp: list[_UdpListener] = []
        self._tcp: list[asyncio.Server] = []
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.notifier: Notifier | None = None
        self._notify_task: asyncio.Task[None] | None = None
        if answerer.settings.dns_secondaries:
            self.notifier = Notifier(
                answerer.settings,
                answerer.layout.origin,
                answerer.serial,
                answerer.soa_rrset,
                [h for h, _ in self._listen if not _wildcard(h)],
                interval=notify_interval,
            )

    @property
    def host(self) -> str:
        """The first listen address."""
        return self._listen[0][0]

    @property
    def port(self) -> int:
        """The first bound port (the one chosen by the system when 0 was given)."""
        return self._listen[0][1]

    @property
    def address(self) -> str:
        """ "IP:PORT" ("[v6]:PORT") of the first listener, e.g. for
        :class:`mtasts.net.dns.Resolver`."""
        return _hostport(*self._listen[0])

    @property
    def addresses(self) -> list[str]:
        """ "IP:PORT" of every listener."""
        return [_hostport(h, p) for h, p in self._listen]

    def zone_changed(self) -> None:
        """Call after the snapshot changed (any thread): NOTIFY goes out at once if the
        serial moved (otherwise within ``notify_interval``)."""
        if self.notifier is not None:
            self.notifier.poke()

    async def start(self) -> None:
        if self._udp or self._thread is not None:
            raise RuntimeError("the DNS server is already running")
        if not self.own_thread:
            await self._start()
            return
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(accept_error_handler())
        thread = threading.Thread(target=loop.run_forever, name="mtasts-dns", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._start(), loop))
        except BaseException:
            await self._stop_thread()
            raise

    async def _stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join, 10.0)
        if not thread.is_alive():
            loop.close()

    async def _start(self) -> None:
        try:
            for i, (host, port) in enumerate(self._listen):
                self._listen[i] = (host, await self._bind(host, port))
        except BaseException:
            await self._stop()
            raise
        if self.notifier is not None:
            self._notify_task = asyncio.create_task(self.notifier.run())
        origin = self.answerer.layout.origin
        log.info("DNS: serving zone %s on %s (UDP, TCP)", origin, ", ".join(self.addresses))

    async def _bind(self, host: str, want: int) -> int:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        last: OSError | None = None
        for _attempt in range(1 if want else 50):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                if family == socket.AF_INET6:
                    # "::" serves IPv6 only: 0.0.0.0 is listed separately (and IPv4-mapped
                    # answers would need IP_PKTINFO on an IPv6 socket)
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((host, want))
            except OSError:
                sock.close()
                raise
            udp = _UdpListener(sock, self.answerer, self.rate_limit)
            port = udp.sockname()[1]
            try:
                tcp = await asyncio.start_server(
                    self._serve_tcp, host, port, family=family, reuse_address=True
                )
            except OSError as exc:  # the TCP port is taken: try another pair
                udp.close()
                last = exc
                continue
            self._udp.append(udp)
            self._tcp.append(tcp)
            return port
        raise OSError(f"no port free for both UDP and TCP on {host}: {last}")

    async def stop(self) -> None:
        """Close the sockets and every TCP connection; idempotent."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(Exception):
                future = asyncio.run_coroutine_threadsafe(self._stop(), loop)
                await asyncio.wrap_future(future)
            await self._stop_thread()
            return
        await self._stop()

    async def _stop(self) -> None:
        tcps, udps = self._tcp, self._udp
        self._tcp, self._udp = [], []
        task, self._notify_task = self._notify_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for udp in udps:
            udp.close()
        for tcp in tcps:
            tcp.close()
        # abort the connections rather than cancel their tasks: the handlers see EOF and
        # return (asyncio 3.11 logs an error for cancelled stream handler tasks)
        for writer in list(self._connections.values()):
            writer.transport.abort()
        tasks = list(self._connections)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=2.0)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        for tcp in tcps:
            await tcp.wait_closed()

    async def __aenter__(self) -> AuthoritativeDnsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections[task] = writer
        peer = writer.get_extra_info("peername")
        source = str(peer[0]) if peer else None
        try:
            if len(self._connections) > self.max_connections:
                return  # RFC 7766 §6.2.2: servers may limit concurrent connections
            # RFC 7766 §6.2.1: several queries per connection, answered in order here;
            # §6.2.3: close after a few idle seconds
            while True:
                try:
                    async with asyncio.timeout(self.idle_timeout):
                        (length,) = struct.unpack("!H", await reader.readexactly(2))
                        wire = await reader.readexactly(length)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                # a zone transfer is many messages: each is written, and the writer
                # drained, before the next is built, so a big zone never stalls the loop
                for message in self.answerer.respond_tcp(wire, source):
                    writer.write(struct.pack("!H", len(message)) + message)  # RFC 1035 §4.2.2
                    async with asyncio.timeout(self.idle_timeout):
                        await writer.drain()
        except (TimeoutError, ConnectionError):
            return
        except Exception:
            log.exception("DNS: failed to answer over TCP (e.g. during a zone transfer)")
        finally:
            if task is not None:
                self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()


__all__ = [
    "AuthoritativeDnsServer",
    "Layout",
    "RateLimit",
    "ZoneAnswerer",
    "address_rdatas",
    "hosted_domain",
    "render",
    "sts_txt",
    "truncated_answer",
    "txt_rdata",
    "zone_origin",
]
