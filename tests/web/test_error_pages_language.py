"""Issue 13: a bad value in an address and the framework's own refusals (404, 405...) in
the reader's language: the dashboard's error page and the API's message (Accept-Language)
say the field and the problem from pydantic's error ``type``/``ctx``, never from its
English ``msg``; in English they read exactly as before."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from http import HTTPStatus
from typing import Annotated, Any, Literal

import httpx
import pytest
from pydantic import Field, TypeAdapter, ValidationError

from mtasts import i18n
from mtasts.web.problems import PHRASES, PROBLEMS, phrase, problems
from tests.hosting.serving import lab_settings
from tests.lab import World
from tests.web.harness import Dashboard, running_dashboard
from tests.web.test_dashboard_http import new_email, sign_in
from tests.web.test_first_hour import HTML

SPANISH = {"Accept-Language": "es-ES,es;q=0.9"}


def errors(kind: Any, value: object) -> list[dict[str, object]]:
    with pytest.raises(ValidationError) as info:
        TypeAdapter(kind).validate_python(value)
    return [dict(e) for e in info.value.errors()]


@pytest.mark.parametrize(
    ("kind", "value", "spanish"),
    [
        (int, "many", "debe ser un número entero"),
        (Annotated[int, Field(ge=1)], 0, "debe valer al menos 1"),
        (Annotated[int, Field(le=366)], 400, "debe valer como máximo 366"),
        (Annotated[str, Field(max_length=3)], "abcd", "debe tener como máximo 3 caracteres"),
        (
            Literal["testing", "enforce"],
            "x",
            "debe ser uno de estos valores: 'testing' o 'enforce'",
        ),
        (bool, "maybe", "debe ser true o false"),
        (list[int], 5, "debe ser una lista"),
    ],
)
def test_problems_from_type_not_from_the_english_text(
    kind: object, value: object, spanish: str
) -> None:
    found = errors(kind, value)
    assert problems(found, ()) == [("", str(found[0]["msg"]))]  # English: pydantic's own
    with i18n.use("es"):
        assert problems(found, ()) == [("", spanish)]


def test_every_problem_and_phrase_is_in_the_catalogue() -> None:
    spanish = i18n.catalogue("es")
    for template in [*PROBLEMS.values(), *PHRASES.values()]:
        assert template in spanish, template
    for status in (404, 405, 413, 422, 429):
        assert phrase(status) == HTTPStatus(status).phrase  # English: Python's own words
        assert phrase(status, "Something else") == "Something else"
    with i18n.use("es"):
        assert phrase(405) == "Método no permitido"
        assert phrase(405, "Method Not Allowed") == "Método no permitido"
        assert phrase(404) == "No encontrado"


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory, lab_world: World) -> Iterator[Dashboard]:
    settings = lab_settings(tmp_path_factory.mktemp("error-pages"), lab_world)
    with running_dashboard(settings) as d:
        yield d


def main_of(html: str) -> str:
    return html.split("<main", 1)[1].split("</main>")[0]


@pytest.mark.lab
def test_dashboard_error_pages_in_spanish(dash: Dashboard) -> None:
    email = dash.user(new_email())
    with closing(sign_in(dash, email)) as c:
        url = "/domains/example.com/reports?days=many"
        english = c.get(url, headers=HTML)
        assert english.status_code == 422
        assert (
            "The address has a bad value: days: Input should be a valid integer, unable to "
            "parse string as an integer." in main_of(english.text)
        )
        spanish = c.get(url, headers={**HTML, **SPANISH})
        assert spanish.status_code == 422
        page = main_of(spanish.text)
        assert "days: debe ser un número entero" in page
        assert "Input should be" not in page
        english = c.post("/domains/new", headers=HTML)
        assert english.status_code == 405
        assert "<p>Method Not Allowed</p>" in main_of(english.text)
        spanish = c.post("/domains/new", headers={**HTML, **SPANISH})
        assert spanish.status_code == 405
        assert "<p>Método no permitido</p>" in main_of(spanish.text)


@pytest.mark.lab
def test_api_refusals_follow_accept_language(dash: Dashboard) -> None:
    with dash.api() as api:
        url = "/api/v1/domains/example.com/reports?limit=0"
        english = api.get(url).json()["error"]
        assert english == {
            "code": "invalid-request",
            "message": "query.limit: Input should be greater than or equal to 1",
        }
        spanish = api.get(url, headers=SPANISH).json()["error"]
        assert spanish == {
            "code": "invalid-request",
            "message": "query.limit: debe valer al menos 1",
        }
        english = api.get("/api/v1/nothing").json()["error"]
        assert english["message"] == "Nothing here: /api/v1/nothing (the API is under /api/v1)."
        spanish = api.get("/api/v1/nothing", headers=SPANISH).json()["error"]
        assert spanish["message"] == "Aquí no hay nada: /api/v1/nothing (la API está bajo /api/v1)."
        english = api.delete("/api/v1/domains").json()["error"]
        assert english["message"].startswith("DELETE is not allowed here; use ")
        spanish = api.delete("/api/v1/domains", headers=SPANISH).json()["error"]
        assert spanish["message"].startswith("Aquí no se admite DELETE; use ")
    body = httpx.post(
        f"{dash.base}/api/v1/domains",
        content=b"{",
        headers={
            "Authorization": f"Bearer {dash.admin_token}",
            "Content-Type": "application/json",
            **SPANISH,
        },
    ).json()["error"]
    assert body == {
        "code": "invalid-json",
        "message": "El cuerpo de la petición no es JSON válido.",
    }
