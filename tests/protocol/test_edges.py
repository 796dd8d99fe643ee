"""Edges of the record and policy grammars and of the report's field types, each said
exactly (RFC 8461 §3.1, §3.2; RFC 8460 §3, §4.4): what a sender would do with a value just
past a rule, and the words the owner is given for it."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mtasts.protocol.errors import (
    LimitExceeded,
    MxPatternError,
    PolicyError,
    ReportError,
    TlsRptRecordError,
)
from mtasts.protocol.mx import _match_form, to_alabel, validate_mx_pattern
from mtasts.protocol.policy import Mode, Policy, parse_policy
from mtasts.protocol.record import is_quoted, split_fields
from mtasts.protocol.report import (
    JsonShape,
    PolicyResult,
    Report,
    decode_report_json,
    format_datetime,
    json_shape,
    parse_report,
    report_from_json,
    serialize_report,
)
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


def _report(policy: PolicyResult) -> Report:
    start = datetime(2026, 11, 29, tzinfo=UTC)
    end = start + timedelta(days=1)
    return Report(
        organization_name="Org",
        start_datetime=start,
        end_datetime=end,
        contact_info=None,
        report_id="r1",
        policies=(policy,),
    )


def _policy_strings_of(policy: Mapping[str, object]) -> tuple[str, ...]:
    return _parsed(policy).policy_strings


def test_only_a_tlsa_policy_string_holding_a_json_array_is_unpacked() -> None:
    # Microsoft writes the TLSA records as one string holding a JSON array; leading
    # whitespace before it is still that array
    tlsa = {"policy-type": "tlsa", "policy-string": [' ["3 1 1 AB", "3 1 1 CD"]']}
    assert _policy_strings_of(tlsa) == ("3 1 1 AB", "3 1 1 CD")
    sts = {"policy-type": "sts", "policy-string": ['["version: STSv1"]']}
    assert _policy_strings_of(sts) == ('["version: STSv1"]',)


def test_a_report_that_would_not_parse_back_is_refused_with_the_reason() -> None:
    line_with_cr = PolicyResult(
        policy_type="sts", policy_strings=("version: STSv1\r",), policy_domain="a.example"
    )
    with pytest.raises(ReportError) as info:
        serialize_report(_report(line_with_cr))
    assert (info.value.code, info.value.rfc) == ("report-not-canonical", "RFC 8460 §4.4")
    assert info.value.message == (
        "the report does not parse back to itself: check for values that parsing corrects "
        "(policy-string lines ending in CR, mx-host entries starting with 'mx:', "
        "policy-type or result-type not in lower case, a TLSA policy-string holding a JSON "
        "array, empty policy-domain)"
    )


def test_date_times_are_written_in_utc_whatever_the_local_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        noon = datetime(2026, 1, 1, 12, tzinfo=UTC)
        assert format_datetime(noon) == "2026-01-01T12:00:00Z"
        assert format_datetime(noon.astimezone(timezone(timedelta(hours=2)))) == (
            "2026-01-01T12:00:00Z"
        )
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        # only space and tab around a value (RFC 8461 §3.2: *WSP): anything else is in it
        ("mode: enforce\x0c", "'enforce\\x0c'"),
        ("mode: enforceX", "'enforceX'"),
    ],
)
def test_a_value_keeps_all_but_space_and_tab(line: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(f"version: STSv1\n{line}\nmx: a.example\nmax_age: 1\n")
    assert info.value.code == "policy-mode-invalid"
    assert message in info.value.message


@pytest.mark.parametrize(
    ("key", "words"),
    [
        (" mode", "line 1: no whitespace is allowed before the key or before ':'"),
        ("\x0cmode", "line 1: '\\x0cmode' is not a key"),
        ("X mode", "line 1: 'X mode' is not a key"),
    ],
)
def test_a_key_with_whitespace_is_told_apart_from_no_key(key: str, words: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(f"{key}: testing\n")
    assert info.value.code == "policy-syntax"
    assert info.value.message.startswith(words)


def test_non_ascii_characters_of_a_key_are_listed() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy("mödé: testing\n")
    assert info.value.code == "policy-non-ascii-key"
    assert info.value.message == (
        "line 1: key 'mödé' contains non-ASCII characters (U+00F6, U+00E9)"
    )


def _parsed(
    policy: Mapping[str, object], summary: Mapping[str, object] | None = None
) -> PolicyResult:
    data = json.loads(
        serialize_report(_report(PolicyResult(policy_type="sts", policy_domain="a.example")))
    )
    data["policies"][0]["policy"].update(policy)
    data["policies"][0]["summary"].update(summary or {})
    return parse_report(json.dumps(data)).report.policies[0]


def test_a_session_count_may_be_2_to_the_63_minus_1() -> None:
    # RFC 8460 §4.4: counts are integers; we store them in 64-bit signed columns
    top = 2**63 - 1
    assert _parsed({}, {"total-successful-session-count": top}).total_successful == top
    with pytest.raises(ReportError) as info:
        _parsed({}, {"total-successful-session-count": top + 1})
    assert info.value.code == "report-count-invalid"


def test_a_policy_type_in_another_case_is_corrected() -> None:
    assert _parsed({"policy-type": " STS "}).policy_type == "sts"


def test_a_policy_that_is_no_object_is_named_by_its_path() -> None:
    data = json.loads(
        serialize_report(_report(PolicyResult(policy_type="sts", policy_domain="a.example")))
    )
    data["policies"][0]["policy"] = []
    with pytest.raises(ReportError) as info:
        parse_report(json.dumps(data))
    assert info.value.message == "policies[0].policy must be an object, not an array"


@pytest.mark.parametrize(
    ("strings", "read"),
    [
        # doubly encoded: unpacked twice
        (['["[\\"3 1 1 AB\\"]"]'], ("3 1 1 AB",)),
        ([' [" [\\"3 1 1 AB\\"]"]'], ("3 1 1 AB",)),
        # the inner string only looks like an array: the outer one is read
        (['["[not json"]'], ("[not json",)),
        # two inner strings: the array holds records, not another array
        (['["[\\"a\\"]", "b"]'], ('["a"]', "b")),
    ],
)
def test_a_tlsa_array_encoded_twice(strings: list[str], read: tuple[str, ...]) -> None:
    assert _parsed({"policy-type": "tlsa", "policy-string": strings}).policy_strings == read


def test_only_the_carriage_return_ending_a_policy_line_is_removed() -> None:
    strings = ["version: STSv1 \r", "mode: testingX\r"]
    assert _parsed({"policy-string": strings}).policy_strings == (
        "version: STSv1 ",
        "mode: testingX",
    )


# --- MX names and patterns (RFC 8461 §3.2, §4.1) -----------------------------------------


def test_an_invalid_host_name_says_which_label_is_wrong() -> None:
    with pytest.raises(MxPatternError) as info:
        to_alabel("-bad.example")
    assert (info.value.code, info.value.rfc) == ("mx-invalid", "RFC 8461 §4.1")
    assert info.value.message == (
        "'-bad.example' is not a valid host name: label '-bad' must be 1-63 letters, digits "
        "or hyphens, not starting or ending with a hyphen"
    )


def test_an_opening_bracket_alone_makes_no_address_literal() -> None:
    with pytest.raises(MxPatternError) as info:
        validate_mx_pattern("[mx.example")
    assert info.value.code == "mx-invalid"


def test_a_u_label_without_an_a_label_form_gets_no_fix() -> None:
    with pytest.raises(MxPatternError) as info:
        validate_mx_pattern("bü..example")
    assert info.value.code == "mx-ulabel" and info.value.fix is None


def test_names_with_an_underscore_are_compared_from_1_to_253_characters() -> None:
    assert _match_form("_") == "_"
    longest = ".".join(["a_" + "b" * 61] * 3 + ["c" * 61])
    assert len(longest) == 253
    assert _match_form(longest) == longest
    assert _match_form(longest + "c") is None


# --- quoted text is cut at 60 characters -------------------------------------------------


def test_a_long_line_without_colon_is_quoted_up_to_60_characters() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy("a" * 70 + "\n")
    assert info.value.message == f"line 1 has no ':' between key and value: {'a' * 60!r}"


def test_a_long_bad_date_time_is_quoted_up_to_60_characters() -> None:
    data = json.loads(serialize_report(_report(PolicyResult(policy_type="sts"))))
    data["date-range"]["start-datetime"] = "x" * 80
    with pytest.raises(ReportError) as info:
        parse_report(json.dumps(data))
    assert info.value.message == (
        f"date-range.start-datetime: {'x' * 60!r} is not an RFC 3339 date-time "
        "(2016-04-01T00:00:00Z)"
    )


# --- the JSON shape, before json.loads builds anything (RFC 8460 §4.4) -------------------


def test_a_text_too_deep_is_one_level_above_the_bound_and_keeps_its_count() -> None:
    deep = "[" * 600 + "]" * 600
    assert json_shape(deep, 512) == JsonShape(depth=513, containers=600)


def test_the_shape_of_a_text_with_a_lone_surrogate() -> None:
    # json.loads accepts "\ud800" escaped or not; the scan must not fail on it
    assert json_shape('["\ud800"]') == JsonShape(depth=1, containers=1)


def test_the_limits_of_depth_and_containers_are_inclusive() -> None:
    assert decode_report_json("[[[]]]", max_depth=3, max_containers=3)[0] == [[[]]]
    with pytest.raises(LimitExceeded) as info:
        decode_report_json("[[[]]]", max_depth=2)
    assert info.value.code == "report-too-deep"
    with pytest.raises(LimitExceeded) as info:
        decode_report_json(b"[[[]]]", max_containers=2)
    assert info.value.code == "report-too-many-values"


def test_a_range_of_one_instant_at_midnight_is_no_exclusive_end() -> None:
    data = json.loads(serialize_report(_report(PolicyResult(policy_type="sts"))))
    midnight = "2026-11-29T00:00:00Z"
    data["date-range"] = {"start-datetime": midnight, "end-datetime": midnight}
    parsed = parse_report(json.dumps(data))
    assert "end-next-day-midnight" not in [r.code for r in parsed.repairs]
