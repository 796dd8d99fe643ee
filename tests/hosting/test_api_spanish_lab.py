"""The API in Spanish (issue 13): `message`/`fix` prose follows Accept-Language only when
the client sends it; codes, field names and values never change."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.hosting.serving import ZONE, Running, lab_settings, running
from tests.hosting.test_api_lab import customer, delegate, hosted
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


ES = {"Accept-Language": "es"}
CLAIM_PROSE = {"summary", "found", "problem", "fix", "purpose"}


def claim_skeleton(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("<prose>" if k in CLAIM_PROSE else claim_skeleton(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [claim_skeleton(v) for v in value]
    return value


def test_claim_verification_in_spanish_with_identical_codes(app: Running, lab_world: World) -> None:
    """The four records of a claim, checked and explained in Spanish when the client asks
    (Accept-Language: es): same keys, names, values and ok flags as in English."""
    d = customer(lab_world)
    with app.client() as c:
        r = c.post("/api/v1/domains", json={"domain": d}, headers=ES)
        assert r.status_code == 201, r.text
        claim = r.json()
        purposes = {x["type"]: x["purpose"] for x in claim["dns_records"]}
        assert purposes["TXT"].startswith("demuestra que esta cuenta controla el dominio")
        # mta-sts.<d> missing, _smtp._tls.<d> pointing elsewhere, the challenge unpublished
        delegate(lab_world, d, skip=f"mta-sts.{d}")
        lab_world.zone.remove(f"_smtp._tls.{d}")
        lab_world.zone.add(f"_smtp._tls.{d}", "CNAME", "elsewhere.example.")
        english = c.post(f"/api/v1/domains/{d}/verify").json()
        spanish = c.post(f"/api/v1/domains/{d}/verify", headers=ES).json()
    assert claim_skeleton(spanish) == claim_skeleton(english)
    missing = f"mta-sts.{d}, _smtp._tls.{d}, _mtasts-challenge.{d}"
    assert english["summary"] == f"Still missing or wrong: {missing}."
    assert spanish["summary"] == f"Aún faltan o son incorrectos: {missing}."
    records = {x["name"]: x for x in spanish["records"]}
    host = records[f"mta-sts.{d}"]
    assert (host["found"], host["problem"]) == ("nada", f"mta-sts.{d} no tiene registro CNAME.")
    assert host["fix"] == f"Publique: mta-sts.{d}. 3600 IN CNAME policy-host.{ZONE}."
    tlsrpt = records[f"_smtp._tls.{d}"]
    assert tlsrpt["found"] == "CNAME elsewhere.example"
    assert tlsrpt["problem"] == (
        f"_smtp._tls.{d} apunta a elsewhere.example, no a {d}.tlsrpt.{ZONE}."
    )
    assert tlsrpt["fix"].startswith("Sustituya el CNAME por: ")
    challenge = records[f"_mtasts-challenge.{d}"]
    assert challenge["problem"] == (
        f"_mtasts-challenge.{d} no tiene ningún registro TXT con el token de esta reclamación."
    )
    assert records[f"_mta-sts.{d}"]["ok"] is True
    lab_world.zone.remove(f"_smtp._tls.{d}")
    delegate(lab_world, d, skip=f"_mta-sts.{d}", claim=claim)
    with app.client() as c:
        done = c.post(f"/api/v1/domains/{d}/verify", headers=ES).json()
        gone = c.get("/api/v1/domains/nothing-here.example", headers=ES).json()
    assert done["ok"] is True and done["state"] == "active"
    assert done["summary"] == "Los cuatro registros están publicados."
    assert gone["error"]["code"] == "domain-not-found"
    assert gone["error"]["message"] == "nothing-here.example no está alojado aquí."
