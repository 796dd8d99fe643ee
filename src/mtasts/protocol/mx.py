"""MX host matching against policy `mx` patterns (RFC 8461 §4.1)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

import idna

from mtasts.protocol.errors import MxPatternError, Text

RFC_PATTERN = "RFC 8461 §3.2"
RFC_MATCH = "RFC 8461 §4.1"

# RFC 5321 §4.1.2: sub-domain = Let-dig [Ldh-str]; RFC 1035 §2.3.4: a label has at most 63 octets.
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# RFC 1035 §2.3.4: 255 octets on the wire are 253 characters in dotted text form.
_MAX_NAME = 253
# Some providers' real MX names carry '_' (not a host name character, RFC 5321 §4.1.2), and
# senders that compare names as strings match them: matching accepts it, validation does not.
_LENIENT_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def _name_problem(name: str) -> Text | None:
    """Say what is wrong with a lower-case ASCII name without trailing dot, or None."""
    if not name:
        return Text("the name is empty")
    if len(name) > _MAX_NAME:
        return Text(
            "the name is {length} characters long (at most {limit})",
            length=len(name),
            limit=_MAX_NAME,
        )
    for label in name.split("."):
        if not label:
            return Text("it has an empty label (a leading dot or '..')")
        if not _LABEL.fullmatch(label):
            return Text(
                "label {label!r} must be 1-63 letters, digits or hyphens, "
                "not starting or ending with a hyphen",
                label=label,
            )
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except ValueError:  # idna.IDNAError and UnicodeError are ValueErrors
                return Text("label {label!r} is not a valid A-label (Punycode)", label=label)
    return None


def to_alabel(name: str) -> str:
    """Lower-cased A-label form without trailing dot; raise MxPatternError when not IDNA-valid."""
    ascii_name = name
    if not name.isascii():
        # RFC 8461 §4.1 compares A-labels; UTS 46 maps a U-label host the way resolvers do.
        try:
            ascii_name = idna.encode(name, uts46=True).decode("ascii")
        except ValueError as exc:
            raise MxPatternError(
                "mx-invalid",
                Text("{name!r} is not a valid host name: {problem}", name=name, problem=str(exc)),
                RFC_MATCH,
            ) from None
    # RFC 8461 §4.1: matching is case-insensitive and ignores a trailing dot.
    ascii_name = ascii_name.lower().removesuffix(".")
    problem = _name_problem(ascii_name)
    if problem:
        raise MxPatternError(
            "mx-invalid",
            Text("{name!r} is not a valid host name: {problem}", name=name, problem=problem),
            RFC_MATCH,
        )
    return ascii_name


def _match_form(name: str) -> str | None:
    """The form a name is compared in: its A-label, or for an ASCII name whose labels only
    break the host name rules by an underscore, that name lower-cased; None when neither."""
    try:
        return to_alabel(name)
    except MxPatternError:
        pass
    lowered = name.lower().removesuffix(".")
    if (
        lowered.isascii()
        and 0 < len(lowered) <= _MAX_NAME
        and all(_LENIENT_LABEL.fullmatch(label) for label in lowered.split("."))
    ):
        return lowered
    return None


def _is_ip_literal(pattern: str) -> bool:
    # RFC 5321 §4.1.3: address literals are bracketed; bare addresses are a common mistake too.
    if pattern.startswith("[") and pattern.endswith("]"):
        return True
    try:
        ipaddress.ip_address(pattern.removesuffix("."))
    except ValueError:
        return False
    return True


def _pattern_alabel(pattern: str) -> str | None:
    """The A-label form of a (possibly wildcard) pattern, or None when it has none."""
    wildcard = pattern.startswith("*.")
    try:
        return ("*." if wildcard else "") + to_alabel(pattern[2:] if wildcard else pattern)
    except MxPatternError:
        return None


def validate_mx_pattern(pattern: str) -> str:
    """Return the normalised pattern or raise MxPatternError (IP literal, U-label, bad wildcard,
    bad label syntax). A U-label is an error in the policy file: it must carry A-labels.

    The normalised form is lower-case without a trailing dot (both ignored when matching).
    Error codes: ``mx-ip-literal``, ``mx-ulabel``, ``mx-wildcard``, ``mx-invalid``.
    """
    # RFC 8461 §3.2: sts-policy-mx-value = ["*."] Domain, Domain as in RFC 5321 (no addresses).
    if _is_ip_literal(pattern):
        raise MxPatternError(
            "mx-ip-literal",
            Text(
                "{pattern!r} is an IP address; mx patterns must be the host names of your MX "
                "records",
                pattern=pattern,
            ),
            RFC_PATTERN,
        )
    # RFC 8461 §3.2: IDNs "MUST specify the Punycode-encoded A-label", not the U-label.
    if not pattern.isascii():
        alabel = _pattern_alabel(pattern)
        raise MxPatternError(
            "mx-ulabel",
            Text(
                "{pattern!r} contains non-ASCII characters; write internationalised names "
                "as A-labels (Punycode, xn--...)",
                pattern=pattern,
            ),
            RFC_PATTERN,
            f"mx: {alabel}" if alabel else None,
        )
    lowered = pattern.lower().removesuffix(".")
    wildcard = lowered.startswith("*.")
    rest = lowered[2:] if wildcard else lowered
    # RFC 8461 §3.2: the wildcard is only the whole left-most label "*.".
    if "*" in rest:
        raise MxPatternError(
            "mx-wildcard",
            Text(
                "{pattern!r}: '*' is only allowed as the whole left-most label, as in "
                "'*.example.com'",
                pattern=pattern,
            ),
            RFC_PATTERN,
        )
    problem = _name_problem(rest)
    if problem:
        raise MxPatternError(
            "mx-invalid",
            Text(
                "{pattern!r} is not a valid mx pattern: {problem}", pattern=pattern, problem=problem
            ),
            RFC_PATTERN,
        )
    return lowered


def sender_accepted_pattern(pattern: str) -> tuple[str, str, str] | None:
    """For a pattern validate_mx_pattern refuses although senders accept the policy carrying
    it: (normalised pattern, code, what is wrong with it); None for any other pattern.

    RFC 8461 §3.2: the value is ``["*."] Domain`` (RFC 5321 §4.1.2), and a dotted IPv4
    address is such a Domain (digit-only labels), so the policy stays valid, yet no MX
    record names an address: the line covers no MX host. A name with '_' in a label is not
    a host name, but some providers' real MX names have one and string-comparing senders
    match it. Codes: ``mx-ip-address``, ``mx-underscore``.
    """
    lowered = pattern.lower().removesuffix(".")
    try:
        ipaddress.IPv4Address(lowered)
    except ValueError:
        pass
    else:
        if all(_LABEL.fullmatch(label) for label in lowered.split(".")):
            return (
                lowered,
                "mx-ip-address",
                Text(
                    "{pattern!r} looks like an IP address, but MX records name hosts, never "
                    "addresses (RFC 5321 §5.1): this line covers no MX host",
                    pattern=pattern,
                ),
            )
    rest = lowered[2:] if lowered.startswith("*.") else lowered
    # a name with "*" inside has no match form
    if "_" in rest and _match_form(rest) == rest:
        return (
            lowered,
            "mx-underscore",
            Text(
                "{pattern!r} has an underscore, which host names may not contain (RFC 5321 "
                "§4.1.2): senders that compare names as text match it to an MX host of "
                "exactly that name, senders that validate names match nothing with it",
                pattern=pattern,
            ),
        )
    return None


def _matches(host_alabel: str, pattern: str) -> bool:
    wildcard = pattern.startswith("*.")
    target = _match_form(pattern[2:] if wildcard else pattern)
    if target is None:
        return False  # an invalid pattern matches nothing
    if not wildcard:
        return host_alabel == target
    # RFC 8461 §4.1: "*." stands for exactly one whole label, never zero or several.
    _label, dot, parent = host_alabel.partition(".")
    return bool(dot) and parent == target


def mx_matches(host: str, pattern: str) -> bool:
    """RFC 8461 §4.1: case-insensitive, trailing dot ignored, `*.` matches exactly one label.

    Both sides are compared as A-labels (a U-label host is converted with UTS 46); a name
    whose labels only break the rules by an underscore is compared as written, lower-cased,
    as senders comparing strings do. A host or pattern that is not a name matches nothing;
    this function never raises.
    """
    host_alabel = _match_form(host)
    return host_alabel is not None and _matches(host_alabel, pattern)


def matching_pattern(host: str, patterns: Iterable[str]) -> str | None:
    """The first pattern that matches ``host``, or None."""
    host_alabel = _match_form(host)
    if host_alabel is None:
        return None
    return next((p for p in patterns if _matches(host_alabel, p)), None)
