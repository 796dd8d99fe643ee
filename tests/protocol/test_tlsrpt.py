"""The `_smtp._tls` TLS-RPT record (RFC 8460 §3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtasts.protocol.errors import TlsRptRecordError
from mtasts.protocol.tlsrpt import TlsRptRecord, parse_tlsrpt_record, select_tlsrpt_record

HOST = st.from_regex(r"[a-z0-9]{1,10}\.[a-z]{2,6}", fullmatch=True)
# RFC 3986 characters minus the ",", "!" and ";" that RFC 8460 §3 wants encoded.
PATH = st.from_regex(r"(/([A-Za-z0-9\-._~:@$&'()*+=]|%[0-9A-F]{2}){0,8}){0,3}", fullmatch=True)
LOCAL = st.from_regex(r"[a-z0-9._+-]{1,12}", fullmatch=True)
URIS = st.one_of(
    st.builds(lambda local, host: f"mailto:{local}@{host}", LOCAL, HOST),
    st.builds(lambda host, path: f"https://{host}{path}", HOST, PATH),
)
EXT_NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", fullmatch=True).filter(
    lambda name: name != "rua"
)
EXT_VALUES = st.from_regex(r"[\x21-\x3a\x3c\x3e-\x7e]+", fullmatch=True)
EXTENSIONS = st.lists(st.tuples(EXT_NAMES, EXT_VALUES), max_size=3).map(tuple)


@pytest.mark.parametrize(
    ("raw", "rua", "extensions"),
    [
        ("v=TLSRPTv1; rua=mailto:tlsrpt@example.com", ("mailto:tlsrpt@example.com",), ()),
        ("v=TLSRPTv1;rua=https://r.example/tls;", ("https://r.example/tls",), ()),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com , \thttps://r.example:8443/x?y=1 ; ",
            ("mailto:a@example.com", "https://r.example:8443/x?y=1"),
            (),
        ),
        ("v=TLSRPTv1; rua=mailto:a%2Cb@example.com", ("mailto:a%2Cb@example.com",), ()),
        ("v=TLSRPTv1; rua=MAILTO:a@example.com", ("MAILTO:a@example.com",), ()),
        ("v=TLSRPTv1; rua=mailto:a@example.com?subject=x", ("mailto:a@example.com?subject=x",), ()),
        ("v=TLSRPTv1; rua=https://[2001:db8::1]/r", ("https://[2001:db8::1]/r",), ()),
        (
            "v=TLSRPTv1; ext=1; rua=mailto:a@example.com",
            ("mailto:a@example.com",),
            (("ext", "1"),),
        ),
    ],
)
def test_parse_valid(
    raw: str, rua: tuple[str, ...], extensions: tuple[tuple[str, str], ...]
) -> None:
    record = parse_tlsrpt_record(raw)
    assert (record.rua, record.extensions, record.raw) == (rua, extensions, raw)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "tlsrpt-version"),
        ("v=tlsrptv1; rua=mailto:a@example.com", "tlsrpt-version"),
        ("v=TLSRPTv2; rua=mailto:a@example.com", "tlsrpt-version"),
        ("v=STSv1; id=1", "tlsrpt-version"),
        ("v=TLSRPTv1 rua=mailto:a@example.com", "tlsrpt-syntax"),
        ("v=TLSRPTv1; rua=mailto:a@example.com ", "tlsrpt-syntax"),
        ("v=TLSRPTv1;; rua=mailto:a@example.com", "tlsrpt-syntax"),
        ("v=TLSRPTv1; rua", "tlsrpt-syntax"),
        ("v=TLSRPTv1", "tlsrpt-rua-missing"),
        ("v=TLSRPTv1; RUA=mailto:a@example.com", "tlsrpt-rua-missing"),
        ("v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com", "tlsrpt-rua-duplicate"),
        ("v=TLSRPTv1; rua=", "tlsrpt-rua-invalid"),
        ("v=TLSRPTv1; rua=mailto:a@example.com,", "tlsrpt-rua-invalid"),
        ("v=TLSRPTv1; rua=mailto:a@example.com!10m", "tlsrpt-rua-invalid"),
        ("v=TLSRPTv1; rua=mailto:a@example.com,b@example.com", "tlsrpt-rua-invalid"),
        ("v=TLSRPTv1; rua=mailto:", "tlsrpt-rua-invalid"),
        ("v=TLSRPTv1; rua=mailto:example.com", "tlsrpt-rua-invalid"),
        ("v=TLSRPTv1; rua=https:/r", "tlsrpt-rua-invalid"),
        ("v=TLSRPTv1; rua=https://", "tlsrpt-rua-invalid"),
        ("v=TLSRPTv1; rua=https://[::1/r", "tlsrpt-rua-invalid"),
        ("v=TLSRPTv1; rua=https://r.example/a b", "tlsrpt-rua-invalid"),
        ("v=TLSRPTv1; rua=https://r.example/%zz", "tlsrpt-rua-invalid"),
        ("v=TLSRPTv1; rua=mailto:ü@example.com", "tlsrpt-rua-invalid"),
        ("v=TLSRPTv1; rua=http://r.example/", "tlsrpt-rua-scheme"),
        ("v=TLSRPTv1; rua=ftp://r.example/", "tlsrpt-rua-scheme"),
        ("v=TLSRPTv1; rua=mailto:a@example.com; x=a=b", "tlsrpt-extension-invalid"),
        ("v=TLSRPTv1; rua=mailto:a@example.com; -x=1", "tlsrpt-extension-invalid"),
    ],
)
def test_parse_errors(raw: str, code: str) -> None:
    with pytest.raises(TlsRptRecordError) as info:
        parse_tlsrpt_record(raw, domain="example.com")
    assert info.value.code == code
    assert info.value.rfc == "RFC 8460 §3"
    assert info.value.fix is not None
    fixed = info.value.fix.split(" TXT ", 1)[1].strip('"')
    assert parse_tlsrpt_record(fixed).rua  # every fix is itself a valid record


@pytest.mark.parametrize(
    ("raw", "fix"),
    [
        ("v=TLSRPTv1; rua=mailto:a@example.com!10m", "rua=mailto:a@example.com%2110m"),
        ("v=TLSRPTv1; rua=http://r.example/x", "rua=https://r.example/x"),
        ("v=TLSRPTv1; rua=mailto:a@example.com,b@example.com", "mailto:b@example.com"),
        ("v=TLSRPTv1; rua=mailto:a@x.org; rua=https://r.example", "rua=mailto:a@x.org,https://"),
        ("v=TLSRPTv1", "rua=mailto:tlsrpt@example.com"),
    ],
)
def test_fixes_are_specific(raw: str, fix: str) -> None:
    with pytest.raises(TlsRptRecordError) as info:
        parse_tlsrpt_record(raw, domain="example.com")
    assert info.value.fix is not None
    assert info.value.fix.startswith('_smtp._tls.example.com. TXT "v=TLSRPTv1; rua=')
    assert fix in info.value.fix


@pytest.mark.parametrize(
    ("records", "rua"),
    [
        (["v=TLSRPTv1; rua=mailto:a@example.com"], ("mailto:a@example.com",)),
        (["v=spf1 -all", "v=TLSRPTv1;rua=mailto:a@example.com"], ("mailto:a@example.com",)),
        (
            ["v=TLSRPTv1; rua=mailto:a@x.org", "v=TLSRPTv1 ; rua=mailto:b@x.org"],
            ("mailto:a@x.org",),
        ),
        (
            ["v=TLSRPTv1; rua=mailto:a@x.org", "v=TLSRPTv10; rua=mailto:b@x.org"],
            ("mailto:a@x.org",),
        ),
    ],
)
def test_select(records: list[str], rua: tuple[str, ...]) -> None:
    assert select_tlsrpt_record(records).rua == rua


@pytest.mark.parametrize(
    ("records", "code"),
    [
        ([], "tlsrpt-missing"),
        (["v=STSv1; id=1"], "tlsrpt-missing"),
        (["v=TLSRPTv1; rua=mailto:a@x.org", "v=TLSRPTv1; rua=mailto:b@x.org"], "tlsrpt-multiple"),
        (["V=TLSRPTv1; rua=mailto:a@x.org"], "tlsrpt-version"),
        # RFC 8460 §3: the "v=TLSRPTv1;" discard rule applies when several records come back.
        (["v=TLSRPTv1 ; rua=mailto:a@x.org", "v=spf1 -all"], "tlsrpt-version"),
        # A lone record is judged by the grammar: the exact problem is named.
        (["v=TLSRPTv1"], "tlsrpt-rua-missing"),
        (["v=TLSRPTv1;"], "tlsrpt-rua-missing"),
        (["v=TLSRPTv1 rua=mailto:a@x.org"], "tlsrpt-syntax"),
        (['"v=TLSRPTv1; rua=mailto:a@x.org"'], "tlsrpt-quoted"),
        (['v=TLSRPTv1; rua="mailto:a@x.org"'], "tlsrpt-rua-invalid"),
        (["v=TLSRPTv1; rua=http://x.org"], "tlsrpt-rua-scheme"),
    ],
)
def test_select_errors(records: list[str], code: str) -> None:
    with pytest.raises(TlsRptRecordError) as info:
        select_tlsrpt_record(records, domain="x.org")
    assert info.value.code == code
    assert info.value.fix is not None and info.value.fix.startswith("_smtp._tls.x.org. TXT")


def test_serialize_encodes_reserved_characters() -> None:
    record = TlsRptRecord(
        rua=("mailto:a,b!c;d@example.com", "https://r.example/x"), extensions=(("e", "1"),), raw=""
    )
    text = record.serialize()
    assert text == "v=TLSRPTv1; rua=mailto:a%2Cb%21c%3Bd@example.com,https://r.example/x; e=1"
    assert parse_tlsrpt_record(text).rua[0] == "mailto:a%2Cb%21c%3Bd@example.com"


@pytest.mark.parametrize(
    ("record", "code"),
    [
        (TlsRptRecord(rua=(), extensions=(), raw=""), "tlsrpt-rua-invalid"),
        (TlsRptRecord(rua=("http://x.org",), extensions=(), raw=""), "tlsrpt-rua-scheme"),
        (
            TlsRptRecord(rua=("mailto:a@x.org",), extensions=(("rua", "mailto:b@x.org"),), raw=""),
            "tlsrpt-rua-duplicate",
        ),
        (
            TlsRptRecord(rua=("mailto:a@x.org",), extensions=(("e", "1;f=2"),), raw=""),
            "tlsrpt-syntax",
        ),
        (
            TlsRptRecord(rua=("mailto:a@x.org",), extensions=(("e", "a b"),), raw=""),
            "tlsrpt-extension-invalid",
        ),
    ],
)
def test_serialize_rejects_invalid(record: TlsRptRecord, code: str) -> None:
    with pytest.raises(TlsRptRecordError) as info:
        record.serialize()
    assert info.value.code == code


@given(st.lists(URIS, min_size=1, max_size=3).map(tuple), EXTENSIONS)
def test_round_trip(rua: tuple[str, ...], extensions: tuple[tuple[str, str], ...]) -> None:
    record = TlsRptRecord(rua=rua, extensions=extensions, raw="")
    text = record.serialize()
    parsed = parse_tlsrpt_record(text)
    assert parsed == record
    assert parsed.raw == text
    assert select_tlsrpt_record([text, "v=spf1 -all"]) == record


RECORDISH = st.text(alphabet="v=TLSRPTv1; rua=mailto:ht@ps/,!%2C\t ü", max_size=50)


@given(RECORDISH | st.text() | RECORDISH.map(lambda s: "v=TLSRPTv1; rua=" + s))
def test_parse_raises_only_tlsrpt_errors(raw: str) -> None:
    try:
        record = parse_tlsrpt_record(raw)
    except TlsRptRecordError as exc:
        assert exc.code.startswith("tlsrpt-")
    else:
        assert parse_tlsrpt_record(record.serialize()) == record


@given(st.lists(RECORDISH | st.text(), max_size=4))
def test_select_raises_only_tlsrpt_errors(records: list[str]) -> None:
    try:
        record = select_tlsrpt_record(records)
    except TlsRptRecordError as exc:
        assert exc.code.startswith("tlsrpt-")
    else:
        assert record.raw in records


@pytest.mark.parametrize(
    "raw", ["v=TLSRPTv1 ;rua=mailto:a@x.org", "v=TLSRPTv1\t; rua=mailto:a@x.org"]
)
def test_a_lone_record_with_space_before_the_first_delimiter_is_accepted_with_a_note(
    raw: str,
) -> None:
    record = select_tlsrpt_record([raw])
    assert record.rua == ("mailto:a@x.org",)
    [note] = record.notes
    assert note.code == "tlsrpt-space-before-delimiter" and "may drop it" in note.message


def test_literal_quotes_are_named() -> None:
    with pytest.raises(TlsRptRecordError) as info:
        select_tlsrpt_record(['"v=TLSRPTv1; rua=mailto:a@x.org"'])
    assert "literal double quotes" in info.value.message
    with pytest.raises(TlsRptRecordError) as info:
        select_tlsrpt_record(['v=TLSRPTv1; rua="mailto:a@x.org"'])
    assert "literal double quotes" in info.value.message
