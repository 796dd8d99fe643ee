"""Every dashboard POST route refuses a request without the session's CSRF token: the
routes are read from the router, so a route added later cannot forget the check."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest
from fastapi.routing import APIRoute

from mtasts.web.dashboard.views import router
from tests.hosting.serving import lab_settings
from tests.lab import World
from tests.web.harness import PASSWORD, Dashboard, running_dashboard

pytestmark = pytest.mark.lab

OWNER = "csrf-owner@web.lab.test"
DOMAIN = "csrf.web.lab.test"


def post_paths() -> list[str]:
    """Every POST path of the dashboard, its parameters filled with the owner's things."""
    values = {"name": DOMAIN, "token_id": "1"}
    paths = []
    for route in router.routes:
        assert isinstance(route, APIRoute)
        if "POST" in (route.methods or ()):
            paths.append(re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], route.path))
    return sorted(paths)


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory, lab_world: World) -> Iterator[Dashboard]:
    lab_world.add_domain(DOMAIN)
    settings = lab_settings(tmp_path_factory.mktemp("csrf"), lab_world)
    with running_dashboard(settings) as d:
        d.user(OWNER)
        yield d


def signed_in(dash: Dashboard) -> tuple[httpx.Client, str]:
    c = httpx.Client(base_url=dash.base, timeout=60, follow_redirects=False)
    token = _csrf(c.get("/login").text)
    r = c.post("/login", data={"email": OWNER, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 303, r.text
    return c, _csrf(c.get("/settings").text)


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def test_the_router_has_the_known_post_routes() -> None:
    paths = post_paths()
    assert "/login" in paths and "/logout" in paths and f"/domains/{DOMAIN}/policy" in paths
    assert len(paths) >= 10, paths


@pytest.mark.parametrize("path", post_paths())
def test_post_without_the_token_is_refused(dash: Dashboard, path: str) -> None:
    c, token = signed_in(dash)
    with closing(c):
        added = c.post("/domains", data={"domain": DOMAIN, "csrf_token": token})
        assert added.status_code in (200, 303, 409, 422), added.text
        form = {"domain": DOMAIN, "mode": "enforce", "label": "x", "email": OWNER}
        assert c.post(path, data=form).status_code == 403
        assert c.post(path, data={**form, "csrf_token": token[::-1]}).status_code == 403
        # still signed in: the refusals changed nothing
        assert c.get("/settings").status_code == 200
