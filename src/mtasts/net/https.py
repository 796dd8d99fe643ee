"""One HTTPS GET on one connection, for the policy fetch (RFC 8461 §3.3).

The TCP connection (to an address already resolved and checked), the TLS handshake (SNI and
the certificate's name check on the policy host, by the ``ssl`` module through asyncio) and
HTTP/1.1 (h11, sans-IO: request framing, status line, headers, Content-Length, chunked and
close-delimited bodies, each event bounded in size) are three steps whose failures are told
apart: :class:`ConnectError` (TCP), :class:`TlsError` (handshake), :class:`RemoteProtocolError` and
:class:`ReadTimeout` (the exchange). Nothing is pooled and redirects are never followed: the
caller sees the 3xx. The socket is closed on every way out, cancellation included.

httpx did the same with several layers between (a client, a pool, anyio's TLS stream):
about half of `mtasts policyd`'s CPU per new domain went to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import h11

READ_SIZE = 65536  # bytes asked of the socket at a time
MAX_HEAD = 16 * 1024  # status line and header fields together
MAX_INTERIM = 8  # 1xx answers skipped before the real one


class HttpsError(Exception):
    """The exchange failed; the cause (an OSError, an ssl.SSLError...) is chained."""


class ConnectError(HttpsError):
    """The TCP connection could not be made (refused, unreachable, timed out)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class TlsError(HttpsError):
    """The TLS handshake failed or timed out (certificate rejected, protocol version,
    the peer hanging up)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class RemoteProtocolError(HttpsError):
    """The server's HTTP is malformed, or it closed the connection mid-message."""


class ReadTimeout(HttpsError):
    """The answer (head or body) did not come before the deadline."""


@dataclass
class Response:
    """The head of the answer, and its body as it comes (:meth:`chunks`)."""

    status_code: int
    headers: dict[str, str]  # lower-case names; repeated fields joined with ", "
    ssl_object: ssl.SSLObject | None  # the TLS session (its version, the peer's certificate)
    _exchange: _Exchange

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, in pieces of at most ``READ_SIZE`` bytes; the caller
        decides when it has read enough."""
        return self._exchange.body()


class _Exchange:
    """One response read through h11 from ``reader``, ending at ``deadline``."""

    def __init__(self, reader: asyncio.StreamReader, conn: h11.Connection, deadline: float) -> None:
        self.reader = reader
        self.conn = conn
        self.deadline = deadline
        self.received = 0  # bytes read from the connection so far

    async def next_event(self) -> object:
        """The next h11 event (a Response, Data, EndOfMessage...), reading as needed."""
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise RemoteProtocolError(str(exc)) from exc
            if event is not h11.NEED_DATA:
                return event
            try:  # a deadline already passed times out at once
                async with asyncio.timeout(self.deadline - time.monotonic()):
                    data = await self.reader.read(READ_SIZE)
            except TimeoutError:
                raise ReadTimeout from None
            except (OSError, ssl.SSLError) as exc:  # its words are the cause's (chained)
                raise RemoteProtocolError from exc
            if not data and self.conn.their_state is h11.SEND_RESPONSE:  # closed, no head
                cut = "the server sent no answer" if not self.received else "the head was cut off"
                raise RemoteProtocolError(cut)
            self.received += len(data)
            self.conn.receive_data(data)  # b"" is the end of the stream

    async def head(self) -> h11.Response:
        """The status line and header fields of the answer: interim 1xx answers skipped
        (at most MAX_INTERIM), the whole head at most MAX_HEAD bytes."""
        event = await self.next_event()
        for _ in range(MAX_INTERIM):  # RFC 9110 §15.2: 1xx, then the real answer
            if not isinstance(event, h11.InformationalResponse):
                break
            event = await self.next_event()
        if not isinstance(event, h11.Response):
            raise RemoteProtocolError("the server sent no answer")
        # h11 bounds what it holds of a head still incomplete; a head that came whole in
        # one read is measured here: what was read, less what h11 has not parsed yet
        size = self.received - len(self.conn.trailing_data[0])
        if size > MAX_HEAD:
            raise RemoteProtocolError(f"the answer's head is {size} bytes, over {MAX_HEAD}")
        return event

    async def body(self) -> AsyncIterator[bytes]:
        """The body's bytes as they come, until its end (h11 gives nothing else after a
        Response: Data, then EndOfMessage, or ConnectionClosed)."""
        while isinstance(event := await self.next_event(), h11.Data):
            yield bytes(event.data)


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


@contextlib.asynccontextmanager
async def get(
    address: str,
    port: int,
    host: str,
    path: str,
    headers: Mapping[str, str],
    ctx: ssl.SSLContext,
    *,
    connect_timeout: float,
    deadline: float,
) -> AsyncIterator[Response]:
    """GET ``path`` from ``address``:``port`` with SNI, ``Host`` and the certificate name
    check on ``host``. Connecting and the handshake together get ``connect_timeout``
    seconds; everything ends at ``deadline`` (``time.monotonic()``)."""
    writer: asyncio.StreamWriter | None = None
    try:
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_connection(address, port)
        except TimeoutError:
            raise ConnectError("TCP connection", timed_out=True) from None
        except OSError as exc:  # asyncio's own words name the address: the system's do not
            raise ConnectError(os.strerror(exc.errno) if exc.errno else str(exc)) from exc
        try:
            left = max(0.001, min(connect_timeout, deadline - time.monotonic()))
            async with asyncio.timeout(left):
                await writer.start_tls(ctx, server_hostname=host)
        except TimeoutError:
            raise TlsError("TLS handshake", timed_out=True) from None
        except (OSError, ssl.SSLError, EOFError) as exc:
            raise TlsError(str(exc) or type(exc).__name__) from exc
        sslobj = writer.get_extra_info("ssl_object")
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        request = h11.Request(method="GET", target=path, headers=[("Host", host), *headers.items()])
        writer.write(conn.send(request) + (conn.send(h11.EndOfMessage()) or b""))
        exchange = _Exchange(reader, conn, deadline)
        event = await exchange.head()
        fields: dict[str, str] = {}
        for name, value in event.headers:
            key, text = _text(name).lower(), _text(value)
            fields[key] = f"{fields[key]}, {text}" if key in fields else text
        yield Response(
            status_code=event.status_code,
            headers=fields,
            ssl_object=sslobj if isinstance(sslobj, ssl.SSLObject) else None,
            _exchange=exchange,
        )
    finally:
        if writer is not None:
            writer.transport.abort()  # one request per connection: nothing to wait for
