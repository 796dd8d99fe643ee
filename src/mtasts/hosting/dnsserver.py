"""The authoritative DNS server of the service zone ``Z`` (design.md "Delegation layout").

Names of the zone, all answered from the in-memory :class:`Snapshot` (never the database):

    Z                  SOA, NS, and MX when the report receiver runs (zone_mx)
    policy-host.Z      A/AAAA of the HTTPS front (``policy_host_addresses``)
    ns1.Z ...          the same A/AAAA for in-zone NS names
    <d>.policy.Z       TXT "v=STSv1; id=<id>"  (RFC 8461 §3.1; id lags by §8.1)
    <d>.tlsrpt.Z       TXT "v=TLSRPTv1; rua=..." (RFC 8460 §3)
    policy.Z, tlsrpt.Z and every parent of a hosted <d> below them: empty non-terminals

:class:`ZoneAnswerer` turns a query into a response without I/O; :class:`AuthoritativeDnsServer`
serves it over UDP and TCP with asyncio, in `mtasts serve` on its own thread and event loop so
that a flood of queries never waits in line with the policy host's HTTP requests. ANY queries
get one synthesized HINFO record (RFC 8482 §4.2). Zone transfers are refused; the RFC 2136
publisher (dnspublish.py) is the way to put the zone on other servers.

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass

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

from mtasts.config import ConfigError, Settings
from mtasts.hosting.snapshot import Hosted, Snapshot
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

TXT_TTL = 300  # short: a policy change must reach senders soon after the §8.1 delay
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
                f"policy_host_addresses: {text!r} is not an IPv4 or IPv6 address"
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

    @classmethod
    def from_settings(cls, settings: Settings) -> Layout:
        try:
            origin = zone_origin(settings)
            ns = tuple(
                dns.name.from_text(n.strip().rstrip(".") + ".") for n in settings.effective_zone_ns
            )
            hostmaster = hostmaster_name(settings)
        except dns.exception.DNSException as exc:
            raise ConfigError(f"zone / zone_ns / hostmaster: not a valid DNS name: {exc}") from exc
        a, aaaa = address_rdatas(settings.policy_host_addresses)
        return cls(
            origin=origin,
            policy=dns.name.Name([b"policy"]).concatenate(origin),
            tlsrpt=dns.name.Name([b"tlsrpt"]).concatenate(origin),
            policy_host=dns.name.from_text(settings.policy_host + "."),
            ns=ns,
            hostmaster=hostmaster,
            a=tuple(a),
            aaaa=tuple(aaaa),
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
        self.layout = Layout.from_settings(settings)
        self._parents = _ParentIndex()
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
        for name in [lay.policy_host, *lay.in_zone_ns()]:
            if name.is_subdomain(lay.origin):
                self._static[name] = lay.address_records()
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
        """SOA serial: UNIX time (RFC 1982 arithmetic), so it grows with every change,
        including TXT ids that change when a §8.1 delay ends."""
        return int(self.clock()) % 2**32

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
                return {TXT: (TXT_TTL, [txt_rdata(sts_txt(entry, self.clock(), self.delay))])}
        else:
            domain = hosted_domain(name, lay.tlsrpt)
            if domain is not None and domain in snap.hosts:  # RFC 8460 §3
                return {TXT: (TXT_TTL, [txt_rdata(self.settings.tlsrpt_txt(domain))])}
        if domain is not None and self._parents.contains(snap, domain):
            return {}  # RFC 8020 §2: an empty non-terminal exists
        return None

    # --- answering ----------------------------------------------------------------------

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        """The response to ``query`` (a parsed query, QR clear)."""
        response = dns.message.make_response(query, our_payload=UDP_MAX_PAYLOAD)
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
            response.set_rcode(dns.rcode.REFUSED)  # RFC 5936 §2.2.1: transfers not offered
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
            for ttl, rdatas in self.layout.address_records().values():
                response.additional.append(dns.rrset.from_rdata_list(ns, ttl, rdatas))

    # --- wire format --------------------------------------------------------------------

    def respond(self, wire: bytes, *, tcp: bool = False) -> bytes | None:
        """The response to a query in wire format, or None when nothing must be sent
        (too short for a header, or itself a response). Never raises."""
        if len(wire) < 12:
            return None  # RFC 1035 §4.1.1: not even a header to answer to
        if wire[2] & 0x80:
            return None  # QR set: a response, never answered (no loops between servers)
        try:
            query = dns.message.from_wire(wire)
        except dns.message.UnknownTSIGKey:
            return _header_only(wire, dns.rcode.NOTAUTH)  # RFC 8945 §5.2.1: key unknown
        except Exception:
            return _header_only(wire, dns.rcode.FORMERR)  # RFC 1035 §4.1.1
        try:
            response = self.answer(query)
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


class _UdpListener:
    """The UDP socket, read by the event loop in batches: every readiness drains up to
    UDP_BATCH datagrams (asyncio's datagram transport reads one per loop iteration, too few
    to keep up with a flood when the thread waits for the GIL between iterations), and a
    large receive buffer absorbs bursts meanwhile, so honest queries are not lost behind
    a flood in the kernel's queue."""

    def __init__(
        self, sock: socket.socket, answerer: ZoneAnswerer, rate_limit: RateLimit | None
    ) -> None:
        self.sock = sock
        self.answerer = answerer
        self.rate_limit = rate_limit
        self.loop = asyncio.get_running_loop()
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        self.loop.add_reader(sock.fileno(), self._drain)

    def _drain(self) -> None:
        sock, rrl, respond = self.sock, self.rate_limit, self.answerer.respond
        for _ in range(UDP_BATCH):
            try:
                data, addr = sock.recvfrom(UDP_MAX_QUERY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP port unreachable reported on the socket
                continue
            if rrl is not None and not rrl.allow(addr[0]):
                out = rrl.over(data)  # decided before parsing: a flood costs little
            else:
                out = respond(data, tcp=False)
            if out is not None:
                with contextlib.suppress(OSError):  # a full send buffer drops the answer
                    sock.sendto(out, addr)

    def sockname(self) -> tuple[str, int]:
        name = self.sock.getsockname()
        return str(name[0]), int(name[1])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


class AuthoritativeDnsServer:
    """Serves ``answerer`` on ``host``:``port`` over UDP and TCP (same port; 0 picks a free
    one, see :attr:`port`). ``host`` may be an IPv4 or IPv6 literal ("::" for all).

        server = AuthoritativeDnsServer(ZoneAnswerer(settings, lambda: snap), "127.0.0.1", 53)
        await server.start()   # e.g. in an ASGI lifespan
        ...
        await server.stop()

    With ``own_thread``, :meth:`start` runs the server on a new thread with its own event
    loop (``mtasts serve`` does). The answerer reads the snapshot that the HTTP thread
    patches: single dict lookups and the set difference of its keys (_ParentIndex) run
    under the GIL without calling back into Python, so they see a dict before or after a
    change, never during one, and no lock is needed. ``rate_limit`` limits UDP answers.
    """

    def __init__(
        self,
        answerer: ZoneAnswerer,
        host: str = "127.0.0.1",
        port: int = 53,
        *,
        idle_timeout: float = TCP_IDLE_TIMEOUT,
        max_connections: int = TCP_MAX_CONNECTIONS,
        rate_limit: RateLimit | None = None,
        own_thread: bool = False,
    ) -> None:
        self.answerer = answerer
        self.host = host.strip("[]")
        self._port = port
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.rate_limit = rate_limit
        self.own_thread = own_thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._udp: _UdpListener | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def port(self) -> int:
        """The bound port (the one chosen by the system when 0 was given)."""
        return self._port

    @property
    def address(self) -> str:
        """ "IP:PORT" ("[v6]:PORT"), e.g. for :class:`mtasts.net.dns.Resolver`."""
        return f"[{self.host}]:{self._port}" if ":" in self.host else f"{self.host}:{self._port}"

    async def start(self) -> None:
        if self._udp is not None or self._thread is not None:
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
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        want = self._port
        last: OSError | None = None
        for _ in range(1 if want else 50):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((self.host, want))
            except OSError:
                sock.close()
                raise
            udp = _UdpListener(sock, self.answerer, self.rate_limit)
            port = udp.sockname()[1]
            try:
                tcp = await asyncio.start_server(
                    self._serve_tcp, self.host, port, family=family, reuse_address=True
                )
            except OSError as exc:  # the TCP port is taken: try another pair
                udp.close()
                last = exc
                continue
            self._udp = udp
            self._tcp = tcp
            self._port = port
            origin = self.answerer.layout.origin
            log.info("DNS: serving zone %s on %s (UDP, TCP)", origin, self.address)
            return
        raise OSError(f"no port free for both UDP and TCP on {self.host}: {last}")

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
        tcp, udp = self._tcp, self._udp
        self._tcp = self._udp = None
        if udp is not None:
            udp.close()
        if tcp is not None:
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
        if tcp is not None:
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
                out = self.answerer.respond(wire, tcp=True)
                if out is None:
                    continue
                writer.write(struct.pack("!H", len(out)) + out)  # RFC 1035 §4.2.2
                async with asyncio.timeout(self.idle_timeout):
                    await writer.drain()
        except (TimeoutError, ConnectionError):
            return
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
