"""MX pattern validation and matching (RFC 8461 §3.2, §4.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtasts.protocol.errors import MxPatternError
from mtasts.protocol.mx import matching_pattern, mx_matches, to_alabel, validate_mx_pattern

LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True).filter(
    lambda label: not label.startswith("xn--")
)
TLD = st.from_regex(r"[a-z]{2,6}", fullmatch=True)  # keeps names from looking like IPs
DOMAIN = st.builds(lambda labels, tld: ".".join([*labels, tld]), st.lists(LABEL, max_size=3), TLD)


@pytest.mark.parametrize(
    ("host", "pattern", "expected"),
    [
        ("mail.example.com", "mail.example.com", True),
        ("MAIL.Example.COM", "mail.example.com", True),
        ("mail.example.com.", "mail.example.com", True),
        ("mail.example.com", "MAIL.example.com.", True),
        ("mail.example.com", "mail.example.org", False),
        ("mail.example.com", "example.com", False),
        ("mail.example.com", "*.example.com", True),
        ("Mail.Example.Com.", "*.EXAMPLE.com", True),
        ("example.com", "*.example.com", False),
        ("a.b.example.com", "*.example.com", False),
        ("mail.notexample.com", "*.example.com", False),
        ("mx.xn--bcher-kva.example", "*.xn--bcher-kva.example", True),
        ("mx.bücher.example", "*.xn--bcher-kva.example", True),  # U-label host is converted
        ("mx.BÜCHER.example", "mx.xn--bcher-kva.example", True),
        ("mx.bücher.example", "mx.bucher.example", False),
        ("", "*.example.com", False),
        ("*.example.com", "*.example.com", False),  # a host is never a wildcard
        ("mail.example.com", "*", False),
        ("mail.example.com", "mail..example.com", False),
        ("bad host.example.com", "*.example.com", False),
    ],
)
def test_mx_matches(host: str, pattern: str, expected: bool) -> None:
    assert mx_matches(host, pattern) is expected


def test_matching_pattern_returns_first_match() -> None:
    patterns = ["mx1.example.com", "*.example.com", "mx2.example.com"]
    assert matching_pattern("mx2.example.com", patterns) == "*.example.com"
    assert matching_pattern("mx1.example.com.", patterns) == "mx1.example.com"
    assert matching_pattern("mx.example.org", patterns) is None
    assert matching_pattern("not a host", patterns) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Mail.Example.com.", "mail.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("ＭＸ.example", "mx.example"),  # UTS 46 maps full-width letters
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("ab--cd.example", "ab--cd.example"),  # LDH label, valid in RFC 5321 host names
    ],
)
def test_to_alabel(name: str, expected: str) -> None:
    assert to_alabel(name) == expected


@pytest.mark.parametrize(
    "name", ["", ".", "a..b", "-a.example", "a-.example", "a_b.example", "xn--zz.example", "a" * 64]
)
def test_to_alabel_rejects(name: str) -> None:
    with pytest.raises(MxPatternError) as info:
        to_alabel(name)
    assert info.value.code == "mx-invalid"


def test_to_alabel_length_limit() -> None:
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])
    assert to_alabel(longest + ".") == longest  # 253 characters is the limit
    with pytest.raises(MxPatternError, match="254 characters"):
        to_alabel(".".join(["a" * 63] * 3 + ["b" * 62]))


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("mail.example.com", "mail.example.com"),
        ("MAIL.Example.com", "mail.example.com"),
        ("mail.example.com.", "mail.example.com"),
        ("*.example.com", "*.example.com"),
        ("*.Example.COM.", "*.example.com"),
        ("*.xn--bcher-kva.example", "*.xn--bcher-kva.example"),
        ("localhost", "localhost"),
        ("192.0.2.1.example", "192.0.2.1.example"),
    ],
)
def test_validate_mx_pattern(pattern: str, expected: str) -> None:
    assert validate_mx_pattern(pattern) == expected


@pytest.mark.parametrize(
    ("pattern", "code"),
    [
        ("192.0.2.1", "mx-ip-literal"),
        ("[192.0.2.1]", "mx-ip-literal"),
        ("192.0.2.1.", "mx-ip-literal"),
        ("2001:db8::1", "mx-ip-literal"),
        ("[IPv6:2001:db8::1]", "mx-ip-literal"),
        ("bücher.example", "mx-ulabel"),
        ("*.bücher.example", "mx-ulabel"),
        ("*example.com", "mx-wildcard"),
        ("mail.*.example.com", "mx-wildcard"),
        ("**.example.com", "mx-wildcard"),
        ("*", "mx-wildcard"),
        ("*.", "mx-wildcard"),
        ("", "mx-invalid"),
        ("mail example.com", "mx-invalid"),
        ("mail_1.example.com", "mx-invalid"),
        ("-mail.example.com", "mx-invalid"),
        ("mail..example.com", "mx-invalid"),
        ("xn--zz.example", "mx-invalid"),
    ],
)
def test_validate_mx_pattern_rejects(pattern: str, code: str) -> None:
    with pytest.raises(MxPatternError) as info:
        validate_mx_pattern(pattern)
    assert info.value.code == code
    assert info.value.rfc == "RFC 8461 §3.2"


def test_ulabel_error_offers_alabel_fix() -> None:
    with pytest.raises(MxPatternError) as info:
        validate_mx_pattern("*.Bücher.example")
    assert info.value.fix == "mx: *.xn--bcher-kva.example"


@given(LABEL, DOMAIN)
def test_wildcard_matches_exactly_one_label(label: str, domain: str) -> None:
    pattern = validate_mx_pattern("*." + domain)
    assert mx_matches(f"{label}.{domain}", pattern)
    assert mx_matches(f"{label}.{domain}.".upper(), pattern)
    assert not mx_matches(domain, pattern)
    assert not mx_matches(f"{label}.{label}.{domain}", pattern)


@given(DOMAIN, DOMAIN)
def test_exact_pattern_matches_only_itself(host: str, other: str) -> None:
    assert mx_matches(host.upper() + ".", validate_mx_pattern(host))
    assert mx_matches(other, host) is (other == host)


@given(st.text(), st.text())
def test_mx_matches_never_raises(host: str, pattern: str) -> None:
    assert mx_matches(host, pattern) in (True, False)


@given(st.text(alphabet="*.-aZ0xn9ü_[]:", max_size=30) | st.text())
def test_validate_mx_pattern_raises_only_mx_errors(pattern: str) -> None:
    try:
        normalised = validate_mx_pattern(pattern)
    except MxPatternError as exc:
        assert exc.code in {"mx-ip-literal", "mx-ulabel", "mx-wildcard", "mx-invalid"}
    else:
        assert validate_mx_pattern(normalised) == normalised  # idempotent
        assert normalised == normalised.lower()
        assert not normalised.endswith(".")


@pytest.mark.parametrize(
    ("host", "pattern", "expected"),
    [
        ("mx_1.example.com", "mx_1.example.com", True),
        ("MX_1.Example.com.", "mx_1.example.com", True),
        ("mx_1.example.com", "*.example.com", True),
        ("a.mx_pool.example.com", "*.mx_pool.example.com", True),
        ("mx_1.example.com", "mx_2.example.com", False),
        ("mx1.example.com", "mx_1.example.com", False),
    ],
)
def test_underscore_names_match_as_string_comparing_senders_do(
    host: str, pattern: str, expected: bool
) -> None:
    assert mx_matches(host, pattern) is expected
