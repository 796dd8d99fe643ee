"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright,
against a running `mtasts serve` and the lab (DNS, SMTP servers). One owner's whole
journey: sign in, add a domain, see the records, verify, try enforce with a broken MX
(blocked, reason shown), fix it, enforce, read the reports page with seeded reports.

The journey runs twice: in English, and in Spanish for a browser that asks for it
(Accept-Language es-ES, issue 13). Screenshots go to a temporary directory, or to
$MTASTS_SCREENSHOTS when set, the Spanish ones under ``es/``
(``MTASTS_SCREENSHOTS=docs/screenshots pytest tests/web/test_browser.py`` refreshes the
pictures of README.md and README.es.md)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hosting.serving import ZONE, lab_settings
from tests.hosting.test_api_lab import challenge_of, claim_in_store, customer, delegate
from tests.lab import World
from tests.lab.require import require
from tests.web.harness import PASSWORD, Dashboard, running_dashboard

pytestmark = pytest.mark.system

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# what the journey reads and clicks, as a Spanish-speaking owner sees it (written out here,
# not taken from the catalogue: a missing or wrong translation must fail the journey)
SPANISH = {
    "E-mail": "Correo electrónico",
    "Password": "Contraseña",
    "Sign in": "Iniciar sesión",
    "E-mail or password is not right": "El correo electrónico o la contraseña no son correctos",
    "Domains": "Dominios",
    "No domains yet": "Todavía no hay dominios",
    "Add a domain": "Añadir un dominio",
    "Mail domain": "Dominio de correo",
    "Add domain": "Añadir dominio",
    "Copied": "Copiado",
    "Check now": "Comprobar ahora",
    "{d} is active": "{d} está activo",
    "Go to the domain page": "Ir a la página del dominio",
    "Apply mode": "Aplicar el modo",
    "Enforce is blocked": "El paso a enforce está bloqueado",
    "Fix:": "Solución:",
    "not listed": "no figura",
    "Force enforce": "Forzar enforce",
    "Refresh from live MX": "Actualizar desde los MX publicados",
    "mode enforce": "modo enforce",
    "TLS reports": "Informes TLS",
    "Certificate expired": "Certificado caducado",
    "Renew the MX certificate": "Renueve el certificado del MX",
    "STARTTLS not offered": "No se ofrece STARTTLS",
    "records in place": "registros publicados",
    "served": "servida",
    "attention": "atención",
    "No domain matches": "Ningún dominio coincide",
    "Settings": "Ajustes",
    "Label": "Etiqueta",
    "Create token": "Crear token",
    "Revoke token ci": "Revocar el token ci",
    "Revoke the token ci": "¿Revocar el token ci",
    "Save mx and max_age": "Guardar mx y max_age",
    "Sign out": "Cerrar sesión",
}
LOCALES = {"en": "en-GB", "es": "es-ES"}


def number(value: float, lang: str, decimals: int = 0) -> str:
    """A number the way the page writes it: 1,234.5 in English, 1.234,5 in Spanish."""
    text = f"{value:,.{decimals}f}"
    return text if lang == "en" else text.translate({ord(","): ".", ord("."): ","})


@pytest.fixture
def dash(tmp_path: Path, lab_world: World) -> Iterator[Dashboard]:
    settings = lab_settings(tmp_path / "serve", lab_world)
    with running_dashboard(settings) as d:
        yield d


def report(domain: str, org: str, day: datetime, ok: int, failures: list[dict[str, Any]]) -> bytes:
    """An RFC 8460 report as a sender mails or POSTs it."""
    failed = sum(f["failed-session-count"] for f in failures)
    start = day.replace(hour=0, minute=0, second=0, microsecond=0)
    return json.dumps(
        {
            "organization-name": org,
            "date-range": {
                "start-datetime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end-datetime": (start + timedelta(days=1) - timedelta(seconds=1)).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
            },
            "contact-info": f"tlsrpt@{org.lower().replace(' ', '')}.example",
            "report-id": f"{org}-{start:%Y%m%d}@{domain}",
            "policies": [
                {
                    "policy": {
                        "policy-type": "sts",
                        "policy-string": ["version: STSv1", "mode: testing"],
                        "policy-domain": domain,
                        "mx-host": [f"mx1.{domain}"],
                    },
                    "summary": {
                        "total-successful-session-count": ok,
                        "total-failure-session-count": failed,
                    },
                    "failure-details": failures,
                }
            ],
        }
    ).encode()


