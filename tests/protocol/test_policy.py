"""The MTA-STS policy file (RFC 8461 §3.2)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtasts.protocol.errors import PolicyError
from mtasts.protocol.policy import MAX_AGE_LIMIT, Mode, Policy, PolicyNote, parse_policy

LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True).filter(
    lambda label: not label.startswith("xn--")
)
TLD = st.from_regex(r"[a-z]{2,6}", fullmatch=True)  # keeps names from looking like IPs
DOMAIN = st.builds(lambda labels, tld: ".".join([*labels, tld]), st.lists(LABEL, max_size=3), TLD)
PATTERN = st.builds(lambda wild, name: ("*." if wild else "") + name, st.booleans(), DOMAIN)
EXT_KEY = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", fullmatch=True).filter(
    lambda key: key not in {"version", "mode", "max_age", "mx"}
)
EXT_VALUE = (
    st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=20)
    .map(lambda value: value.strip(" \t"))
    .filter(bool)
)

GOOD = b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 604800\r\n"


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    mode = draw(st.sampled_from(Mode))
    mx = draw(st.lists(PATTERN, min_size=0 if mode is Mode.NONE else 1, max_size=4))
    extensions = draw(st.lists(st.tuples(EXT_KEY, EXT_VALUE), max_size=3, unique_by=lambda e: e[0]))
    max_age = draw(st.integers(0, MAX_AGE_LIMIT))
    return Policy("STSv1", mode, max_age, tuple(mx), tuple(extensions))


def codes(policy: Policy) -> list[str]:
    return [note.code for note in policy.notes]


def test_parse_canonical_policy() -> None:
    policy = parse_policy(GOOD)
    assert policy == Policy("STSv1", Mode.ENFORCE, 604800, ("mail.example.com",))
    assert policy.notes == ()
    assert policy.serialize().encode() == GOOD


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # RFC 8461 §3.2: fields in any order; str input; no final line terminator.
        (
            "max_age: 86400\r\nmx: *.Example.NET\r\nmode: testing\r\nversion: STSv1",
            Policy("STSv1", Mode.TESTING, 86400, ("*.example.net",)),
        ),
        # ":" *WSP before the value, *WSP after the field.
        (
            "version:STSv1 \r\nmode:\t enforce\t\r\nmx:  a.example\r\nmax_age: 0\r\n",
            Policy("STSv1", Mode.ENFORCE, 0, ("a.example",)),
        ),
        (
            "version: STSv1\r\nmode: none\r\nmax_age: 0031557600\r\n",  # 10 digits
            Policy("STSv1", Mode.NONE, MAX_AGE_LIMIT, ()),
        ),
        (
            "version: STSv1\r\nmode: none\r\nmax_age: 86400\r\nmx: a.example\r\nmx: b.example\r\n",
            Policy("STSv1", Mode.NONE, 86400, ("a.example", "b.example")),
        ),
        (
            "version: STSv1\r\nmode: enforce\r\nmx: a.example\r\nmax_age: 1\r\nnote: é ü: x\r\n",
            Policy("STSv1", Mode.ENFORCE, 1, ("a.example",), (("note", "é ü: x"),)),
        ),
    ],
)
def test_parse_valid(text: str, expected: Policy) -> None:
    assert parse_policy(text) == expected


BASE = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 86400\r\n"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"version: STSv1\r\nmode: enforce\r\nmx: m\xe9il.example\r\n", "policy-encoding"),
        ("version: STSv1".encode("utf-16"), "policy-encoding"),
        (b"\xef\xbb\xbf" + GOOD, "policy-bom"),
        ("\ufeff" + BASE, "policy-bom"),
        ("", "policy-empty"),
        ("\r\n \r\n", "policy-empty"),
        (BASE + "mode enforce\r\n", "policy-syntax"),
        (BASE + "mode : enforce\r\n", "policy-syntax"),
        (BASE + " mx: b.example\r\n", "policy-syntax"),
        (BASE + "bad key: x\r\n", "policy-syntax"),
        (BASE + ": x\r\n", "policy-syntax"),
        (BASE + "_x: y\r\n", "policy-syntax"),
        (BASE.replace("\r\n", "\r"), "policy-syntax"),
        (BASE + "mоde: enforce\r\n", "policy-non-ascii-key"),  # Cyrillic o
        (BASE + "mode\u00a0: enforce\r\n", "policy-non-ascii-key"),
        (BASE.replace("version: STSv1\r\n", ""), "policy-version-missing"),
        (BASE.replace("version:", "Version:"), "policy-version-missing"),
        (BASE.replace("STSv1", "STSv2"), "policy-version-invalid"),
        (BASE.replace("STSv1", "stsv1"), "policy-version-invalid"),
        (BASE.replace("mode: enforce\r\n", ""), "policy-mode-missing"),
        (BASE.replace("enforce", "Enforce"), "policy-mode-invalid"),
        (BASE.replace("enforce", "enforced"), "policy-mode-invalid"),
        (BASE.replace("enforce", ""), "policy-mode-invalid"),
        (BASE.replace("max_age: 86400\r\n", ""), "policy-max-age-missing"),
        (BASE.replace("max_age", "max-age"), "policy-max-age-missing"),
        (BASE.replace("86400", "31557601"), "policy-max-age-invalid"),
        (BASE.replace("86400", "12345678901"), "policy-max-age-invalid"),
        (BASE.replace("86400", "-1"), "policy-max-age-invalid"),
        (BASE.replace("86400", "1w"), "policy-max-age-invalid"),
        (BASE.replace("86400", "٣"), "policy-max-age-invalid"),  # a non-ASCII digit
        (BASE.replace("86400", ""), "policy-max-age-invalid"),
        (BASE.replace("mx: mail.example.com\r\n", ""), "policy-mx-missing"),
        (BASE.replace("mx: mail.example.com\r\n", "MX: mail.example.com\r\n"), "policy-mx-missing"),
        (BASE.replace("mail.example.com", "mail.*.example.com"), "policy-mx-invalid"),
        (BASE.replace("mail.example.com", ""), "policy-mx-invalid"),
        (BASE.replace("mail.example.com", "a.example b.example"), "policy-mx-invalid"),
        (BASE.replace("mail.example.com", "[2001:db8::25]"), "policy-mx-ip-literal"),
        (BASE.replace("mail.example.com", "mail.bücher.example"), "policy-mx-ulabel"),
    ],
)
def test_parse_errors(data: bytes | str, code: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(data)
    assert info.value.code == code
    assert info.value.rfc.startswith("RFC 8461 §3.2")
    assert info.value.message


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        (BASE.replace("enforce", "Enforce"), "mode: enforce"),
        (BASE.replace("STSv1", "stsv1"), "version: STSv1"),
        (BASE.replace("86400", "99999999"), f"max_age: {MAX_AGE_LIMIT}"),
        (BASE.replace("mail.example.com", "*.bücher.example"), "mx: *.xn--bcher-kva.example"),
        (BASE.replace("max_age: 86400\r\n", ""), "max_age: 604800"),
        (BASE + "mode : none\r\n", "mode: none"),
    ],
)
def test_error_fixes(text: str, fix: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert info.value.fix == fix


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        (BASE.replace("enforce", "Enforce"), "case-sensitive"),
        (BASE.replace("max_age", "Max-Age"), "found 'Max-Age'"),
        (BASE.replace("mode: enforce", "Mode: enforce"), "found 'Mode'"),
        (BASE + "mоde: x\r\n", r"U\+043E"),
        (BASE.replace("\r\nmode", "\rmode"), "line 1"),
    ],
)
def test_error_messages_say_what_is_wrong(text: str, hint: str) -> None:
    with pytest.raises(PolicyError, match=hint):
        parse_policy(text)


@pytest.mark.parametrize(
    ("text", "note_codes"),
    [
        (BASE, []),
        (BASE.replace("\r\n", "\n"), ["policy-lf-endings"]),
        (BASE.replace("\r\nmode", "\nmode"), ["policy-lf-endings"]),
        (BASE + "\r\n", ["policy-blank-line"]),
        (BASE + "mode: none\r\n", ["policy-duplicate-key"]),
        (BASE + "mode: Bogus\r\n", ["policy-duplicate-key"]),  # ignored, so not an error
        (BASE + "foo: bar\r\n", ["policy-unknown-key"]),
        (BASE + "foo: bar\r\nfoo: baz\r\n", ["policy-unknown-key", "policy-duplicate-key"]),
        (BASE + "foo:\r\n", ["policy-extension-invalid"]),
        (BASE + "foo: a\x00b\r\n", ["policy-extension-invalid"]),
        (BASE.replace("mail.example.com", "mail.example.com."), ["policy-mx-trailing-dot"]),
    ],
)
def test_notes(text: str, note_codes: list[str]) -> None:
    policy = parse_policy(text)
    assert codes(policy) == note_codes
    assert (policy.mode, policy.mx) == (Mode.ENFORCE, ("mail.example.com",))


def test_first_value_wins_and_extensions_are_kept() -> None:
    policy = parse_policy(BASE + "max_age: 1\r\nfoo: bar\r\nfoo: baz\r\nmx: b.example\r\n")
    assert policy.max_age == 86400
    assert policy.mx == ("mail.example.com", "b.example")
    assert policy.extensions == (("foo", "bar"),)
    assert all(isinstance(note, PolicyNote) and note.rfc for note in policy.notes)


def test_serialize_is_canonical() -> None:
    policy = Policy("STSv1", Mode.TESTING, 3600, ("b.example", "*.a.example"), (("x", "1"),))
    assert policy.serialize() == (
        "version: STSv1\r\nmode: testing\r\nmx: b.example\r\nmx: *.a.example\r\n"
        "max_age: 3600\r\nx: 1\r\n"
    )


@pytest.mark.parametrize(
    ("policy", "code"),
    [
        (Policy("STSv2", Mode.NONE, 1, ()), "policy-version-invalid"),
        (Policy("STSv1", Mode.ENFORCE, 1, ()), "policy-mx-missing"),
        (Policy("STSv1", Mode.NONE, MAX_AGE_LIMIT + 1, ()), "policy-max-age-invalid"),
        (Policy("STSv1", Mode.NONE, -1, ()), "policy-max-age-invalid"),
        (Policy("STSv1", Mode.NONE, 1, ("10.0.0.1",)), "policy-mx-ip-literal"),
        (Policy("STSv1", Mode.NONE, 1, ("MX.example",)), "policy-syntax"),
        (Policy("STSv1", Mode.NONE, 1, (), (("mode", "enforce"),)), "policy-syntax"),
        (Policy("STSv1", Mode.NONE, 1, (), (("x", "1\r\nmx: evil.example"),)), "policy-syntax"),
        (Policy("STSv1", Mode.NONE, 1, (), (("x y", "1"),)), "policy-syntax"),
    ],
)
def test_serialize_rejects_invalid(policy: Policy, code: str) -> None:
    with pytest.raises(PolicyError) as info:
        policy.serialize()
    assert info.value.code == code


@given(policies())
def test_round_trip(policy: Policy) -> None:
    text = policy.serialize()
    parsed = parse_policy(text.encode())
    assert parsed == policy
    assert parsed.notes == tuple(
        PolicyNote("policy-unknown-key", f"line {n}: unknown key {key!r} ignored", "RFC 8461 §3.2")
        for n, (key, _) in enumerate(policy.extensions, start=4 + len(policy.mx))
    )
    assert parse_policy(text) == policy


@given(policies(), st.data())
def test_parse_accepts_lf_and_optional_whitespace(policy: Policy, data: st.DataObject) -> None:
    lines = policy.serialize().split("\r\n")[:-1]
    spaced = [
        line.replace(": ", ":" + data.draw(st.sampled_from(["", " ", "\t ", "  "])), 1)
        for line in lines
    ]
    ends = data.draw(
        st.lists(st.sampled_from(["\n", "\r\n"]), min_size=len(lines), max_size=len(lines))
    )
    trailing = data.draw(st.text(" \t", max_size=2))
    text = "".join(line + trailing + end for line, end in zip(spaced, ends, strict=True))
    if data.draw(st.booleans()):
        text = text.removesuffix(ends[-1])  # the last terminator is optional
    parsed = parse_policy(text)
    assert parsed == policy
    assert ("policy-lf-endings" in codes(parsed)) is (
        "\n" in ends[:-1] or (text.endswith("\n") and not text.endswith("\r\n"))
    )


KEYS = st.sampled_from(["version", "mode", "max_age", "mx", "x", "Mode", "mоde", " mx", ""])
VALUES = st.sampled_from(["STSv1", "enforce", "none", "86400", "a.example", "*.b.example", "é", ""])
LINES = st.one_of(
    st.builds(
        lambda k, sep, v: k + sep + v, KEYS, st.sampled_from([": ", ":", " : ", " "]), VALUES
    ),
    st.text(max_size=15),
)
POLICYISH = st.builds(
    lambda lines, end: end.join(lines),
    st.lists(LINES, max_size=8),
    st.sampled_from(["\n", "\r\n", "\r"]),
)


@given(POLICYISH | st.text())
def test_parse_text_raises_only_policy_errors(text: str) -> None:
    try:
        policy = parse_policy(text)
    except PolicyError as exc:
        assert exc.code.startswith("policy-")
    else:
        assert parse_policy(policy.serialize()) == policy


@given(st.binary() | POLICYISH.map(lambda text: text.encode("utf-8", "surrogatepass")))
def test_parse_bytes_raises_only_policy_errors(data: bytes) -> None:
    try:
        policy = parse_policy(data)
    except PolicyError as exc:
        assert exc.code.startswith("policy-")
    else:
        assert dataclasses.replace(parse_policy(policy.serialize()), notes=()) == policy


@pytest.mark.parametrize(
    ("value", "code", "words"),
    [
        # RFC 8461 §3.2: ["*."] Domain; a dotted IPv4 address is a valid RFC 5321 Domain.
        ("192.0.2.25", "policy-mx-ip-address", "looks like an IP address"),
        ("192.0.2.25.", "policy-mx-ip-address", "covers no MX host"),
        # Some providers' real MX names carry an underscore; senders accept the policy.
        ("mail_1.example.com", "policy-mx-underscore", "underscore"),
        ("*.mx_pool.example.com", "policy-mx-underscore", "underscore"),
    ],
)
def test_mx_lines_senders_accept_keep_the_policy_valid_with_a_note(
    value: str, code: str, words: str
) -> None:
    policy = parse_policy(BASE.replace("mail.example.com", value) + "mx: mx.example.com\r\n")
    assert policy.mode is Mode.ENFORCE
    assert policy.mx == (value.lower().removesuffix("."), "mx.example.com")
    [note] = [n for n in policy.notes if n.code == code]
    assert note.message.startswith("line 3: ")  # names the line
    assert repr(value) in note.message and words in note.message


def test_an_ip_looking_mx_line_is_never_written() -> None:
    with pytest.raises(PolicyError) as info:
        Policy("STSv1", Mode.TESTING, 86400, ("192.0.2.25",)).serialize()
    assert info.value.code == "policy-mx-ip-literal"


def test_an_underscore_mx_from_a_real_mx_set_is_written() -> None:
    text = Policy("STSv1", Mode.TESTING, 86400, ("mx_1.example.com",)).serialize()
    assert "mx: mx_1.example.com\r\n" in text
