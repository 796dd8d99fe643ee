"""The dashboard's sign-in rules one by one, without a server: the failure limits and
their windows (on a controlled clock), the keys they count by, which forwarded headers are
believed, the session cookie and its CSRF token (tests/web/test_hardening.py and
test_dashboard_http.py exercise the same rules through a running dashboard)."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from mtasts.web.dashboard.auth import (
    COOKIE,
    SECRET_FILE,
    SESSION_MAX_AGE,
    LoginLimiter,
    Session,
    Sessions,
    _email_key,
    _FailureTable,
    _ip_key,
    client_ip,
    csrf_ok,
    fingerprint,
    is_https,
    load_secret,
)
from mtasts.web.dashboard.views import _safe_next

WINDOW = 300.0
IP = "192.0.2.1"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def limiter(
    per_email: int = 5, per_ip: int = 1000, max_entries: int = 100
) -> tuple[LoginLimiter, Clock]:
    clock = Clock()
    return LoginLimiter(per_email, per_ip, WINDOW, max_entries, clock), clock


# --- per e-mail ------------------------------------------------------------------------


def test_the_fifth_failure_blocks_until_the_first_is_a_window_old() -> None:
    lim, clock = limiter()
    for t in range(4):
        clock.now = float(t)
        lim.failed("a@example.org", IP)
        assert lim.retry_after("a@example.org", IP) == 0
    clock.now = 4.0
    lim.failed("a@example.org", IP)
    # blocked until 0 + 300: 296 s left, said in whole seconds rounded up
    assert lim.retry_after("a@example.org", IP) == 297
    assert lim.retry_after("b@example.org", IP) == 0  # another e-mail is not blocked
    clock.now = 299.5
    assert lim.retry_after("a@example.org", IP) == 1
    clock.now = 300.0
    assert lim.retry_after("a@example.org", IP) == 0
    assert lim.entries == (0, 1)  # the ended block is forgotten; the address still counts


def test_failures_older_than_the_window_do_not_count() -> None:
    lim, clock = limiter()
    for t in range(4):
        clock.now = float(t)
        lim.failed("a@example.org", IP)
    clock.now = 300.0  # the failure at 0 is exactly a window old: it no longer counts
    lim.failed("a@example.org", IP)
    assert lim.retry_after("a@example.org", IP) == 0
    clock.now = 300.5  # four recent ones (1, 2, 3, 300) and this one: blocked
    lim.failed("a@example.org", IP)
    assert lim.retry_after("a@example.org", IP) == 1  # until 1 + 300
    clock.now = 301.0
    assert lim.retry_after("a@example.org", IP) == 0


def test_a_block_holds_however_often_one_tries_and_ends_on_time() -> None:
    lim, clock = limiter(per_email=2)
    lim.failed("a@example.org", IP)
    lim.failed("a@example.org", IP)
    assert lim.retry_after("a@example.org", IP) == 301
    for t in (10.0, 100.0, 299.0):  # failures while blocked neither extend nor end it
        clock.now = t
        lim.failed("a@example.org", IP)
    assert lim.retry_after("a@example.org", IP) == 2
    clock.now = 300.0
    assert lim.retry_after("a@example.org", IP) == 0
    lim.failed("a@example.org", IP)  # counting starts afresh: one failure, not blocked
    assert lim.retry_after("a@example.org", IP) == 0


def test_a_success_forgets_the_e_mail_s_failures_but_not_the_address_s() -> None:
    lim, _clock = limiter(per_email=3, per_ip=5)
    for _ in range(2):
        lim.failed("a@example.org", IP)
    lim.succeeded("a@example.org")
    assert lim.entries == (0, 1)
    for _ in range(2):
        lim.failed("a@example.org", IP)
    assert lim.retry_after("a@example.org", "198.51.100.1") == 0  # 2 of 3 again, not 4
    lim.failed("a@example.org", IP)
    assert lim.retry_after("a@example.org", "198.51.100.1") > 0
    lim.succeeded("a@example.org")  # also ends a block
    assert lim.retry_after("a@example.org", "198.51.100.1") == 0
    assert lim.retry_after("z@example.org", IP) > 0  # 5 failures from IP: the address is


# --- per address -----------------------------------------------------------------------


def test_an_address_is_blocked_after_per_ip_failures_whatever_the_e_mails() -> None:
    lim, _clock = limiter(per_email=1000, per_ip=3)
    for i in range(2):
        lim.failed(f"u{i}@example.org", IP)
    assert lim.retry_after("new@example.org", IP) == 0
    lim.failed("u2@example.org", IP)
    assert lim.retry_after("new@example.org", IP) == 301
    assert lim.retry_after("new@example.org", "192.0.2.2") == 0


def test_an_ipv6_client_counts_per_64_and_a_mapped_ipv4_as_itself() -> None:
    lim, _clock = limiter(per_email=1000, per_ip=2)
    lim.failed("a@example.org", "2001:db8:1:2::1")
    lim.failed("b@example.org", "2001:db8:1:2:ffff::9")  # the same /64
    assert lim.retry_after("c@example.org", "2001:db8:1:2:abcd::1") > 0
    assert lim.retry_after("c@example.org", "2001:db8:1:3::1") == 0  # the next /64
    lim.failed("a@example.org", "::ffff:192.0.2.9")
    lim.failed("b@example.org", "192.0.2.9")
    assert lim.retry_after("c@example.org", "192.0.2.9") > 0
    assert _ip_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert _ip_key("::ffff:192.0.2.9") == "192.0.2.9"
    assert _ip_key("192.0.2.9") == "192.0.2.9"
    assert _ip_key("not an address") == "not an address"


def test_a_long_e_mail_is_counted_by_its_digest() -> None:
    at_most = "a" * 308 + "@example.org"
    assert len(at_most) == 320 and _email_key(at_most) == at_most
    longer = "b" + at_most
    digest = hashlib.sha256(longer.encode()).hexdigest()
    assert _email_key(longer) == "#" + digest
    odd = "\udcff" * 400  # not encodable as UTF-8 without surrogatepass
    assert _email_key(odd).startswith("#") and len(_email_key(odd)) == 65
    lim, _clock = limiter(per_email=1)
    lim.failed(longer, IP)
    assert lim.retry_after(longer, IP) > 0
    assert lim.retry_after("c" + at_most, IP) == 0  # another long e-mail: another key


# --- bounded memory --------------------------------------------------------------------


def test_a_full_table_drops_the_least_recently_failed_entry() -> None:
    table = _FailureTable(limit=3, window=WINDOW, max_entries=2)
    table.fail("old", 0.0)
    table.fail("new", 1.0)
    table.fail("old", 2.0)  # "old" failed last now: "new" is the least recent
    table.fail("third", 3.0)
    assert len(table) == 2
    table.fail("old", 4.0)  # still remembered: its third failure blocks it
    assert table.wait("old", 4.0) == 296.0
    table.fail("new", 5.0)
    table.fail("new", 6.0)
    assert table.wait("new", 6.0) == 0.0  # forgotten before: two failures only


def test_expired_entries_go_first_and_blocks_stay() -> None:
    table = _FailureTable(limit=2, window=WINDOW, max_entries=3)
    table.fail("stale", 0.0)
    table.fail("blocked", 100.0)
    table.fail("blocked", 100.0)
    table.fail("recent", 200.0)
    assert len(table) == 3
    table.fail("newcomer", 300.0)  # "stale" (last failure at 0) has expired: it goes
    assert len(table) == 3
    assert table.wait("blocked", 300.0) == 100.0
    table.fail("late", 301.0)  # full: the least recent that is no block goes ("recent")
    assert len(table) == 3
    assert table.wait("blocked", 301.0) == 99.0
    table.fail("recent", 302.0)  # one failure again, not two
    assert table.wait("recent", 302.0) == 0.0
    table.fail("stale", 303.0)
    assert table.wait("stale", 303.0) == 0.0


def test_a_table_of_blocks_counts_newcomers_in_shared_slots() -> None:
    table = _FailureTable(limit=2, window=WINDOW, max_entries=1, buckets=1)
    table.fail("blocked", 0.0)
    table.fail("blocked", 0.0)
    table.fail("x", 10.0)  # no room: counted in the (only) shared slot
    assert len(table) == 1
    assert table.wait("y", 10.0) == 0.0  # one failure in the slot: below the limit
    table.fail("y", 20.0)
    assert table.wait("z", 20.0) == 290.0  # the slot is full: until 10 + 300
    table.fail("w", 30.0)  # the slot keeps only the last `limit` failures (20, 30)
    assert table.wait("z", 30.0) == 290.0
    assert table.wait("z", 319.0) == 1.0
    assert table.wait("z", 320.0) == 0.0


# --- forwarded headers -----------------------------------------------------------------


def _request(
    peer: str | None, headers: Sequence[tuple[str, str]] = (), scheme: str = "http"
) -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "scheme": scheme,
        "server": ("127.0.0.1", 80),
        "path": "/",
        "headers": [(k.encode(), v.encode()) for k, v in headers],
    }
    if peer is not None:
        scope["client"] = (peer, 4711)
    return Request(scope)


TRUSTED = ("127.0.0.1/32", "10.0.0.0/8")


def test_forwarded_proto_counts_from_a_trusted_peer_only_and_its_last_entry() -> None:
    assert is_https(_request("192.0.2.1", scheme="https"))
    assert is_https(_request("127.0.0.1", [("x-forwarded-proto", "http, HTTPS ")]), TRUSTED)
    assert not is_https(_request("127.0.0.1", [("x-forwarded-proto", "https, http")]), TRUSTED)
    assert not is_https(_request("127.0.0.1"), TRUSTED)
    assert not is_https(_request("127.0.0.1", [("x-forwarded-proto", "https")]))
    assert not is_https(_request("192.0.2.1", [("x-forwarded-proto", "https")]), TRUSTED)
    assert not is_https(_request(None, [("x-forwarded-proto", "https")]), TRUSTED)
    # a peer that is no IP address (a Unix socket, a test client) is never trusted
    assert not is_https(_request("testclient", [("x-forwarded-proto", "https")]), TRUSTED)


def test_client_ip_reads_every_forwarded_for_header_right_to_left() -> None:
    two = [("x-forwarded-for", "6.6.6.6, 203.0.113.5"), ("x-forwarded-for", "10.1.1.1")]
    assert client_ip(_request("127.0.0.1", two), TRUSTED) == "203.0.113.5"
    gaps = [("x-forwarded-for", " 203.0.113.6 ,, 10.0.0.1 ,")]
    assert client_ip(_request("127.0.0.1", gaps), TRUSTED) == "203.0.113.6"
    # a hop that is no address was written by our proxy (right of every client entry)
    odd = [("x-forwarded-for", "203.0.113.7, unknown")]
    assert client_ip(_request("127.0.0.1", odd), TRUSTED) == "unknown"
    every = [("x-forwarded-for", "10.2.2.2, 10.3.3.3")]
    assert client_ip(_request("127.0.0.1", every), TRUSTED) == "10.2.2.2"
    assert client_ip(_request("127.0.0.1", [("x-forwarded-for", " , ")]), TRUSTED) == "127.0.0.1"
    assert client_ip(_request(None, two), TRUSTED) == ""


# --- session cookie and CSRF -----------------------------------------------------------


def test_csrf_needs_the_session_s_token_exactly() -> None:
    s = Session({"csrf": "token-1"})
    assert csrf_ok(s, "token-1")
    assert not csrf_ok(s, "token-2")
    assert not csrf_ok(s, "token-")
    assert not csrf_ok(s, "")
    assert not csrf_ok(s, None)
    assert not csrf_ok(Session({}), None)
    assert not csrf_ok(Session({}), "None")
    assert not csrf_ok(Session({"csrf": ""}), "")


def test_a_session_makes_its_csrf_token_once() -> None:
    s = Session()
    token = s.csrf
    assert s.dirty and s.data["csrf"] == token and len(token) >= 43
    s.dirty = False
    assert s.csrf == token and not s.dirty
    for bad in ("", 42, None):
        other = Session({"csrf": bad})
        assert other.csrf not in ("", "42", "None") and other.dirty


def test_flash_messages_are_kept_once() -> None:
    s = Session()
    assert s.pop_flash() is None and not s.dirty
    s.flash("Saved.")
    assert s.dirty and s.data["flash"] == ["ok", "Saved."]
    s.dirty = False
    assert s.pop_flash() == ("ok", "Saved.") and s.dirty
    assert s.pop_flash() is None
    s.flash("No.", "error")
    assert s.pop_flash() == ("error", "No.")


def test_start_and_clear_keep_nothing_of_the_session_before() -> None:
    user: Any = SimpleNamespace(id=7, password_hash="$argon2id$x", session_epoch=3)
    s = Session({"csrf": "old", "flash": ["ok", "x"], "lang": "es"})
    s.start(user)
    assert set(s.data) == {"uid", "pw", "ep", "csrf"} and s.dirty
    assert (s.data["uid"], s.data["ep"]) == (7, 3)
    assert s.data["pw"] == fingerprint("$argon2id$x") and s.data["csrf"] != "old"
    s.dirty = False
    s.clear()
    assert set(s.data) == {"csrf"} and s.dirty and s.data["csrf"] != "old"
    s.dirty = False
    s.language = "es"
    assert s.language == "es" and s.dirty and s.data["lang"] == "es"
    assert Session({"lang": "xx"}).language is None


def test_fingerprint_is_a_short_digest_of_the_hash() -> None:
    assert fingerprint("h") == hashlib.sha256(b"h").hexdigest()[:24]
    assert fingerprint(None) == fingerprint("") == hashlib.sha256(b"").hexdigest()[:24]


def _cookie_request(value: str | None, scheme: str = "http") -> Request:
    headers = [("cookie", f"{COOKIE}={value}")] if value is not None else []
    return _request("192.0.2.1", headers, scheme)


def test_the_session_cookie_is_signed_hardened_and_sent_only_when_changed() -> None:
    sessions = Sessions(b"k" * 32)
    response = Response()
    s = Session({"uid": 1})
    sessions.save(_cookie_request(None), response, s)
    assert "set-cookie" not in response.headers  # nothing changed: no cookie
    s.flash("hi")
    sessions.save(_cookie_request(None), response, s)
    cookie = response.headers["set-cookie"]
    parts = {p.strip().split("=")[0].lower() for p in cookie.split(";")}
    assert {"httponly", "path", "max-age", "samesite"} <= parts and "secure" not in parts
    assert f"Max-Age={SESSION_MAX_AGE}" in cookie and "Path=/" in cookie
    assert "samesite=lax" in cookie.lower()
    value = cookie.split(";")[0].split("=", 1)[1]
    assert sessions.load(_cookie_request(value)).data == {"uid": 1, "flash": ["ok", "hi"]}
    secure = Response()
    sessions.save(_cookie_request(None, "https"), secure, s)
    assert "secure" in secure.headers["set-cookie"].lower()
    # another key, a damaged cookie, a payload that is no dict: an empty session
    assert Sessions(b"j" * 32).load(_cookie_request(value)).data == {}
    assert sessions.load(_cookie_request(value[:-2])).data == {}
    assert sessions.load(_cookie_request(sessions.serializer.dumps([1, 2]))).data == {}
    assert sessions.load(_cookie_request("")).data == {}


def test_the_signing_key_is_made_once_private_and_kept(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "dir"
    key = load_secret(data_dir)
    path = data_dir / SECRET_FILE
    assert len(key) >= 64 and path.read_bytes() == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_secret(data_dir) == key
    path.write_bytes(b"  shared key\n")  # the operator's own, as other hosts share it
    assert load_secret(data_dir) == b"shared key"


def test_another_process_s_key_wins_a_race(tmp_path: Path) -> None:
    """Two processes starting at once: the one that creates the file second reads the
    first one's key instead of writing its own."""
    path = tmp_path / SECRET_FILE
    real_open = os.open

    def first_elsewhere(p: Any, flags: int, mode: int = 0o777) -> int:
        if Path(p) == path and flags & os.O_EXCL:
            path.write_bytes(b"first process key\n")
        return real_open(p, flags, mode)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "open", first_elsewhere)
        assert load_secret(tmp_path) == b"first process key"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/settings", "/settings"),
        ("/domains/x.example?days=7", "/domains/x.example?days=7"),
        ("/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/a\\b", "/"),
        ("https://evil.example/", "/"),
        ("evil", "/"),
        ("", "/"),
    ],
)
def test_after_sign_in_only_paths_of_this_site(target: str, expected: str) -> None:
    assert _safe_next(target) == expected


