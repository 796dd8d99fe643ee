"""DNS lookups: explicit nameservers, CNAME chains reported, and the outcomes NXDOMAIN,
NODATA, SERVFAIL and timeout told apart.

A stub resolver of its own (RFC 1035 §7): dnspython checks and encodes the names asked,
mtasts.net.dnswire reads the answers. Each lookup sends one query (recursion desired,
EDNS0) from its own connected UDP socket, so the kernel drops datagrams from any other
source and the ephemeral port is random; an answer counts only with our id and our
question; a truncated answer is asked again over TCP (RFC 7766 §5). dnspython's own
resolver did the same with several times the CPU per lookup (message objects, an OPT
record and a datagram protocol built per query, a general parser): most of `mtasts
policyd`'s cost per new domain, and its import a tenth of `mtasts check`'s start.
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
from typing import cast

from mtasts.net import lazy_metadata

lazy_metadata()  # before dnspython, whose feature checks import importlib.metadata

import dns.exception  # noqa: E402
import dns.name  # noqa: E402

from mtasts.net import dnswire  # noqa: E402
from mtasts.net.dnswire import Labels, Message, Record, WireError  # noqa: E402
from mtasts.protocol.errors import Text  # noqa: E402

DEFAULT_PORT = 53
_RESOLV_CONF = Path("/etc/resolv.conf")
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

    @property
    def error(self) -> str | None:
        """The detail of the look-up whose outcome ``status`` gives (A when both do): a
        failed AAAA look-up is not explained by the A look-up's "no A record"."""
        status = self.status
        for answer in (self.a, self.aaaa):
            if answer.status is status:
                return answer.error
        return None


def parse_nameserver(text: str) -> tuple[str, int]:
    """ "IP", "IP:PORT", "IPv6", "[IPv6]" or "[IPv6]:PORT" -> (ip, port); ValueError else."""
    s = text.strip()
    host, port = s, DEFAULT_PORT
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            raise ValueError(Text("{text!r}: missing ']'", text=text))
        host, rest = s[1:end], s[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(Text("{text!r}: expected [IPv6]:PORT", text=text))
            port = _port(rest[1:], text)
    elif s.count(":") == 1:
        host, port_text = s.split(":")
        port = _port(port_text, text)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            Text("{text!r} is not an IP address (give IP or IP:PORT)", text=text)
        ) from None
    return str(ip), port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(Text("{whole!r}: bad port {text!r}", whole=whole, text=text))
    return int(text)


def _text(labels: Labels) -> str:
    """A name in presentation format, lower case, without the final dot ("" for the root)."""
    if not labels:
        return ""
    return dns.name.Name((*labels, b"")).to_text(omit_final_dot=True).lower()


