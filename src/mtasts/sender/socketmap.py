"""The Postfix socketmap protocol (socketmap_table(5)) on TCP or a Unix socket.

A request is a netstring ``<len>:<name> <key>,``; a reply is a netstring ``OK <data>``,
``NOTFOUND ``, ``TEMP <reason>``, ``TIMEOUT <reason>`` or ``PERM <reason>``. Postfix
keeps one connection per ``smtp`` process and sends one request at a time; other clients
pipeline, so requests are parsed from a buffer and answered strictly in order.

The server never trusts its peer: a request longer than ``max_request`` or a malformed
netstring gets ``PERM`` and the connection is closed (the stream cannot be resynchronised);
a connection idle for ``idle_timeout`` seconds is closed; above ``max_connections``, new
connections are closed at once. A lookup that raises is answered ``TEMP`` and logged; the
server itself never stops because of one peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import cast

from mtasts.protocol.errors import Text

log = logging.getLogger("mtasts.policyd")

MAX_LENGTH_DIGITS = 10  # more digits than any sane request: a malformed length
QUEUE_LIMIT = 256  # requests waiting on one connection before we stop reading it


class Kind(StrEnum):
    """socketmap_table(5) reply status words."""

    OK = "OK"
    NOTFOUND = "NOTFOUND"
    TEMP = "TEMP"
    TIMEOUT = "TIMEOUT"
    PERM = "PERM"


@dataclass(frozen=True, slots=True)
class Reply:
    kind: Kind
    data: str = ""

    def encode(self) -> bytes:
        """The netstring form, ready for the wire."""
        return netstring(f"{self.kind} {self.data}".encode())


def netstring(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


class NetstringError(ValueError):
    """The byte stream is not a netstring (or one that is too long). ``payloads`` holds
    the complete netstrings that came before the bad one, still to be answered."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.payloads: list[bytes] = []


class NetstringReader:
    """Incremental netstring parser: feed bytes, take complete payloads."""

    __slots__ = ("_buf", "max_length")

    def __init__(self, max_length: int) -> None:
        self._buf = bytearray()
        self.max_length = max_length

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; return the complete payloads now available (in order).
        Raise NetstringError on malformed or oversized input."""
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        try:
            pos = self._parse(buf, out)
        except NetstringError as exc:
            exc.payloads = out
            raise
        if pos:
            del buf[:pos]
        return out

    def _parse(self, buf: bytearray, out: list[bytes]) -> int:
        pos = 0
        while True:
            colon = buf.find(b":", pos, pos + MAX_LENGTH_DIGITS + 1)
            if colon < 0:
                pending = len(buf) - pos
                if pending > MAX_LENGTH_DIGITS or (pending and not buf[pos:].isdigit()):
                    raise NetstringError("malformed netstring length")
                return pos
            digits = bytes(buf[pos:colon])
            if not digits.isdigit():
                raise NetstringError("malformed netstring length")
            length = int(digits)
            if length > self.max_length:
                raise NetstringError(f"request longer than {self.max_length} bytes")
            end = colon + 1 + length
            if len(buf) < end + 1:
                return pos
            if buf[end] != ord(","):
                raise NetstringError("netstring not terminated by ','")
            out.append(bytes(buf[colon + 1 : end]))
            pos = end + 1


# A lookup: (map name, key) -> Reply. ``fast`` answers from memory or returns None, so the
# common case needs no task; ``slow`` may do network work.
FastLookup = Callable[[str, str], Reply | None]
SlowLookup = Callable[[str, str], Awaitable[Reply]]


@dataclass
class ServerStats:
    connections: int = 0
    connections_total: int = 0
    connections_refused: int = 0
    idle_closed: int = 0
    bad_requests: int = 0
    lookup_errors: int = 0


def parse_request(payload: bytes) -> tuple[str, str] | Reply:
    """``<name> <key>`` -> (name, key), or the PERM reply for a malformed request."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return Reply(Kind.PERM, "request is not UTF-8")
    name, sep, key = text.partition(" ")
    if not sep or not name or not key:
        return Reply(Kind.PERM, "malformed request: expected '<name> <key>'")
    return name, key


