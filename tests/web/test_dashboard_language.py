"""The dashboard's language (issue 13): the user's own setting, then the choice made while
signed out, then Accept-Language, then English; every main page in Spanish, and back."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest
from sqlalchemy import select

from mtasts.store.models import User
from tests.hosting.serving import lab_settings
from tests.lab import World
from tests.web.harness import PASSWORD, Dashboard, running_dashboard
from tests.web.test_browser import report
from tests.web.test_dashboard_http import browser, csrf_of, new_email, sign_in
from tests.web.test_first_hour import HTML, hosted

pytestmark = pytest.mark.lab
SPANISH = {"Accept-Language": "es-ES,es;q=0.9,en;q=0.5"}


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory, lab_world: World) -> Iterator[Dashboard]:
    settings = lab_settings(tmp_path_factory.mktemp("language"), lab_world)
    with running_dashboard(settings) as d:
        yield d


def lang_of(html: str) -> str:
    match = re.search(r'<html lang="(\w+)">', html)
    assert match, "no <html lang>"
    return match.group(1)


def switch(c: httpx.Client, language: str, page: str = "/settings") -> httpx.Response:
    token = csrf_of(c.get(page).text)
    return c.post("/language", data={"language": language, "next": page, "csrf_token": token})


def stored_language(dash: Dashboard, email: str) -> str | None:
    with dash.service.sessions() as db:
        return db.scalar(select(User.language).where(User.email == email))


# what each main page says, in each language (the page's heading or a label on it)
PAGES = {
    "/": ("Domains", "Dominios"),
    "/domains/{d}": ("Current policy", "Política actual"),
    "/domains/{d}/reports": ("By sending organisation", "Por organización remitente"),
    "/domains/{d}/setup": ("Publish these records", "Publique estos registros"),
    "/settings": ("API tokens", "Tokens de la API"),
    "/domains/new": ("Mail domain", "Dominio de correo"),
}


def test_switching_to_spanish_and_back(dash: Dashboard, lab_world: World) -> None:
    email = dash.user(new_email())
    with closing(sign_in(dash, email)) as c:
        d, token = hosted(dash, lab_world, c, email)
        day = dash.service.clock()
        body = report(d, "Example Mail", day, 1200, [
            {"result-type": "certificate-expired", "receiving-mx-hostname": f"mx1.{d}",
             "failed-session-count": 3},
        ])  # fmt: skip
        r = httpx.post(
            f"{dash.base}/tlsrpt/{d}",
            content=body,
            headers={"Content-Type": "application/tlsrpt+json"},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        # English by default: no setting, no Accept-Language
        for path, (english, spanish) in PAGES.items():
            page = c.get(path.format(d=d)).text
            assert english in page and spanish not in page, path
            assert lang_of(page) == "en"
        assert stored_language(dash, email) is None

        r = switch(c, "es", f"/domains/{d}")
        assert r.status_code == 303 and r.headers["location"] == f"/domains/{d}"
        assert stored_language(dash, email) == "es"
        for path, (english, spanish) in PAGES.items():
            page = c.get(path.format(d=d)).text
            assert spanish in page and english not in page, path
            assert lang_of(page) == "es"
        # details said the Spanish way: the explanation of a result type, dates, numbers
        reports = c.get(f"/domains/{d}/reports").text
        assert "Certificado caducado" in reports and "Renueve el certificado del MX" in reports
        assert "certificate-expired" in reports  # codes are never translated
        assert "0,2 %" in reports and "1.203" in reports
        assert day.strftime("%d/%m/%Y") in c.get(f"/domains/{d}").text
        # the search finds a domain by its state as the page names it
        assert f'data-domain="{d}"' in c.get("/", params={"q": "activo"}).text
        assert f'data-domain="{d}"' not in c.get("/", params={"q": "pendiente"}).text
        domain_page = c.get(f"/domains/{d}").text
        assert "mode: testing" in domain_page  # nor is the policy text
        assert "· alta" in domain_page and "· added" not in domain_page  # the version's reason
        # flash messages and form errors
        r = c.post(
            f"/domains/{d}/retire",
            data={"confirm": "not it", "csrf_token": token},
            headers={"Referer": f"{dash.base}/domains/{d}"},
        )
        assert r.status_code == 422 and f"Escriba {d} para confirmar la retirada" in r.text
        # the switch on a form's answer leads back to the page that held the form
        assert f'name="next" value="/domains/{d}"' in r.text
        r = c.post(
            "/settings/password",
            data={"new_password": "a", "new_password_again": "b", "csrf_token": token},
        )
        assert "Las dos contraseñas nuevas no coinciden" in r.text
        created = c.post("/settings/tokens", data={"label": "ci", "csrf_token": token})
        assert "Cópielo ahora" in created.text
        token_id = re.search(r'/settings/tokens/(\d+)/revoke"', created.text)
        assert token_id
        c.post(f"/settings/tokens/{token_id.group(1)}/revoke", data={"csrf_token": token})
        assert "Token revocado" in c.get("/settings").text
        # an unknown page, in Spanish too
        missing = c.get("/no/such/page", headers=HTML)
        assert missing.status_code == 404
        assert "No hay ninguna página en /no/such/page" in missing.text

        # and back: English again, everywhere
        assert switch(c, "en").status_code == 303
        assert stored_language(dash, email) == "en"
        for path, (english, spanish) in PAGES.items():
            page = c.get(path.format(d=d)).text
            assert english in page and spanish not in page, path
            assert lang_of(page) == "en"


def test_accept_language_alone_picks_spanish_for_a_user_without_a_setting(
    dash: Dashboard,
) -> None:
    email = dash.user(new_email())
    with closing(sign_in(dash, email)) as c:
        page = c.get("/settings", headers=SPANISH).text
        assert lang_of(page) == "es" and "Contraseña actual" in page
        assert "Sin elegir: el panel sigue el idioma de su navegador" in page
        assert lang_of(c.get("/settings").text) == "en"  # no header: English
        # following the header stores nothing, not even across a sign-out and a sign-in
        token = csrf_of(c.get("/settings", headers=SPANISH).text)
        assert c.post("/logout", data={"csrf_token": token}, headers=SPANISH).status_code == 303
        assert lang_of(c.get("/login").text) == "en"
        page = c.get("/login", headers=SPANISH).text
        ok = c.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(page)},
            headers=SPANISH,
        )
        assert ok.status_code == 303
        assert stored_language(dash, email) is None


def test_the_users_setting_wins_over_the_header(dash: Dashboard) -> None:
    email = dash.user(new_email())
    with closing(sign_in(dash, email)) as c:
        assert switch(c, "en").status_code == 303
        page = c.get("/settings", headers=SPANISH).text
        assert lang_of(page) == "en" and "Current password" in page
        assert "Your own choice, kept with your account." in page
        assert switch(c, "es").status_code == 303
        english = {"Accept-Language": "en-GB,en;q=0.9"}
        assert lang_of(c.get("/", headers=english).text) == "es"
    # the setting follows the user to another browser
    with closing(sign_in(dash, email)) as other:
        assert lang_of(other.get("/settings").text) == "es"


def test_the_sign_in_page_keeps_a_signed_out_choice(dash: Dashboard) -> None:
    email = dash.user(new_email())
    with browser(dash) as c:
        page = c.get("/login", headers=SPANISH).text
        assert lang_of(page) == "es" and "Iniciar sesión" in page
        r = c.post(
            "/language",
            data={"language": "en", "next": "/login", "csrf_token": csrf_of(page)},
            headers=SPANISH,
        )
        assert r.status_code == 303 and r.headers["location"] == "/login"
        # the choice is kept in the session cookie: it beats the browser's header
        page = c.get("/login", headers=SPANISH).text
        assert lang_of(page) == "en" and "Sign in" in page
        c.post(
            "/language",
            data={"language": "es", "next": "/login", "csrf_token": csrf_of(page)},
        )
        bad = c.post(
            "/login",
            data={"email": email, "password": "wrong password", "csrf_token": csrf_of(page)},
        )
        assert bad.status_code == 401 and "no son correctos" in bad.text
        ok = c.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(page)},
        )
        assert ok.status_code == 303
        # chosen on the sign-in page, it becomes the user's own setting at sign-in
        assert stored_language(dash, email) == "es"
        signed_out = c.post("/logout", data={"csrf_token": csrf_of(c.get("/settings").text)})
        assert signed_out.status_code == 303
        # signed out, the sign-in page keeps speaking it (and says so)
        page = c.get("/login").text
        assert lang_of(page) == "es" and "Sesión cerrada." in page


def test_the_switch_refuses_a_missing_token_and_an_unknown_language(dash: Dashboard) -> None:
    email = dash.user(new_email())
    with closing(sign_in(dash, email)) as c:
        token = csrf_of(c.get("/settings").text)
        assert c.post("/language", data={"language": "es"}).status_code == 403
        assert stored_language(dash, email) is None  # the refusal changed nothing
        r = c.post("/language", data={"language": "fr", "csrf_token": token}, headers=HTML)
        assert r.status_code == 422 and "English / Español" in r.text
        assert stored_language(dash, email) is None
        # the switch is on every page, with the current language marked
        page = c.get("/").text
        assert 'action="/language"' in page
        assert re.search(r'value="en"[^>]*aria-pressed="true"', page.replace("\n", " "))
