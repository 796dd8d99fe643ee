"""The Origin half of the dashboard's CSRF check (views._check_post): a POST carrying the
session's token is refused when the browser names another site, and accepted when it
names this one or sends the opaque "null" (privacy-sensitive contexts), or no Origin."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from urllib.parse import urlsplit

import pytest

from tests.hosting.serving import lab_settings
from tests.lab import World
from tests.web.harness import Dashboard, running_dashboard
from tests.web.test_dashboard_http import csrf_of, new_email, sign_in

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory, lab_world: World) -> Iterator[Dashboard]:
    settings = lab_settings(tmp_path_factory.mktemp("origin"), lab_world)
    with running_dashboard(settings) as d:
        yield d


def test_origin_must_name_this_site(dash: Dashboard) -> None:
    email = dash.user(new_email())
    here = urlsplit(dash.base).netloc
    with closing(sign_in(dash, email)) as c:
        token = csrf_of(c.get("/settings").text)

        def post(origin: str | None) -> int:
            headers = {"Origin": origin} if origin is not None else {}
            r = c.post(
                "/settings/tokens", data={"label": "o", "csrf_token": token}, headers=headers
            )
            return r.status_code

        assert post(None) == 200
        assert post(f"http://{here}") == 200
        assert post("null") == 200
        # another site, another port of this host, a look-alike: refused
        port = int(here.rsplit(":", 1)[1])
        for other in (
            "https://evil.example",
            f"http://127.0.0.1:{port + 1}",
            f"http://{here}.evil.example",
            "nul",
        ):
            assert post(other) == 403, other
        # each refusal says why
        r = c.post(
            "/settings/tokens",
            data={"label": "o", "csrf_token": token},
            headers={"Origin": "https://evil.example"},
        )
        assert "<p>Cross-origin request refused.</p>" in r.text
        # the token is still required with a good Origin
        r = c.post("/settings/tokens", data={"label": "o"}, headers={"Origin": f"http://{here}"})
        assert r.status_code == 403
        assert (
            "<p>The form has expired or did not come from this site; reload the page.</p>" in r.text
        )
        assert "Cross-origin" not in r.text
