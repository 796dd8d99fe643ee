"""SMTP STARTTLS probe of one MX address: banner, EHLO, STARTTLS, TLS version, cipher,
certificate and its verification, as a sending MTA sees them (RFC 8461 §4.2, RFC 3207)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import re
import ssl
import time
from dataclasses import dataclass, field, replace
from typing import Any

import idna

from mtasts.i18n import N_
from mtasts.net.certs import (
    CertInfo,
    client_context,
    hostname_matches,
    insecure_context,
    legacy_context,
    parse_certificate,
    verify_message,
)
from mtasts.protocol.errors import Text

MAX_REPLY_LINES = 100
QUIT_WAIT = 1.0  # seconds we wait for the 221 to a QUIT; an answer is not needed
TLS12 = ("TLSv1.2", "TLSv1.3")

# OpenSSL X509_V_ERR_* (include/openssl/x509_vfy.h)
_EXPIRED = {10}  # CERT_HAS_EXPIRED
_NOT_YET_VALID = {9}  # CERT_NOT_YET_VALID
# UNABLE_TO_GET_ISSUER_CERT, DEPTH_ZERO_SELF_SIGNED_CERT, SELF_SIGNED_CERT_IN_CHAIN,
# UNABLE_TO_GET_ISSUER_CERT_LOCALLY, UNABLE_TO_VERIFY_LEAF_SIGNATURE
_UNTRUSTED = {2, 18, 19, 20, 21}


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
    verify_code: int | None = None  # OpenSSL X509_V_ERR_* when verification failed
    reply: str | None = None  # the SMTP reply behind smtp-*/starttls-refused errors
    # ``error`` without anything the server wrote (banner, reply text) or local error text:
    # what a tenant may see (e.g. "connection refused", "greeting code 554")
    summary: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_code is None and bool(self.hostname_match)

    def redacted(self) -> ProbeResult:
        """This result without the server's own words: no banner, no reply, no EHLO
        keywords, and ``error`` replaced by ``summary``. For results shown to tenants, so
        that a probe never relays what some other service says."""
        return replace(
            self,
            banner=None,
            reply=None,
            ehlo_extensions=(),
            error=self.summary if self.error_code is not None else None,
        )


def verify_error_code(verify_code: int) -> str:
    """OpenSSL verification error -> our certificate-* code."""
    if verify_code in _EXPIRED:
        return "certificate-expired"
    if verify_code in _NOT_YET_VALID:
        return "certificate-not-yet-valid"
    if verify_code in _UNTRUSTED:
        return "certificate-untrusted"
    return "certificate-invalid"


class _BadReply(OSError):
    """An answer that is not SMTP (overlong line)."""


class _Fail(Exception):
    """A probe outcome reached before or around TLS, with its error code."""

    def __init__(
        self, code: str, message: str, reply: str | None = None, summary: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.text = message  # a Text (said in the reader's language) where it is one
        self.reply = reply
        self.summary = summary or message


class _HandshakeBroken(_Fail):
    """The peer hung up during the handshake (OpenSSL servers often just close when no
    protocol version is shared): worth the legacy retry, like an SSLError."""

    def __init__(self, message: str) -> None:
        super().__init__(
            "tls-handshake-failed",
            message,
            summary=Text("the server closed the connection during the TLS handshake"),
        )


@dataclass
class _Info:
    """What one SMTP session learnt; several sessions may fill one probe."""

    banner: str | None = None
    ehlo_extensions: tuple[str, ...] = ()
    starttls_offered: bool = False
    tls_version: str | None = None
    cipher: str | None = None
    certificate: CertInfo | None = None
    chain_subjects: tuple[str, ...] = ()
    trusted: bool | None = None
    error_code: str | None = None
    error: str | None = None
    summary: str | None = None
    verify_code: int | None = None
    reply: str | None = None
    stage: str = N_("connecting")  # a Text template: said in the reader's language
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    def fail(self, code: str, error: str, summary: str | None = None) -> None:
        """Record the outcome; ``summary`` is ``error`` without foreign or local detail
        (the same text when ``error`` has none)."""
        self.error_code, self.error, self.summary = code, error, summary or error

    def take_tls(self, writer: asyncio.StreamWriter) -> None:
        sslobj = writer.get_extra_info("ssl_object")
        if sslobj is None:
            return
        self.tls_version = sslobj.version()
        cipher = sslobj.cipher()
        self.cipher = cipher[0] if cipher else None
        der = sslobj.getpeercert(binary_form=True)
        if der:
            with contextlib.suppress(ValueError):
                self.certificate = parse_certificate(der)
        self.chain_subjects = _chain_subjects(sslobj) or (
            (self.certificate.subject,) if self.certificate else ()
        )


def _chain_subjects(sslobj: Any) -> tuple[str, ...]:
    """Subjects of the chain the server sent, leaf first. Python 3.11 only has this as a
    private method of the low-level object (public from 3.13), so it is optional."""
    from cryptography import x509  # on first use (see mtasts.net.certs)

    try:
        inner = getattr(sslobj, "_sslobj", sslobj)
        chain = inner.get_unverified_chain() or []
        out = []
        for c in chain:
            der = c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
            out.append(x509.load_der_x509_certificate(der).subject.rfc4514_string())
        return tuple(out)
    except Exception:
        return ()


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
    started = time.monotonic()
    host = host.strip().rstrip(".").lower()
    info = _Info()
    # RFC 8461 §4.2 / RFC 7672-like checks: chain and dates verified by OpenSSL; the name
    # is matched by us (RFC 6125) so that trust and name are reported apart.
    ctx = client_context(ca_file, check_hostname=False)
    try:
        async with asyncio.timeout(timeout):
            await _probe(info, host, address, port, ehlo_name, ctx)
    except TimeoutError:
        if info.error_code is None:
            info.fail(
                "timeout",
                Text(
                    "no answer from {address} within {timeout:g} s ({stage})",
                    address=address,
                    timeout=timeout,
                    stage=Text(info.stage),
                ),
                Text("timed out {stage}", stage=Text(info.stage)),
            )
    finally:
        for w in info.writers:
            if not w.transport.is_closing():
                w.transport.abort()  # whatever a timeout left open
    cert = info.certificate
    return ProbeResult(
        host=host,
        address=address,
        port=port,
        banner=info.banner,
        ehlo_extensions=info.ehlo_extensions,
        starttls_offered=info.starttls_offered,
        tls_version=info.tls_version,
        cipher=info.cipher,
        certificate=cert,
        chain_subjects=info.chain_subjects,
        trusted=info.trusted,
        hostname_match=hostname_matches(host, cert.subject_alt_names) if cert else None,
        error_code=info.error_code,
        error=info.error,
        elapsed=time.monotonic() - started,
        verify_code=info.verify_code,
        reply=info.reply,
        summary=info.summary,
    )


async def _probe(
    info: _Info, host: str, address: str, port: int, ehlo_name: str, ctx: ssl.SSLContext
) -> None:
    try:
        reader, writer = await _session(info, host, address, port, ehlo_name, ctx)
    except _HandshakeBroken as f:
        await _old_tls(info, host, address, port, ehlo_name, f.text, None)
        if info.error == f.text:
            info.summary = f.summary
        return
    except _Fail as f:
        info.fail(f.code, f.text, f.summary)
        info.reply = f.reply
        return
    except ssl.SSLCertVerificationError as exc:
        code = int(exc.verify_code or 0)
        info.trusted = False
        info.verify_code = code
        # verify_message comes from OpenSSL's fixed table (X509_verify_cert_error_string)
        info.fail(
            verify_error_code(code),
            Text(
                "certificate rejected: {reason}",
                reason=verify_message(code, exc.verify_message or str(exc)),
            ),
        )
        # Reconnect without verification to report the certificate all the same.
        await _look_again(info, host, address, port, ehlo_name, insecure_context())
        return
    except ssl.SSLError as exc:
        first = Text("TLS handshake failed: {reason}", reason=exc.reason or exc)
        await _old_tls(info, host, address, port, ehlo_name, first, exc.reason)
        if info.error_code == "tls-handshake-failed" and info.error == first:
            info.summary = tls_summary(exc)
        return
    info.trusted = True
    info.take_tls(writer)
    await _quit(reader, writer)


async def _old_tls(
    info: _Info,
    host: str,
    address: str,
    port: int,
    ehlo_name: str,
    first: str,
    reason: str | None,
) -> None:
    """TLS >= 1.2 failed: see whether the server speaks only an older version (or only
    legacy ciphers). RFC 8996 deprecates TLS 1.0/1.1 and RFC 9325 §3.1.1 forbids
    negotiating them, so TLS < 1.2 is a failure even where a sender would still accept it."""
    legacy = legacy_context()
    version_alert = (reason or "") in (
        "UNSUPPORTED_PROTOCOL",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "VERSION_TOO_LOW",
        "NO_PROTOCOLS_AVAILABLE",
    )
    too_old = Text("{error} (the server refuses TLS 1.2 and later)", error=first)
    if legacy is None:
        if version_alert:
            info.fail("tls-version-too-old", too_old)
        else:
            info.fail("tls-handshake-failed", first)
        return
    second = _Info(writers=info.writers)
    if await _look_again(second, host, address, port, ehlo_name, legacy) and second.tls_version:
        info.tls_version, info.cipher = second.tls_version, second.cipher
        info.certificate, info.chain_subjects = second.certificate, second.chain_subjects
        if second.tls_version not in TLS12:
            info.fail(
                "tls-version-too-old",
                Text(
                    "the server only speaks {version} (TLS 1.2 or later is required)",
                    version=second.tls_version,
                ),
            )
        else:
            info.fail(
                "tls-handshake-failed",
                Text(
                    "{error}; it only succeeds with legacy ciphers ({cipher})",
                    error=first,
                    cipher=second.cipher,
                ),
            )
        return
    if version_alert:
        info.fail("tls-version-too-old", too_old)
    else:
        info.fail("tls-handshake-failed", first)


async def _look_again(
    info: _Info, host: str, address: str, port: int, ehlo_name: str, ctx: ssl.SSLContext
) -> bool:
    """A second session with a relaxed context, to learn version and certificate; the
    first session's outcome stands whatever happens here."""
    scratch = _Info(writers=info.writers)
    try:
        reader, writer = await _session(scratch, host, address, port, ehlo_name, ctx)
    except (_Fail, ssl.SSLError, OSError):
        return False
    scratch.take_tls(writer)
    info.tls_version, info.cipher = scratch.tls_version, scratch.cipher
    info.certificate, info.chain_subjects = scratch.certificate, scratch.chain_subjects
    await _quit(reader, writer)
    return True


