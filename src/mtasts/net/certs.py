"""Certificate details and RFC 6125 host name matching (pure helpers used by the probes)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import ssl
import sys
import threading
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

import idna

if TYPE_CHECKING:
    from cryptography import x509

# cryptography (its own copy of OpenSSL, about 10 MiB resident) is imported by the
# functions that parse certificates, on first use: `mtasts policyd` verifies the policy
# host's certificate with the ssl module and never parses one.

from mtasts.i18n import N_, _
from mtasts.protocol.errors import Text


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
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        # timedelta.days floors: 23 hours left is 0 days, 1 hour past expiry is -1
        return (self.not_after - now).days

    def valid_at(self, now: datetime) -> bool:
        """True when ``now`` lies within notBefore..notAfter (RFC 5280 §4.1.2.5)."""
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return self.not_before <= now <= self.not_after


# Certificate expiry judged by the certificate's own lifetime: ACME clients (certbot, Caddy,
# lego) renew with about a third of the lifetime left, so a certificate under that has
# missed its renewal; under a tenth (or, for lifetimes of 3 days and more, under a day)
# renewal is failing. Fixed day counts are wrong now that lifetimes run from hours (Caddy's
# internal CA: 12 h) over days (short-lived ACME profiles) to 47 days (CA/B Forum, 2029).
RENEWAL_SHARE = 1 / 3
FAILING_SHARE = 1 / 10
LAST_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Expiry:
    """A certificate that needs attention: ``level`` 1 = renewal window passed (warning),
    2 = renewal failing, 3 = under a day left, 4 = expired (all critical)."""

    level: int
    severity: str  # "warning" or "critical"
    left: timedelta  # negative once expired
    lifetime: timedelta
    reason: str  # one sentence: when it expires and why that is a problem

    @property
    def expired(self) -> bool:
        return self.level == 4


def format_duration(d: timedelta) -> str:
    """``d`` in words at a useful precision: days from two days up, else hours, else
    minutes ("12 hours", never "0 days"), in the current language."""
    seconds = abs(d.total_seconds())
    if seconds >= 2 * 86400:
        return _("{n} days").format(n=int(seconds // 86400))
    if seconds >= 2 * 3600:
        return _("{n} hours").format(n=int(seconds // 3600))
    if seconds >= 120:
        return _("{n} minutes").format(n=int(seconds // 60))
    return _("less than 2 minutes")


def judge_expiry(cert: CertInfo, now: datetime) -> Expiry | None:
    """None while ``cert`` is in good time; otherwise how urgent its expiry is, by its own
    lifetime (see RENEWAL_SHARE), its reason in the current language."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    lifetime = max(cert.not_after - cert.not_before, timedelta(seconds=1))
    left = cert.not_after - now
    life = format_duration(lifetime)
    until = f"{cert.not_after:%Y-%m-%d %H:%M} UTC"
    if left <= timedelta(0):
        why = _("expired {ago} ago ({until}).").format(ago=format_duration(left), until=until)
        return Expiry(4, "critical", left, lifetime, why)
    share = left / lifetime
    fields = {"left": format_duration(left), "until": until, "share": share, "life": life}
    last_day = left < LAST_DAY and lifetime >= 3 * LAST_DAY  # short lifetimes: always < 1 day
    if share < FAILING_SHARE or last_day:
        why = _(
            "expires in {left} ({until}), with {share:.0%} of its lifetime of {life} left: "
            "renewal is failing (ACME clients renew with about a third left)."
        ).format(**fields)
        return Expiry(3 if last_day else 2, "critical", left, lifetime, why)
    if share < RENEWAL_SHARE:
        why = _(
            "expires in {left} ({until}), with {share:.0%} of its lifetime of {life} left: it "
            "should have been renewed by now (ACME clients renew with about a third left)."
        ).format(**fields)
        return Expiry(1, "warning", left, lifetime, why)
    return None


# OpenSSL's words for the usual X509_V_ERR_* codes (X509_verify_cert_error_string), to say
# them in the reader's language; OpenSSL's own text is kept where there is no translation
_VERIFY_MESSAGES = {
    9: N_("certificate is not yet valid"),
    10: N_("certificate has expired"),
    18: N_("self-signed certificate"),
    19: N_("self-signed certificate in certificate chain"),
    20: N_("unable to get local issuer certificate"),
    21: N_("unable to verify the first certificate"),
    62: N_("hostname mismatch"),
}


def verify_message(code: int, openssl_text: str) -> str:
    """OpenSSL's ``openssl_text`` for a rejected certificate, as a Text (said in the reader's
    language) when it is one of the usual reasons in its usual words."""
    known = _VERIFY_MESSAGES.get(code)
    return Text(known) if known == openssl_text else openssl_text


_preloading: threading.Thread | None = None


