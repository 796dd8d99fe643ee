"""A DNS server for the lab (dnspython wire format, asyncio UDP + TCP).

It answers like a recursive resolver that already knows every name of the lab: from an
in-memory :class:`Zone`, following CNAME chains (the CNAMEs plus the target's records, RFC
1034 §4.3.2), NXDOMAIN for names that do not exist, NOERROR with an empty answer (NODATA)
for names that exist with other types or only below (empty non-terminals, RFC 8020). Faults
per name, or per name and record type (a server that fails AAAA queries and answers A
ones is common in the wild): SERVFAIL, REFUSED, no answer at all (clients time out); slow
answers. Records go out in a random order, as servers rotate them, unless ``ordered(name)``
asks for the order they were added in. UDP answers that do not fit get the TC bit and
clients retry over TCP (RFC 7766 §5).

``forward={"sts.lab.test": "127.0.0.1:5353"}`` makes it follow a delegation as a recursive
resolver does: names at or below a forwarded zone (asked directly, or reached along a CNAME
chain) are asked of that zone's server, and its answer is spliced into the chain.

    zone = Zone()
    zone.add("example.test", "MX", "10 mx.example.test.")
    with DnsServer(zone, host="127.0.0.1", port=0) as dns_server:
        Resolver([dns_server.address])
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import cast

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from tests.lab._background import LabServer, close_writer
from tests.lab.ports import format_hostport, require_loopback

MAX_CHAIN = 12  # CNAME hops followed before giving up (as resolvers cap loops)
FORWARD_TIMEOUT = 3.0  # seconds to wait for a forwarded zone's server
UDP_DEFAULT_PAYLOAD = 512  # RFC 1035 §4.2.1, without EDNS
UDP_RECEIVE_BUFFER = 8 * 1024 * 1024


def _name(text: str | dns.name.Name) -> dns.name.Name:
    if isinstance(text, dns.name.Name):
        return text
    return dns.name.from_text(text.rstrip(".") + ".")


class Zone:
    """Records of the lab, keyed by owner name and type; thread-safe."""

    def __init__(self) -> None:
        self._rrsets: dict[tuple[dns.name.Name, dns.rdatatype.RdataType], dns.rrset.RRset] = {}
        # How many owner names sit at or below each name: a name exists (no NXDOMAIN) when
        # it or any descendant owns records (RFC 8020: empty non-terminals exist).
        self._below: Counter[dns.name.Name] = Counter()
        self._owners: Counter[dns.name.Name] = Counter()
        self._lock = threading.Lock()

    def add(self, name: str, rdtype: str, value: str, ttl: int = 300) -> None:
        """Add one record in presentation format, e.g. ``add("d.test", "TXT", '"v=STSv1; id=1"')``.

        TXT values without quotes are quoted for you (one string up to 255 bytes); give
        ``'"part1" "part2"'`` for several strings.
        """
        owner = _name(name)
        rtype = dns.rdatatype.from_text(rdtype)
        if rtype == dns.rdatatype.TXT and not value.lstrip().startswith('"'):
            value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN, rtype, value, origin=dns.name.root, relativize=False
        )
        with self._lock:
            key = (owner, rtype)
            rrset = self._rrsets.get(key)
            if rrset is None:
                rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, rtype)
                self._rrsets[key] = rrset
                self._own(owner, +1)
            rrset.add(rdata, ttl)

    def set(self, name: str, rdtype: str, values: list[str], ttl: int = 300) -> None:
        """Replace all records of ``name``/``rdtype`` (an empty list removes them)."""
        self.remove(name, rdtype)
        for v in values:
            self.add(name, rdtype, v, ttl)

    def remove(self, name: str, rdtype: str | None = None) -> None:
        """Remove the records of one type, or all records of ``name``."""
        owner = _name(name)
        with self._lock:
            for key in list(self._rrsets):
                if key[0] == owner and (
                    rdtype is None or key[1] == dns.rdatatype.from_text(rdtype)
                ):
                    del self._rrsets[key]
                    self._own(owner, -1)

    def _own(self, owner: dns.name.Name, delta: int) -> None:
        self._owners[owner] += delta
        # count the owner at itself and every ancestor, only on first add / last removal
        if (delta > 0 and self._owners[owner] == 1) or (delta < 0 and self._owners[owner] == 0):
            n = owner
            while True:
                self._below[n] += 1 if delta > 0 else -1
                if self._below[n] <= 0:
                    del self._below[n]
                if n == dns.name.root:
                    break
                n = n.parent()
            if self._owners[owner] <= 0:
                del self._owners[owner]

    def soa_for(self, name: dns.name.Name) -> dns.rrset.RRset | None:
        """The SOA of the closest enclosing zone that has one (``add(zone, "SOA", ...)``),
        which a server sends with a negative answer (RFC 2308 §3); None without one."""
        with self._lock:
            n = name
            while True:
                rrset = self._rrsets.get((n, dns.rdatatype.SOA))
                if rrset is not None or n == dns.name.root:
                    return rrset
                n = n.parent()

    def exists(self, name: str | dns.name.Name) -> bool:
        with self._lock:
            return self._below.get(_name(name), 0) > 0

    def resolve(
        self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType
    ) -> tuple[dns.rcode.Rcode, list[dns.rrset.RRset], list[dns.name.Name]]:
        """(rcode, answer RRsets, names visited along the CNAME chain incl. ``qname``)."""
        answer: list[dns.rrset.RRset] = []
        visited = [qname]
        name = qname
        with self._lock:
            for _ in range(MAX_CHAIN):
                rrset = self._rrsets.get((name, qtype))
                if rrset is not None:
                    answer.append(rrset)
                    return dns.rcode.NOERROR, answer, visited
                cname = self._rrsets.get((name, dns.rdatatype.CNAME))
                if cname is None or qtype == dns.rdatatype.CNAME:
                    break
                answer.append(cname)
                name = next(iter(cname)).target
                if name in visited:  # a CNAME loop: resolvers give up with SERVFAIL
                    return dns.rcode.SERVFAIL, [], visited
                visited.append(name)
            else:
                return dns.rcode.SERVFAIL, [], visited
            # RFC 2308 §2.1/§2.2: NXDOMAIN only when the (final) name does not exist at all
            rcode = dns.rcode.NOERROR if self._below.get(name, 0) > 0 else dns.rcode.NXDOMAIN
            return rcode, answer, visited

    def __len__(self) -> int:
        return len(self._rrsets)


class Fault(StrEnum):
    SERVFAIL = "servfail"
    REFUSED = "refused"
    DROP = "drop"  # no answer: the client times out


@dataclass
class DnsStats:
    udp_queries: int = 0
    tcp_queries: int = 0
    truncated: int = 0
    by_name: Counter[str] = field(default_factory=Counter)
    delaying: int = 0  # answers held back by a delay right now
    most_delaying: int = 0  # the most ever held at once: > 1 shows concurrent answering


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # the selector loop's datagram transport does not subclass DatagramTransport
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.server._spawn(self.server._answer_udp(self, data, addr))

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable
        pass


class DnsServer(LabServer):
    """UDP + TCP DNS server on ``host``:``port`` (0 picks a free port for both).

    ``delay`` seconds are slept (asyncio, not blocking) before every answer, to give
    benchmarks a realistic round trip; ``slow(name, s)`` sets it for one name.
    """

    name = "lab-dns"

    def __init__(
        self,
        zone: Zone | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        delay: float = 0.0,
        forward: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.zone = zone if zone is not None else Zone()
        self.forwards: dict[dns.name.Name, tuple[str, int]] = {}
        for forwarded_zone, server in (forward or {}).items():
            self.forward(forwarded_zone, server)
        self.host = require_loopback(host)
        self.port = port
        self.delay = delay
        self.stats = DnsStats()
        # (name, record type or None for every type) -> fault
        self._faults: dict[tuple[dns.name.Name, dns.rdatatype.RdataType | None], Fault] = {}
        self._delays: dict[dns.name.Name, float] = {}
        self._ordered: set[dns.name.Name] = set()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_writers: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        """ "IP:PORT" (or "[::1]:PORT") to give a resolver as its nameserver."""
        return format_hostport(self.host, self.port)

    def forward(self, zone: str, server: str) -> None:
        """Ask ``server`` ("IP:PORT" or "[::1]:PORT", loopback only) about every name at or
        below ``zone``, as a recursive resolver follows the zone's delegation."""
        host, sep, port = server.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"forward server must be IP:PORT, got {server!r}")
        self.forwards[_name(zone)] = (require_loopback(host.strip("[]")), int(port))

    def _forward_for(self, name: dns.name.Name) -> tuple[str, int] | None:
        for zone, server in self.forwards.items():
            if name.is_subdomain(zone):
                return server
        return None

    async def _follow_forwards(
        self,
        qtype: dns.rdatatype.RdataType,
        rcode: dns.rcode.Rcode,
        answer: list[dns.rrset.RRset],
        visited: list[dns.name.Name],
    ) -> tuple[dns.rcode.Rcode, list[dns.rrset.RRset]]:
        """Continue a chain that ends in a forwarded zone there, and back here when that
        zone's answer ends in a CNAME pointing out of it (RFC 1034 §4.3.2, step 3)."""
        answer = list(answer)
        for _ in range(MAX_CHAIN):
            name = visited[-1]
            done = bool(answer) and answer[-1].rdtype == qtype
            server = self._forward_for(name)
            if done or server is None or rcode == dns.rcode.SERVFAIL:
                return rcode, answer
            query = dns.message.make_query(name, qtype)
            try:
                reply, _tcp = await dns.asyncquery.udp_with_fallback(
                    query, server[0], timeout=FORWARD_TIMEOUT, port=server[1]
                )
            except (dns.exception.DNSException, OSError):
                return dns.rcode.SERVFAIL, []
            rcode = reply.rcode()
            answer += reply.answer
            last = reply.answer[-1] if reply.answer else None
            if last is None or last.rdtype != dns.rdatatype.CNAME or qtype == last.rdtype:
                return rcode, answer
            target = next(iter(last)).target
            if target in visited:
                return dns.rcode.SERVFAIL, []
            visited.append(target)
            if self._forward_for(target) is None:  # back to names this server knows
                rcode, more, chain = self.zone.resolve(target, qtype)
                answer += more
                visited += chain[1:]
        return dns.rcode.SERVFAIL, []

    # --- faults -------------------------------------------------------------------------

    def _fault(self, name: str, fault: Fault, rdtype: str | None) -> None:
        kind = dns.rdatatype.from_text(rdtype) if rdtype is not None else None
        self._faults[(_name(name), kind)] = fault

    def servfail(self, name: str, rdtype: str | None = None) -> None:
        """Answer SERVFAIL for ``name`` (and for chains passing through it); with
        ``rdtype``, only to queries of that type."""
        self._fault(name, Fault.SERVFAIL, rdtype)

    def refuse(self, name: str, rdtype: str | None = None) -> None:
        self._fault(name, Fault.REFUSED, rdtype)

    def drop(self, name: str, rdtype: str | None = None) -> None:
        """Never answer queries for ``name`` (of type ``rdtype`` only, when given): clients
        time out."""
        self._fault(name, Fault.DROP, rdtype)

    def slow(self, name: str, seconds: float) -> None:
        """Sleep ``seconds`` before answering for ``name`` (instead of ``delay``)."""
        self._delays[_name(name)] = seconds

    def ordered(self, name: str) -> None:
        """Give the records of ``name`` (and of chains passing through it) in the order they
        were added, instead of shuffled: for tests that need to know which address a
        client is given first."""
        self._ordered.add(_name(name))

    def heal(self, name: str | None = None) -> None:
        """Remove the faults, delays and fixed order of ``name`` (of every name when
        None)."""
        if name is None:
            self._faults.clear()
            self._delays.clear()
            self._ordered.clear()
        else:
            owner = _name(name)
            for key in [k for k in self._faults if k[0] == owner]:
                del self._faults[key]
            self._delays.pop(owner, None)
            self._ordered.discard(owner)

    def _fault_for(
        self, visited: list[dns.name.Name], qtype: dns.rdatatype.RdataType
    ) -> Fault | None:
        for n in visited:
            fault = self._faults.get((n, qtype)) or self._faults.get((n, None))
            if fault is not None:
                return fault
        return None

    # --- serving ------------------------------------------------------------------------

    async def astart(self) -> None:
        loop = asyncio.get_running_loop()
        want = self.port
        for _ in range(50):
            transport, _proto = await loop.create_datagram_endpoint(
                lambda: _Udp(self), sock=_udp_socket(self.host, want)
            )
            port = transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(
                    self._serve_tcp, self.host, port, reuse_address=True
                )
            except OSError:
                transport.close()
                if want:
                    raise
                continue
            self._udp = transport
            self.port = port
            return
        raise OSError(f"no port free for UDP and TCP on {self.host}")

    async def astop(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
        if self._udp is not None:
            self._udp.close()
        await self._cancel_tasks()
        for w in list(self._tcp_writers):
            await close_writer(w)
        if self._tcp is not None:
            await self._tcp.wait_closed()
        self._tcp = None
        self._udp = None

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:  # so astop() cancels connections still open
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._tcp_writers.add(writer)
        try:
            while True:
                try:
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    wire = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.stats.tcp_queries += 1
                out = await self._respond(wire, max_size=65535)
                if out is None:
                    continue  # dropped: the client waits for nothing
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        finally:
            self._tcp_writers.discard(writer)
            await close_writer(writer)

    async def _answer_udp(self, proto: _Udp, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.stats.udp_queries += 1
        out = await self._respond(data, max_size=None)
        if out is not None and proto.transport is not None and not proto.transport.is_closing():
            proto.transport.sendto(out, addr)

    async def _respond(self, wire: bytes, *, max_size: int | None) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return _formerr(wire)
        response = dns.message.make_response(query, recursion_available=True)
        response.flags |= dns.flags.AA
        delay = self.delay
        shuffle = True
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
        elif len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
        else:
            q = query.question[0]
            self.stats.by_name[q.name.to_text(omit_final_dot=True).lower()] += 1
            rcode, answer, visited = self.zone.resolve(q.name.canonicalize(), q.rdtype)
            if self.forwards:
                rcode, answer = await self._follow_forwards(q.rdtype, rcode, answer, visited)
            fault = self._fault_for(visited, q.rdtype)
            shuffle = not any(n in self._ordered for n in visited)
            delay = next((self._delays[n] for n in visited if n in self._delays), delay)
            if fault is Fault.DROP:
                return None
            if fault is Fault.SERVFAIL:
                rcode, answer = dns.rcode.SERVFAIL, []
            elif fault is Fault.REFUSED:
                rcode, answer = dns.rcode.REFUSED, []
            response.set_rcode(rcode)
            for rrset in answer:
                response.answer.append(rrset)
            if rcode == dns.rcode.NXDOMAIN or (rcode == dns.rcode.NOERROR and not answer):
                soa = self.zone.soa_for(visited[-1])
                if soa is not None:  # RFC 2308 §3: the SOA tells how long "no" holds
                    response.authority.append(soa)
        if delay > 0:
            self.stats.delaying += 1
            self.stats.most_delaying = max(self.stats.most_delaying, self.stats.delaying)
            try:
                await asyncio.sleep(delay)
            finally:
                self.stats.delaying -= 1
        if max_size is None:  # UDP: the client's EDNS payload, else 512 (RFC 6891 §6.2.5)
            max_size = max(query.payload, UDP_DEFAULT_PAYLOAD) if query.edns >= 0 else 512
        try:
            return response.to_wire(max_size=max_size, want_shuffle=shuffle)
        except dns.exception.TooBig:
            # RFC 7766 §5 / RFC 2181 §9: set TC, the client retries over TCP
            self.stats.truncated += 1
            response.answer.clear()
            response.flags |= dns.flags.TC
            return response.to_wire(max_size=max_size)


def _udp_socket(host: str, port: int) -> socket.socket:
    """A UDP socket with a large receive buffer: hundreds of queries arriving at once must
    not be dropped by the kernel before the loop reads them (as real servers tune it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
            if opt is None:
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, UDP_RECEIVE_BUFFER)
                break
            except OSError:
                continue
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _formerr(wire: bytes) -> bytes | None:
    if len(wire) < 12:
        return None
    with contextlib.suppress(Exception):
        # echo the id, QR set, FORMERR (RFC 1035 §4.1.1)
        (qid, flags) = struct.unpack("!HH", wire[:4])
        return struct.pack("!HHHHHH", qid, 0x8000 | (flags & 0x7800) | 1, 0, 0, 0, 0)
    return None
