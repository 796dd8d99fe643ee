"""MX host matching against policy `mx` patterns (RFC 8461 §4.1)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

import idna

from mtasts.protocol.errors import MxPatternError

RFC_PATTERN = "RFC 8461 §3.2"
RFC_MATCH = "RFC 8461 §4.1"

# RFC 5321 §4.1.2: sub-domain = Let-dig [Ldh-str]; RFC 1035 §2.3.4: a label has at most 63 octets.
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# RFC 1035 §2.3.4: 255 octets on the wire are 253 characters in dotted text form.
_MAX_NAME = 253


def _name_problem(name: str) -> str | None:
    """Say what is wrong with a lower-case ASCII name without trailing dot, or None."""
    if not name:
        return "the name is empty"
    if len(name) > _MAX_NAME:
        return f"the name is {len(name)} characters long (at most {_MAX_NAME})"
    for label in name.split("."):
        if not label:
            return "it has an empty label (a leading dot or '..')"
        if not _LABEL.fullmatch(label):
            return (
                f"label {label!r} must be 1-63 letters, digits or hyphens, "
                "not starting or ending with a hyphen"
            )
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except ValueError:  # idna.IDNAError and UnicodeError are ValueErrors
                return f"label {label!r} is not a valid A-label (Punycode)"
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
                "mx-invalid", f"{name!r} is not a valid host name: {exc}", RFC_MATCH
            ) from None
    # RFC 8461 §4.1: matching is case-insensitive and ignores a trailing dot.
    ascii_name = ascii_name.lower().removesuffix(".")
    problem = _name_problem(ascii_name)
    if problem:
        raise MxPatternError(
            "mx-invalid", f"{name!r} is not a valid host name: {problem}", RFC_MATCH
        )
    return ascii_name


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
            f"{pattern!r} is an IP address; mx patterns must be the host names of your MX records",
            RFC_PATTERN,
        )
    # RFC 8461 §3.2: IDNs "MUST specify the Punycode-encoded A-label", not the U-label.
    if not pattern.isascii():
        alabel = _pattern_alabel(pattern)
        raise MxPatternError(
            "mx-ulabel",
            f"{pattern!r} contains non-ASCII characters; write internationalised names "
            "as A-labels (Punycode, xn--...)",
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
            f"{pattern!r}: '*' is only allowed as the whole left-most label, as in '*.example.com'",
            RFC_PATTERN,
        )
    problem = _name_problem(rest)
    if problem:
        raise MxPatternError(
            "mx-invalid", f"{pattern!r} is not a valid mx pattern: {problem}", RFC_PATTERN
        )
    return lowered


def _matches(host_alabel: str, pattern: str) -> bool:
    wildcard = pattern.startswith("*.")
    try:
        target = to_alabel(pattern[2:] if wildcard else pattern)
    except MxPatternError:
        return False  # an invalid pattern matches nothing
    if not wildcard:
        return host_alabel == target
    # RFC 8461 §4.1: "*." stands for exactly one whole label, never zero or several.
    _label, dot, parent = host_alabel.partition(".")
    return bool(dot) and parent == target


def mx_matches(host: str, pattern: str) -> bool:
    """RFC 8461 §4.1: case-insensitive, trailing dot ignored, `*.` matches exactly one label.

    Both sides are compared as A-labels (a U-label host is converted with UTS 46). A host or
    pattern that is not a valid name matches nothing; this function never raises.
    """
    try:
        host_alabel = to_alabel(host)
    except MxPatternError:
        return False
    return _matches(host_alabel, pattern)


def matching_pattern(host: str, patterns: Iterable[str]) -> str | None:
    """The first pattern that matches ``host``, or None."""
    try:
        host_alabel = to_alabel(host)
    except MxPatternError:
        return None
    return next((p for p in patterns if _matches(host_alabel, p)), None)