class _NoGood(Exception):
    """This server cannot answer this lookup (malformed answer, REFUSED, SERVFAIL, a
    broken connection): ask the next one. ``rcode`` when the server said so itself."""

    def __init__(self, message: str, rcode: str | None = None) -> None:
        super().__init__(message)
        self.rcode = rcode


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
    Types asked: A, AAAA, TXT, MX, CNAME, NS.

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
    ) -> tuple[DnsStatus, list[Record], tuple[str, ...], str | None, int | None]:
        """(status, the answer's records when OK, CNAME chain, error text, TTL): the TTL
        of the answer when OK, how long a NXDOMAIN/NODATA may be cached otherwise."""
        if self.config_error is not None:
            return DnsStatus.ERROR, [], (), self.config_error, None
        qtype = dnswire.TYPES.get(rdtype)
        if qtype is None:
            return DnsStatus.ERROR, [], (), f"mtasts does not ask for {rdtype} records", None
        try:
            qname = dns.name.from_text(name.strip().rstrip(".") + ".")
        except dns.exception.DNSException as exc:
            return DnsStatus.ERROR, [], (), f"{name!r} is not a valid DNS name: {exc}", None
        labels = tuple(label.lower() for label in qname.labels[:-1])
        try:
            # every wait inside is bounded by the deadline; the outer bound only guards
            # against a stall
            async with asyncio.timeout(self.timeout + 1.0):
                found, errors, exhausted = await self._resolve(labels, qtype)
        except TimeoutError:
            found, errors, exhausted = None, [], False
        if found is None:
            if exhausted:  # every server said it cannot answer
                servfail = any(e.rcode == "SERVFAIL" for e in errors)
                status = DnsStatus.SERVFAIL if servfail else DnsStatus.ERROR
                return status, [], (), _describe(errors), None
            return DnsStatus.TIMEOUT, [], (), f"no answer within {self.timeout:g} s", None
        response, records, followed = found
        chain = tuple(_text(n) for n in followed)
        if response.rcode == dnswire.NXDOMAIN:
            error = f"{name} does not exist (NXDOMAIN)"
            return DnsStatus.NXDOMAIN, [], chain, error, dnswire.negative_ttl(response)
        if not records:
            where = f" (via {chain[-1]})" if chain else ""
            error = f"{name} has no {rdtype} record{where}"
            return DnsStatus.NODATA, [], chain, error, dnswire.negative_ttl(response)
        return DnsStatus.OK, records, chain, None, min(r.ttl for r in records)

    async def _resolve(
        self, qname: Labels, qtype: int
    ) -> tuple[tuple[Message, list[Record], list[Labels]] | None, list[_NoGood], bool]:
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
        self, qname: Labels, qtype: int, server: tuple[str, int], timeout: float
    ) -> tuple[Message, list[Record], list[Labels]]:
        """One try at one server: the answer, the records of ``qtype`` at the end of the
        CNAME chain, and the names of the chain."""
        qid = int.from_bytes(os.urandom(2), "big")
        wire = dnswire.query(qid, qname, qtype)
        async with asyncio.timeout(timeout):
            try:
                response = await _udp(wire, qid, qname, qtype, server)
                if response.truncated:  # RFC 7766 §5: ask again over TCP
                    response = await _tcp(wire, qid, qname, qtype, server)
            except OSError as exc:
                raise _NoGood(f"{_where(server)}: {exc.strerror or exc}") from None
        rcode = response.rcode
        if rcode not in (dnswire.NOERROR, dnswire.NXDOMAIN):
            text = dnswire.RCODES.get(rcode, str(rcode))
            raise _NoGood(f"{_where(server)}: {text}", text)
        try:
            records, chain = dnswire.chase(response, qname, qtype)
        except WireError as exc:
            raise _NoGood(f"{_where(server)}: {exc}") from None
        return response, records, chain

    async def query(self, name: str, rdtype: str) -> DnsAnswer:
        """A, AAAA, TXT, MX, CNAME or NS records; ``records`` in presentation format (names
        without the final dot, lower case; TXT joined as in :meth:`txt`)."""
        rdtype = rdtype.upper()
        status, records, chain, error, ttl = await self._lookup(name, rdtype)
        texts = tuple(_record_text(r) for r in records)
        return DnsAnswer(_display(name), rdtype, status, texts, chain, error, ttl)

    async def txt(self, name: str) -> DnsAnswer:
        """TXT records, each one's strings joined without separator (RFC 8461 §3.1,
        RFC 7208 §3.3)."""
        return await self.query(name, "TXT")

    async def cname(self, name: str) -> DnsAnswer:
        """The CNAME of ``name`` itself (records = (target,)), e.g. to verify delegation."""
        return await self.query(name, "CNAME")

    async def mx(self, name: str) -> MxAnswer:
        status, found, chain, error, _ttl = await self._lookup(name, "MX")
        records: list[MxRecord] = []
        for r in found:
            preference, exchange = cast(tuple[int, Labels], r.data)
            # RFC 7505 §3: the null MX has exchange "." - kept as ""
            records.append(MxRecord(preference, _text(exchange)))
        records.sort(key=lambda m: (m.preference, m.exchange))
        return MxAnswer(_display(name), status, tuple(records), chain, error)

    async def addresses(self, name: str) -> AddressAnswer:
        a, aaaa = await asyncio.gather(self.query(name, "A"), self.query(name, "AAAA"))
        return AddressAnswer(_display(name), a, aaaa, a.records + aaaa.records)


def _display(name: str) -> str:
    return name.strip().rstrip(".")


def _record_text(record: Record) -> str:
    data = record.data
    if record.rdtype == dnswire.TXT:
        strings = cast(tuple[bytes, ...], data)
        return b"".join(strings).decode("utf-8", "surrogateescape")
    if record.rdtype == dnswire.MX:
        preference, exchange = cast(tuple[int, Labels], data)
        return f"{preference} {_text(exchange)}"
    if record.rdtype in (dnswire.CNAME, dnswire.NS):
        return _text(cast(Labels, data))
    return str(data)  # A, AAAA: the address


def _where(server: tuple[str, int]) -> str:
    ip, port = server
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _describe(errors: Sequence[_NoGood]) -> str:
    if not errors:
        return "no nameserver could be asked"
    return "; ".join(dict.fromkeys(str(e) for e in errors))


def _answers(
    data: bytes, qid: int, qname: Labels, qtype: int, server: tuple[str, int]
) -> Message | None:
    """``data`` parsed, when it is the answer to our query (our id, QR set, our question);
    None for anything else, which is ignored (a late answer, a spoofing attempt)."""
    if len(data) < 12 or int.from_bytes(data[:2], "big") != qid or not data[2] & 0x80:
        return None
    try:
        message = dnswire.parse(data)
    except WireError as exc:
        raise _NoGood(f"{_where(server)}: malformed answer: {exc}") from None
    if message.question != (qname, qtype, dnswire.IN):
        return None
    return message


async def _udp(
    wire: bytes, qid: int, qname: Labels, qtype: int, server: tuple[str, int]
) -> Message:
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
    wire: bytes, qid: int, qname: Labels, qtype: int, server: tuple[str, int]
) -> Message:
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
    if message is None or message.truncated:
        raise _NoGood(f"{_where(server)}: no usable answer over TCP")
    return message