def seed_reports(base: str, domain: str, now: datetime) -> tuple[int, int]:
    """A week of reports from three senders, some failing at mx2; (successful, failed)."""
    total_ok = total_failed = 0
    for i in range(7):
        day = now - timedelta(days=6 - i)
        senders: list[tuple[str, int, list[dict[str, Any]]]] = [
            ("Google Inc.", 900 + 40 * i, []),
            (
                "Microsoft Corporation",
                300 + 10 * i,
                [
                    {
                        "result-type": "certificate-expired",
                        "sending-mta-ip": "203.0.113.25",
                        "receiving-mx-hostname": f"mx2.{domain}",
                        "receiving-ip": "192.0.2.2",
                        "failed-session-count": 12 if i < 4 else 0,
                    }
                ],
            ),
            (
                "Example Mail",
                50,
                [
                    {
                        "result-type": "starttls-not-supported",
                        "sending-mta-ip": "198.51.100.7",
                        "receiving-mx-hostname": f"mx2.{domain}",
                        "failed-session-count": 3,
                        "additional-information": "EHLO reply without STARTTLS",
                    }
                ],
            ),
        ]
        for org, ok, failures in senders:
            live = [f for f in failures if f["failed-session-count"]]
            body = report(domain, org, day, ok, live)
            r = httpx.post(
                f"{base}/tlsrpt/{domain}",
                content=body,
                headers={"Content-Type": "application/tlsrpt+json"},
                timeout=30,
            )
            assert r.status_code == 201, r.text
            total_ok += ok
            total_failed += sum(f["failed-session-count"] for f in live)
    return total_ok, total_failed


