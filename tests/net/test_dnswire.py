"""mtasts.net.dnswire, the answers' parser: it reads what dnspython reads, and refuses
what dnspython refuses, with a WireError and nothing else, whatever the bytes."""

from __future__ import annotations

import struct

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mtasts.net import dnswire
from mtasts.net.dnswire import WireError

_label = st.text("abcXYZ019-_", min_size=1, max_size=12)
_names = st.lists(_label, min_size=1, max_size=4).map(lambda ls: ".".join(ls) + ".test.")
_pool = st.lists(_names, min_size=1, max_size=4, unique=True)


@st.composite
def _rdata(draw: st.DrawFn, rdtype: str, names: list[str]) -> str:
    if rdtype == "A":
        return ".".join(str(draw(st.integers(0, 255))) for _ in range(4))
    if rdtype == "AAAA":
        groups = [draw(st.integers(0, 0xFFFF)) for _ in range(8)]
        if draw(st.booleans()):
            groups[2:6] = [0, 0, 0, 0]  # a run of zeros to compress
        return ":".join(f"{g:x}" for g in groups)
    if rdtype == "TXT":
        strings = draw(st.lists(st.binary(max_size=40), min_size=1, max_size=3))
        return " ".join('"' + "".join(f"\\{b:03d}" for b in s) + '"' for s in strings)
    if rdtype == "MX":
        return f"{draw(st.integers(0, 65535))} {draw(st.sampled_from(names))}"
    return draw(st.sampled_from(names))  # CNAME


@st.composite
def messages(draw: st.DrawFn) -> dns.message.Message:
    names = draw(_pool)
    qtype = draw(st.sampled_from(sorted(dnswire.TYPES)))
    query = dns.message.make_query(draw(st.sampled_from(names)), qtype, use_edns=0)
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.Rcode(draw(st.sampled_from([0, 2, 3, 5]))))
    for _ in range(draw(st.integers(0, 5))):
        rdtype = draw(st.sampled_from(sorted(dnswire.TYPES)))
        owner = draw(st.sampled_from(names))
        value = draw(_rdata(rdtype, names))
        ttl = draw(st.integers(0, 2**31 - 1))
        response.answer.append(dns.rrset.from_text(owner, ttl, "IN", rdtype, value))
    if draw(st.booleans()):
        soa = f"ns.{names[0]} host.{names[0]} 1 2 3 4 {draw(st.integers(0, 86400))}"
        response.authority.append(dns.rrset.from_text(names[0], 300, "IN", "SOA", soa))
    return response


def _labels(name: dns.name.Name) -> tuple[bytes, ...]:
    return tuple(label.lower() for label in name.labels[:-1])


def _theirs(rrset: dns.rrset.RRset) -> list[object]:
    out: list[object] = []
    for rdata in rrset:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            out.append(rdata.address)
        elif rrset.rdtype == dns.rdatatype.TXT:
            out.append(tuple(rdata.strings))
        elif rrset.rdtype == dns.rdatatype.MX:
            out.append((rdata.preference, _labels(rdata.exchange)))
        else:
            out.append(_labels(rdata.target))
    return out


@settings(max_examples=300)
@given(messages())
def test_reads_what_dnspython_reads(response: dns.message.Message) -> None:
    wire = response.to_wire()  # names compressed wherever dnspython can
    ours = dnswire.parse(wire)
    theirs = dns.message.from_wire(wire)
    assert (ours.id, ours.flags, ours.rcode) == (theirs.id, theirs.flags, theirs.rcode())
    q = theirs.question[0]
    assert ours.question == (_labels(q.name), q.rdtype, q.rdclass)
    # the answer section, record by record, in dnspython's grouping
    for rrset in theirs.answer:
        mine = [
            r.data
            for r in ours.answer
            if r.name == _labels(rrset.name) and r.rdtype == rrset.rdtype
        ]
        if rrset.rdtype == dns.rdatatype.CNAME:  # a singleton: dnspython keeps the last
            mine = mine[-1:]
        assert sorted(set(mine), key=repr) == sorted(_theirs(rrset), key=repr)
        assert (
            min(
                r.ttl
                for r in ours.answer
                if r.name == _labels(rrset.name) and r.rdtype == rrset.rdtype
            )
            == rrset.ttl
        )
    # the CNAME chain and the final answer, as dnspython's resolver finds them
    assert isinstance(theirs, dns.message.QueryMessage)
    try:
        chaining = theirs.resolve_chaining()
    except dns.exception.DNSException:
        with pytest.raises(WireError):
            dnswire.chase(ours, _labels(q.name), q.rdtype)
        return
    records, chain = dnswire.chase(ours, _labels(q.name), q.rdtype)
    expected = _theirs(chaining.answer) if chaining.answer is not None else []
    assert sorted((r.data for r in records), key=repr) == sorted(expected, key=repr)
    assert chain == [_labels(next(iter(rrset)).target) for rrset in chaining.cnames]


