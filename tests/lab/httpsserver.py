"""An HTTPS server for the lab: asyncio + ssl, minimal HTTP/1.1 (keep-alive, GET/HEAD).

The certificate is chosen per SNI name from a :class:`~tests.lab.tls.CertStore` (the default
leaf for unknown names), so one server on one address serves the policy hosts of many
domains, each with a good, expired, wrong-name or untrusted certificate. Behaviour per
``Host`` and path comes from :class:`Site`: status, body, content type, Location, delay,
chunked body, an answer held until a condition holds, or closing the connection without an
answer.

    https = HttpsServer(CertStore(ca.issue(["default.lab.test"]), ca=ca), host="127.0.0.2")
    https.policy("example.test", "version: STSv1\\nmode: enforce\\n...")
    with https: ...
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

from tests.lab._background import LabServer, close_writer
from tests.lab.ca import Leaf
from tests.lab.ports import require_loopback
from tests.lab.tls import CertStore

POLICY_PATH = "/.well-known/mta-sts.txt"  # RFC 8461 §3.3
MAX_HEADER_BYTES = 16 * 1024
IDLE_TIMEOUT = 5.0
HOLD_LIMIT = 120.0  # seconds a Site.until holds an answer back, at most
ENDLESS_BYTES = 64 << 20  # an "endless" body stops here, unterminated: the client then times out


@dataclass(frozen=True)
class Site:
    """What the server answers for one host and path."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = "text/plain"
    location: str | None = None
    delay: float = 0.0  # seconds before the response
    close: bool = False  # read the request, then close the connection without answering
    chunked: bool = False  # Transfer-Encoding: chunked instead of Content-Length
    endless: bool = False  # chunked, ``body`` repeated until the client goes (or ENDLESS_BYTES)
    headers: tuple[tuple[str, str], ...] = ()
    # send only this many bytes of the body (Content-Length still names all of it), then
    # hold the connection for ``stall`` seconds (or, with stall 0, cut it off)
    partial: int | None = None
    stall: float = 0.0
    # answer only once this holds (polled; e.g. once another lab server has seen a client),
    # for at most HOLD_LIMIT seconds: a test that something happens while this waits
    until: Callable[[], bool] | None = None


NOT_FOUND = Site(status=404, body=b"not found\n")


@dataclass
class HttpsStats:
    connections: int = 0
    handshake_failures: int = 0
    requests: Counter[str] = field(default_factory=Counter)  # "host path" -> count
    # "host path" -> the header fields of its latest request (names in lower case)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)  # "host path" -> its latest method


