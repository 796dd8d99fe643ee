"""Sign-in limits that hold and sessions that end: forwarded headers are believed only from
`trusted_proxies`, the limiter's memory is bounded without forgetting a block, and signing
out ends the session on the server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from mtasts.web.dashboard.auth import COOKIE, LoginLimiter, client_ip, is_https
from tests.hosting.serving import lab_settings
from tests.lab import World
from tests.web.harness import PASSWORD, Dashboard, running_dashboard
from tests.web.test_dashboard_http import browser, csrf_of, new_email, sign_in

pytestmark = pytest.mark.lab


@pytest.fixture
def untrusting(tmp_path: Path, lab_world: World) -> Iterator[Dashboard]:
    """A dashboard with the default settings: no proxy is trusted."""
    with running_dashboard(lab_settings(tmp_path, lab_world)) as d:
        yield d


@pytest.fixture
def behind_front(tmp_path: Path, lab_world: World) -> Iterator[Dashboard]:
    """A dashboard behind a TLS front on this host (as deploy/mtasts.toml sets it)."""
    settings = lab_settings(tmp_path, lab_world, trusted_proxies=("127.0.0.1/32", "::1/128"))
    with running_dashboard(settings) as d:
        yield d


def _fail(c: httpx.Client, token: str, email: str, xff: str) -> httpx.Response:
    return c.post(
        "/login",
        data={"email": email, "password": "guess", "csrf_token": token},
        headers={"X-Forwarded-For": xff},
    )


def test_forwarded_for_from_an_untrusted_peer_does_not_bypass_the_address_limit(
    untrusting: Dashboard,
) -> None:
    victim = untrusting.user(new_email())
    with browser(untrusting) as c:
        token = csrf_of(c.get("/login").text)
        for i in range(30):  # a new made-up address every time
            r = _fail(c, token, f"spray{i}@web.lab.test", f"198.51.100.{i + 1}")
            assert r.status_code == 401
        r = c.post(
            "/login",
            data={"email": victim, "password": PASSWORD, "csrf_token": token},
            headers={"X-Forwarded-For": "203.0.113.77"},
        )
        assert r.status_code == 429  # the address is the TCP peer's, which is blocked


def test_forwarded_proto_from_an_untrusted_peer_does_not_mark_the_cookie_secure(
    untrusting: Dashboard, behind_front: Dashboard
) -> None:
    for dash, secure in ((untrusting, False), (behind_front, True)):
        email = dash.user(new_email())
        with browser(dash) as c:
            token = csrf_of(c.get("/login").text)
            r = c.post(
                "/login",
                data={"email": email, "password": PASSWORD, "csrf_token": token},
                headers={"X-Forwarded-Proto": "https"},
            )
            assert r.status_code == 303
            cookie = next(v for v in r.headers.get_list("set-cookie") if v.startswith(COOKIE))
            assert ("secure" in cookie.lower()) is secure


def test_a_trusted_proxy_s_forwarded_for_is_the_address(behind_front: Dashboard) -> None:
    """Behind Caddy every request comes from 127.0.0.1: the limit goes by the address the
    front appends to X-Forwarded-For, so one guesser does not lock everybody out, and a
    forged entry left of it does not make a new address."""
    dash = behind_front
    victim = dash.user(new_email())
    with browser(dash) as c:
        token = csrf_of(c.get("/login").text)
        for i in range(30):
            r = _fail(c, token, f"spray{i}@web.lab.test", f"1.2.3.{i}, 198.51.100.9")
            assert r.status_code == 401
        spoofed = c.post(
            "/login",
            data={"email": victim, "password": PASSWORD, "csrf_token": token},
            headers={"X-Forwarded-For": "10.9.9.9, 198.51.100.9"},
        )
        assert spoofed.status_code == 429
        other = c.post(
            "/login",
            data={"email": victim, "password": PASSWORD, "csrf_token": token},
            headers={"X-Forwarded-For": "203.0.113.50"},
        )
        assert other.status_code == 303


def _request(peer: str, xff: str) -> Request:
    headers = [(b"x-forwarded-for", xff.encode())] if xff else []
    return Request({"type": "http", "client": (peer, 4711), "headers": headers, "path": "/"})


def test_client_ip_takes_the_rightmost_untrusted_hop() -> None:
    trusted = ("127.0.0.1/32", "10.0.0.0/8")
    chain = "6.6.6.6, 203.0.113.5, 10.1.1.1"
    assert client_ip(_request("127.0.0.1", chain), trusted) == "203.0.113.5"
    assert client_ip(_request("192.0.2.1", chain), trusted) == "192.0.2.1"  # peer untrusted
    assert client_ip(_request("127.0.0.1", chain), ()) == "127.0.0.1"  # nobody trusted
    assert client_ip(_request("127.0.0.1", ""), trusted) == "127.0.0.1"
    assert client_ip(_request("127.0.0.1", "10.2.2.2"), trusted) == "10.2.2.2"  # all proxies
    proto = Request(
        {
            "type": "http",
            "scheme": "http",
            "server": ("127.0.0.1", 80),
            "client": ("192.0.2.1", 1),
            "path": "/",
            "headers": [(b"x-forwarded-proto", b"https")],
        }
    )
    assert not is_https(proto, trusted)


def test_a_spray_of_e_mails_keeps_the_table_bounded_and_a_block_in_place() -> None:
    """The old table was cleared when full, which unblocked a blocked account."""
    limiter = LoginLimiter()
    for _ in range(5):
        limiter.failed("victim@example.org", "192.0.2.1")
    assert limiter.retry_after("victim@example.org", "203.0.113.1") > 0
    for i in range(limiter.max_entries * 2 + 10):
        limiter.failed(f"spray{i}@example.org", f"198.51.{i // 250 % 250}.{i % 250}")
        if i % 10_000 == 0:
            assert max(limiter.entries) <= limiter.max_entries
    assert max(limiter.entries) <= limiter.max_entries
    assert limiter.retry_after("victim@example.org", "203.0.113.1") > 0


def test_a_table_full_of_blocks_falls_back_to_shared_slots_and_forgets_no_block() -> None:
    now = [0.0]
    limiter = LoginLimiter(per_email=2, per_ip=10**9, max_entries=10, clock=lambda: now[0])
    blocked = [f"b{i}@example.org" for i in range(10)]
    for email in blocked:
        limiter.failed(email, "192.0.2.1")
        limiter.failed(email, "192.0.2.1")
    assert limiter.entries[0] == 10
    newcomer = "late@example.org"
    assert limiter.retry_after(newcomer, "192.0.2.1") == 0
    limiter.failed(newcomer, "192.0.2.1")
    limiter.failed(newcomer, "192.0.2.1")
    assert limiter.entries[0] == 10  # no room made by dropping a block
    assert limiter.retry_after(newcomer, "192.0.2.1") > 0  # yet the newcomer is limited
    assert all(limiter.retry_after(e, "192.0.2.1") > 0 for e in blocked)
    now[0] = 301.0  # every block has run its course: entries expire, nothing is blocked
    assert all(limiter.retry_after(e, "192.0.2.1") == 0 for e in [*blocked, newcomer])
    limiter.failed("fresh@example.org", "192.0.2.1")
    assert limiter.entries[0] == 1


def test_sign_out_ends_the_session_on_the_server(untrusting: Dashboard) -> None:
    email = untrusting.user(new_email())
    with closing(sign_in(untrusting, email)) as c:
        captured = c.cookies[COOKIE]
        assert c.get("/settings").status_code == 200
        token = csrf_of(c.get("/settings").text)
        assert c.post("/logout", data={"csrf_token": token}).status_code == 303
    with httpx.Client(base_url=untrusting.base, follow_redirects=False) as replay:
        replay.cookies.set(COOKIE, captured)
        r = replay.get("/settings")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
    with closing(sign_in(untrusting, email)) as again:  # signing in again works
        assert again.get("/settings").status_code == 200
