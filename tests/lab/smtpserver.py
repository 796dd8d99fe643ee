"""SMTP servers for the lab: a small asyncio ESMTP server (RFC 5321 subset + STARTTLS, RFC
3207) whose misbehaviours are switches, one behaviour per loopback address.

aiosmtpd cannot send a non-220 banner, refuse STARTTLS with 454, delay connections or garble
the handshake without patching its internals, so the lab speaks SMTP itself; it still takes
mail (MAIL/RCPT/DATA) and keeps it in ``messages``. ``tests/net`` also probes a real aiosmtpd
server to keep this one honest.

    smtp = SmtpServer(CertStore(leaf), host="127.0.0.5", port=port, behaviour="tls11")
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from tests.lab._background import LabServer, close_writer
from tests.lab.ca import Leaf
from tests.lab.ports import require_loopback
from tests.lab.tls import TLS11_AVAILABLE, CertStore

__all__ = ["TLS11_AVAILABLE", "SmtpBehaviour", "SmtpServer", "SmtpStats"]

IDLE_TIMEOUT = 30.0
MAX_LINE = 4096
MAX_MESSAGE = 1024 * 1024


class SmtpBehaviour(StrEnum):
    GOOD = "good"  # STARTTLS offered, TLS 1.2+ with the certificate chosen by SNI
    NO_STARTTLS = "no-starttls"  # STARTTLS not in the EHLO answer (502 if tried anyway)
    TLS11 = "tls11"  # STARTTLS, but TLS at most 1.1 (needs TLS11_AVAILABLE)
    STARTTLS_454 = "starttls-454"  # STARTTLS offered, answered "454 4.7.0 TLS not available"
    BAD_BANNER = "bad-banner"  # "554 5.3.2 ..." instead of 220
    EHLO_FAIL = "ehlo-fail"  # EHLO answered 502 (HELO only)
    SILENT = "silent"  # accepts the connection, never says anything
    TLS_BROKEN = "tls-broken"  # "220 Ready" to STARTTLS, then plain-text garbage
    TLS_STALL = "tls-stall"  # "220 Ready" to STARTTLS, then silence (no ServerHello)
    HANG_UP = "hang-up"  # closes every connection at once, before any banner


@dataclass
class SmtpStats:
    connections: int = 0
    starttls: int = 0
    handshakes: int = 0
    handshake_failures: int = 0
    quits: int = 0
    ehlo_names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Message:
    mail_from: str
    rcpt_to: tuple[str, ...]
    data: bytes
    tls: bool


class SmtpServer(LabServer):
    """ESMTP on ``host``:``port`` with one :class:`SmtpBehaviour`.

    ``certs`` picks the certificate by SNI (a plain Leaf is served to everyone);
    ``delay`` seconds are slept per connection before the banner (a round trip for
    benchmarks); ``banner`` overrides the greeting text (a "\\n" makes it multi-line).
    """

    name = "lab-smtp"

    def __init__(
        self,
        certs: CertStore | Leaf | None,
        *,
        host: str | Sequence[str] = "127.0.0.1",
        port: int = 0,
        behaviour: SmtpBehaviour | str = SmtpBehaviour.GOOD,
        hostname: str = "mx.lab.test",
        banner: str | None = None,
        delay: float = 0.0,
        maximum_version: ssl.TLSVersion | None = None,
    ) -> None:
        super().__init__()
        if certs is None:
            self.certs: CertStore | None = None
        else:
            self.certs = certs if isinstance(certs, CertStore) else CertStore(certs)
        hosts = [host] if isinstance(host, str) else list(host)
        self.hosts = [require_loopback(h) for h in hosts]
        self.port = port
        self.behaviour = SmtpBehaviour(behaviour)
        self.hostname = hostname
        self.banner = banner
        self.delay = delay
        if self.behaviour is SmtpBehaviour.TLS11 and maximum_version is None:
            maximum_version = ssl.TLSVersion.TLSv1_1
        self.maximum_version = maximum_version
        self.stats = SmtpStats()
        self.messages: list[Message] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ctx: ssl.SSLContext | None = None
        needs_certs = (SmtpBehaviour.GOOD, SmtpBehaviour.TLS11)
        if self.behaviour in needs_certs and self.certs is None:
            raise ValueError(f"behaviour {self.behaviour} completes TLS and needs certs")

    @property
    def host(self) -> str:
        return self.hosts[0]

    @property
    def offers_starttls(self) -> bool:
        return self.behaviour is not SmtpBehaviour.NO_STARTTLS

    async def astart(self) -> None:
        if self.certs is not None:
            self._ctx = self.certs.listening_context(maximum_version=self.maximum_version)
        self._server = await asyncio.start_server(
            self._accept, self.hosts, self.port, reuse_address=True, limit=MAX_MESSAGE + 1024
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def astop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cancel_tasks()
        for w in list(self._writers):
            await close_writer(w)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._spawn(self._connection(reader, writer))

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        self._writers.add(writer)
        try:
            if self.delay > 0:
                await asyncio.sleep(self.delay)
            await self._session(reader, writer)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._writers.discard(writer)
            await close_writer(writer)

    async def _reply(self, writer: asyncio.StreamWriter, code: int, *lines: str) -> None:
        # RFC 5321 §4.2.1: "code-text" on all lines but the last, "code text" on the last
        out = [f"{code}{'-' if i < len(lines) - 1 else ' '}{t}" for i, t in enumerate(lines)]
        writer.write(("\r\n".join(out) + "\r\n").encode())
        await writer.drain()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        b = self.behaviour
        if b is SmtpBehaviour.SILENT:
            await reader.read()  # until the client gives up
            return
        if b is SmtpBehaviour.HANG_UP:
            return
        if b is SmtpBehaviour.BAD_BANNER:
            await self._reply(writer, 554, f"5.3.2 {self.hostname} not accepting mail")
        else:
            text = self.banner or f"{self.hostname} ESMTP mtasts lab"
            await self._reply(writer, 220, *text.split("\n"))
        tls = False
        greeted = False
        mail_from: str | None = None
        rcpts: list[str] = []
        while True:
            async with asyncio.timeout(IDLE_TIMEOUT):
                raw = await reader.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                if b is SmtpBehaviour.EHLO_FAIL:
                    await self._reply(writer, 502, "5.5.1 EHLO not supported")
                    continue
                self.stats.ehlo_names.append(arg.strip())
                greeted, mail_from, rcpts = True, None, []
                ext = [f"{self.hostname} greets {arg.strip() or 'you'}", "PIPELINING"]
                ext.append(f"SIZE {MAX_MESSAGE}")
                if self.offers_starttls and not tls:
                    ext.append("STARTTLS")
                ext += ["ENHANCEDSTATUSCODES", "8BITMIME"]
                await self._reply(writer, 250, *ext)
            elif verb == "HELO":
                greeted = True
                await self._reply(writer, 250, self.hostname)
            elif verb == "STARTTLS":
                if tls:
                    await self._reply(writer, 503, "5.5.1 TLS already active")
                    continue
                if not self.offers_starttls:
                    await self._reply(writer, 502, "5.5.1 Command not implemented")
                    continue
                self.stats.starttls += 1
                if b is SmtpBehaviour.STARTTLS_454 or (
                    self._ctx is None
                    and b not in (SmtpBehaviour.TLS_BROKEN, SmtpBehaviour.TLS_STALL)
                ):
                    await self._reply(writer, 454, "4.7.0 TLS not available due to local problem")
                    continue
                # stop reading before the ClientHello can land in the plain-text buffer
                writer.transport.pause_reading()  # type: ignore[attr-defined]
                await self._reply(writer, 220, "2.0.0 Ready to start TLS")
                if b is SmtpBehaviour.TLS_BROKEN:
                    writer.write(b"this is not a TLS ServerHello\r\n" * 4)
                    await writer.drain()
                    return
                if b is SmtpBehaviour.TLS_STALL:
                    writer.transport.resume_reading()  # type: ignore[attr-defined]
                    await reader.read()  # swallow the ClientHello, answer nothing
                    return
                assert self._ctx is not None
                try:
                    await writer.start_tls(self._ctx, ssl_handshake_timeout=10)
                except (ssl.SSLError, OSError, TimeoutError, asyncio.IncompleteReadError):
                    self.stats.handshake_failures += 1
                    return
                self.stats.handshakes += 1
                # RFC 3207 §4.2: forget everything learnt before TLS; the client EHLOs again
                tls, greeted, mail_from, rcpts = True, False, None, []
            elif verb == "NOOP":
                await self._reply(writer, 250, "2.0.0 OK")
            elif verb == "RSET":
                mail_from, rcpts = None, []
                await self._reply(writer, 250, "2.0.0 OK")
            elif verb == "QUIT":
                self.stats.quits += 1
                await self._reply(writer, 221, "2.0.0 Bye")
                return
            elif verb == "MAIL" and arg.upper().startswith("FROM:"):
                if not greeted:
                    await self._reply(writer, 503, "5.5.1 Send EHLO first")
                    continue
                mail_from, rcpts = arg[5:].strip(), []
                await self._reply(writer, 250, "2.1.0 OK")
            elif verb == "RCPT" and arg.upper().startswith("TO:"):
                if mail_from is None:
                    await self._reply(writer, 503, "5.5.1 Need MAIL first")
                    continue
                rcpts.append(arg[3:].strip())
                await self._reply(writer, 250, "2.1.5 OK")
            elif verb == "DATA":
                if mail_from is None or not rcpts:
                    await self._reply(writer, 503, "5.5.1 Need RCPT first")
                    continue
                await self._reply(writer, 354, "End data with <CR><LF>.<CR><LF>")
                data = await reader.readuntil(b"\r\n.\r\n")
                body = data[: -len(b".\r\n")].replace(b"\r\n..", b"\r\n.")  # RFC 5321 §4.5.2
                self.messages.append(Message(mail_from, tuple(rcpts), body, tls))
                mail_from, rcpts = None, []
                await self._reply(writer, 250, "2.0.0 OK queued")
            else:
                await self._reply(writer, 500, "5.5.2 Command unrecognized")