class HttpsServer(LabServer):
    """HTTPS on ``host`` (one address or several) and ``port`` (0: ephemeral).

    ``delay`` seconds are slept per TCP connection before the TLS handshake (a realistic
    round trip for benchmarks); ``maximum_version`` limits the TLS versions offered.
    """

    name = "lab-https"

    def __init__(
        self,
        certs: CertStore | Leaf,
        *,
        host: str | Sequence[str] = "127.0.0.1",
        port: int = 0,
        delay: float = 0.0,
        maximum_version: ssl.TLSVersion | None = None,
    ) -> None:
        super().__init__()
        self.certs = certs if isinstance(certs, CertStore) else CertStore(certs)
        hosts = [host] if isinstance(host, str) else list(host)
        self.hosts = [require_loopback(h) for h in hosts]
        self.port = port
        self.delay = delay
        self.maximum_version = maximum_version
        self.stats = HttpsStats()
        self._sites: dict[tuple[str, str], Site] = {}
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ctx: ssl.SSLContext | None = None

    @property
    def host(self) -> str:
        return self.hosts[0]

    # --- configuration ------------------------------------------------------------------

    def site(self, host: str, site: Site, path: str = POLICY_PATH) -> None:
        """Answer requests for ``host`` (the Host header) and ``path`` with ``site``."""
        self._sites[(host.lower().rstrip("."), path)] = site

    def remove_site(self, host: str, path: str = POLICY_PATH) -> None:
        self._sites.pop((host.lower().rstrip("."), path), None)

    def policy(self, domain: str, text: str | bytes, **site: object) -> None:
        """Serve ``text`` as the MTA-STS policy of ``domain`` at mta-sts.<domain>."""
        body = text.encode() if isinstance(text, str) else text
        self.site(f"mta-sts.{domain}", Site(body=body, **site))  # type: ignore[arg-type]

    def certificate(self, leaf: Leaf, names: tuple[str, ...] | None = None) -> None:
        """Present ``leaf`` for the SNI ``names`` (default: the names in the leaf)."""
        self.certs.add(leaf, names)

    # --- serving ------------------------------------------------------------------------

    async def astart(self) -> None:
        self._ctx = self.certs.listening_context(maximum_version=self.maximum_version)
        self._server = await asyncio.start_server(
            self._accept, self.hosts, self.port, reuse_address=True
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
        # Called from connection_made: stop reading before the ClientHello arrives, so the
        # TLS layer started later (after the delay) sees it instead of the plain stream.
        writer.transport.pause_reading()  # type: ignore[attr-defined]
        self._spawn(self._connection(reader, writer))

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        self._writers.add(writer)
        try:
            if self.delay > 0:
                await asyncio.sleep(self.delay)
            assert self._ctx is not None
            try:
                await writer.start_tls(self._ctx, ssl_handshake_timeout=10)
            except (ssl.SSLError, OSError, TimeoutError, asyncio.IncompleteReadError):
                self.stats.handshake_failures += 1
                return
            while await self._one_request(reader, writer):
                pass
        finally:
            self._writers.discard(writer)
            await close_writer(writer)

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; False when the connection is to be closed."""
        try:
            async with asyncio.timeout(IDLE_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, TimeoutError):
            return False
        except ssl.SSLError:
            return False
        if len(head) > MAX_HEADER_BYTES:
            return False
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, _version = lines[0].split(" ", 2)
        except ValueError:
            await self._send(writer, Site(status=400, body=b"bad request\n"), "GET", False)
            return False
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        host = headers.get("host", "").lower()
        if host.startswith("["):
            host = host[: host.find("]") + 1]
        elif ":" in host:
            host = host.rsplit(":", 1)[0]
        host = host.rstrip(".")
        path = target.split("?", 1)[0]
        self.stats.requests[f"{host} {path}"] += 1
        self.stats.headers[f"{host} {path}"] = dict(headers)
        self.stats.methods[f"{host} {path}"] = method
        site = self._sites.get((host, path), NOT_FOUND)
        if site.delay > 0:
            await asyncio.sleep(site.delay)
        if site.until is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HOLD_LIMIT):
                    while not site.until():  # noqa: ASYNC110 - another server's state
                        await asyncio.sleep(0.01)
        if site.close:
            return False
        keep_alive = headers.get("connection", "").lower() != "close"
        await self._send(writer, site, method.upper(), keep_alive)
        return keep_alive

    async def _send_endless(self, writer: asyncio.StreamWriter, head: bytes, part: bytes) -> None:
        chunk = b"%x\r\n%s\r\n" % (len(part), part)
        sent = 0
        try:
            writer.write(head)
            while sent < ENDLESS_BYTES and not writer.transport.is_closing():
                writer.write(chunk)
                await writer.drain()
                sent += len(part)
                await asyncio.sleep(0)  # drain() does not yield once the peer is gone
        except (OSError, ssl.SSLError):
            pass

    async def _send_partial(self, writer: asyncio.StreamWriter, data: bytes, stall: float) -> None:
        try:
            writer.write(data)
            await writer.drain()
            if stall > 0:
                await asyncio.sleep(stall)  # the client waits for the rest in vain
        except (OSError, ssl.SSLError):
            pass
        writer.transport.abort()  # the rest never comes

    async def _send(
        self, writer: asyncio.StreamWriter, site: Site, method: str, keep_alive: bool
    ) -> None:
        try:
            reason = HTTPStatus(site.status).phrase
        except ValueError:
            reason = "Unknown"
        head = [f"HTTP/1.1 {site.status} {reason}"]
        if site.content_type is not None:
            head.append(f"Content-Type: {site.content_type}")
        if site.location is not None:
            head.append(f"Location: {site.location}")
        if site.chunked or site.endless:
            head.append("Transfer-Encoding: chunked")
        else:
            head.append(f"Content-Length: {len(site.body)}")
        head.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
        head.extend(f"{k}: {v}" for k, v in site.headers)
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if site.endless and method != "HEAD":
            await self._send_endless(writer, data, site.body or b"#" * 8192)
            return
        body = b"" if method == "HEAD" else site.body
        if site.partial is not None and method != "HEAD":
            await self._send_partial(writer, data + body[: site.partial], site.stall)
            return
        if site.chunked and method != "HEAD":
            step = 8192
            parts = [body[i : i + step] for i in range(0, len(body), step)]
            body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        try:
            writer.write(data + body)
            await writer.drain()
        except (OSError, ssl.SSLError):
            pass