@settings(max_examples=500)
@given(st.binary(max_size=300))
@example(b"\x00" * 12)
@example(struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01")  # self
def test_any_bytes_give_a_message_or_a_wire_error(data: bytes) -> None:
    try:
        message = dnswire.parse(data)
    except WireError as exc:
        assert str(exc)  # says what is wrong
    else:
        assert message.question is None or isinstance(message.question[0], tuple)


@settings(max_examples=1000)
@given(messages(), st.data())
def test_damaged_answers_are_refused_as_dnspython_refuses_them(
    response: dns.message.Message, data: st.DataObject
) -> None:
    wire = bytearray(response.to_wire())
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(wire) - 1))
        wire[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(12, len(wire)))
    damaged = bytes(wire[:cut])
    try:
        theirs = dns.message.from_wire(damaged)
    except dns.exception.DNSException:
        theirs = None
    except Exception:  # dnspython may refuse some damage with a ValueError of its own
        theirs = None
    try:
        ours = dnswire.parse(damaged)
    except WireError:
        ours = None
    if theirs is not None:
        assert ours is not None, damaged  # what dnspython reads, we read


def test_compression_pointers_must_point_back() -> None:
    header = struct.pack("!HHHHHH", 7, 0x8000, 1, 0, 0, 0)
    forward = header + b"\xc0\x12\x00\x01\x00\x01" + b"\x01a\x00"
    with pytest.raises(WireError, match="point back"):
        dnswire.parse(forward)
    loop = header + b"\x01a\xc0\x0c\x00\x01\x00\x01"  # "a" then a pointer to itself
    with pytest.raises(WireError, match="point back"):
        dnswire.parse(loop)


def test_the_extended_rcode_of_edns() -> None:
    query = dns.message.make_query("x.test.", "A", use_edns=0)
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.BADVERS)  # 16: four bits in the header, the rest in OPT
    assert dnswire.parse(response.to_wire()).rcode == 16


def test_a_truncated_answer_is_read_up_to_its_question() -> None:
    query = dns.message.make_query("big.test.", "TXT")
    wire = bytearray(dns.message.make_response(query).to_wire())
    wire[2] |= dns.flags.TC >> 8
    wire[7] = 5  # says five answers, carries none: cut off
    message = dnswire.parse(bytes(wire))
    assert message.truncated and message.question == ((b"big", b"test"), dnswire.TXT, 1)
    assert message.answer == ()


def test_a_negative_answer_may_be_cached_for_the_smaller_of_soa_ttl_and_minimum() -> None:
    query = dns.message.make_query("gone.test.", "TXT")
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.NXDOMAIN)
    soa = "ns.test. host.test. 1 2 3 4 600"
    response.authority.append(dns.rrset.from_text("test.", 900, "IN", "SOA", soa))
    assert dnswire.negative_ttl(dnswire.parse(response.to_wire())) == 600
    response.authority[0].ttl = 60
    assert dnswire.negative_ttl(dnswire.parse(response.to_wire())) == 60


def test_the_query_is_what_dnspython_reads_as_our_question() -> None:
    wire = dnswire.query(0x1234, (b"_mta-sts", b"example", b"com"), dnswire.TXT)
    message = dns.message.from_wire(wire)
    assert message.id == 0x1234 and message.flags == dns.flags.RD
    assert message.question[0].name == dns.name.from_text("_mta-sts.example.com.")
    assert message.question[0].rdtype == dns.rdatatype.TXT
    assert message.edns == 0 and message.payload == dnswire.EDNS_PAYLOAD


def test_octets_after_the_last_record_are_refused_as_dnspython_does() -> None:
    response = dns.message.make_response(dns.message.make_query("x.test.", "A"))
    wire = response.to_wire() + b"\x00"
    with pytest.raises(dns.message.TrailingJunk):
        dns.message.from_wire(wire)
    with pytest.raises(WireError, match="after the last record"):
        dnswire.parse(wire)
