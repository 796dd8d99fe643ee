"""The HTTPS policy fetch, exactly as RFC 8461 §3.3 asks of a sender."""

from __future__ import annotations

from dataclasses import dataclass

from mtasts.net.certs import CertInfo
from mtasts.net.dns import Resolver

MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 §3.3: senders may limit the body (64 KiB)


@dataclass(frozen=True)
class FetchResult:
    """Outcome of GET https://mta-sts.<domain>/.well-known/mta-sts.txt.

    ``error_code`` is None on success (HTTP 200, text/plain, body within limits), else one of:
    "dns-nxdomain", "dns-nodata", "dns-failure" (SERVFAIL/timeout/other), "connect-failed",
    "timeout", "tls-handshake-failed", "tls-certificate-expired", "tls-certificate-untrusted",
    "tls-certificate-host-mismatch", "tls-certificate-invalid", "http-redirect", "http-status",
    "content-type", "too-large", "http-error".
    """

    url: str
    host: str  # mta-sts.<domain>
    addresses: tuple[str, ...]  # what the host resolved to
    address: str | None  # the address actually used
    status_code: int | None
    content_type: str | None  # raw Content-Type header
    body: bytes | None  # present on success, and on content-type/status errors when read
    location: str | None  # Location header of a redirect
    tls_version: str | None  # "TLSv1.3" ...
    certificate: CertInfo | None  # leaf of the policy host, kept even when verification failed
    cname_chain: tuple[str, ...]
    error_code: str | None
    error: str | None  # human-readable detail
    elapsed: float  # seconds

    @property
    def ok(self) -> bool:
        return self.error_code is None


async def fetch_policy(
    domain: str,
    *,
    resolver: Resolver,
    ca_file: str | None = None,
    timeout: float = 10.0,
    port: int = 443,
) -> FetchResult:
    """Fetch the policy of ``domain``: resolve mta-sts.<domain> with ``resolver``, connect to
    the address on ``port`` with SNI, PKIX validation (``ca_file`` or the system store), never
    follow redirects, accept HTTP 200 with media type text/plain only, cap the body at 64 KiB
    while streaming, and bound the whole fetch by ``timeout``."""
    raise NotImplementedError
