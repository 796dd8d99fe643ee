"""Two `mtasts serve` hosts with the same `session_secret` (and database) accept each
other's dashboard sessions; with different keys they do not."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from mtasts.config import Settings
from tests.web.harness import PASSWORD, running_dashboard

pytestmark = pytest.mark.lab


def sign_in(base: str, email: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text)
    assert token
    r = c.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token[1]})
    assert r.status_code == 303, r.text
    return c


@pytest.mark.parametrize("same_key", [True, False])
def test_sessions_cross_hosts_only_with_a_shared_key(tmp_path: Path, same_key: bool) -> None:
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    a = Settings(data_dir=tmp_path / "a", database_url=db, session_secret="k" * 40)
    b = Settings(
        data_dir=tmp_path / "b", database_url=db, session_secret="k" * 40 if same_key else ""
    )
    with running_dashboard(a) as host_a, running_dashboard(b) as host_b:
        email = host_a.user("ops@example.org")
        browser = sign_in(host_a.base, email)
        try:
            cookies = browser.cookies
            assert browser.get("/").status_code == 200
        finally:
            browser.close()
        with httpx.Client(base_url=host_b.base, cookies=cookies) as other:
            r = other.get("/")
    assert (r.status_code == 200) is same_key
    if not same_key:
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
