"""The dashboard over plain HTTP against a running `mtasts serve` and the lab: sign-in,
sessions, CSRF, tokens, ownership, guarded enforce and the users command."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
import typer
from sqlalchemy import delete, select
from typer.testing import CliRunner

from mtasts.config import Settings
from mtasts.store.models import User
from mtasts.web.dashboard.auth import (
    COOKIE,
    Sessions,
    fingerprint,
    load_secret,
    set_language,
    verify_login,
)
from mtasts.web.users_cli import users_app
from tests.hosting.serving import lab_settings
from tests.hosting.test_api_lab import claim_in_store, customer, delegate
from tests.lab import World
from tests.web.harness import PASSWORD, Dashboard, running_dashboard

pytestmark = pytest.mark.lab
_emails = itertools.count(1)


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory, lab_world: World) -> Iterator[Dashboard]:
    # behind a TLS front on this host, as deploy/mtasts.toml sets it (see test_hardening.py
    # for a dashboard that trusts no proxy)
    settings = lab_settings(
        tmp_path_factory.mktemp("dash"), lab_world, trusted_proxies=("127.0.0.1/32",)
    )
    with running_dashboard(settings) as d:
        yield d


def new_email() -> str:
    return f"user{next(_emails)}@web.lab.test"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def _without_csrf(html: str) -> str:
    return re.sub(r'name="csrf_token" value="[^"]+"', "", html)


def browser(dash: Dashboard) -> httpx.Client:
    return httpx.Client(base_url=dash.base, timeout=60, follow_redirects=False)


def sign_in(dash: Dashboard, email: str, password: str = PASSWORD) -> httpx.Client:
    c = browser(dash)
    page = c.get("/login")
    r = c.post(
        "/login", data={"email": email, "password": password, "csrf_token": csrf_of(page.text)}
    )
    assert r.status_code == 303, r.text
    return c


def test_pages_send_strangers_to_the_sign_in_page(dash: Dashboard) -> None:
    with browser(dash) as c:
        r = c.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert r.content == b""  # a plain redirect, not an error page
        r = c.get("/domains/example.com/reports?days=7")
        assert r.headers["location"] == "/login?next=/domains/example.com/reports?days=7"
        htmx = c.get("/", headers={"HX-Request": "true"})
        assert htmx.status_code == 401 and htmx.headers["hx-redirect"] == "/login"
        assert "<p>Sign in again.</p>" in htmx.text and "location" not in htmx.headers
        assert c.get("/settings").status_code == 303
        assert c.post("/domains", data={"domain": "x.test"}).status_code == 303


def test_sign_in_gives_a_hardened_session_cookie(dash: Dashboard) -> None:
    email = dash.user(new_email())
    with browser(dash) as c:
        page = c.get("/login")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        token = csrf_of(page.text)
        bad = c.post(
            "/login", data={"email": email, "password": "wrong password", "csrf_token": token}
        )
        assert bad.status_code == 401 and "not right" in bad.text
        ok = c.post(
            "/login",
            data={
                "email": email.upper(),
                "password": PASSWORD,
                "csrf_token": token,
                "next": "/settings",
            },
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/settings"
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
        assert email in c.get("/settings").text
        # a redirect target off the site is ignored
        assert c.get("/login?next=//evil.example/").headers["location"] == "/"
    with browser(dash) as c:  # behind the TLS front (Caddy) on this host
        proto = {"X-Forwarded-Proto": "https"}
        page = c.get("/login", headers=proto)
        assert "; secure" in page.headers["set-cookie"].lower()
        # a Secure cookie is not sent back over plain http: hand it over as the proxy would
        session = page.headers["set-cookie"].split(";")[0]
        c.cookies.clear()
        r = c.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
            headers={**proto, "Cookie": session},
        )
        assert r.status_code == 303
        assert "; secure" in r.headers["set-cookie"].lower()


def test_every_post_needs_the_session_csrf_token(dash: Dashboard) -> None:
    email = dash.user(new_email())
    with browser(dash) as stranger:
        stranger.get("/login")
        r = stranger.post("/login", data={"email": email, "password": PASSWORD})
        assert r.status_code == 403  # login CSRF too
    with closing(sign_in(dash, email)) as c:
        token = csrf_of(c.get("/settings").text)
        assert c.post("/settings/tokens", data={"label": "x"}).status_code == 403
        wrong = c.post("/settings/tokens", data={"label": "x", "csrf_token": token[::-1]})
        assert wrong.status_code == 403
        cross = c.post(
            "/settings/tokens",
            data={"label": "x", "csrf_token": token},
            headers={"Origin": "https://evil.example"},
        )
        assert cross.status_code == 403
        by_header = c.post(
            "/settings/tokens", data={"label": "htmx"}, headers={"X-CSRF-Token": token}
        )
        assert by_header.status_code == 200 and "mtasts_" in by_header.text
        # the token from another session is no good
        with closing(sign_in(dash, email)) as other:
            other_token = csrf_of(other.get("/settings").text)
        assert other_token != token
        assert c.post("/logout", data={"csrf_token": other_token}).status_code == 403
        assert c.post("/logout", data={"csrf_token": token}).status_code == 303
        assert '<p class="flash ok" role="status">Signed out.</p>' in c.get("/login").text
        assert c.get("/settings").status_code == 303  # signed out


def test_failed_sign_ins_are_limited_per_email(dash: Dashboard) -> None:
    email = dash.user(new_email())
    with browser(dash) as c:
        token = csrf_of(c.get("/login").text)
        for _ in range(5):
            r = c.post("/login", data={"email": email, "password": "guess", "csrf_token": token})
            assert r.status_code == 401
        r = c.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert "Too many failed sign-ins" in r.text


def test_api_tokens_from_the_settings_page(dash: Dashboard) -> None:
    email = dash.user(new_email())
    with closing(sign_in(dash, email)) as c:
        token = csrf_of(c.get("/settings").text)
        r = c.post("/settings/tokens", data={"label": "deploy script", "csrf_token": token})
        assert r.status_code == 200
        match = re.search(r'id="new-token"[^>]*>(mtasts_[A-Za-z0-9_-]+)<', r.text)
        assert match, r.text
        api_token = match.group(1)
        with dash.api(api_token) as api:
            assert api.get("/api/v1/domains").status_code == 200
        c.post("/settings/tokens", data={"label": "unused", "csrf_token": token})
        page = c.get("/settings").text
        assert "deploy script" in page and api_token not in page  # shown once only
        # newest first; the one just used says so, the other was never used
        rows = re.findall(
            r"<tr><td>([^<]+)</td><td><code>[0-9a-f]+</code></td><td>[^<]*</td>"
            r"<td>([^<]+)</td>",
            page,
        )
        assert [label for label, _ in rows] == ["unused", "deploy script"]
        assert rows[0][1] == "never" and rows[1][1] != "never"
        token_id = re.search(
            r'/settings/tokens/(\d+)/revoke"[^>]*data-confirm="Revoke the token deploy script', page
        )
        assert token_id
        r = c.post(f"/settings/tokens/{token_id.group(1)}/revoke", data={"csrf_token": token})
        assert r.status_code == 303
        with dash.api(api_token) as api:
            assert api.get("/api/v1/domains").status_code == 401
        assert "deploy script" not in re.findall(r"<tr><td>([^<]+)</td>", c.get("/settings").text)
        # somebody else's token (the admin's, id 1) cannot be revoked, nor told apart from
        # a token that does not exist
        r = c.post("/settings/tokens/1/revoke", data={"csrf_token": token})
        assert r.status_code == 404 and "No such token." in r.text
        with dash.api() as admin:
            assert admin.get("/api/v1/domains").status_code == 200
        gone = c.post(f"/settings/tokens/{token_id.group(1)}/revoke", data={"csrf_token": token})
        assert gone.status_code == 404
        assert _without_csrf(gone.text) == _without_csrf(r.text)
        # the account log says which token went
        with dash.api(dash.service.create_token(email)) as api:
            events = api.get("/api/v1/audit").json()
        revoked = [{**e, "at": None} for e in events if e["action"] == "token-revoked"]
        assert revoked == [
            {
                "at": None,
                "domain": None,
                "action": "token-revoked",
                "detail": {"label": "deploy script", "token": int(token_id.group(1))},
            }
        ]


def test_a_new_password_ends_other_sessions(dash: Dashboard) -> None:
    email = dash.user(new_email())
    a, b = sign_in(dash, email), sign_in(dash, email)
    with closing(a), closing(b):
        token = csrf_of(a.get("/settings").text)
        new = "another long passphrase"
        differ = a.post(
            "/settings/password",
            data={
                "current_password": PASSWORD,
                "new_password": new,
                "new_password_again": new + "x",
                "csrf_token": token,
            },
        )
        assert differ.status_code == 422
        short = a.post(
            "/settings/password",
            data={
                "current_password": PASSWORD,
                "new_password": "short",
                "new_password_again": "short",
                "csrf_token": token,
            },
        )
        assert short.status_code == 422 and "at least 10" in short.text
        wrong = a.post(
            "/settings/password",
            data={
                "current_password": "not the password",
                "new_password": new,
                "new_password_again": new,
                "csrf_token": token,
            },
        )
        assert wrong.status_code == 403 and "The current password is not right." in wrong.text
        assert verify_login(dash.service, email, new) is None
        assert b.get("/settings").status_code == 200
        r = a.post(
            "/settings/password",
            data={
                "current_password": PASSWORD,
                "new_password": new,
                "new_password_again": new,
                "csrf_token": token,
            },
        )
        assert r.status_code == 303
        assert a.get("/settings").status_code == 200  # this session goes on
        assert b.get("/settings").status_code == 303  # the other one ended
        # ... and signing in again from there works (the ended session's cookie is replaced)
        again = b.get("/login")
        r = b.post(
            "/login", data={"email": email, "password": new, "csrf_token": csrf_of(again.text)}
        )
        assert r.status_code == 303 and b.get("/settings").status_code == 200
    assert verify_login(dash.service, email, PASSWORD) is None
    assert verify_login(dash.service, email, "another long passphrase") is not None


def test_users_see_only_their_own_domains(dash: Dashboard, lab_world: World) -> None:
    owner, other = dash.user(new_email()), dash.user(new_email())
    d = customer(lab_world)
    with closing(sign_in(dash, owner)) as c:
        token = csrf_of(c.get("/domains/new").text)
        r = c.post("/domains", data={"domain": d, "csrf_token": token})
        assert r.status_code == 303 and r.headers["location"] == f"/domains/{d}/setup"
        assert d in c.get("/").text
        rows = c.get("/", params={"q": d[:5]}, headers={"HX-Request": "true"})
        assert "<html" not in rows.text and f'data-domain="{d}"' in rows.text
        none = c.get("/", params={"q": "no-such-domain"}, headers={"HX-Request": "true"})
        assert "No domain matches" in none.text
        again = c.post("/domains", data={"domain": d, "csrf_token": token})
        assert again.status_code == 409 and "You already added" in again.text
        invalid = c.post("/domains", data={"domain": "not a domain", "csrf_token": token})
        assert invalid.status_code == 422
    with closing(sign_in(dash, other)) as c:
        assert d not in c.get("/").text
        for path in (f"/domains/{d}", f"/domains/{d}/setup", f"/domains/{d}/reports"):
            r = c.get(path)
            assert r.status_code == 404 and "not hosted here" in r.text, path
        token = csrf_of(c.get("/settings").text)
        r = c.post(f"/domains/{d}/retire", data={"confirm": d, "csrf_token": token})
        assert r.status_code == 404


def test_forced_enforce_needs_a_reason_and_is_marked(dash: Dashboard, lab_world: World) -> None:
    email = dash.user(new_email())
    d = customer(lab_world, mx_profile="no-starttls")
    with closing(sign_in(dash, email)) as c:
        token = csrf_of(c.get("/domains/new").text)
        c.post("/domains", data={"domain": d, "csrf_token": token})
        delegate(lab_world, d, claim=claim_in_store(dash.service, d, email))
        r = c.post(f"/domains/{d}/verify", data={"csrf_token": token})
        assert r.status_code == 303 and r.headers["location"] == f"/domains/{d}"
        blocked = c.post(f"/domains/{d}/policy", data={"mode": "enforce", "csrf_token": token})
        assert blocked.status_code == 409
        assert "Enforce is blocked" in blocked.text and f"<code>mx1.{d}</code>" in blocked.text
        assert "STARTTLS" in blocked.text and "Force enforce" in blocked.text
        assert '<span class="reason">no STARTTLS</span>' in blocked.text
        # fixes render code spans as <code>, never literal backticks
        fixes = re.findall(r'<p class="fix">(.*?)</p>', blocked.text, re.S)
        assert fixes and not any("`" in fix for fix in fixes)
        assert "<code>mode: testing</code>" in blocked.text and "above" not in blocked.text
        no_reason = c.post(
            f"/domains/{d}/policy",
            data={"mode": "enforce", "force": "yes", "reason": " ", "csrf_token": token},
        )
        assert no_reason.status_code == 422 and "force needs a reason" in no_reason.text
        forced = c.post(
            f"/domains/{d}/policy",
            data={
                "mode": "enforce",
                "force": "yes",
                "reason": "MX moves tonight",
                "csrf_token": token,
            },
        )
        assert forced.status_code == 303
        page = c.get(f"/domains/{d}").text
        assert "mode enforce (forced; reason kept in the audit log)" in page  # the flash message
        assert '<span class="badge bad">forced</span>' in page and "MX moves tonight" in page


def test_retiring_needs_the_name_typed(dash: Dashboard, lab_world: World) -> None:
    email = dash.user(new_email())
    d = customer(lab_world)
    with closing(sign_in(dash, email)) as c:
        token = csrf_of(c.get("/domains/new").text)
        c.post("/domains", data={"domain": d, "csrf_token": token})
        delegate(lab_world, d, claim=claim_in_store(dash.service, d, email))
        c.post(f"/domains/{d}/verify", data={"csrf_token": token})
        wrong = c.post(f"/domains/{d}/retire", data={"confirm": "example.com", "csrf_token": token})
        assert wrong.status_code == 422 and f"Type {d} to confirm" in wrong.text
        r = c.post(f"/domains/{d}/retire", data={"confirm": d.upper(), "csrf_token": token})
        assert r.status_code == 303
        page = c.get(f"/domains/{d}").text
        assert "Retiring: serving" in page and "mode: none" in page


def test_static_files_are_the_vendored_scripts(dash: Dashboard) -> None:
    with browser(dash) as c:
        htmx = c.get("/static/vendor/htmx.min.js")
        assert htmx.status_code == 200 and "javascript" in htmx.headers["content-type"]
        assert '"2.0.11"' in htmx.text or "2.0.11" in htmx.text
        chart = c.get("/static/vendor/chart.umd.min.js")
        assert chart.status_code == 200 and "Chart.js v4.6.1" in chart.text
        assert c.get("/static/dashboard.css").status_code == 200
        assert c.get("/static/../dashboard/auth.py").status_code == 404


def test_users_command_sets_a_password(tmp_path: Path) -> None:
    secret = tmp_path / "pw.txt"
    secret.write_text("a long enough password\n")
    root = typer.Typer()  # as the main command registers it
    root.add_typer(users_app, name="users")
    args = ["users", "set-password", "--email", "Cli@Example.com", "--data-dir", str(tmp_path)]
    r = CliRunner().invoke(root, [*args, "--password-file", str(secret), "--admin"])
    assert r.exit_code == 0, r.output
    assert "Created user cli@example.com" in r.output
    short = tmp_path / "short.txt"
    short.write_text("short\n")
    r = CliRunner().invoke(root, [*args, "--password-file", str(short)])
    assert r.exit_code == 2 and "at least 10" in r.output
    r = CliRunner().invoke(root, args, input="prompted password\nprompted password\n")
    assert r.exit_code == 0 and "Password set for cli@example.com" in r.output
    from mtasts.web.serve import open_service

    service = open_service(Settings(data_dir=tmp_path))
    try:
        user = verify_login(service, "cli@example.com", "prompted password")
        assert user is not None and user.is_admin
        assert verify_login(service, "cli@example.com", "a long enough password") is None
    finally:
        service.close()


def test_a_session_opens_nothing_for_a_user_removed_or_without_a_password(
    dash: Dashboard,
) -> None:
    """A session cookie is worth only what the user row behind it is: none for a user
    removed from the store, none for an API-only user (no dashboard password), even with
    a cookie signed by the right key."""
    email = dash.user(new_email())
    with closing(sign_in(dash, email)) as c:
        with dash.service.sessions.begin() as db:
            db.execute(delete(User).where(User.email == email))
        r = c.get("/settings")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/settings"
    api_only = new_email()
    dash.service.create_token(api_only)
    with dash.service.sessions() as db:
        user = db.scalar(select(User).where(User.email == api_only))
        assert user is not None and not user.password_hash
        uid = user.id
    settings = dash.service.settings
    secret = settings.session_secret.encode() or load_secret(settings.data_dir)
    forged = Sessions(secret).serializer.dumps({"uid": uid, "pw": fingerprint(None), "ep": 0})
    with browser(dash) as c:
        c.cookies.set(COOKIE, forged)
        r = c.get("/settings")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/settings"


def _forge(dash: Dashboard, data: dict[str, object]) -> str:
    settings = dash.service.settings
    secret = settings.session_secret.encode() or load_secret(settings.data_dir)
    return Sessions(secret).serializer.dumps(data)


def test_a_session_cookie_opens_the_session_only_with_every_field_right(
    dash: Dashboard,
) -> None:
    """uid, password fingerprint and epoch, each of its own type: a cookie issued before
    sessions had an epoch ("ep" missing) counts as epoch 0, and stops working like any
    other once the user signs out; any field of another type opens nothing, and a session
    that ended on the server is cleared from the cookie."""
    email = dash.user(new_email())
    with dash.service.sessions() as db:
        user = db.scalar(select(User).where(User.email == email))
        assert user is not None and user.session_epoch == 0
        uid, pw = user.id, fingerprint(user.password_hash)
    settings = dash.service.settings
    serializer = Sessions(
        settings.session_secret.encode() or load_secret(settings.data_dir)
    ).serializer

    def visit(data: dict[str, object]) -> tuple[bool, dict[str, object]]:
        """(signed in?, the session the sign-in page leaves in the cookie)"""
        with browser(dash) as c:
            c.cookies.set(COOKIE, serializer.dumps(data))
            r = c.get("/login")
            if r.status_code == 303:  # signed in: sent on
                assert r.headers["location"] == "/"
                return True, data
            assert r.status_code == 200, r.text
            value = r.headers["set-cookie"].split(";")[0].partition("=")[2]
            return False, serializer.loads(value)

    assert visit({"uid": uid, "pw": pw})[0]
    assert visit({"uid": uid, "pw": pw, "ep": 0})[0]
    assert not visit({"uid": str(uid), "pw": pw, "ep": 0})[0]
    assert not visit({"uid": uid, "pw": None, "ep": 0})[0]
    assert not visit({"uid": uid, "ep": 0})[0]
    assert not visit({"uid": uid, "pw": pw, "ep": "0"})[0]
    ended, left = visit({"uid": uid, "pw": pw, "ep": 1, "csrf": "old"})
    assert not ended and set(left) == {"csrf"} and left["csrf"] != "old"
    with closing(sign_in(dash, email)) as c:
        token = csrf_of(c.get("/settings").text)
        assert c.post("/logout", data={"csrf_token": token}).status_code == 303
    assert not visit({"uid": uid, "pw": pw})[0]
    assert visit({"uid": uid, "pw": pw, "ep": 1})[0]


def test_a_signed_in_user_s_own_language_wins(dash: Dashboard) -> None:
    email = dash.user(new_email())
    with dash.service.sessions() as db:
        user = db.scalar(select(User).where(User.email == email))
        assert user is not None
        db.expunge(user)
    set_language(dash.service, user, "es")
    with closing(sign_in(dash, email)) as c:
        page = c.get("/settings", headers={"Accept-Language": "en"})
        assert page.status_code == 200 and '<html lang="es">' in page.text
    with browser(dash) as stranger:  # signed out: the header decides
        assert '<html lang="en">' in stranger.get("/login", headers={"Accept-Language": "en"}).text
