"""The DNS message format (RFC 1035 §4.1), as much of it as the stub resolver needs: the
query it sends, and the answers it reads, for the types it asks (A, AAAA, TXT, MX, CNAME,
NS) plus the SOA of a negative answer (RFC 2308) and the OPT record (RFC 6891).

Answers come from the network: every length, count and compression pointer is checked
against the message, and anything malformed is a :class:`WireError`, never another
exception (tests/net/test_dnswire.py fuzzes it and compares it with dnspython's parser).
Written for speed: parsing answers with dnspython's general message classes was a tenth
of `mtasts policyd`'s CPU per new domain.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import cast

A, NS, CNAME, SOA, MX, TXT, AAAA, OPT = 1, 2, 5, 6, 15, 16, 28, 41
TYPES = {"A": A, "NS": NS, "CNAME": CNAME, "MX": MX, "TXT": TXT, "AAAA": AAAA}
IN = 1
QR, TC, RD = 0x8000, 0x0200, 0x0100
NOERROR, SERVFAIL, NXDOMAIN = 0, 2, 3
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
RCODES |= {6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 16: "BADVERS"}
EDNS_PAYLOAD = 1232  # DNS flag day 2020: answers rarely need the TCP fallback
MAX_CHAIN = 16  # CNAME hops followed at most
MAX_POINTERS = 16  # compression pointers in one name, as dnspython allows

Labels = tuple[bytes, ...]  # a name's labels in lower case, without the root's empty one

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
# RFC 6891 §6.1.2: the OPT pseudo-record (root owner, type 41, payload size, no flags)
_OPT = b"\x00" + struct.pack("!HHIH", OPT, EDNS_PAYLOAD, 0, 0)


class WireError(ValueError):
    """The message is malformed (RFC 1035 §4.1)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record of a known type. ``data``: A/AAAA the address text; TXT the
    character-strings (bytes); MX (preference, exchange); CNAME/NS the target; SOA
    its MINIMUM field; any other type None."""

    name: Labels
    rdtype: int
    rdclass: int
    ttl: int
    data: object


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    flags: int
    rcode: int  # with the EDNS extended bits (RFC 6891 §6.1.3)
    question: tuple[Labels, int, int] | None  # (name, type, class)
    answer: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()

    @property
    def truncated(self) -> bool:
        return bool(self.flags & TC)


def query(qid: int, name: Labels, rdtype: int) -> bytes:
    """A query for ``name`` (labels without the root): RFC 1035 §4.1.1 header with RD and
    one question, and RFC 6891's OPT record in the additional section."""
    wire = b"".join(bytes([len(label)]) + label for label in name) + b"\x00"
    return _HEADER.pack(qid, RD, 1, 0, 0, 1) + wire + struct.pack("!HH", rdtype, IN) + _OPT


def _name(data: bytes, pos: int) -> tuple[Labels, int]:
    """The name at ``pos`` and the position after it (after the first pointer, when the
    name is compressed). RFC 1035 §4.1.4: a pointer goes back to a prior occurrence, so
    each one must point before the last, and what it points to must end before the part
    of the name already read; §2.3.4: labels of 63 octets, names of 255."""
    labels: list[bytes] = []
    size = 1
    after = -1
    hops = 0
    segment = pos  # where the part being read starts; a pointer must point before it
    stop = len(data)  # what the part being read may not reach
    while True:
        if pos >= stop:
            raise WireError("a name runs past the end of the message")
        length = data[pos]
        if length == 0:
            pos += 1
            break
        if length >= 0xC0:
            if pos + 1 >= stop:
                raise WireError("a compression pointer runs past the end of the message")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if target >= segment:
                raise WireError("a compression pointer does not point back")
            hops += 1
            if hops > MAX_POINTERS:
                raise WireError("too many compression pointers in one name")
            if after < 0:
                after = pos + 2
            stop, segment, pos = segment, target, target
            continue
        if length > 63:
            raise WireError(f"unknown label type {length >> 6:#x}")
        end = pos + 1 + length
        if end > stop:
            raise WireError("a label runs past the end of the message")
        size += length + 1
        if size > 255:
            raise WireError("a name is longer than 255 octets")
        labels.append(data[pos + 1 : end].lower())
        pos = end
    return tuple(labels), (after if after >= 0 else pos)