def preload_parser() -> None:
    """Start importing the certificate parser (cryptography: ~70 ms of CPU) in a thread of
    its own, once per process, for a run that will parse certificates: the import then
    fills the time the first lookups spend waiting on the network, instead of stopping
    the event loop at the first handshake."""
    global _preloading
    if _preloading is None and "cryptography.x509" not in sys.modules:

        def load() -> None:
            with contextlib.suppress(ImportError):
                import cryptography.hazmat.primitives.hashes
                import cryptography.x509  # noqa: F401

        # Not a daemon: a run that ends during the import waits for it. A daemon thread is
        # stopped where it stands at interpreter exit, and stopped inside cryptography's
        # Rust code it aborts the whole process ("FATAL: exception not rethrown"; PyO3
        # #4874): a finished check then exited with SIGABRT instead of its status.
        _preloading = threading.Thread(target=load, name="mtasts-preload")
        _preloading.start()


def parse_certificate(der: bytes) -> CertInfo:
    """Parse a DER certificate (cryptography) into CertInfo.

    Raises ValueError when ``der`` is not a certificate. A malformed subjectAltName
    extension is reported as no names rather than failing the whole parse.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_der_x509_certificate(der)
    names: tuple[str, ...] = ()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        pass
    except ValueError:  # duplicate or undecodable extensions in the wild
        names = ()
    return CertInfo(
        subject=_rfc4514(cert.subject),
        issuer=_rfc4514(cert.issuer),
        subject_alt_names=names,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=f"{cert.serial_number:x}",
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
    )


def _rfc4514(name: x509.Name) -> str:
    try:
        return name.rfc4514_string()
    except ValueError:  # undecodable attribute values
        return "<undecodable name>"


def _to_alabels(name: str) -> str | None:
    """Lower-case A-label form without the trailing dot; None when not a valid DNS name."""
    name = name.strip().rstrip(".").lower()
    if not name or ".." in name:
        return None
    if name.isascii():
        return name
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError:
        return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def hostname_matches(hostname: str, names: tuple[str, ...]) -> bool:
    """RFC 6125 §6.4: DNS-ID match, case-insensitive, A-labels, a wildcard `*` only as the
    whole left-most label and matching exactly one label."""
    host = _to_alabels(hostname)
    # RFC 6125 §1.7.2: IP addresses are matched against iPAddress SANs, never DNS-IDs;
    # a reference identifier holding "*" is not a host name (§6.4.3 applies to SANs only).
    if host is None or _is_ip(host) or "*" in host:
        return False
    host_labels = host.split(".")
    for presented in names:
        # RFC 6125 §6.4.2: compare in A-label form, case-insensitively; a SAN holding
        # U-labels is malformed (RFC 5280 §4.2.1.6 requires A-labels) and never matches.
        if not presented.isascii():
            continue
        pattern = presented.strip().rstrip(".").lower()
        if not pattern or _is_ip(pattern):
            continue
        if pattern == host:
            return True
        labels = pattern.split(".")
        # RFC 6125 §6.4.3: `*` only as the complete left-most label (no "f*o", no "*.*"),
        # standing for exactly one label; and, as CA/B and OpenSSL do, never directly
        # under a single label ("*.com").
        if (
            labels[0] == "*"
            and len(labels) >= 3
            and "*" not in ".".join(labels[1:])
            and "" not in labels[1:]
            and len(host_labels) == len(labels)
            and host_labels[0] != ""
            and host_labels[1:] == labels[1:]
        ):
            return True
    return False


# --- client TLS contexts, shared by the HTTPS fetch and the SMTP probe -----------------


def _ca_key(ca_file: str | None) -> tuple[str | None, int, int]:
    if ca_file is None:
        return None, 0, 0
    st = os.stat(ca_file)  # a missing file is a usage error: let OSError through
    return ca_file, st.st_mtime_ns, st.st_size


def client_context(ca_file: str | None = None, *, check_hostname: bool = True) -> ssl.SSLContext:
    """A client context requiring TLS >= 1.2 and a chain to ``ca_file`` or the system store
    (certifi when the system has none). Cached per file and mtime: loading a CA bundle
    costs milliseconds, and hundreds of connections share one context.

    ``check_hostname=False`` leaves the name check to the caller (the SMTP probe reports
    trust and name separately)."""
    return _client_context(*_ca_key(ca_file), check_hostname)


@lru_cache(maxsize=32)
def _client_context(
    ca_file: str | None, _mtime: int, _size: int, check_hostname: bool
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        ctx.load_verify_locations(cafile=ca_file)
    elif _system_store_present():
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        import certifi  # a dependency of httpx

        ctx.load_verify_locations(cafile=certifi.where())
    return ctx


def _system_store_present() -> bool:
    paths = ssl.get_default_verify_paths()
    if paths.cafile and os.path.isfile(paths.cafile):
        return True
    return bool(paths.capath and os.path.isdir(paths.capath) and os.listdir(paths.capath))


@lru_cache(maxsize=1)
def insecure_context() -> ssl.SSLContext:
    """TLS >= 1.2 without any verification: only to look at a certificate that failed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


@lru_cache(maxsize=1)
def legacy_context() -> ssl.SSLContext | None:
    """No verification, TLS 1.0 and up, OpenSSL security level 0: only to learn which old
    protocol version a server speaks. None when the local OpenSSL cannot be set up so."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with warnings.catch_warnings():
            # Python deprecates TLSv1/TLSv1_1; here they are wanted, to name them.
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.TLSv1
    except (ssl.SSLError, ValueError):
        return None
    return ctx