def test_the_defaults_are_5_per_e_mail_and_30_per_address_in_5_minutes() -> None:
    clock = Clock()
    lim = LoginLimiter(clock=clock)
    assert lim.max_entries == 50_000
    for _ in range(4):
        lim.failed("a@example.org", IP)
    assert lim.retry_after("a@example.org", "192.0.2.200") == 0
    lim.failed("a@example.org", IP)
    assert lim.retry_after("a@example.org", "192.0.2.200") == 301
    for i in range(24):  # 29 failures from IP so far
        lim.failed(f"u{i}@example.org", IP)
    assert lim.retry_after("new@example.org", IP) == 0
    lim.failed("u24@example.org", IP)
    assert lim.retry_after("new@example.org", IP) == 301
    clock.now = 300.0
    assert lim.retry_after("new@example.org", IP) == 0


def test_session_cookies_are_signed_for_sessions_only() -> None:
    """The key signs session cookies under a salt of their own: a value the same key signs
    for another purpose is no session, and every process (and version) that shares the key
    reads the others' cookies."""
    key = b"k" * 32
    data = {"uid": 1, "csrf": "t"}
    same = URLSafeTimedSerializer(key, salt="mtasts-dashboard-session").dumps(data)
    assert Sessions(key).load(_cookie_request(same)).data == data
    for other in (URLSafeTimedSerializer(key), URLSafeTimedSerializer(key, salt="other")):
        assert Sessions(key).load(_cookie_request(other.dumps(data))).data == {}