@pytest.mark.parametrize("lang", ["en", "es"])
def test_owner_journey_in_chromium(
    dash: Dashboard, lab_world: World, tmp_path: Path, lang: str
) -> None:
    require(CHROMIUM.exists(), f"{CHROMIUM} (Debian package chromium) is not installed")
    require(
        importlib.util.find_spec("playwright") is not None,
        "the Python package playwright is not installed (pip install -e '.[test]')",
    )
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("MTASTS_SCREENSHOTS") or tmp_path / "screenshots")
    shots = shots / "es" if lang == "es" else shots
    shots.mkdir(parents=True, exist_ok=True)

    def t(english: str) -> str:
        return english if lang == "en" else SPANISH[english]

    email = dash.user("owner@web.lab.test")
    d = customer(lab_world)
    problems: list[str] = []

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        context = chromium.new_context(
            viewport={"width": 1280, "height": 900}, locale=LOCALES[lang]
        )
        page = context.new_page()
        # generous deadlines (expect() polls; its default is 5 s): the machine may be loaded
        page.set_default_timeout(120_000)
        expect.set_options(timeout=60_000)
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        # the wrong password (401) and the blocked enforce (409) are pages with a status
        expected = {"401 (Unauthorized)", "409 (Conflict)"}
        page.on("pageerror", lambda e: problems.append(str(e)))

        # sign in (a page asked for first is where the sign-in leads)
        page.goto(f"{dash.base}/settings")
        expect(page).to_have_url(re.compile(r"/login\?next=/settings$"))
        expect(page.locator("html")).to_have_attribute("lang", lang)
        page.screenshot(path=shots / "login.png")
        page.get_by_label(t("E-mail")).fill(email)
        page.get_by_label(t("Password")).fill("not the password")
        page.get_by_role("button", name=t("Sign in")).click()
        expect(page.get_by_role("alert")).to_contain_text(t("E-mail or password is not right"))
        page.get_by_label(t("Password")).fill(PASSWORD)
        page.get_by_role("button", name=t("Sign in")).click()
        expect(page).to_have_url(f"{dash.base}/settings")

        # add a domain -> the three CNAMEs and the claim's challenge, with copy buttons
        page.get_by_role("link", name=t("Domains"), exact=True).click()
        expect(page.locator("#domain-rows")).to_contain_text(t("No domains yet"))
        page.get_by_role("link", name=t("Add a domain")).click()
        page.get_by_label(t("Mail domain")).fill(d.upper())
        page.get_by_role("button", name=t("Add domain")).click()
        expect(page).to_have_url(f"{dash.base}/domains/{d}/setup")
        claim = claim_in_store(dash.service, d, email)
        records = page.locator("table.records")
        for value in (
            f"_mta-sts.{d}",
            f"{d}.policy.{ZONE}",
            f"mta-sts.{d}",
            f"policy-host.{ZONE}",
            f"_smtp._tls.{d}",
            f"{d}.tlsrpt.{ZONE}",
            f"_mtasts-challenge.{d}",
            challenge_of(claim)[1],
        ):
            expect(records).to_contain_text(value)
        expect(records.locator("button.copy")).to_have_count(12)
        # live verification runs on its own and says what is missing
        verify = page.locator("#verify")
        if lang == "en":  # the hosting service's own prose (its Spanish is not the dashboard's)
            expect(verify).to_contain_text("Still missing or wrong")
        expect(verify.locator("li.bad")).to_have_count(4)
        copy = records.locator(f'button.copy[data-copy="{d}.policy.{ZONE}"]')
        copy.click()
        expect(copy).to_have_text(t("Copied"))
        page.screenshot(path=shots / "onboarding.png", full_page=True)

        # the owner publishes all but one: the page names the one still missing
        delegate(lab_world, d, skip=f"_smtp._tls.{d}", claim=claim)
        page.get_by_role("button", name=t("Check now")).click()
        expect(verify.locator("li.bad")).to_have_count(1)
        expect(verify.locator("li.bad")).to_contain_text(f"_smtp._tls.{d}")
        expect(verify.locator("li.bad")).to_contain_text(f"{d}.tlsrpt.{ZONE}")
        lab_world.zone.add(f"_smtp._tls.{d}", "CNAME", f"{d}.tlsrpt.{ZONE}.")
        page.get_by_role("button", name=t("Check now")).click()
        expect(verify).to_contain_text(t("{d} is active").format(d=d))
        assert dash.service.snapshot.lookup_host(f"mta-sts.{d}") is not None

        # a second MX appears whose server offers no STARTTLS: enforce is blocked
        lab_world.zone.add(d, "MX", f"20 mx2.{d}.")
        lab_world.zone.add(f"mx2.{d}", "A", lab_world.smtp_ip("no-starttls"))
        verify.get_by_role("link", name=t("Go to the domain page")).click()
        expect(page.locator("#policy")).to_contain_text("testing")
        page.get_by_label("enforce").check()
        page.get_by_role("button", name=t("Apply mode")).click()
        blocked = page.locator("#blocked")
        expect(blocked).to_contain_text(t("Enforce is blocked"))
        mx2 = blocked.locator(".mx-block", has=page.locator(f"h4 code:text-is('mx2.{d}')"))
        expect(mx2).to_contain_text("STARTTLS")
        expect(mx2).to_contain_text(t("Fix:"))
        expect(blocked).to_contain_text(t("not listed"))  # mx2 is not in the policy either
        expect(blocked.get_by_role("button", name=t("Force enforce"))).to_be_visible()
        page.screenshot(path=shots / "enforce-blocked.png", full_page=True)
        assert dash.service.snapshot.hosts[d].body.decode().count("mode: testing") == 1

        # fix: mx2 gets a proper mail server, the policy takes the live MX set, enforce
        lab_world.zone.remove(f"mx2.{d}", "A")
        lab_world.zone.add(f"mx2.{d}", "A", lab_world.smtp_ip("good"))
        page.goto(f"{dash.base}/domains/{d}")
        page.get_by_role("button", name=t("Refresh from live MX")).click()
        expect(page.locator(".flash")).to_contain_text(f"mx1.{d}, mx2.{d}")
        expect(page.locator("#mx textarea")).to_have_value(f"mx1.{d}\nmx2.{d}")
        page.get_by_label("enforce").check()
        page.get_by_role("button", name=t("Apply mode")).click()
        expect(page.locator(".flash")).to_contain_text(t("mode enforce"))
        expect(page.locator("#blocked")).to_have_count(0)
        served = dash.service.snapshot.hosts[d]
        assert b"mode: enforce" in served.body and f"mx: mx2.{d}".encode() in served.body
        history = page.locator("#history .history > li")
        expect(history).to_have_count(3)
        expect(history.first).to_contain_text(served.policy_id)
        expect(history.first.locator(".diff .add")).to_have_text(["+ mode: enforce"])
        expect(history.first.locator(".diff .del")).to_have_text(["- mode: testing"])
        expect(history.nth(1).locator(".diff .add")).to_have_text([f"+ mx: mx2.{d}"])
        page.screenshot(path=shots / "domain.png", full_page=True)

        # reports: a week from three senders
        ok, failed = seed_reports(dash.base, d, dash.service.clock())
        page.get_by_role("link", name=t("TLS reports")).click()
        rate = number(failed / (ok + failed) * 100, lang, 1)
        expect(page.locator("#failure-rate")).to_have_text(f"{rate} %")
        expect(page.locator(".stats")).to_contain_text(number(ok + failed, lang))
        expect(page.locator("#sessions-chart")).to_have_attribute("data-ready", "true")
        by_org = page.locator("#by-org tbody tr")
        expect(by_org).to_have_count(3)
        expect(by_org.first).to_contain_text("Google Inc.")
        expect(page.locator("#by-mx")).to_contain_text(f"mx2.{d}")
        expect(page.locator("#by-type")).to_contain_text(t("Certificate expired"))
        expect(page.locator("#by-type")).to_contain_text(t("Renew the MX certificate"))
        expect(page.locator("#by-type")).to_contain_text(t("STARTTLS not offered"))
        expect(page.locator("#failures")).to_contain_text("EHLO reply without STARTTLS")
        expect(page.locator("#reports tbody tr")).to_have_count(21)
        page.screenshot(path=shots / "reports.png", full_page=True)
        with page.expect_download() as download:
            page.locator("#reports a", has_text="JSON").first.click()
        raw = json.loads(Path(download.value.path()).read_bytes())
        assert raw["policies"][0]["policy"]["policy-domain"] == d

        # the domain list: badges, search
        page.get_by_role("link", name=t("Domains"), exact=True).click()
        row = page.locator(f'tr[data-domain="{d}"]')
        expect(row).to_contain_text("enforce")
        expect(row).to_contain_text(t("records in place"))
        expect(row).to_contain_text(t("served"))
        reports_badge = row.locator("td[data-col=reports] .badge")
        expect(reports_badge).to_have_class(re.compile(r"\bwarn\b"))  # 0.7 %: some failures
        expect(row.locator("td[data-col=health] .badge")).to_have_text(t("attention"))
        page.screenshot(path=shots / "domains.png", full_page=True)
        page.get_by_role("searchbox").fill("no-such-name")
        expect(page.locator("#domain-rows")).to_contain_text(t("No domain matches"))
        page.get_by_role("searchbox").fill(d[:6])
        expect(row).to_be_visible()

        # settings: a token for the API
        page.get_by_role("link", name=t("Settings")).click()
        page.get_by_label(t("Label")).fill("ci")
        page.get_by_role("button", name=t("Create token")).click()
        token = page.locator("#new-token").inner_text()
        with dash.api(token) as api:
            assert [x["domain"] for x in api.get("/api/v1/domains").json()] == [d]
        page.screenshot(path=shots / "settings.png", full_page=True)
        # the password form's e-mail field (for password managers) is really hidden
        expect(page.locator("input[name=username]")).to_be_hidden()
        # revoking asks first: dismissed, the token still works; accepted, it is gone
        dialogs: list[str] = []

        def answer(dialog: Any, accept: bool) -> None:
            dialogs.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        page.once("dialog", lambda dialog: answer(dialog, False))
        page.get_by_role("button", name=t("Revoke token ci")).click()
        expect(page.get_by_role("button", name=t("Revoke token ci"))).to_be_visible()
        assert dialogs and t("Revoke the token ci") in dialogs[0]
        with dash.api(token) as api:
            assert api.get("/api/v1/domains").status_code == 200
        page.once("dialog", lambda dialog: answer(dialog, True))
        page.get_by_role("button", name=t("Revoke token ci")).click()
        expect(page.get_by_role("button", name=t("Revoke token ci"))).to_have_count(0)
        with dash.api(token) as api:
            assert api.get("/api/v1/domains").status_code == 401

        # a phone: nothing wider than the screen
        phone = chromium.new_context(
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            locale=LOCALES[lang],
            storage_state=context.storage_state(),  # the same signed-in session
        )
        small = phone.new_page()
        small.on("pageerror", lambda e: problems.append(str(e)))
        for path, name in (("/", "phone-domains.png"), (f"/domains/{d}", "phone-domain.png")):
            small.goto(f"{dash.base}{path}")
            width = small.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{path} is {width}px wide on a 390px phone"
            small.screenshot(path=shots / name, full_page=True)
        small.goto(f"{dash.base}/domains/{d}/reports")
        assert small.evaluate("document.documentElement.scrollWidth") <= 390
        for path in ("/settings", f"/domains/{d}/setup"):
            small.goto(f"{dash.base}{path}")
            width = small.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{path} is {width}px wide on a 390px phone"
        # long input never widens the page: an over-long mx line comes back in the form,
        # with its error next to the field
        expected.add("422 (Unprocessable Entity)")
        small.goto(f"{dash.base}/domains/{d}")
        small.locator("#mx-lines").fill("x" * 300 + ".example")
        small.get_by_role("button", name=t("Save mx and max_age")).click()
        expect(small.locator("#mx-error")).to_be_visible()
        expect(small.locator("#mx-lines")).to_have_value("x" * 300 + ".example")
        width = small.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the refused long mx line makes the page {width}px wide"

        # sign out ends the session
        page.get_by_role("button", name=t("Sign out")).click()
        expect(page).to_have_url(f"{dash.base}/login")
        page.goto(f"{dash.base}/domains/{d}")
        expect(page).to_have_url(re.compile("/login"))
        phone.close()
        context.close()
        chromium.close()
    loads = "Failed to load resource: the server responded with a status of "
    unexpected = [p for p in problems if p.removeprefix(loads) not in expected]
    assert not unexpected, unexpected  # CSP violations and script errors land here
