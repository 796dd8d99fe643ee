"""MX host matching against policy `mx` patterns (RFC 8461 §4.1)."""

from __future__ import annotations

from collections.abc import Iterable


def to_alabel(name: str) -> str:
    """Lower-cased A-label form without trailing dot; raise MxPatternError when not IDNA-valid."""
    raise NotImplementedError


def validate_mx_pattern(pattern: str) -> str:
    """Return the normalised pattern or raise MxPatternError (IP literal, U-label, bad wildcard,
    bad label syntax). A U-label is an error in the policy file: it must carry A-labels."""
    raise NotImplementedError


def mx_matches(host: str, pattern: str) -> bool:
    """RFC 8461 §4.1: case-insensitive, trailing dot ignored, `*.` matches exactly one label."""
    raise NotImplementedError


def matching_pattern(host: str, patterns: Iterable[str]) -> str | None:
    """The first pattern that matches ``host``, or None."""
    raise NotImplementedError
