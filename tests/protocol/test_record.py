"""The `_mta-sts` TXT record (RFC 8461 §3.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtasts.protocol.errors import RecordError
from mtasts.protocol.record import StsRecord, parse_sts_record, select_sts_record

IDS = st.from_regex(r"[A-Za-z0-9]{1,32}", fullmatch=True)
EXT_NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", fullmatch=True).filter(
    lambda name: name != "id"
)
EXT_VALUES = st.from_regex(r"[\x21-\x3a\x3c\x3e-\x7e]+", fullmatch=True)
EXTENSIONS = st.lists(st.tuples(EXT_NAMES, EXT_VALUES), max_size=4).map(tuple)
WSP = st.text(alphabet=" \t", max_size=2)


@pytest.mark.parametrize(
    ("raw", "id_", "extensions"),
    [
        ("v=STSv1; id=20240101T000000", "20240101T000000", ()),
        ("v=STSv1;id=abc", "abc", ()),
        ("v=STSv1; id=abc;", "abc", ()),
        ("v=STSv1; id=abc; ", "abc", ()),
        ("v=STSv1 ;\tid=abc\t; ", "abc", ()),
        ("v=STSv1; id=" + "9" * 32, "9" * 32, ()),
        ("v=STSv1; id=abc; ext=a:b/c", "abc", (("ext", "a:b/c"),)),
        ("v=STSv1; x-1.y_z=1; id=abc", "abc", (("x-1.y_z", "1"),)),
        ("v=STSv1; id=abc; v=STSv2", "abc", (("v", "STSv2"),)),
        ("v=STSv1; id=abc; ID=def", "abc", (("ID", "def"),)),
    ],
)
def test_parse_valid(raw: str, id_: str, extensions: tuple[tuple[str, str], ...]) -> None:
    record = parse_sts_record(raw)
    assert (record.id, record.extensions, record.raw) == (id_, extensions, raw)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "record-version"),
        (" v=STSv1; id=abc", "record-version"),
        ("V=STSv1; id=abc", "record-version"),
        ("v=stsv1; id=abc", "record-version"),
        ("v=STSv2; id=abc", "record-version"),
        ("v=STSv10; id=abc", "record-version"),
        ("id=abc; v=STSv1", "record-version"),
        ("v=STSv1 id=abc", "record-syntax"),
        ("v=STSv1 ", "record-syntax"),
        ("v=STSv1; id=abc ", "record-syntax"),
        ("v=STSv1;; id=abc", "record-syntax"),
        ("v=STSv1; id=abc;;", "record-syntax"),
        ("v=STSv1; id", "record-syntax"),
        ("v=STSv1", "record-id-missing"),
        ("v=STSv1;", "record-id-missing"),
        ("v=STSv1; ID=abc", "record-id-missing"),
        ("v=STSv1; ext=1", "record-id-missing"),
        ("v=STSv1; id=", "record-id-invalid"),
        ("v=STSv1; id=2024-01-01", "record-id-invalid"),
        ("v=STSv1; id=a.b", "record-id-invalid"),
        ("v=STSv1; id=" + "1" * 33, "record-id-invalid"),
        ("v=STSv1; id=é", "record-id-invalid"),
        ("v=STSv1; id=a; id=b", "record-id-duplicate"),
        ("v=STSv1; id=a; e=", "record-extension-invalid"),
        ("v=STSv1; id=a; e=a=b", "record-extension-invalid"),
        ("v=STSv1; id=a; e=a b", "record-extension-invalid"),
        ("v=STSv1; id=a; _e=1", "record-extension-invalid"),
        ("v=STSv1; id=a; " + "e" * 33 + "=1", "record-extension-invalid"),
        ("v=STSv1; id=a; e=ü", "record-extension-invalid"),
    ],
)
def test_parse_errors(raw: str, code: str) -> None:
    with pytest.raises(RecordError) as info:
        parse_sts_record(raw)
    assert info.value.code == code
    assert info.value.rfc == "RFC 8461 §3.1"
    assert info.value.fix is not None
    # Every fix is itself a valid record.
    fixed = info.value.fix.split(" TXT ", 1)[1].strip('"')
    assert parse_sts_record(fixed).id


def test_id_error_explains_and_fixes() -> None:
    with pytest.raises(RecordError) as info:
        parse_sts_record("v=STSv1; id=2024-01-01", domain="example.com")
    assert "'-'" in info.value.message
    assert "1-32 letters or digits" in info.value.message
    assert info.value.fix == '_mta-sts.example.com. TXT "v=STSv1; id=20240101"'


def test_missing_id_hints_at_case() -> None:
    with pytest.raises(RecordError, match="found 'ID'"):
        parse_sts_record("v=STSv1; ID=abc")


@pytest.mark.parametrize(
    ("records", "expected_id"),
    [
        (["v=STSv1; id=abc"], "abc"),
        (["v=spf1 -all", "v=STSv1; id=abc", "google-site-verification=x"], "abc"),
        # RFC 8461 §3.1: records not beginning with "v=STSv1;" are discarded before counting.
        (["v=STSv1; id=good", "v=STSv10; id=a"], "good"),
        (["v=STSv1; id=good", "v=STSv1"], "good"),
        (["v=STSv1; id=good", "v=STSv1 ; id=x"], "good"),
        (["v=STSv1; id=good", "V=STSv1; id=x"], "good"),
    ],
)
def test_select(records: list[str], expected_id: str) -> None:
    assert select_sts_record(records).id == expected_id


@pytest.mark.parametrize(
    ("records", "code"),
    [
        ([], "record-missing"),
        (["v=spf1 -all"], "record-missing"),
        (["v=STSv1; id=a", "v=STSv1; id=b"], "record-multiple"),
        (["v=STSv1; id=a", "v=STSv1; id=a"], "record-multiple"),
        (["V=STSv1; id=a"], "record-version"),
        # RFC 8461 §3.1: the "v=STSv1;" discard rule applies when several records come back.
        (["v=STSv1 ; id=a", "v=spf1 -all"], "record-version"),
        ([" v=STSv1; id=a"], "record-version"),
        # A lone record is judged by the grammar: the exact problem is named.
        (["v=STSv1"], "record-id-missing"),
        (["v=STSv1 id=a"], "record-syntax"),
        (['"v=STSv1; id=a"'], "record-quoted"),
        (['"v=STSv1; id=a"', "v=spf1 -all"], "record-quoted"),
        (["v=STSv1; id=a-b"], "record-id-invalid"),
    ],
)
def test_select_errors(records: list[str], code: str) -> None:
    with pytest.raises(RecordError) as info:
        select_sts_record(records)
    assert info.value.code == code


def test_select_fix_uses_domain() -> None:
    with pytest.raises(RecordError) as info:
        select_sts_record([], domain="example.com.")
    assert info.value.fix == '_mta-sts.example.com. TXT "v=STSv1; id=20240101T000000"'
    assert "_mta-sts.example.com" in info.value.message
    with pytest.raises(RecordError) as info:
        select_sts_record(["v=STSv1; id=a", "v=STSv1; id=b"])
    assert info.value.fix == '_mta-sts.<domain>. TXT "v=STSv1; id=a"'


def test_serialize() -> None:
    record = StsRecord(id="abc", extensions=(("x", "1"),), raw="v=STSv1;id=abc;x=1;")
    assert record.serialize() == "v=STSv1; id=abc; x=1"


@pytest.mark.parametrize(
    ("record", "code"),
    [
        (StsRecord(id="a-b", extensions=(), raw=""), "record-id-invalid"),
        (StsRecord(id="a", extensions=(("x", "a b"),), raw=""), "record-extension-invalid"),
        (StsRecord(id="a", extensions=(("id", "b"),), raw=""), "record-id-duplicate"),
        (StsRecord(id="a", extensions=(("x", "1;y=2"),), raw=""), "record-syntax"),
    ],
)
def test_serialize_rejects_invalid(record: StsRecord, code: str) -> None:
    with pytest.raises(RecordError) as info:
        record.serialize()
    assert info.value.code == code


@given(IDS, EXTENSIONS)
def test_round_trip(id_: str, extensions: tuple[tuple[str, str], ...]) -> None:
    record = StsRecord(id=id_, extensions=extensions, raw="")
    text = record.serialize()
    parsed = parse_sts_record(text)
    assert parsed == record
    assert parsed.raw == text
    assert select_sts_record(["v=spf1 -all", text]) == record


@given(IDS, EXTENSIONS, st.lists(st.tuples(WSP, WSP), min_size=6, max_size=6), st.booleans())
def test_parse_accepts_every_delimiter_spelling(
    id_: str,
    extensions: tuple[tuple[str, str], ...],
    spaces: list[tuple[str, str]],
    trailing: bool,
) -> None:
    fields = [f"id={id_}", *(f"{n}={v}" for n, v in extensions)]
    raw = "v=STSv1" + "".join(f"{a};{b}{f}" for (a, b), f in zip(spaces, fields, strict=False))
    if trailing:
        raw += spaces[-1][0] + ";" + spaces[-1][1]
    assert parse_sts_record(raw) == StsRecord(id=id_, extensions=extensions, raw=raw)


RECORDISH = st.text(alphabet="v=STSv1; id=aZ9-_.\t é", max_size=40)


@given(RECORDISH | st.text() | RECORDISH.map(lambda s: "v=STSv1; id=a" + s))
def test_parse_raises_only_record_errors(raw: str) -> None:
    try:
        record = parse_sts_record(raw)
    except RecordError as exc:
        assert exc.code.startswith("record-")
    else:
        assert parse_sts_record(record.serialize()) == record


@given(st.lists(RECORDISH | st.text(), max_size=4))
def test_select_raises_only_record_errors(records: list[str]) -> None:
    try:
        record = select_sts_record(records)
    except RecordError as exc:
        assert exc.code.startswith("record-")
    else:
        assert record.raw in records


@pytest.mark.parametrize("raw", ["v=STSv1 ; id=abc", "v=STSv1\t;id=abc", "v=STSv1 ;id=abc;"])
def test_a_lone_record_with_space_before_the_first_delimiter_is_accepted_with_a_note(
    raw: str,
) -> None:
    record = select_sts_record([raw])
    assert record.id == "abc"
    [note] = record.notes
    assert note.code == "record-space-before-delimiter"
    assert "may drop it" in note.message and repr(raw) in note.message


def test_literal_quotes_are_named() -> None:
    with pytest.raises(RecordError) as info:
        select_sts_record(['"v=STSv1; id=202106232052"'], domain="example.com")
    assert info.value.code == "record-quoted"
    assert "literal double quotes" in info.value.message
    assert info.value.fix == '_mta-sts.example.com. TXT "v=STSv1; id=202106232052"'
    with pytest.raises(RecordError) as info:
        parse_sts_record('v=STSv1; id="abc"')
    assert info.value.code == "record-id-invalid" and "double quotes" in info.value.message


def test_leading_whitespace_is_named() -> None:
    with pytest.raises(RecordError, match="starts with whitespace"):
        select_sts_record([" v=STSv1; id=20220101000000Z;"])


@pytest.mark.parametrize(
    ("records", "words"),
    [
        (["v=STSv1 ; id=a", "v=spf1 -all"], "whitespace before the first ';'"),
        (["v=STSv1", "v=spf1 -all"], "must be followed directly by ';'"),
        (["v=STSv1 id=a", "v=spf1 -all"], "must be followed directly by ';'"),
        (["V=STSv1; id=a"], "case-sensitive"),
    ],
)
def test_discarded_records_name_their_exact_problem(records: list[str], words: str) -> None:
    with pytest.raises(RecordError) as info:
        select_sts_record(records)
    assert info.value.code == "record-version" and words in info.value.message
