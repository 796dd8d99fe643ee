"""The socketmap protocol: netstring parsing, and a real server on loopback (pipelining,
many connections, limits, bad input, idle timeout)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtasts.sender.socketmap import (
    Kind,
    NetstringError,
    NetstringReader,
    Reply,
    SocketmapServer,
    netstring,
    parse_request,
)


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test on both loops: the daemon runs on uvloop where it is installed
    (mtasts.sender.cli), the standard loop otherwise."""
    if request.param == "asyncio":
        yield request.param
        return
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        yield request.param
    finally:
        asyncio.set_event_loop_policy(None)


# --- netstrings ---------------------------------------------------------------------------


def test_reader_splits_several_and_partial() -> None:
    r = NetstringReader(100)
    assert r.feed(b"3:abc,2:de,1:") == [b"abc", b"de"]
    assert r.feed(b"f") == []
    assert r.feed(b",") == [b"f"]
    assert r.feed(b"0:,") == [b""]


@pytest.mark.parametrize(
    "data",
    [b"x:abc,", b"3:abcd", b"3:abc;", b"-1:,", b"12345678901:", b"3 :abc,", b"abc"],
)
def test_reader_rejects_malformed(data: bytes) -> None:
    with pytest.raises(NetstringError):
        NetstringReader(100).feed(data)


def test_reader_rejects_oversized_before_reading_it() -> None:
    r = NetstringReader(10)
    assert r.feed(b"10:0123456789,") == [b"0123456789"]
    with pytest.raises(NetstringError, match="longer than 10"):
        r.feed(b"11:")  # refused on the length alone, before any of the body arrives


