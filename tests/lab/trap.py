"""A TCP listener that records every connection: a stand-in for an internal service a
tenant would like mtasts to probe, or a server with something to hide in its replies.

    with Trap("127.0.9.9", port) as trap:
        ...  # something that must not connect
        assert trap.connections() == []  # since the last call

``replies`` makes it a scripted line server: the first reply on connect (an SMTP greeting,
say), then one reply per line received; then it hangs up. Without replies it accepts and
says nothing.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence

from tests.lab._background import LabServer, close_writer
from tests.lab.ports import require_loopback

LAB_NETWORKS = ("127.0.0.0/24", "::1/128")  # every lab server listens here (see ports.py)
TRAP_IP = "127.0.9.9"  # loopback, outside LAB_NETWORKS: probes must never come here
IDLE = 30.0


class Trap(LabServer):
    """Counts connections to ``host``:``port`` (each peer address, in accept order)."""

    name = "lab-trap"

    def __init__(self, host: str, port: int, *, replies: Sequence[str] = ()) -> None:
        super().__init__()
        self.host = require_loopback(host)
        self.port = port
        self.replies = list(replies)
        self.peers: list[tuple[str, int]] = []
        self._server: asyncio.Server | None = None

    async def astart(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def astop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cancel_tasks()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        self.peers.append((str(peer[0]), int(peer[1])))
        self._spawn(self._talk(reader, writer))

    async def _talk(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for i, reply in enumerate(self.replies):
                if i > 0:
                    async with asyncio.timeout(IDLE):
                        if not await reader.readline():
                            return
                writer.write(reply.replace("\n", "\r\n").encode() + b"\r\n")
                await writer.drain()
            async with asyncio.timeout(IDLE):
                await reader.read()  # until the client hangs up
        except (OSError, TimeoutError):
            pass
        finally:
            await close_writer(writer)

    def connections(self, timeout: float = 30.0) -> list[tuple[str, int]]:
        """The peers that connected since the last call, not counting a sentinel connection
        of our own made to be sure every earlier connection was accepted and counted (the
        kernel hands connections to accept() in order)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.connect((self.host, self.port))
            local = s.getsockname()
            sentinel = (str(local[0]), int(local[1]))
            deadline = time.monotonic() + timeout
            while sentinel not in self.peers:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the trap on {self.host} did not accept a connection")
                time.sleep(0.01)
        end = self.peers.index(sentinel)
        seen = self.peers[:end]
        del self.peers[: end + 1]
        return seen
