"""The MTA-STS policy file (RFC 8461 §3.2)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MAX_AGE_LIMIT = 31_557_600  # RFC 8461 §3.2: max_age up to 31557600 (about 1 year)


class Mode(StrEnum):
    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


@dataclass(frozen=True)
class PolicyNote:
    """A non-fatal observation made while parsing (duplicate key, unknown key, LF endings)."""

    code: str
    message: str
    rfc: str


@dataclass(frozen=True)
class Policy:
    version: str  # always "STSv1" once parsed
    mode: Mode
    max_age: int
    mx: tuple[str, ...]  # patterns as written (lower-cased), in file order
    extensions: tuple[tuple[str, str], ...] = ()
    notes: tuple[PolicyNote, ...] = ()

    def serialize(self) -> str:
        """Strict form: CRLF line endings, canonical order version, mode, mx..., max_age."""
        raise NotImplementedError


def parse_policy(data: bytes | str) -> Policy:
    """Parse a policy body; raise PolicyError (specific code) when a sender would reject it."""
    raise NotImplementedError
