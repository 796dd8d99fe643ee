"""DNS lookups: explicit nameservers, CNAME chains reported, and the outcomes NXDOMAIN,
NODATA, SERVFAIL and timeout told apart.

A stub resolver of its own (RFC 1035 §7), with dnspython for the names and for parsing
answers: each lookup sends one query (recursion desired, EDNS0) from its own connected UDP
socket, so the kernel drops datagrams from any other source and the ephemeral port is
random; an answer counts only with our id and our question; a truncated answer is asked
again over TCP (RFC 7766 §5). dnspython's own resolver did the same with several times the
CPU per lookup (message objects, an OPT record and a datagram protocol built per query),
which was most of `mtasts policyd`'s cost per new domain, and its import was a tenth of
`mtasts check`'s start.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from mtasts.net import lazy_metadata

lazy_metadata()  # before dnspython, whose feature checks import importlib.metadata

import dns.exception  # noqa: E402
import dns.flags  # noqa: E402
import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdataclass  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.rrset  # noqa: E402

DEFAULT_PORT = 53
MAX_CHAIN = 16  # CNAME hops we report at most
ATTEMPT_TIMEOUT = 2.0  # one try at one server; ``timeout`` bounds the whole lookup


class DnsStatus(StrEnum):
    OK = "OK"
    NXDOMAIN = "NXDOMAIN"
    NODATA = "NODATA"
    SERVFAIL = "SERVFAIL"
    TIMEOUT = "TIMEOUT"
    ERROR = "ERROR"  # anything else (REFUSED, malformed answer, no nameservers...)

    @property
    def temporary(self) -> bool:
        """True for outcomes a sender treats as a temporary failure (RFC 8461 §3.3)."""
        return self in (DnsStatus.SERVFAIL, DnsStatus.TIMEOUT, DnsStatus.ERROR)


@dataclass(frozen=True)
class DnsAnswer:
    """One lookup. ``records`` holds the answer in presentation-like text:
    TXT -> each record's strings concatenated without separator (decoded as UTF-8 with
    errors='surrogateescape'); A/AAAA -> addresses; MX -> see MxAnswer."""

    name: str  # the name asked, as given (no trailing dot)
    rdtype: str  # "TXT", "A", "AAAA", "MX", "CNAME"
    status: DnsStatus
    records: tuple[str, ...] = ()
    cname_chain: tuple[str, ...] = ()  # names followed, in order, excluding `name`
    error: str | None = None  # human-readable detail when status is not OK
    # OK: the TTL of the answer RRset; NXDOMAIN/NODATA: how long the "no" may be cached
    # (RFC 2308 §5: the smaller of the SOA's TTL and MINIMUM), when the server sent its SOA.
    ttl: int | None = None


@dataclass(frozen=True)
class MxRecord:
    preference: int
    exchange: str  # lower case, no trailing dot; "" for a null MX (RFC 7505)


@dataclass(frozen=True)
class MxAnswer:
    name: str
    status: DnsStatus
    records: tuple[MxRecord, ...] = ()  # sorted by preference then exchange
    cname_chain: tuple[str, ...] = ()
    error: str | None = None

    @property
    def null_mx(self) -> bool:
        """RFC 7505 §3: a single MX of preference 0 and exchange "." - no mail accepted."""
        return len(self.records) == 1 and self.records[0].exchange == ""


@dataclass(frozen=True)
class AddressAnswer:
    """A and AAAA of one host, asked in parallel."""

    name: str
    a: DnsAnswer
    aaaa: DnsAnswer
    addresses: tuple[str, ...] = field(default=())  # A then AAAA

    @property
    def status(self) -> DnsStatus:
        """OK when any address was found; else the more telling of the two outcomes
        (NXDOMAIN, then a temporary failure, then NODATA)."""
        if self.addresses:
            return DnsStatus.OK
        statuses = (self.a.status, self.aaaa.status)
        if DnsStatus.NXDOMAIN in statuses:
            return DnsStatus.NXDOMAIN
        for s in statuses:
            if s.temporary:
                return s
        return DnsStatus.NODATA


def parse_nameserver(text: str) -> tuple[str, int]:
    """ "IP", "IP:PORT", "IPv6", "[IPv6]" or "[IPv6]:PORT" -> (ip, port); ValueError else."""
    s = text.strip()
    host, port = s, DEFAULT_PORT
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: missing ']'")
        host, rest = s[1:end], s[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: expected [IPv6]:PORT")
            port = _port(rest[1:], text)
    elif s.count(":") == 1:
        host, port_text = s.split(":")
        port = _port(port_text, text)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address (give IP or IP:PORT)") from None
    return str(ip), port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{whole!r}: bad port {text!r}")
    return int(text)


def _text(name: dns.name.Name) -> str:
    if name == dns.name.root:
        return ""
    return name.to_text(omit_final_dot=True).lower()


def _chain(response: dns.message.Message | None, qname: dns.name.Name) -> tuple[str, ...]:
    """The CNAME targets followed from ``qname`` inside ``response`` (RFC 1034 §3.6.2)."""
    if response is None:
        return ()
    out: list[str] = []
    name, seen = qname, {qname}
    for _ in range(MAX_CHAIN):
        rrset = response.get_rrset(response.answer, name, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if rrset is None or len(rrset) == 0:
            break
        name = next(iter(rrset)).target
        out.append(_text(name))
        if name in seen:
            break
        seen.add(name)
    return tuple(out)


_EDNS_PAYLOAD = 1232  # DNS flag day 2020: answers rarely need the TCP fallback
# RFC 6891 §6.1.2: the OPT pseudo-record (root owner, type 41, payload size, no flags)
_OPT = b"\x00" + struct.pack("!HHIH", dns.rdatatype.OPT, _EDNS_PAYLOAD, 0, 0)
_RESOLV_CONF = Path("/etc/resolv.conf")


class _NoGood(Exception):
    """This server cannot answer this lookup (malformed answer, REFUSED, SERVFAIL, a
    broken connection): ask the next one. ``rcode`` when the server said so itself."""

    def __init__(self, message: str, rcode: str | None = None) -> None:
        super().__init__(message)
        self.rcode = rcode


@dataclass(frozen=True)
class _Found:
    """The final answer of one lookup: the RRset of the type asked (after the CNAME chain)
    when there is one, and the whole response."""

    rcode: int
    rrset: dns.rrset.RRset | None
    response: dns.message.Message


def system_nameservers(path: Path = _RESOLV_CONF) -> tuple[tuple[str, int], ...]:
    """The ``nameserver`` lines of resolv.conf(5), in order; OSError when unreadable,
    ValueError when it names none."""
    servers: list[tuple[str, int]] = []
    for line in path.read_text(errors="replace").splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                servers.append((str(ipaddress.ip_address(fields[1])), 53))  # fe80::1%eth0 too
            except ValueError:
                continue
    if not servers:
        raise ValueError(f"{path} names no nameserver")
    return tuple(servers)


class Resolver:
    """Async stub resolver. ``nameservers`` are "IP" or "IP:PORT" (IPv6 as "[::1]:53");
    None means the system configuration (resolv.conf's ``nameserver`` lines). ``timeout``
    bounds each lookup in total; one try at one server waits at most ``ATTEMPT_TIMEOUT``.

    One Resolver serves any number of concurrent lookups (each has its own socket). No
    search domains, no cache: names are always asked as given, fully qualified.
    """

    def __init__(self, nameservers: Sequence[str] | None = None, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self.config_error: str | None = None
        self._servers: tuple[tuple[str, int], ...] = ()
        if nameservers is None:
            try:
                self._servers = system_nameservers()
            except (OSError, ValueError) as exc:
                self.config_error = f"no system resolver configuration: {exc}"
        else:
            self._servers = tuple(parse_nameserver(ns) for ns in nameservers)

    @property
    def nameservers(self) -> tuple[str, ...]:
        """The servers asked, as "IP:PORT" ("[v6]:PORT")."""
        return tuple(_where(server) for server in self._servers)

    async def _lookup(
        self, name: str, rdtype: str
    ) -> tuple[DnsStatus, dns.rrset.RRset | None, tuple[str, ...], str | None]:
        """(status, the answer's RRset when OK, CNAME chain, error text)."""
        status, rrset, chain, error, _ttl = await self._lookup_ttl(name, rdtype)
        return status, rrset, chain, error

    async def _lookup_ttl(
        self, name: str, rdtype: str
    ) -> tuple[DnsStatus, dns.rrset.RRset | None, tuple[str, ...], str | None, int | None]:
        """Like _lookup, plus the negative TTL of an NXDOMAIN/NODATA answer."""
        if self.config_error is not None:
            return DnsStatus.ERROR, None, (), self.config_error, None
        try:
            qname = dns.name.from_text(name.strip().rstrip(".") + ".")
            qtype = dns.rdatatype.from_text(rdtype)
        except dns.exception.DNSException as exc:
            return DnsStatus.ERROR, None, (), f"{name!r} is not a valid DNS name: {exc}", None
        try:
            # every wait inside is bounded by the deadline; the outer bound only guards
            # against a stall
            async with asyncio.timeout(self.timeout + 1.0):
                found, errors, exhausted = await self._resolve(qname, qtype)
        except TimeoutError:
            found, errors, exhausted = None, [], False
        if found is None:
            if exhausted:  # every server said it cannot answer
                servfail = any(e.rcode == "SERVFAIL" for e in errors)
                status = DnsStatus.SERVFAIL if servfail else DnsStatus.ERROR
                return status, None, (), _describe(errors), None
            return DnsStatus.TIMEOUT, None, (), f"no answer within {self.timeout:g} s", None
        response = found.response
        chain = _chain(response, qname)
        if found.rcode == dns.rcode.NXDOMAIN:
            error = f"{name} does not exist (NXDOMAIN)"
            return DnsStatus.NXDOMAIN, None, chain, error, _soa_ttl(response)
        if found.rrset is None:
            where = f" (via {chain[-1]})" if chain else ""
            error = f"{name} has no {rdtype} record{where}"
            return DnsStatus.NODATA, None, chain, error, _soa_ttl(response)
        return DnsStatus.OK, found.rrset, chain, None, None

    async def _resolve(
        self, qname: dns.name.Name, qtype: int
    ) -> tuple[_Found | None, list[_NoGood], bool]:
        """Ask the servers in turn, round after round with a growing pause, until one
        answers NOERROR/NXDOMAIN or the lookup's time is up. A server that answers
        anything else (SERVFAIL, REFUSED, a malformed message) is not asked again.
        Returns (answer, what went wrong, True when no server is left to ask)."""
        deadline = time.monotonic() + self.timeout
        servers = list(self._servers)
        errors: list[_NoGood] = []
        pause = 0.1
        while servers:
            for server in list(servers):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None, errors, False
                try:
                    found = await self._ask(qname, qtype, server, min(ATTEMPT_TIMEOUT, left))
                    return found, errors, False
                except TimeoutError:
                    errors.append(_NoGood(f"{_where(server)}: timed out", "TIMEOUT"))
                except _NoGood as exc:
                    errors.append(exc)
                    servers.remove(server)
            left = deadline - time.monotonic()
            if not servers or left <= 0:
                break
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, 2.0)
        return None, errors, not servers

    async def _ask(
        self, qname: dns.name.Name, qtype: int, server: tuple[str, int], timeout: float
    ) -> _Found:
        qid = int.from_bytes(os.urandom(2), "big")
        # RFC 1035 §4.1.1: id, RD, one question; RFC 6891: one additional record, the OPT
        wire = (
            struct.pack("!HHHHHH", qid, dns.flags.RD, 1, 0, 0, 1)
            + _wire_name(qname)
            + struct.pack("!HH", qtype, dns.rdataclass.IN)
            + _OPT
        )
        async with asyncio.timeout(timeout):
            try:
                response = await _udp(wire, qid, qname, qtype, server)
                if response.flags & dns.flags.TC:  # RFC 7766 §5: ask again over TCP
                    response = await _tcp(wire, qid, qname, qtype, server)
            except OSError as exc:
                raise _NoGood(f"{_where(server)}: {exc.strerror or exc}") from None
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            return _Found(rcode, None, response)
        if rcode != dns.rcode.NOERROR:
            text = dns.rcode.to_text(rcode)
            raise _NoGood(f"{_where(server)}: {text}", text)
        try:
            chaining = response.resolve_chaining()
        except dns.exception.DNSException as exc:
            raise _NoGood(f"{_where(server)}: {exc}") from None
        return _Found(rcode, chaining.answer, response)

    async def query(self, name: str, rdtype: str) -> DnsAnswer:
        """Any record type; ``records`` in presentation format (names without the final
        dot, lower case; TXT joined as in :meth:`txt`)."""
        rdtype = rdtype.upper()
        status, rrset, chain, error, ttl = await self._lookup_ttl(name, rdtype)
        records: tuple[str, ...] = ()
        if rrset is not None:
            records = tuple(_rdata_text(r, rdtype) for r in rrset)
            ttl = rrset.ttl
        return DnsAnswer(_display(name), rdtype, status, records, chain, error, ttl)

    async def txt(self, name: str) -> DnsAnswer:
        """TXT records, each one's strings joined without separator (RFC 8461 §3.1,
        RFC 7208 §3.3)."""
        return await self.query(name, "TXT")

    async def cname(self, name: str) -> DnsAnswer:
        """The CNAME of ``name`` itself (records = (target,)), e.g. to verify delegation."""
        return await self.query(name, "CNAME")

    async def mx(self, name: str) -> MxAnswer:
        status, rrset, chain, error = await self._lookup(name, "MX")
        records: list[MxRecord] = []
        if rrset is not None:
            for r in rrset:
                # RFC 7505 §3: the null MX has exchange "." - kept as ""
                records.append(MxRecord(int(r.preference), _text(r.exchange)))
        records.sort(key=lambda m: (m.preference, m.exchange))
        return MxAnswer(_display(name), status, tuple(records), chain, error)

    async def addresses(self, name: str) -> AddressAnswer:
        a, aaaa = await asyncio.gather(self.query(name, "A"), self.query(name, "AAAA"))
        return AddressAnswer(_display(name), a, aaaa, a.records + aaaa.records)


def _soa_ttl(response: dns.message.Message | None) -> int | None:
    """RFC 2308 §5: a negative answer may be cached min(SOA TTL, SOA MINIMUM) seconds."""
    if response is None:
        return None
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return min(int(rrset.ttl), int(next(iter(rrset)).minimum))
    return None


def _display(name: str) -> str:
    return name.strip().rstrip(".")


def _rdata_text(rdata: object, rdtype: str) -> str:
    if rdtype == "TXT" or rdtype == "SPF":
        strings: tuple[bytes, ...] = rdata.strings  # type: ignore[attr-defined]
        return b"".join(strings).decode("utf-8", "surrogateescape")
    if rdtype in ("A", "AAAA"):
        return str(rdata.address)  # type: ignore[attr-defined]
    if rdtype in ("CNAME", "NS", "PTR", "DNAME"):
        return _text(rdata.target)  # type: ignore[attr-defined]
    if rdtype == "MX":
        return f"{rdata.preference} {_text(rdata.exchange)}"  # type: ignore[attr-defined]
    return rdata.to_text()  # type: ignore[attr-defined, no-any-return]


def _wire_name(name: dns.name.Name) -> bytes:
    """RFC 1035 §3.1: each label preceded by its length, ending with the root's empty one."""
    return b"".join(bytes([len(label)]) + label for label in name.labels)


def _where(server: tuple[str, int]) -> str:
    ip, port = server
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _describe(errors: Sequence[_NoGood]) -> str:
    if not errors:
        return "no nameserver could be asked"
    return "; ".join(dict.fromkeys(str(e) for e in errors))


def _answers(
    data: bytes, qid: int, qname: dns.name.Name, qtype: int, server: tuple[str, int]
) -> dns.message.QueryMessage | None:
    """``data`` parsed, when it is the answer to our query (our id, QR set, our question);
    None for anything else, which is ignored (a late answer, a spoofing attempt)."""
    if len(data) < 12 or int.from_bytes(data[:2], "big") != qid or not data[2] & 0x80:
        return None
    truncated = bool(data[2] & (dns.flags.TC >> 8))
    try:
        # RFC 2181 §9: a truncated answer may be cut anywhere; only its question is read
        message = dns.message.from_wire(data, question_only=truncated)
    except dns.exception.DNSException as exc:
        raise _NoGood(f"{_where(server)}: malformed answer: {exc}") from None
    question = message.question
    if (
        len(question) != 1
        or question[0].name != qname
        or question[0].rdtype != qtype
        or question[0].rdclass != dns.rdataclass.IN
    ):
        return None
    if not isinstance(message, dns.message.QueryMessage):
        raise _NoGood(f"{_where(server)}: not an answer to a query")
    return message


async def _udp(
    wire: bytes, qid: int, qname: dns.name.Name, qtype: int, server: tuple[str, int]
) -> dns.message.QueryMessage:
    """One query over UDP from a connected socket of its own (the kernel then delivers
    datagrams from ``server`` only; ICMP unreachable becomes an error at once)."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(server)  # UDP: no packet sent, only the peer fixed
        await loop.sock_sendall(sock, wire)
        while True:
            data = await loop.sock_recv(sock, 65535)
            message = _answers(data, qid, qname, qtype, server)
            if message is not None:
                return message


async def _tcp(
    wire: bytes, qid: int, qname: dns.name.Name, qtype: int, server: tuple[str, int]
) -> dns.message.QueryMessage:
    """The same query over TCP, two length octets before each message (RFC 1035 §4.2.2)."""
    reader, writer = await asyncio.open_connection(server[0], server[1])
    try:
        writer.write(struct.pack("!H", len(wire)) + wire)
        await writer.drain()
        size = struct.unpack("!H", await reader.readexactly(2))[0]
        data = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise _NoGood(f"{_where(server)}: the TCP answer was cut short") from None
    finally:
        writer.close()
    message = _answers(data, qid, qname, qtype, server)
    if message is None or message.flags & dns.flags.TC:
        raise _NoGood(f"{_where(server)}: no usable answer over TCP")
    return message
