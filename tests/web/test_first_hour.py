"""The dashboard's first hour (issue 9): nothing-changed saves, form errors next to their
field, HTML error pages, the placeholder zone said everywhere, hidden really hidden."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from mtasts.config import DEFAULT_ZONE
from tests.hosting.serving import lab_settings
from tests.hosting.test_api_lab import claim_in_store, customer, delegate
from tests.lab import World
from tests.web.harness import Dashboard, running_dashboard
from tests.web.test_dashboard_http import csrf_of, new_email, sign_in

pytestmark = pytest.mark.lab
HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory, lab_world: World) -> Iterator[Dashboard]:
    settings = lab_settings(
        tmp_path_factory.mktemp("first-hour"), lab_world, trusted_proxies=("127.0.0.1/32",)
    )
    with running_dashboard(settings) as d:
        yield d


def hosted(dash: Dashboard, lab_world: World, c: httpx.Client, email: str) -> tuple[str, str]:
    token = csrf_of(c.get("/domains/new").text)
    d = customer(lab_world)
    c.post("/domains", data={"domain": d, "csrf_token": token})
    delegate(lab_world, d, claim=claim_in_store(dash.service, d, email))
    assert c.post(f"/domains/{d}/verify", data={"csrf_token": token}).status_code == 303
    return d, token


def test_saving_an_unchanged_policy_writes_no_version(dash: Dashboard, lab_world: World) -> None:
    email = dash.user(new_email())
    with closing(sign_in(dash, email)) as c:
        d, token = hosted(dash, lab_world, c, email)
        before = dash.service.get_domain(None, d)["policy"]
        mx = "\n".join(before["mx"])
        r = c.post(
            f"/domains/{d}/policy",
            data={"mode": "testing", "mx": mx, "max_age": str(before["max_age"]),
                  "mx_form": "1", "csrf_token": token},
        )  # fmt: skip
        assert r.status_code == 303
        page = c.get(f"/domains/{d}").text
        assert "Nothing changed" in page and "No new version and no new id" in page
        r = c.post(f"/domains/{d}/refresh-mx", data={"csrf_token": token})
        assert r.status_code == 303 and "Nothing changed" in c.get(f"/domains/{d}").text
        after = dash.service.get_domain(None, d)["policy"]
        assert (after["version"], after["id"]) == (before["version"], before["id"])
        # a real change still makes a new version
        c.post(
            f"/domains/{d}/policy",
            data={"mode": "testing", "mx": mx, "max_age": "172800", "mx_form": "1",
                  "csrf_token": token},
        )  # fmt: skip
        assert dash.service.get_domain(None, d)["policy"]["version"] == before["version"] + 1


def test_invalid_input_stays_in_the_form_next_to_its_error(
    dash: Dashboard, lab_world: World
) -> None:
    email = dash.user(new_email())
    with closing(sign_in(dash, email)) as c:
        d, token = hosted(dash, lab_world, c, email)
        version = dash.service.get_domain(None, d)["policy"]["version"]
        empty = c.post(
            f"/domains/{d}/policy",
            data={"mode": "testing", "mx": "  \n", "max_age": "86400", "mx_form": "1",
                  "csrf_token": token},
        )  # fmt: skip
        assert empty.status_code == 422  # as the API refuses "mx": []
        assert re.search(r'id="mx-error"[^>]*>Give at least one mx pattern', empty.text)
        bad = c.post(
            f"/domains/{d}/policy",
            data={"mode": "testing", "mx": "mx.*.example", "max_age": "86400", "mx_form": "1",
                  "csrf_token": token},
        )  # fmt: skip
        assert bad.status_code == 422
        assert ">mx.*.example</textarea>" in bad.text  # what was typed stays
        assert 'id="mx-error"' in bad.text and "left-most" in bad.text
        age = c.post(
            f"/domains/{d}/policy",
            data={"mode": "testing", "mx": "mx1.example", "max_age": "ten", "mx_form": "1",
                  "csrf_token": token},
        )  # fmt: skip
        assert age.status_code == 422 and 'id="max-age-error"' in age.text
        assert 'value="ten"' in age.text and ">mx1.example</textarea>" in age.text
        far = c.post(
            f"/domains/{d}/policy",
            data={"mode": "testing", "mx": "mx1.example", "max_age": "60", "mx_form": "1",
                  "csrf_token": token},
        )  # fmt: skip
        assert far.status_code == 422 and 'id="max-age-error"' in far.text
        assert dash.service.get_domain(None, d)["policy"]["version"] == version


def test_dashboard_urls_answer_html_error_pages(dash: Dashboard) -> None:
    email = dash.user(new_email())
    with closing(sign_in(dash, email)) as c:
        unknown = c.get("/no/such/page", headers=HTML)
        assert unknown.status_code == 404
        assert unknown.headers["content-type"].startswith("text/html")
        assert "There is no page at /no/such/page" in unknown.text
        bad = c.get("/domains/example.com/reports?days=many", headers=HTML)
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("text/html")
        assert "days" in bad.text and "{" not in bad.text.split("<main", 1)[1].split("</main>")[0]
        # the API and clients that do not ask for HTML keep the JSON envelope
        api = c.get("/api/v1/nothing", headers=HTML)
        assert api.status_code == 404 and api.json()["error"]["code"] == "not-found"
        assert c.get("/no/such/page").json()["error"]["code"] == "not-found"


def test_the_placeholder_zone_is_said_on_every_page(tmp_path: Path, lab_world: World) -> None:
    settings = lab_settings(tmp_path, lab_world, zone=DEFAULT_ZONE)
    with running_dashboard(settings) as dash:
        email = dash.user(new_email())
        with closing(sign_in(dash, email)) as c:
            token = csrf_of(c.get("/domains/new").text)
            d = customer(lab_world)
            assert c.post("/domains", data={"domain": d, "csrf_token": token}).status_code == 303
            for path in ("/", "/domains/new", "/settings", f"/domains/{d}", f"/domains/{d}/setup"):
                page = c.get(path)
                assert 'id="placeholder-zone"' in page.text, path
            setup = c.get(f"/domains/{d}/setup").text
            assert f"{d}.policy.{DEFAULT_ZONE}" not in setup  # no CNAME into it
            assert "CNAME records" not in c.get("/domains/new").text
            assert 'id="placeholder-zone"' in c.get("/nowhere", headers=HTML).text


def test_the_placeholder_banner_is_absent_with_a_real_zone(dash: Dashboard) -> None:
    email = dash.user(new_email())
    with closing(sign_in(dash, email)) as c:
        assert 'id="placeholder-zone"' not in c.get("/").text


def test_hidden_wins_over_display_rules(dash: Dashboard) -> None:
    css = httpx.get(f"{dash.base}/static/dashboard.css").text
    assert re.search(r"\[hidden\]\s*\{\s*display:\s*none\s*!important;\s*\}", css)
    body = re.search(r"\nbody \{[^}]*\}", css)
    assert body and "overflow-wrap: anywhere" in body.group(0)


def test_the_chart_shows_no_rate_on_days_without_reports(dash: Dashboard, lab_world: World) -> None:
    import json
    from datetime import timedelta

    from mtasts.reports.ingest import ReportIngestor, Route, Status

    email = dash.user(new_email())
    with closing(sign_in(dash, email)) as c:
        d, _token = hosted(dash, lab_world, c, email)
        day = (dash.service.clock() - timedelta(days=2)).date()
        body = {
            "organization-name": "Sender",
            "date-range": {
                "start-datetime": f"{day}T00:00:00Z",
                "end-datetime": f"{day}T23:59:59Z",
            },
            "contact-info": "tls@sender.example",
            "report-id": f"r-{d}",
            "policies": [
                {
                    "policy": {"policy-type": "sts", "policy-domain": d},
                    "summary": {
                        "total-successful-session-count": 3,
                        "total-failure-session-count": 1,
                    },
                }
            ],
        }
        outcome = ReportIngestor(dash.service.sessions).ingest_payload(
            json.dumps(body).encode(), route=Route.FILE
        )
        assert outcome.status is Status.STORED
        page = c.get(f"/domains/{d}/reports?days=7").text
        data = json.loads(page.split('id="chart-data"', 1)[1].split(">", 1)[1].split("<", 1)[0])
        rates = dict(zip(data["labels"], data["rate"], strict=True))
        assert rates[str(day)] == 25.0
        assert all(rate is None for label, rate in rates.items() if label != str(day))
    js = httpx.get(f"{dash.base}/static/dashboard.js").text
    assert "precision: 0" in js  # whole sessions on the axis


def test_tokens_can_be_told_apart_and_revoking_asks_first(dash: Dashboard) -> None:
    import hashlib

    email = dash.user(new_email())
    with closing(sign_in(dash, email)) as c:
        csrf = csrf_of(c.get("/settings").text)
        tokens = []
        for label in ("ci", "ci"):  # the same label twice: only the fingerprint differs
            r = c.post("/settings/tokens", data={"label": label, "csrf_token": csrf})
            match = re.search(r'id="new-token"[^>]*>(mtasts_[A-Za-z0-9_-]+)<', r.text)
            assert match
            tokens.append(match.group(1))
            fingerprint = hashlib.sha256(match.group(1).encode()).hexdigest()[:8]
            assert f"fingerprint <code>{fingerprint}</code>" in r.text
        page = c.get("/settings").text
        for token in tokens:
            fingerprint = hashlib.sha256(token.encode()).hexdigest()[:8]
            assert f"<td><code>{fingerprint}</code></td>" in page
            assert token not in page
            assert re.search(rf'data-confirm="Revoke the token ci \({fingerprint}\)', page)