def _rdata(data: bytes, rdtype: int, start: int, end: int) -> object:
    size = end - start
    if rdtype == A:
        if size != 4:
            raise WireError(f"an A record of {size} octets")
        return socket.inet_ntop(socket.AF_INET, data[start:end])
    if rdtype == AAAA:
        if size != 16:
            raise WireError(f"an AAAA record of {size} octets")
        return socket.inet_ntop(socket.AF_INET6, data[start:end])
    if rdtype == TXT:
        strings: list[bytes] = []
        pos = start
        while pos < end:  # RFC 1035 §3.3.14: one or more <character-string>s
            stop = pos + 1 + data[pos]
            if stop > end:
                raise WireError("a TXT string runs past its record")
            strings.append(data[pos + 1 : stop])
            pos = stop
        if not strings:
            raise WireError("a TXT record without a string")
        return tuple(strings)
    if rdtype == MX:
        if size < 3:
            raise WireError("an MX record too short")
        exchange, pos = _name(data, start + 2)
        if pos != end:
            raise WireError("an MX record's length does not match its content")
        return (int.from_bytes(data[start : start + 2], "big"), exchange)
    if rdtype in (CNAME, NS):
        target, pos = _name(data, start)
        if pos != end:
            raise WireError("a CNAME record's length does not match its content")
        return target
    if rdtype == SOA:
        _mname, pos = _name(data, start)
        _rname, pos = _name(data, pos)
        if pos + 20 != end:
            raise WireError("an SOA record's length does not match its content")
        return int.from_bytes(data[pos + 16 : pos + 20], "big")  # MINIMUM (RFC 2308 §4)
    return None


def _records(data: bytes, pos: int, count: int) -> tuple[list[Record], int]:
    out: list[Record] = []
    for _ in range(count):
        name, pos = _name(data, pos)
        if pos + 10 > len(data):
            raise WireError("a record runs past the end of the message")
        rdtype, rdclass, ttl, rdlength = _RR.unpack_from(data, pos)
        start = pos + 10
        pos = start + rdlength
        if pos > len(data):
            raise WireError("a record's data runs past the end of the message")
        value = _rdata(data, rdtype, start, pos) if rdtype != OPT else None
        out.append(Record(name, rdtype, rdclass, ttl, value))
    return out, pos


def parse(data: bytes) -> Message:
    """Parse a whole message; of a truncated one (TC set), only the header and question
    (RFC 2181 §9: the rest may be cut anywhere)."""
    if len(data) < 12:
        raise WireError("shorter than a DNS header")
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    pos = 12
    question: tuple[Labels, int, int] | None = None
    for _ in range(qdcount):
        name, pos = _name(data, pos)
        if pos + 4 > len(data):
            raise WireError("the question runs past the end of the message")
        qtype, qclass = struct.unpack_from("!HH", data, pos)
        pos += 4
        if question is None:
            question = (name, qtype, qclass)
    rcode = flags & 0x000F
    if flags & TC:
        return Message(qid, flags, rcode, question)
    answer, pos = _records(data, pos, ancount)
    authority, pos = _records(data, pos, nscount)
    additional, pos = _records(data, pos, arcount)
    if pos != len(data):
        raise WireError("octets after the last record")
    for record in additional:
        if record.rdtype == OPT:
            rcode |= (record.ttl >> 24) << 4  # RFC 6891 §6.1.3: the upper 8 bits
    return Message(qid, flags, rcode, question, tuple(answer), tuple(authority))


def chase(message: Message, name: Labels, rdtype: int) -> tuple[list[Record], list[Labels]]:
    """RFC 1034 §3.6.2: the records of ``rdtype`` (class IN) at ``name`` or at the end of
    its CNAME chain inside the answer section, and the names followed (not ``name``).
    A query for CNAME gets the CNAME itself. As dnspython's resolver: a chain of
    MAX_CHAIN hops (a loop, say) is a WireError, and so is an answer under NXDOMAIN."""
    chain: list[Labels] = []
    while len(chain) < MAX_CHAIN:
        found = [r for r in message.answer if r.name == name and r.rdclass == IN]
        wanted = [r for r in found if r.rdtype == rdtype]
        if wanted:
            if message.rcode == NXDOMAIN:
                raise WireError("an answer for a name said not to exist (NXDOMAIN)")
            # RFC 2181 §5: an RRset holds each record once (duplicates sent are dropped)
            # and has one TTL (§5.2; as dnspython, the smallest sent)
            ttl = min(r.ttl for r in wanted)
            values = dict.fromkeys(r.data for r in (wanted[-1:] if rdtype == CNAME else wanted))
            return [Record(name, rdtype, IN, ttl, value) for value in values], chain
        cnames = [r for r in found if r.rdtype == CNAME]
        if rdtype == CNAME or not cnames:
            return [], chain
        cname = cnames[-1]  # RFC 2181 §10.1 allows one; of several, dnspython keeps the last
        name = cast(Labels, cname.data)
        chain.append(name)
    raise WireError(f"a CNAME chain of {MAX_CHAIN} hops or more")


def negative_ttl(message: Message) -> int | None:
    """RFC 2308 §5: a negative answer may be cached min(SOA TTL, SOA MINIMUM) seconds."""
    for record in message.authority:
        if record.rdtype == SOA and isinstance(record.data, int):
            return min(record.ttl, record.data)
    return None
