"""The API in Spanish (issue 13): `message`/`fix` prose follows Accept-Language only when
the client sends it; codes, field names and values never change."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.hosting.serving import Running, lab_settings, running
from tests.hosting.test_api_lab import hosted
from tests.lab import World

from mtasts import i18n

pytestmark = pytest.mark.lab

PROSE = {"message", "fix", "reason"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, lab_world: World) -> Iterator[Running]:
    settings = lab_settings(tmp_path_factory.mktemp("serve-es"), lab_world)
    with running(settings) as r:
        yield r


def skeleton(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("<prose>" if k in PROSE else skeleton(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [skeleton(v) for v in value]
    return value


def refused(app: Running, domain: str, headers: dict[str, str]) -> dict[str, Any]:
    with app.client() as c:
        r = c.put(f"/api/v1/domains/{domain}/policy", json={"mode": "enforce"}, headers=headers)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert isinstance(error, dict)
    return error


def test_enforce_refusal_in_spanish_only_when_asked(app: Running, lab_world: World) -> None:
    d = hosted(app, lab_world, mx_profile="no-starttls")
    english = refused(app, d, {})
    spanish = refused(app, d, {"Accept-Language": "es-ES,es;q=0.9,en;q=0.5"})
    assert english["code"] == spanish["code"] == "enforce-refused"
    assert skeleton(spanish) == skeleton(english)
    assert english["message"] == (
        f"Switching {d} to enforce would make senders refuse mail: mx1.{d} (no STARTTLS) "
        "would fail. Fix them, or force with a reason."
    )
    assert spanish["message"] == (
        f"Pasar {d} a enforce haría que los remitentes rechazaran correo: fallarían "
        f"mx1.{d} (sin STARTTLS). Corríjalos o fuerce el cambio indicando un motivo."
    )
    [failing] = spanish["failing_mx"]
    assert failing["reasons"][0]["code"] == "mx-starttls-missing"
    assert failing["reasons"][0]["message"].startswith(f"MX mx1.{d}: No ofrece STARTTLS")
    by_code = {f["code"]: f for f in spanish["findings"]}
    assert by_code["policy-cannot-enforce"]["fix"].startswith("Mantenga `mode: testing`")
    # a language the catalogue does not have, or none: English
    assert refused(app, d, {"Accept-Language": "fr-FR, de;q=0.8"}) == english


def test_the_servers_locale_does_not_leak_into_the_api(app: Running, lab_world: World) -> None:
    """A process started under a Spanish locale still answers English without the header."""
    d = hosted(app, lab_world, mx_profile="no-starttls")
    i18n.set_language("es")  # as `mtasts serve` would have been with LANG=es_ES, before
    english = refused(app, d, {})
    assert english["message"].startswith(f"Switching {d} to enforce")
    assert all(
        not f["message"].startswith("MX ") or "No ofrece" not in f["message"]
        for f in english["findings"]
    )
