"""The mail route: an SMTP receiver (aiosmtpd, with STARTTLS) for the `mailto:` rua of
hosted domains (RFC 8460 §5.3).

`250` is answered only after every report of the message is durably stored; when the store
is unavailable the answer is `451` and the sender keeps the message and retries, so a report
acknowledged is never lost. DKIM is verified (RFC 8460 §3: reports "MUST" be signed) and the
result stored; whether unsigned or failing reports are kept is a setting (default: keep and
flag them, since some senders sign with keys one cannot fetch).
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dkim
import dns.exception
import dns.nameserver
import dns.resolver
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mtasts.net.dns import parse_nameserver
from mtasts.reports.gate import Busy
from mtasts.reports.ingest import Outcome, ReportIngestor, Route, Status, StoreUnavailable
from mtasts.reports.smtp_spool import SpoolEnvelope, SpoolingSMTP

log = logging.getLogger("mtasts.reports.smtp")


def dkim_dns(nameservers: Sequence[str], timeout: float = 5.0) -> Callable[..., bytes]:
    """A DNS function for dkimpy: the TXT record of ``name`` as bytes (b"" if none)."""
    resolver = dns.resolver.Resolver(configure=not nameservers)
    if nameservers:
        servers: list[str | dns.nameserver.Nameserver] = []
        for text in nameservers:
            ip, port = parse_nameserver(text)
            servers.append(dns.nameserver.Do53Nameserver(ip, port))
        resolver.nameservers = servers
    resolver.lifetime = timeout

    def lookup(name: bytes | str, timeout: float = timeout) -> bytes:
        qname = name.decode() if isinstance(name, bytes) else name
        try:
            answer = resolver.resolve(qname, "TXT", lifetime=timeout)
        except dns.exception.DNSException:
            return b""
        return b"".join(b"".join(r.strings) for r in answer)

    return lookup


def verify_dkim(message: bytes, dnsfunc: Callable[..., bytes]) -> str:
    """'pass', 'fail' (a signature that does not verify) or 'none' (not signed)."""
    if b"dkim-signature:" not in message[:65536].lower():
        return "none"
    try:
        return "pass" if dkim.verify(message, dnsfunc=dnsfunc) else "fail"
    except Exception:  # dkimpy raises many kinds on malformed signatures
        return "fail"


class ReportHandler:
    """aiosmtpd handler: accepts mail for ``recipients`` only."""

    def __init__(
        self,
        ingestor: ReportIngestor,
        recipients: set[str],
        dnsfunc: Callable[..., bytes],
        keep_unsigned: bool = True,
    ) -> None:
        self.ingestor = ingestor
        self.recipients = {r.lower() for r in recipients}
        self.dnsfunc = dnsfunc
        self.keep_unsigned = keep_unsigned

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() not in self.recipients:
            return "550 5.1.1 No such mailbox: this server only receives TLS reports"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        spool = envelope.spool if isinstance(envelope, SpoolEnvelope) else None
        ingestor = self.ingestor
        if spool is not None and spool.on_disk:
            ingestor.counters.spool()

        def work() -> tuple[str, list[Outcome]]:
            # The message leaves its spool only once a parse slot is held (issue 11).
            if spool is not None:
                content = spool.read()
            else:
                raw = envelope.original_content or b""
                content = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
            result = verify_dkim(content, self.dnsfunc)
            if result != "pass" and not self.keep_unsigned:
                return result, []
            return result, ingestor.ingest_message(content, route=Route.SMTP, dkim=result)

        try:
            result, outcomes = await ingestor.gate.run(work)
        except Busy:
            ingestor.counters.reject("busy")
            # RFC 3463 4.3.2: system not accepting messages; the sender retries later
            return "451 4.3.2 Too many reports at once, please try again later"
        except StoreUnavailable as exc:
            ingestor.counters.reject("store_unavailable")
            log.warning("report not taken, sender will retry: %s", exc)
            return "451 4.3.0 Report store unavailable, please try again later"
        if not outcomes:
            return f"550 5.7.1 DKIM {result}: TLS reports must be signed (RFC 8460 §3)"
        over = [o for o in outcomes if o.status is Status.OVER_QUOTA]
        if over:
            # RFC 3463 4.3.1: mail system full (for this domain, today); what was stored of
            # this message is recognised as a duplicate when it is sent again
            return f"452 4.3.1 Daily report quota used up: {over[0].reason}"[:500]
        accepted = [o for o in outcomes if o.accepted]
        if not accepted:
            reason = outcomes[0].reason if outcomes else "no report"
            return f"550 5.6.0 Not a usable TLS report: {reason}"[:500]
        stored = sum(o.status is Status.STORED for o in accepted)
        return f"250 2.0.0 {stored} report(s) stored, {len(accepted) - stored} already known"


def self_signed_context(directory: Path, hostname: str) -> ssl.SSLContext:
    """A TLS context from ``directory``/smtp.{crt,key}, creating a self-signed pair on
    first use: STARTTLS is then always offered (senders of reports use opportunistic TLS,
    which accepts any certificate)."""
    cert, key = directory / "smtp.crt", directory / "smtp.key"
    if not cert.exists() or not key.exists():
        directory.mkdir(parents=True, exist_ok=True)
        private = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), False)
            .sign(private, hashes.SHA256())
        )
        key.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key.chmod(0o600)
        cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return tls_context(str(cert), str(key))


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


class _LenientSMTP(SpoolingSMTP):
    # RFC 5321 §4.5.3.1.6 caps lines at 1000 octets, but real report mails carry longer
    # ones (unwrapped headers); refusing them would lose the report, so allow 64 KiB.
    line_length_limit = 65536


class ReportReceiver(Controller):
    """The receiver in its own thread and event loop (aiosmtpd's Controller)."""

    def __init__(
        self,
        handler: ReportHandler,
        host: str,
        port: int,
        tls: ssl.SSLContext,
        server_hostname: str,
        **kwargs: Any,
    ) -> None:
        # RFC 1870: SIZE is announced; larger messages get 552 before any data is stored
        super().__init__(
            handler,
            hostname=host,
            port=port,
            server_hostname=server_hostname,
            tls_context=tls,
            data_size_limit=handler.ingestor.limits.max_message_bytes,
            enable_SMTPUTF8=True,
            ident="ESMTP",  # the banner names no software and no version (aiosmtpd's does)
            ready_timeout=10.0,
            **kwargs,
        )

    def factory(self) -> SMTP:
        smtp = _LenientSMTP(self.handler, **self.SMTP_kwargs)
        ingestor = self.handler.ingestor
        smtp.spool_threshold, smtp.spool_dir = ingestor.spool_threshold, ingestor.spool_dir
        return smtp
