"""Slow and idle clients cannot lock others out (issue 11): the HTTP header timeout and
connection cap, the SMTP timeouts and session caps, the open files limit raised at start
and accept errors logged once per interval. Real listeners on loopback."""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import httpx
import pytest
from tests.hosting.serving import ZONE, Running, running, serve_process, wait_for
from tests.lab.ports import free_port

from mtasts.config import Settings
from mtasts.net.guard import RateLimitedLog, accept_error_handler, source_prefix

pytestmark = pytest.mark.lab

DEADLINE = 20.0  # generous: the timeouts under test are a fraction of a second


def settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "zone": ZONE,
        "sync_interval": 0.2,
        "verify_interval": 3600,
        "monitor_interval": 0,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed ``sock`` (EOF or reset); False while it is open."""
    sock.settimeout(0.05)
    try:
        data = sock.recv(65536)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return data == b"" or closed_by_server(sock)


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    return sock


def http_port(app: Running) -> int:
    return int(app.base.rsplit(":", 1)[1])


# --- HTTP --------------------------------------------------------------------------------------


def test_http_header_timeout_closes_slow_and_silent_clients(tmp_path: Path) -> None:
    with running(settings(tmp_path, http_header_timeout=0.5)) as app:
        port = http_port(app)
        slow = connect(port)
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHo")  # the rest never comes
        silent = connect(port)  # sends nothing at all
        wait_for(lambda: closed_by_server(slow), DEADLINE, "slow client closed")
        wait_for(lambda: closed_by_server(silent), DEADLINE, "silent client closed")
        # a client sending its headers at once is served as before
        assert httpx.get(f"{app.base}/healthz", timeout=10).status_code == 200
        slow.close()
        silent.close()


def test_http_connection_cap_sheds_the_oldest_incomplete_connection(tmp_path: Path) -> None:
    with running(settings(tmp_path, http_max_connections=4, http_header_timeout=120)) as app:
        port = http_port(app)
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        conns = []
        for _ in range(4):
            sock = connect(port)
            sock.sendall(request)  # headers not finished
            conns.append(sock)
        oldest, second = conns[0], conns[1]
        # wait until the server has them all (a fifth is then over the cap)
        wait_for(lambda: not closed_by_server(conns[3]), DEADLINE, "fourth connection open")
        fifth = connect(port)
        fifth.sendall(request)
        wait_for(lambda: closed_by_server(oldest), DEADLINE, "the oldest connection shed")
        # the others were left alone: the second finishes its request and is answered
        second.settimeout(10)
        second.sendall(b"\r\n")
        assert second.recv(4096).startswith(b"HTTP/1.1 200")
        # and a new client is served (shedding the next incomplete one)
        assert httpx.get(f"{app.base}/healthz", timeout=10).status_code == 200
        for sock in [*conns, fifth]:
            sock.close()


# --- SMTP --------------------------------------------------------------------------------------


@pytest.fixture
def smtp_app(tmp_path: Path) -> Iterator[tuple[Running, int]]:
    port = free_port()
    s = settings(
        tmp_path,
        smtp_listen=f"127.0.0.1:{port}",
        smtp_max_per_source=2,
        smtp_max_sessions=4,
        smtp_command_timeout=60,
    )
    with running(s) as app:
        yield app, port


def greeting(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_smtp_sessions_per_source_are_capped_with_421(smtp_app: tuple[Running, int]) -> None:
    _app, port = smtp_app
    first, second = connect(port, "127.0.0.2"), connect(port, "127.0.0.2")
    assert greeting(first).startswith(b"220") and greeting(second).startswith(b"220")
    third = connect(port, "127.0.0.2")
    assert greeting(third).startswith(b"421 4.7.0")  # RFC 5321 §3.1
    wait_for(lambda: closed_by_server(third), DEADLINE, "refused session closed")
    other = connect(port, "127.0.0.3")  # another address has its own share
    assert greeting(other).startswith(b"220")
    second.close()  # a slot of 127.0.0.2 is free again

    def greeted() -> bool:
        with connect(port, "127.0.0.2") as sock:
            return greeting(sock).startswith(b"220")

    wait_for(greeted, DEADLINE, "a freed slot is usable")
    for sock in (first, third, other):
        sock.close()


def test_smtp_session_cap_sheds_the_oldest_idle_session(smtp_app: tuple[Running, int]) -> None:
    _app, port = smtp_app
    oldest = connect(port, "127.0.1.1")
    assert greeting(oldest).startswith(b"220")
    others = []
    for i in range(2, 8):  # the cap is 4 in all (the start-up probe may hold one briefly)
        sock = connect(port, f"127.0.1.{i}")
        others.append(sock)
        assert greeting(sock).startswith(b"220"), i  # new clients are greeted
        if closed_by_server(oldest):
            break
    else:
        pytest.fail("the oldest idle session was never shed")
    for sock in [oldest, *others]:
        sock.close()


def test_smtp_command_timeout_closes_an_idle_session(tmp_path: Path) -> None:
    port = free_port()
    s = settings(tmp_path, smtp_listen=f"127.0.0.1:{port}", smtp_command_timeout=0.5)
    with running(s):
        idle = connect(port, "127.0.0.4")
        assert greeting(idle).startswith(b"220")
        wait_for(lambda: closed_by_server(idle), DEADLINE, "idle SMTP session closed")
        idle.close()


def test_smtp_session_timeout_bounds_a_chatty_session(tmp_path: Path) -> None:
    port = free_port()
    s = settings(tmp_path, smtp_listen=f"127.0.0.1:{port}", smtp_session_timeout=1.0)
    with running(s):
        chatty = connect(port, "127.0.0.5")
        assert greeting(chatty).startswith(b"220")

        def noop_refused() -> bool:  # each NOOP resets the command timeout, not the session's
            try:
                chatty.sendall(b"NOOP\r\n")
            except OSError:
                return True
            return closed_by_server(chatty)

        wait_for(noop_refused, DEADLINE, "a long session closed")
        chatty.close()


# --- the process: open files limit, accept errors -------------------------------------------


def test_serve_raises_the_open_files_limit(tmp_path: Path) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def low() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    with serve_process(tmp_path, "127.0.0.1:9", preexec=low) as (_base, proc):
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        [line] = [x for x in limits.splitlines() if x.startswith("Max open files")]
        soft_now = line.split()[3]
        want = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
        assert soft_now == want
    assert "open files limit" in (tmp_path / "serve.log").read_text()


def test_accept_errors_are_logged_once_per_interval(tmp_path: Path) -> None:
    smtp = free_port()

    def tiny() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    env = {"MTASTS_SMTP_MAX_SESSIONS": "1000", "MTASTS_SMTP_MAX_PER_SOURCE": "1000"}
    with serve_process(
        tmp_path, "127.0.0.1:9", "--smtp", f"127.0.0.1:{smtp}", env=env, preexec=tiny
    ) as (base, _proc):
        socks = []
        try:
            for _ in range(120):  # far more than 64 descriptors
                socks.append(socket.create_connection(("127.0.0.1", smtp), timeout=10))

            def reported() -> bool:
                return "out of system resource" in (tmp_path / "serve.log").read_text()

            wait_for(reported, DEADLINE, "the accept error is logged")
        finally:
            for sock in socks:
                sock.close()

        def serving_again() -> bool:  # the listeners survived running out of descriptors
            with socket.create_connection(("127.0.0.1", smtp), timeout=10) as sock:
                return greeting(sock).startswith(b"220")

        wait_for(serving_again, DEADLINE, "SMTP greets again")
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        text = (tmp_path / "serve.log").read_text()
    assert text.count("out of system resource") == 1, text[-2000:]
    assert "Traceback" not in text


def test_rate_limited_log_counts_what_it_suppresses(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("test.guard"), interval=60, clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, logger="test.guard"):
        assert limited.log("accept", logging.ERROR, "accept failed: %s", "EMFILE")
        for _ in range(1000):
            assert not limited.log("accept", logging.ERROR, "accept failed: %s", "EMFILE")
        assert limited.log("other", logging.ERROR, "another kind")  # kinds are separate
        now[0] = 59.9
        assert not limited.log("accept", logging.ERROR, "accept failed: %s", "EMFILE")
        now[0] = 61.0
        assert limited.log("accept", logging.ERROR, "accept failed: %s", "EMFILE")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "accept failed: EMFILE",
        "another kind",
        "accept failed: EMFILE (1001 more in the last 60 s)",
    ]


def test_loop_reports_are_rate_limited_and_accept_errors_have_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limited = RateLimitedLog(logging.getLogger("test.loop"), interval=60, clock=lambda: 0.0)
    loop = asyncio.new_event_loop()
    try:
        loop.set_exception_handler(accept_error_handler(limited))
        with caplog.at_level(logging.ERROR, logger="test.loop"):
            for _ in range(500):
                loop.call_exception_handler(
                    {
                        "message": "socket.accept() out of system resource",
                        "exception": OSError(errno.EMFILE, "Too many open files"),
                    }
                )
            for _ in range(3):
                loop.call_exception_handler({"message": "bug", "exception": ValueError("x")})
    finally:
        loop.close()
    assert [(r.getMessage(), bool(r.exc_info)) for r in caplog.records] == [
        ("socket.accept() out of system resource: [Errno 24] Too many open files", False),
        ("bug: x", True),
    ]


def test_source_prefixes() -> None:
    assert source_prefix("192.0.2.77", 24, 56) == "192.0.2.0/24"
    assert source_prefix("192.0.2.77", 32, 64) == "192.0.2.77/32"
    assert source_prefix("2001:db8:1:2:3::1", 32, 64) == "2001:db8:1:2::/64"
    assert source_prefix("2001:db8:1:2ff:3::1", 24, 56) == "2001:db8:1:200::/56"
    assert source_prefix("::ffff:192.0.2.1", 32, 64) == "192.0.2.1/32"
    assert source_prefix("unix", 32, 64) == "unix"


# --- DNS ---------------------------------------------------------------------------------------


def test_serve_answers_dns_from_its_own_thread_with_rate_limits(tmp_path: Path) -> None:
    port = free_port(udp=True)
    s = settings(tmp_path, dns_listen=f"127.0.0.1:{port}", dns_rrl_rate=5, dns_rrl_window=1)
    with running(s):
        assert any(t.name == "mtasts-dns" and t.is_alive() for t in threading.enumerate())
        q = dns.message.make_query(ZONE, "SOA").to_wire()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flooder:
            flooder.bind(("127.0.0.9", 0))
            for _ in range(200):
                flooder.sendto(q, ("127.0.0.1", port))
            replies = []
            flooder.settimeout(1.0)
            while True:  # every reply that comes until none came for a second
                try:
                    replies.append(dns.message.from_wire(flooder.recv(4096)))
                except TimeoutError:
                    break
        full = [r for r in replies if not r.flags & dns.flags.TC]
        assert 0 < len(full) < 100 and len(replies) < 200
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.bind(("127.0.2.1", 0))
            other.settimeout(5)
            other.sendto(q, ("127.0.0.1", port))
            assert dns.message.from_wire(other.recv(4096)).answer


def test_http_body_timeout_closes_a_slow_upload(tmp_path: Path) -> None:
    with (
        running(settings(tmp_path, http_body_timeout=0.5)) as app,
        connect(http_port(app)) as slow,
    ):
        slow.sendall(
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\nemail="
        )  # the other 994 bytes never come
        wait_for(lambda: closed_by_server(slow), DEADLINE, "slow upload closed")
