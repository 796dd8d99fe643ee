"""Certificate details and RFC 6125 host name matching (pure helpers used by the probes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CertInfo:
    """What we report about a peer's leaf certificate."""

    subject: str  # RFC 4514 string of the subject
    issuer: str  # RFC 4514 string of the issuer
    subject_alt_names: tuple[str, ...]  # DNS names only, as in the certificate
    not_before: datetime  # timezone-aware UTC
    not_after: datetime  # timezone-aware UTC
    serial: str  # hex
    fingerprint_sha256: str  # hex, lower case

    def days_left(self, now: datetime) -> int:
        """Whole days until expiry at ``now`` (negative once expired)."""
        raise NotImplementedError


def parse_certificate(der: bytes) -> CertInfo:
    """Parse a DER certificate (cryptography) into CertInfo."""
    raise NotImplementedError


def hostname_matches(hostname: str, names: tuple[str, ...]) -> bool:
    """RFC 6125 §6.4: DNS-ID match, case-insensitive, A-labels, a wildcard `*` only as the
    whole left-most label and matching exactly one label."""
    raise NotImplementedError