@given(st.lists(st.binary(max_size=40), max_size=8), st.lists(st.integers(1, 50), max_size=8))
def test_reader_any_split(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(netstring(p) for p in payloads)
    r = NetstringReader(64)
    got: list[bytes] = []
    pos = 0
    for cut in cuts:
        got += r.feed(stream[pos : pos + cut])
        pos += cut
    got += r.feed(stream[pos:])
    assert got == payloads


def test_parse_request() -> None:
    assert parse_request(b"postfix example.com") == ("postfix", "example.com")
    for bad in (b"postfix", b"postfix ", b" example.com", b"\xff\xfe x"):
        reply = parse_request(bad)
        assert isinstance(reply, Reply) and reply.kind is Kind.PERM


def test_reply_encoding() -> None:
    assert Reply(Kind.NOTFOUND).encode() == b"9:NOTFOUND ,"
    assert Reply(Kind.OK, "secure match=a").encode() == b"17:OK secure match=a,"


# --- a real server --------------------------------------------------------------------------


class Lookups:
    """fast answers keys starting with "fast", slow ones wait for a release; "boom" raises."""

    def __init__(self) -> None:
        self.release: dict[str, asyncio.Event] = {}
        self.slow_started: asyncio.Queue[str] = asyncio.Queue()

    def fast(self, name: str, key: str) -> Reply | None:
        if key == "boom-fast":
            raise RuntimeError("broken")
        if key.startswith("fast"):
            return Reply(Kind.OK, f"{name}:{key}")
        return None

    async def slow(self, name: str, key: str) -> Reply:
        await self.slow_started.put(key)
        if key == "boom":
            raise RuntimeError("broken")
        event = self.release.setdefault(key, asyncio.Event())
        await event.wait()
        return Reply(Kind.OK, f"slow:{key}")

    def let_go(self, key: str) -> None:
        self.release.setdefault(key, asyncio.Event()).set()


async def _read_reply(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(30):  # a generous bound: a server that never answers fails
        head = await reader.readuntil(b":")
        body = await reader.readexactly(int(head[:-1]) + 1)
    assert body.endswith(b",")
    return body[:-1]


async def _serve(lookups: Lookups, **limits: float) -> SocketmapServer:
    server = SocketmapServer(lookups.fast, lookups.slow, **limits)  # type: ignore[arg-type]
    await server.start("127.0.0.1:0")
    return server


async def _connect(server: SocketmapServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, _, port = server.address.rpartition(":")
    return await asyncio.open_connection(host, int(port))


async def _eof(reader: asyncio.StreamReader) -> bool:
    """True once the server closed the connection (within a generous deadline)."""
    async with asyncio.timeout(10):
        await reader.read()
    return reader.at_eof()


def test_pipelined_requests_answered_in_order() -> None:
    async def main() -> None:
        lookups = Lookups()
        server = await _serve(lookups)
        reader, writer = await _connect(server)
        # fast, slow, fast in one write: the third must wait for the second.
        writer.write(
            netstring(b"postfix fast1") + netstring(b"postfix s1") + netstring(b"postfix fast2")
        )
        assert await _read_reply(reader) == b"OK postfix:fast1"
        assert await lookups.slow_started.get() == "s1"
        read = asyncio.create_task(_read_reply(reader))
        await asyncio.sleep(0)
        assert not read.done()
        lookups.let_go("s1")
        assert await read == b"OK slow:s1"
        assert await _read_reply(reader) == b"OK postfix:fast2"
        writer.close()
        await server.stop()

    asyncio.run(main())


def test_many_connections_pipelined() -> None:
    async def main() -> None:
        server = await _serve(Lookups())
        conns = [await _connect(server) for _ in range(50)]
        for i, (_, w) in enumerate(conns):
            w.write(b"".join(netstring(f"m fast{i}-{j}".encode()) for j in range(20)))
        for i, (r, _) in enumerate(conns):
            for j in range(20):
                assert await _read_reply(r) == f"OK m:fast{i}-{j}".encode()
        assert server.stats.connections == 50
        for _, w in conns:
            w.close()
        await server.stop()

    asyncio.run(main())


def test_oversized_request_gets_perm_and_close() -> None:
    async def main() -> None:
        server = await _serve(Lookups(), max_request=64)
        reader, writer = await _connect(server)
        writer.write(netstring(b"postfix fast-ok") + b"100000:" + b"a" * 100)
        assert await _read_reply(reader) == b"OK postfix:fast-ok"
        reply = await _read_reply(reader)
        assert reply.startswith(b"PERM ") and b"longer than 64" in reply
        assert await _eof(reader)
        writer.close()
        assert server.stats.bad_requests == 1
        # the server goes on serving others
        r2, w2 = await _connect(server)
        w2.write(netstring(b"postfix fast-again"))
        assert await _read_reply(r2) == b"OK postfix:fast-again"
        w2.close()
        await server.stop()

    asyncio.run(main())


def test_garbage_gets_perm_and_close() -> None:
    async def main() -> None:
        server = await _serve(Lookups())
        reader, writer = await _connect(server)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        assert (await _read_reply(reader)).startswith(b"PERM ")
        assert await _eof(reader)
        writer.close()
        await server.stop()

    asyncio.run(main())


def test_malformed_request_answered_and_connection_kept() -> None:
    async def main() -> None:
        server = await _serve(Lookups())
        reader, writer = await _connect(server)
        writer.write(netstring(b"no-space") + netstring(b"postfix fast-next"))
        assert (await _read_reply(reader)).startswith(b"PERM malformed request")
        assert await _read_reply(reader) == b"OK postfix:fast-next"
        writer.close()
        await server.stop()

    asyncio.run(main())


def test_failing_lookup_is_temp_and_server_survives() -> None:
    async def main() -> None:
        lookups = Lookups()
        server = await _serve(lookups)
        reader, writer = await _connect(server)
        writer.write(netstring(b"postfix boom") + netstring(b"postfix boom-fast"))
        assert await _read_reply(reader) == b"TEMP internal error"
        assert await _read_reply(reader) == b"TEMP internal error"
        writer.write(netstring(b"postfix fast-after"))
        assert await _read_reply(reader) == b"OK postfix:fast-after"
        assert server.stats.lookup_errors == 2
        writer.close()
        await server.stop()

    asyncio.run(main())


def test_connection_cap() -> None:
    async def main() -> None:
        server = await _serve(Lookups(), max_connections=2)
        kept = [await _connect(server) for _ in range(2)]
        for r, w in kept:  # both are served
            w.write(netstring(b"p fast"))
            assert await _read_reply(r) == b"OK p:fast"
        r3, w3 = await _connect(server)
        assert await _eof(r3)  # the third is closed at once
        w3.close()
        assert server.stats.connections_refused == 1
        kept[0][1].close()
        await kept[0][1].wait_closed()
        # once one is gone, a new connection is served again
        async with asyncio.timeout(10):
            while server.stats.connections >= 2:  # noqa: ASYNC110 (polls a counter)
                await asyncio.sleep(0.01)
        r4, w4 = await _connect(server)
        w4.write(netstring(b"p fast4"))
        assert await _read_reply(r4) == b"OK p:fast4"
        for _, w in (kept[1], (r4, w4)):
            w.close()
        await server.stop()

    asyncio.run(main())


def test_peer_that_does_not_read_cannot_grow_our_buffers() -> None:
    async def main() -> None:
        server = await _serve(Lookups())
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        host, _, port = server.address.rpartition(":")
        sock.connect((host, int(port)))
        sock.setblocking(False)
        request = netstring(b"postfix fast-" + b"x" * 200)
        loop = asyncio.get_running_loop()
        sent = 0
        # Write requests and never read the answers, until the server stops reading them
        # (a send that cannot finish), or 32 MiB went out.
        while sent < 32 << 20:
            try:
                async with asyncio.timeout(2):
                    await loop.sock_sendall(sock, request * 100)
            except TimeoutError:
                break
            sent += 100 * len(request)
        (conn,) = server.connections
        buffered = conn.write_buffer_size()
        sock.close()
        await server.stop()
        # 64 KiB is asyncio's default high-water mark; without flow control the server
        # buffers an answer to every request it read (many megabytes).
        assert buffered < 1 << 20

    asyncio.run(main())


def test_idle_connection_closed() -> None:
    async def main() -> None:
        server = await _serve(Lookups(), idle_timeout=0.2)
        reader, writer = await _connect(server)
        writer.write(netstring(b"p fast"))
        assert await _read_reply(reader) == b"OK p:fast"
        assert await _eof(reader)  # nothing more sent: the server hangs up
        writer.close()
        assert server.stats.idle_closed == 1
        await server.stop()

    asyncio.run(main())


def test_slow_lookup_is_not_idle() -> None:
    async def main() -> None:
        lookups = Lookups()
        server = await _serve(lookups, idle_timeout=0.05)
        reader, writer = await _connect(server)
        writer.write(netstring(b"p s-long"))
        await lookups.slow_started.get()
        await asyncio.sleep(0.3)  # several idle periods while the lookup runs
        lookups.let_go("s-long")
        assert await _read_reply(reader) == b"OK slow:s-long"
        with contextlib.suppress(ConnectionError):
            writer.close()
        await server.stop()

    asyncio.run(main())


def test_unix_socket(tmp_path: Path) -> None:
    async def main() -> None:
        server = SocketmapServer(Lookups().fast, Lookups().slow)
        path = tmp_path / "policyd.sock"
        path.touch()  # not a socket: must not be removed
        with pytest.raises(OSError):
            await server.start(f"unix:{path}")
        path.unlink()
        assert await server.start(f"unix:{path}") == f"unix:{path}"
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(netstring(b"postfix fast-unix"))
        assert await _read_reply(reader) == b"OK postfix:fast-unix"
        writer.close()
        await server.stop()
        # a stale socket of an earlier run is replaced
        server2 = SocketmapServer(Lookups().fast, Lookups().slow)
        await server2.start(f"unix:{path}")
        await server2.stop()

    asyncio.run(main())