class _IssuedAgo(TimestampSigner):
    """Signs as if ``ago`` seconds had passed since (a cookie issued back then)."""

    ago = 0

    def get_timestamp(self) -> int:
        return int(time.time()) - self.ago


@pytest.mark.parametrize(
    ("ago", "opens"), [(SESSION_MAX_AGE - 60, True), (SESSION_MAX_AGE + 60, False)]
)
def test_a_session_cookie_expires_after_12_hours(ago: int, opens: bool) -> None:
    assert SESSION_MAX_AGE == 12 * 3600
    signer = type("Signer", (_IssuedAgo,), {"ago": ago})
    old = URLSafeTimedSerializer(b"k" * 32, salt="mtasts-dashboard-session", signer=signer)
    loaded = Sessions(b"k" * 32).load(_cookie_request(old.dumps({"uid": 1})))
    assert loaded.data == ({"uid": 1} if opens else {})


def test_shared_slots_depend_on_the_key_and_a_secret_of_each_table() -> None:
    """Which slot a key falls in is a keyed hash: different keys spread over the slots,
    and nobody can tell in advance which keys share one (each table has its own salt)."""
    table, other = (_FailureTable(limit=2, window=WINDOW, max_entries=1) for _ in range(2))
    keys = [f"user{i}@example.org" for i in range(20)]
    slots = [table._bucket(k) for k in keys]
    assert len(set(slots)) > 10
    assert slots != [other._bucket(k) for k in keys]
    # in a table full of blocks, a newcomer's failures limit only the keys of its slot
    table.fail("blocked", 0.0)
    table.fail("blocked", 0.0)
    table.fail(keys[0], 1.0)
    table.fail(keys[0], 2.0)
    assert table.wait(keys[0], 3.0) == 298.0
    elsewhere = next(k for k in keys if table._bucket(k) != table._bucket(keys[0]))
    assert table.wait(elsewhere, 3.0) == 0.0


def test_an_entry_is_forgotten_when_its_last_failure_is_a_window_old() -> None:
    table = _FailureTable(limit=3, window=WINDOW, max_entries=10)
    table.fail("a", 0.0)
    table.fail("b", 1.0)
    assert table.wait("c", 299.9) == 0.0 and len(table) == 2
    assert table.wait("c", 300.0) == 0.0 and len(table) == 1  # "a" goes, exactly on time
    assert table.wait("c", 301.0) == 0.0 and len(table) == 0
