"""SMTP STARTTLS probe of one MX address: banner, EHLO, STARTTLS, TLS version, cipher,
certificate and its verification, as a sending MTA sees them (RFC 8461 §4.2, RFC 3207)."""

from __future__ import annotations

from dataclasses import dataclass

from mtasts.net.certs import CertInfo


@dataclass(frozen=True)
class ProbeResult:
    """``error_code`` is None when STARTTLS succeeded with TLS >= 1.2 and a certificate chain
    that verifies (trust and validity; the host name match is reported separately in
    ``hostname_match``). Otherwise one of: "connect-failed", "timeout", "smtp-banner" (no 220),
    "smtp-ehlo", "starttls-not-offered", "starttls-refused", "tls-handshake-failed",
    "tls-version-too-old" (only < TLSv1.2 could be negotiated; ``tls_version`` says which),
    "certificate-expired", "certificate-not-yet-valid", "certificate-untrusted",
    "certificate-invalid"."""

    host: str  # MX host name
    address: str  # IP
    port: int
    banner: str | None
    ehlo_extensions: tuple[str, ...]  # upper-case keywords from the EHLO answer
    starttls_offered: bool
    tls_version: str | None
    cipher: str | None
    certificate: CertInfo | None  # leaf
    chain_subjects: tuple[str, ...]  # leaf first, when known
    trusted: bool | None  # chain verifies to a trusted root and dates are valid
    hostname_match: bool | None  # RFC 6125 match of `host` against the leaf's SANs
    error_code: str | None
    error: str | None
    elapsed: float

    @property
    def ok(self) -> bool:
        return self.error_code is None and bool(self.hostname_match)


async def probe_mx(
    host: str,
    address: str,
    *,
    port: int = 25,
    ca_file: str | None = None,
    timeout: float = 10.0,
    ehlo_name: str = "mtasts-check.invalid",
) -> ProbeResult:
    """Connect to ``address``:``port``, read the banner, EHLO, STARTTLS, handshake (TLS >= 1.2
    required; when that fails, a second attempt learns which older version the server speaks,
    where the local OpenSSL allows), record the certificate, QUIT. Bounded by ``timeout``."""
    raise NotImplementedError