class _Connection(asyncio.Protocol):
    __slots__ = (
        "_close_after",
        "_closed",
        "_idle",
        "_queue",
        "_reader",
        "_server",
        "_transport",
        "_worker",
        "peer",
    )

    def __init__(self, server: SocketmapServer) -> None:
        self._server = server
        self._reader = NetstringReader(server.max_request)
        self._transport: asyncio.Transport | None = None
        self._queue: deque[tuple[str, str] | Reply] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._closed = False
        self._close_after = False
        self.peer = "?"

    # --- asyncio callbacks ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's do not derive from asyncio.Transport)
        self._transport = cast(asyncio.Transport, transport)
        srv = self._server
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unix"
        if srv.stats.connections >= srv.max_connections:
            srv.stats.connections_refused += 1
            log.warning(
                "socketmap: connection from %s refused: %d connections open (max_connections)",
                self.peer,
                srv.stats.connections,
            )
            self._closed = True
            self._transport.abort()
            return
        srv.stats.connections += 1
        srv.stats.connections_total += 1
        srv.connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closed and self not in self._server.connections:
            return
        self._closed = True
        self._server.connections.discard(self)
        self._server.stats.connections -= 1
        if self._idle is not None:
            self._idle.cancel()
        if self._worker is not None:
            self._worker.cancel()

    def data_received(self, data: bytes) -> None:
        if self._closed or self._close_after:
            return
        self._arm_idle()
        error: NetstringError | None = None
        try:
            payloads = self._reader.feed(data)
        except NetstringError as exc:
            payloads, error = exc.payloads, exc
        srv = self._server
        out: list[bytes] = []
        for payload in payloads:
            request = parse_request(payload)
            if isinstance(request, Reply):
                srv.stats.bad_requests += 1
                log.warning("socketmap: bad request from %s: %s", self.peer, request.data)
            if self._worker is None and not self._queue:
                reply = request if isinstance(request, Reply) else self._fast(*request)
                if reply is not None:
                    out.append(reply.encode())
                    continue
            self._queue.append(request)
        transport = self._transport
        assert transport is not None
        if out:
            transport.write(b"".join(out))
        if error is not None:
            # The stream cannot be resynchronised: answer what came before, then PERM, close.
            srv.stats.bad_requests += 1
            log.warning("socketmap: bad request from %s: %s; closing", self.peer, error)
            self._queue.append(Reply(Kind.PERM, str(error)))
            self._close_after = True
        if self._queue and self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())
        if len(self._queue) > QUEUE_LIMIT:
            with contextlib.suppress(RuntimeError):
                transport.pause_reading()

    def pause_writing(self) -> None:
        # A peer that sends requests but does not read the answers: stop reading its
        # requests until it has read enough (the write buffer stays at the high-water mark).
        if self._transport is not None:
            with contextlib.suppress(RuntimeError):
                self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and len(self._queue) <= QUEUE_LIMIT // 2:
            with contextlib.suppress(RuntimeError):
                self._transport.resume_reading()

    def write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() if self._transport is not None else 0

    # --- internals ----------------------------------------------------------------------

    def _fast(self, name: str, key: str) -> Reply | None:
        try:
            return self._server.fast(name, key)
        except Exception:
            self._server.stats.lookup_errors += 1
            log.exception("socketmap: lookup of %r failed", key)
            return Reply(Kind.TEMP, "internal error")

    async def _work(self) -> None:
        srv = self._server
        transport = self._transport
        assert transport is not None
        try:
            while self._queue:
                request = self._queue.popleft()
                reply: Reply | None
                if isinstance(request, Reply):
                    reply = request
                else:
                    reply = self._fast(*request)
                    if reply is None:
                        try:
                            reply = await srv.slow(*request)
                        except Exception:
                            srv.stats.lookup_errors += 1
                            log.exception("socketmap: lookup of %r failed", request[1])
                            reply = Reply(Kind.TEMP, "internal error")
                if transport.is_closing():
                    return
                transport.write(reply.encode())
                if len(self._queue) <= QUEUE_LIMIT // 2 and not self._close_after:
                    with contextlib.suppress(RuntimeError):
                        transport.resume_reading()
                self._arm_idle()
        finally:
            self._worker = None
        if self._close_after:
            transport.close()

    def _arm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        timeout = self._server.idle_timeout
        if timeout > 0:
            self._idle = asyncio.get_running_loop().call_later(timeout, self._idle_close)

    def _idle_close(self) -> None:
        if self._worker is not None:  # a lookup is still running: not idle
            self._arm_idle()
            return
        self._server.stats.idle_closed += 1
        log.info("socketmap: closing idle connection from %s", self.peer)
        if self._transport is not None:
            self._transport.close()


class SocketmapServer:
    """Serves ``fast``/``slow`` lookups over the socketmap protocol on ``listen``
    ("HOST:PORT" or "unix:PATH")."""

    def __init__(
        self,
        fast: FastLookup,
        slow: SlowLookup,
        *,
        max_request: int = 1024,
        max_connections: int = 1024,
        idle_timeout: float = 300.0,
    ) -> None:
        self.fast = fast
        self.slow = slow
        self.max_request = max_request
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.stats = ServerStats()
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self.address: str = ""

    async def start(self, listen: str) -> str:
        """Bind and serve; returns the bound address ("HOST:PORT" or "unix:PATH")."""
        loop = asyncio.get_running_loop()
        if listen.startswith("unix:"):
            path = listen.removeprefix("unix:")
            _remove_stale_socket(path)
            self._server = await loop.create_unix_server(lambda: _Connection(self), path)
            # Postfix's smtp processes run as the postfix user and must connect.
            os.chmod(path, 0o666)  # noqa: S103
            self.address = f"unix:{path}"
        else:
            host, port = split_listen(listen)
            self._server = await loop.create_server(
                lambda: _Connection(self), host, port, reuse_address=True, backlog=1024
            )
            sock = self._server.sockets[0].getsockname()
            bound_host = f"[{sock[0]}]" if ":" in sock[0] else sock[0]
            self.address = f"{bound_host}:{sock[1]}"
        return self.address

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for conn in list(self.connections):
            if conn._transport is not None:
                conn._transport.abort()
        await self._server.wait_closed()
        self._server = None


def _remove_stale_socket(path: str) -> None:
    """A socket left by an earlier run would make bind fail; never remove anything else."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)


def split_listen(text: str) -> tuple[str, int]:
    """ "HOST:PORT" or "[v6]:PORT" -> (host, port); ValueError with a clear message."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(
            Text("expected HOST:PORT or unix:PATH, e.g. 127.0.0.1:8461, got {text!r}", text=text)
        )
    return host.strip("[]") or "127.0.0.1", int(port)
