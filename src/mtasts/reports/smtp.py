"""The mail route: an SMTP receiver (aiosmtpd, with STARTTLS) for the `mailto:` rua of
hosted domains (RFC 8460 §5.3).

`250` is answered only after every report of the message is durably stored; when the store
is unavailable the answer is `451` and the sender keeps the message and retries, so a report
acknowledged is never lost. DKIM is verified (RFC 8460 §3: reports "MUST" be signed) and the
result stored; whether unsigned or failing reports are kept is a setting (default: keep and
flag them, since some senders sign with keys one cannot fetch).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
from collections import Counter, OrderedDict
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
from mtasts.net.guard import accept_error_handler, source_prefix
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


TOO_MANY_FROM_SOURCE = b"421 4.7.0 Too many connections from your address, try later\r\n"
TOO_BUSY = b"421 4.7.0 Too busy: closing an idle session, try later\r\n"
SESSION_TOO_LONG = b"421 4.4.2 Session too long, closing\r\n"
COMMAND_TIMEOUT = 300.0  # RFC 5321 §4.5.3.2.7: the server waits 5 minutes for a command
SESSION_TIMEOUT = 600.0


class SessionGuard:
    """Bounds of the receiver's sessions: at most ``max_per_source`` at once from one IPv4
    address or IPv6 /64 (the next gets 421 and is closed), at most ``max_sessions`` in all
    (the next sheds the oldest session not busy storing a message), none longer than
    ``session_timeout`` seconds. Used on the receiver's event loop only."""

    def __init__(
        self,
        max_per_source: int = 10,
        max_sessions: int = 1000,
        session_timeout: float = SESSION_TIMEOUT,
    ) -> None:
        self.max_per_source = max_per_source
        self.max_sessions = max_sessions
        self.session_timeout = session_timeout
        self.sessions: OrderedDict[_GuardedSMTP, None] = OrderedDict()
        self.per_source: Counter[str] = Counter()
        self.refused = 0  # 421 for too many from one source
        self.shed = 0  # closed to make room
        self.timed_out = 0  # closed at session_timeout

    def admit(self, session: _GuardedSMTP, source: str) -> bool:
        if self.per_source[source] >= self.max_per_source:
            self.refused += 1
            return False
        while len(self.sessions) >= self.max_sessions:
            idle = next((s for s in self.sessions if not s.busy), None)
            if idle is None:
                self.refused += 1
                return False
            self.shed += 1
            self.forget(idle)
            idle.close_with(TOO_BUSY)
        self.sessions[session] = None
        self.per_source[source] += 1
        return True

    def forget(self, session: _GuardedSMTP) -> None:
        if session in self.sessions and session.source is not None:
            del self.sessions[session]
            self.per_source[session.source] -= 1
            if self.per_source[session.source] <= 0:
                del self.per_source[session.source]


class _GuardedSMTP(SpoolingSMTP):
    # RFC 5321 §4.5.3.1.6 caps lines at 1000 octets, but real report mails carry longer
    # ones (unwrapped headers); refusing them would lose the report, so allow 64 KiB.
    line_length_limit = 65536
    guard: SessionGuard
    source: str | None = None
    busy = False  # in DATA: the message is being received or stored
    _refused = False
    _session_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.source is None:  # the TCP connection, not the STARTTLS layer over it
            peer = transport.get_extra_info("peername")
            self.source = source_prefix(str(peer[0]), 32, 64) if peer else "?"
            if not self.guard.admit(self, self.source):
                self._refused = True
                self.source = None
                # RFC 5321 §3.1: 421 instead of the greeting, then close
                transport.write(TOO_MANY_FROM_SOURCE)  # type: ignore[attr-defined]
                transport.close()
                return
            self._session_timer = asyncio.get_running_loop().call_later(
                self.guard.session_timeout, self._session_over
            )
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def eof_received(self) -> bool | None:
        if self._refused:
            return False
        return super().eof_received()

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        self.guard.forget(self)
        if self._session_timer is not None:
            self._session_timer.cancel()
        super().connection_lost(error)

    async def smtp_DATA(self, arg: str) -> None:
        self.busy = True
        try:
            await super().smtp_DATA(arg)
        finally:
            self.busy = False

    def close_with(self, reply: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply)  # type: ignore[attr-defined]
            self.transport.close()

    def _session_over(self) -> None:
        self.guard.timed_out += 1
        self.close_with(SESSION_TOO_LONG)


class ReportReceiver(Controller):
    """The receiver in its own thread and event loop (aiosmtpd's Controller), with the
    bounds of :class:`SessionGuard` and ``command_timeout`` seconds per command (aiosmtpd
    closes a session silent for that long, RFC 5321 §4.5.3.2)."""

    def __init__(
        self,
        handler: ReportHandler,
        host: str,
        port: int,
        tls: ssl.SSLContext,
        server_hostname: str,
        *,
        guard: SessionGuard | None = None,
        command_timeout: float = COMMAND_TIMEOUT,
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
            timeout=command_timeout,
            **kwargs,
        )
        self.guard = guard or SessionGuard()
        # accept errors (EMFILE) once a minute, not a traceback per attempt
        self.loop.set_exception_handler(accept_error_handler())

    def factory(self) -> SMTP:
        smtp = _GuardedSMTP(self.handler, **self.SMTP_kwargs)
        smtp.guard = self.guard
        ingestor = self.handler.ingestor
        smtp.spool_threshold, smtp.spool_dir = ingestor.spool_threshold, ingestor.spool_dir
        return smtp
