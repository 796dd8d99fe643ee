"""Edges of the record and policy grammars and of the report's field types, each said
exactly (RFC 8461 §3.1, §3.2; RFC 8460 §3, §4.4): what a sender would do with a value just
past a rule, and the words the owner is given for it."""

from __future__ import annotations

import pytest

from mtasts.protocol.errors import PolicyError, ReportError, TlsRptRecordError
from mtasts.protocol.policy import Mode, Policy, parse_policy
from mtasts.protocol.record import is_quoted, split_fields
from mtasts.protocol.report import report_from_json
from mtasts.protocol.tlsrpt import select_tlsrpt_record

V = "v=STSv1"


# --- records (RFC 8461 §3.1, RFC 8460 §3) ----------------------------------------------


def test_a_quoted_record_may_have_whitespace_before_its_quotes() -> None:
    assert is_quoted(' \t"v=STSv1; id=1"', V)
    # after the quotes, the version itself must come: anything else is no quoted record
    assert not is_quoted('"Xv=STSv1; id=1"', V)


@pytest.mark.parametrize(
    ("raw", "pairs", "problem"),
    [
        # only space and tab are WSP (RFC 5234): a line break before ';' is no whitespace
        (V + "\n; id=1", [], "expected ';' after 'v=STSv1', found '\\n'"),
        (V + "X; id=1", [], "expected ';' after 'v=STSv1', found 'X'"),
        (V + " \t", [], "whitespace after 'v=STSv1' is only allowed around a ';'"),
        # ... nor at the end of a field: a line break stays in the value (refused later)
        (V + "; id=1\n", [("id", "1\n")], None),
        (V + "; id=1 ", [], "whitespace at the end is only allowed after a ';'"),
    ],
)
def test_split_fields_knows_only_space_and_tab_as_whitespace(
    raw: str, pairs: list[tuple[str, str]], problem: str | None
) -> None:
    assert split_fields(raw, V) == (pairs, problem)


def test_a_field_without_equals_is_quoted_up_to_40_characters() -> None:
    field = "a" * 39 + "bc" + "d" * 10
    assert split_fields(f"{V}; {field}", V) == (
        [],
        f"field {field[:40]!r} has no '=' (fields are name=value)",
    )


def test_several_tlsrpt_records_and_one_with_a_space_before_its_delimiter() -> None:
    # RFC 8460 §3: with several records, those not beginning exactly "v=TLSRPTv1;" go
    with pytest.raises(TlsRptRecordError) as info:
        select_tlsrpt_record(["v=TLSRPTv1 ;rua=mailto:r@example.com", "v=spf1 -all"])
    assert info.value.code == "tlsrpt-version"
    assert info.value.message == (
        "'v=TLSRPTv1 ;rua=mailto:r@example.com' has whitespace before the first ';': when "
        "several TXT records come back, senders discard every record not beginning exactly "
        "with 'v=TLSRPTv1;'; senders ignore it and send no reports"
    )


# --- the policy file (RFC 8461 §3.2) -----------------------------------------------------


def test_utf16_with_either_byte_order_mark_is_named() -> None:
    for bom in (b"\xff\xfe", b"\xfe\xff"):
        with pytest.raises(PolicyError) as info:
            parse_policy(bom + "version: STSv1\n".encode("utf-16-le"))
        assert info.value.code == "policy-encoding"
        assert info.value.message == (
            f"byte {bom[0]:#04x} at offset 0 is not UTF-8 (it looks like UTF-16)"
        )


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("version: STSv1\r\nmode: testing\r\nmx: a.example\rmax_age: 1\r\n", 3),
        ("\nversion: STSv1\rmode: testing\n", 2),  # the first line is empty
    ],
)
def test_a_bare_cr_names_its_line(text: str, line: int) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert info.value.message == (
        f"line {line} ends with a bare CR (old Mac line ending); lines must end with CRLF"
    )


def test_lf_on_the_last_terminated_line_only_is_noted() -> None:
    policy = parse_policy("version: STSv1\r\nmode: none\r\nmx: a.example\r\nmax_age: 1\n")
    assert [n.code for n in policy.notes] == ["policy-lf-endings"]


@pytest.mark.parametrize("line", ["X", "\u00a0", "\x0c"])
def test_a_line_of_anything_but_space_or_tab_is_no_empty_policy(line: str) -> None:
    # blank means only space and tab (WSP); a no-break space or a form feed is text
    with pytest.raises(PolicyError) as info:
        parse_policy(line + "\n")
    assert info.value.code == "policy-syntax"
    assert info.value.message == f"line 1 has no ':' between key and value: {line!r}"


def test_serialize_refusals_say_why() -> None:
    with pytest.raises(PolicyError) as info:
        Policy("STSv1", Mode.TESTING, 86400, ("192.0.2.25",)).serialize()
    assert (info.value.code, info.value.rfc) == ("policy-mx-ip-literal", "RFC 8461 §3.2")
    assert info.value.message == (
        "line 3: '192.0.2.25' looks like an IP address, but MX records name hosts, never "
        "addresses (RFC 5321 §5.1): this line covers no MX host"
    )
    with pytest.raises(PolicyError) as info:
        Policy("STSv1", Mode.NONE, 1, ("MX.example",)).serialize()
    assert (info.value.code, info.value.rfc) == ("policy-syntax", "RFC 8461 §3.2")
    assert info.value.message == (
        "the policy does not parse back to itself: mx patterns must be lower-case without "
        "trailing dot, extension keys unique and not version/mode/mx/max_age, values "
        "without line breaks"
    )


# --- reports (RFC 8460 §4.4) ---------------------------------------------------------------


def test_a_value_no_json_decoder_makes_is_named_by_its_type() -> None:
    with pytest.raises(ReportError) as info:
        report_from_json(("not", "a", "dict"))
    assert info.value.code == "report-not-object"
    assert info.value.message == "the report must be a JSON object, not tuple"