async def _read_reply(reader: asyncio.StreamReader) -> tuple[int, list[str]]:
    """One SMTP reply (RFC 5321 §4.2: "ddd-text" lines, then "ddd text")."""
    lines: list[str] = []
    while True:
        try:
            raw = await reader.readline()
        except (asyncio.LimitOverrunError, ValueError) as exc:
            raise _BadReply(f"reply line too long: {exc}") from None
        if not raw:
            raise ConnectionResetError("connection closed by the server")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-" or len(lines) >= MAX_REPLY_LINES:
            break
    code = int(lines[-1][:3]) if lines[-1][:3].isdigit() else -1
    return code, lines


async def _command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str
) -> tuple[int, list[str]]:
    writer.write(line.encode("ascii") + b"\r\n")
    await writer.drain()
    return await _read_reply(reader)


async def _session(
    info: _Info, host: str, address: str, port: int, ehlo_name: str, ctx: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect, banner, EHLO, STARTTLS, handshake. Returns the TLS streams, or raises
    _Fail (SMTP or connection problems) or ssl.SSLError (the handshake failed)."""
    info.stage = N_("connecting")
    try:
        reader, writer = await asyncio.open_connection(address, port)
    except OSError as exc:
        raise _Fail(
            "connect-failed",
            Text(
                "cannot connect to {address} port {port}: {error}",
                address=address,
                port=port,
                error=exc,
            ),
            summary=connect_summary(exc),
        ) from exc
    info.writers.append(writer)
    keep = False
    try:
        try:
            info.stage = N_("waiting for the banner")
            code, lines = await _read_reply(reader)
            info.banner = "\n".join(lines)
            if code != 220:  # RFC 5321 §4.3.1: the greeting is 220 (554: go away)
                await _quit(reader, writer)
                raise _Fail(
                    "smtp-banner",
                    Text("the server greets with {reply!r}", reply=lines[0]),
                    info.banner,
                    summary=_code_summary("greeting", code),
                )
            info.stage = N_("waiting for the EHLO answer")
            code, lines = await _command(reader, writer, f"EHLO {ehlo_name}")
            if code != 250:  # RFC 3207 §4: STARTTLS is an ESMTP extension, EHLO required
                await _quit(reader, writer)
                raise _Fail(
                    "smtp-ehlo",
                    Text("EHLO answered {reply!r}", reply=lines[0]),
                    "\n".join(lines),
                    summary=_code_summary("EHLO answer", code),
                )
            info.ehlo_extensions = tuple(
                dict.fromkeys(line[4:].split()[0].upper() for line in lines[1:] if line[4:].split())
            )
            info.starttls_offered = "STARTTLS" in info.ehlo_extensions
            if not info.starttls_offered:
                await _quit(reader, writer)
                raise _Fail("starttls-not-offered", Text("the EHLO answer does not offer STARTTLS"))
            info.stage = N_("waiting for the STARTTLS answer")
            code, lines = await _command(reader, writer, "STARTTLS")
            if code != 220:  # RFC 3207 §4: 220 to go ahead; 454 = TLS not available
                await _quit(reader, writer)
                raise _Fail(
                    "starttls-refused",
                    Text("STARTTLS answered {reply!r}", reply=lines[0]),
                    "\n".join(lines),
                    summary=_code_summary("STARTTLS answer", code),
                )
            # RFC 3207 §4.2 / CVE-2011-0411: nothing may follow the 220 in plain text; what
            # did would never reach the TLS layer (and an EOF seen here would be lost).
            if getattr(reader, "_buffer", b"") or reader.at_eof():
                raise _Fail(
                    "tls-handshake-failed",
                    Text("the server sent plain text after its 220 to STARTTLS instead of TLS"),
                )
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise _Fail(
                "smtp-banner" if info.banner is None else "smtp-ehlo",
                Text(
                    "the connection broke while {stage}: {error}",
                    stage=Text(info.stage),
                    error=exc or type(exc).__name__,
                ),
                summary=Text("the connection broke while {stage}", stage=Text(info.stage)),
            ) from exc
        info.stage = N_("in the TLS handshake")
        try:
            await writer.start_tls(ctx, server_hostname=_sni(host))
        except ssl.SSLError:
            raise
        except (OSError, asyncio.IncompleteReadError, EOFError) as exc:
            raise _HandshakeBroken(
                Text(
                    "the server closed the connection during the TLS handshake ({error!r})",
                    error=exc,
                )
            ) from exc
        info.stage = N_("after the TLS handshake")
        keep = True
        return reader, writer
    finally:
        if not keep:
            info.writers.remove(writer)
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                writer.transport.abort()  # out of time: no polite close
            else:
                await _close(writer)


_MNEMONIC = re.compile(r"[A-Z0-9_]{1,64}")


def tls_summary(exc: ssl.SSLError) -> str:
    """ "TLS handshake failed", with OpenSSL's reason mnemonic (e.g. WRONG_VERSION_NUMBER,
    from OpenSSL's fixed table) when there is one."""
    reason = exc.reason or ""
    return (
        Text("TLS handshake failed ({reason})", reason=reason)
        if _MNEMONIC.fullmatch(reason)
        else Text("TLS handshake failed")
    )


def connect_summary(exc: OSError) -> str:
    """A connection failure in a few words, without the local error text."""
    if isinstance(exc, ConnectionRefusedError):
        return Text("connection refused")
    if isinstance(exc, TimeoutError):
        return Text("timed out connecting")
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return Text("address unreachable")
    return Text("connection failed")


# what an SMTP reply answered: (its code, and a reply that is no SMTP reply), in words
_CODE_SUMMARIES = {
    "greeting": (N_("greeting code {code}"), N_("greeting is not an SMTP reply")),
    "EHLO answer": (N_("EHLO answer code {code}"), N_("EHLO answer is not an SMTP reply")),
    "STARTTLS answer": (
        N_("STARTTLS answer code {code}"),
        N_("STARTTLS answer is not an SMTP reply"),
    ),
}


def _code_summary(what: str, code: int) -> str:
    """ "greeting code 554": the reply code only, never the reply text."""
    with_code, no_reply = _CODE_SUMMARIES[what]
    return Text(with_code, code=code) if 100 <= code <= 599 else Text(no_reply)


def _sni(host: str) -> str | None:
    """The SNI name (RFC 6066 §3): the host in A-label form; none for an IP literal or a
    name that is not valid IDNA."""
    if not host:
        return None
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if host.isascii():
        return host
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        return None


async def _quit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Say QUIT (RFC 5321 §4.1.1.10) and close; never raises, waits QUIT_WAIT at most."""
    try:
        async with asyncio.timeout(QUIT_WAIT):
            writer.write(b"QUIT\r\n")
            await writer.drain()
            await _read_reply(reader)
    except (OSError, asyncio.IncompleteReadError, _Fail, TimeoutError, ssl.SSLError):
        pass
    await _close(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    if writer.transport.is_closing():
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        return
    writer.close()
    try:
        async with asyncio.timeout(QUIT_WAIT):
            await writer.wait_closed()
    except asyncio.CancelledError:
        writer.transport.abort()
        raise
    except Exception:
        with contextlib.suppress(Exception):
            writer.transport.abort()
