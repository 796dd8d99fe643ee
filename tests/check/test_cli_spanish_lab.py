"""`mtasts check --lang es` (issue 13): the prose is Spanish, everything else is what the
English run prints. NONE, FETCH_ERROR and a per-MX problem against the loopback lab."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from tests.lab import World
from typer.testing import CliRunner

from mtasts.cli import app

runner = CliRunner()

# Prose keys: only these may differ between the languages.
PROSE = {"message", "fix", "sts_fetch_result_meaning"}
# Differ between two runs whatever the language.
VOLATILE = {"checked_at", "days_left"}  # the clock moves between the two runs


@pytest.fixture(scope="module")
def spanish_domains(lab_world: World) -> dict[str, str]:
    none = "none.es.cli.test"
    lab_world.add_domain(none, record=None)
    fetch_error = "fetch.es.cli.test"
    lab_world.add_domain(fetch_error, https="expired")
    per_mx = "mx.es.cli.test"
    lab_world.add_domain(per_mx, mode="testing", mx_profile="no-starttls")
    bad_record = "record.es.cli.test"
    lab_world.add_domain(bad_record, record="v=STSv1; id=2024-06-01", tlsrpt="v=TLSRPTv1; rua=")
    bad_policy = "policy.es.cli.test"
    lab_world.add_domain(
        bad_policy,
        policy=f"version: STSv1\r\nmode: Enforce\r\nmx: mx1.{bad_policy}\r\nmax_age: 86400\r\n",
    )
    mx_expired = "mx-expired.es.cli.test"
    lab_world.add_domain(mx_expired, mode="testing", mx_profile="expired")
    mx_refused = "mx-refused.es.cli.test"
    lab_world.add_domain(mx_refused, mode="testing", mx_profile="down")
    mx_silent = "mx-silent.es.cli.test"
    lab_world.add_domain(mx_silent, mode="testing", mx_profile="silent")
    host_refused = "host-refused.es.cli.test"
    lab_world.add_domain(host_refused, https="down")
    return {
        "VALID-mx-expired": mx_expired,
        "VALID-mx-refused": mx_refused,
        "VALID-mx-silent": mx_silent,
        "FETCH_ERROR-refused": host_refused,
        "NONE": none,
        "FETCH_ERROR": fetch_error,
        "VALID": per_mx,
        "NONE-record": bad_record,
        "FETCH_ERROR-policy": bad_policy,
    }


def run_json(lab_world: World, domain: str, *lang: str) -> dict[str, Any]:
    result = runner.invoke(app, ["check", domain, "--format", "json", *lab_world.cli_args(), *lang])
    assert result.exit_code in (0, 1), result.output
    [data] = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def skeleton(value: Any) -> Any:
    """The JSON with its prose blanked: keys, codes, values and order stay."""
    if isinstance(value, dict):
        return {
            k: ("<prose>" if k in PROSE and v is not None else skeleton(v))
            for k, v in value.items()
            if k not in VOLATILE
        }
    if isinstance(value, list):
        return [skeleton(v) for v in value]
    return value


def literal_lines(fix: str | None) -> list[str]:
    """What a fix gives to paste (indented lines): records, policy text, configuration."""
    lines = [line for line in (fix or "").splitlines() if line.startswith("    ")]
    return [re.sub(r"id=\d{8}T\d{6}", "id=<now>", line) for line in lines]  # the clock's id


def by_code(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["code"]: f for f in data["findings"]}


@pytest.mark.lab
@pytest.mark.parametrize(
    "verdict",
    [
        "NONE",
        "FETCH_ERROR",
        "VALID",
        "NONE-record",
        "FETCH_ERROR-policy",
        "VALID-mx-expired",
        "VALID-mx-refused",
        "VALID-mx-silent",
        "FETCH_ERROR-refused",
    ],
)
def test_spanish_json_differs_from_english_only_in_prose(
    lab_world: World, spanish_domains: dict[str, str], verdict: str
) -> None:
    domain = spanish_domains[verdict]
    en = run_json(lab_world, domain)
    es = run_json(lab_world, domain, "--lang", "es")
    assert en["sts_fetch_result"] == es["sts_fetch_result"] == verdict.split("-")[0]
    assert list(es) == list(en)
    for name in en:
        assert skeleton({name: es[name]}) == skeleton({name: en[name]}), name
    assert es["sts_fetch_result_meaning"] != en["sts_fetch_result_meaning"]
    for e, s in zip(en["findings"], es["findings"], strict=True):
        assert s["message"] != e["message"], e["code"]
        # records, policy file and server configuration inside a fix are never translated
        assert literal_lines(s["fix"]) == literal_lines(e["fix"]), e["code"]


@pytest.mark.lab
def test_none_in_spanish(lab_world: World, spanish_domains: dict[str, str]) -> None:
    domain = spanish_domains["NONE"]
    es = run_json(lab_world, domain, "--lang", "es")
    assert es["sts_fetch_result_meaning"].startswith(
        "Los remitentes no ven ninguna política MTA-STS utilizable"
    )
    missing = by_code(es)["sts-record-missing"]
    assert missing["message"].startswith(f"_mta-sts.{domain} no tiene registro TXT (NXDOMAIN)")
    assert missing["message"].endswith(
        "/.well-known/mta-sts.txt se sirve una política válida: sin el registro, los "
        "remitentes nunca la buscan."
    )
    assert missing["fix"].startswith("Publique un único registro TXT en _mta-sts")
    assert f'_mta-sts.{domain}. 3600 IN TXT "v=STSv1; id=' in missing["fix"]
    text = runner.invoke(app, ["check", domain, *lab_world.cli_args(), "--lang", "es"])
    assert text.exit_code == 1
    assert "STSFetchResult.NONE" in text.stdout
    assert "Solución:" in text.stdout and "Fix:" not in text.stdout
    assert "1 error, " in text.stdout  # one error (singular), then the warnings


@pytest.mark.lab
def test_fetch_error_in_spanish(lab_world: World, spanish_domains: dict[str, str]) -> None:
    domain = spanish_domains["FETCH_ERROR"]
    es = run_json(lab_world, domain, "--lang", "es")
    assert es["sts_fetch_result_meaning"].startswith(
        "Los remitentes ven un registro `_mta-sts` pero no consiguen una política válida"
    )
    expired = by_code(es)["policy-fetch-tls-certificate-expired"]
    assert expired["message"].startswith(f"El certificado de mta-sts.{domain} ha caducado (")
    assert expired["tlsrpt_result_type"] == "sts-webpki-invalid"
    assert expired["fix"].startswith(
        f"Sirva mta-sts.{domain} con un certificado vigente de una CA pública"
    )


@pytest.mark.lab
def test_per_mx_problem_in_spanish(lab_world: World, spanish_domains: dict[str, str]) -> None:
    domain = spanish_domains["VALID"]
    es = run_json(lab_world, domain, "--lang", "es")
    found = by_code(es)
    missing = found["mx-starttls-missing"]
    assert missing["subject"] == f"mx1.{domain}"
    assert missing["message"] == (
        f"MX mx1.{domain}: No ofrece STARTTLS, así que en modo enforce los remitentes con "
        "MTA-STS no pueden entregar aquí."
    )
    assert missing["fix"].startswith("Active STARTTLS en el MX con un certificado de una CA")
    assert (
        f"smtpd_tls_cert_file = /etc/letsencrypt/live/mx1.{domain}/fullchain.pem"
        in (missing["fix"])
    )
    cannot = found["policy-cannot-enforce"]
    assert f"Fallan: mx1.{domain} (sin STARTTLS)." in cannot["message"]
    assert cannot["fix"].startswith("Mantenga `mode: testing` hasta que")
    testing = found["policy-mode-testing"]
    assert testing["message"].startswith("La política está en modo de prueba (testing)")


@pytest.mark.lab
def test_language_from_the_environment_and_english_unchanged(
    lab_world: World, spanish_domains: dict[str, str]
) -> None:
    """MTASTS_LANG, then the locale; --lang wins over both; English is the default."""
    domain = spanish_domains["NONE"]
    args = ["check", domain, "--format", "json", *lab_world.cli_args()]

    def meaning(env: dict[str, str | None], *extra: str) -> str:
        out = runner.invoke(app, [*args, *extra], env=env)
        value = json.loads(out.stdout)[0]["sts_fetch_result_meaning"]
        assert isinstance(value, str)
        return value

    english = "Senders see no usable MTA-STS policy"
    spanish = "Los remitentes no ven"
    unset: dict[str, str | None] = {
        "MTASTS_LANG": None,
        "LC_ALL": None,
        "LC_MESSAGES": None,
        "LANG": None,
    }
    assert meaning(unset).startswith(english)
    assert meaning({**unset, "LANG": "es_ES.UTF-8"}).startswith(spanish)
    assert meaning({**unset, "LC_ALL": "C.UTF-8", "LANG": "es_ES.UTF-8"}).startswith(english)
    assert meaning({**unset, "MTASTS_LANG": "es", "LANG": "C"}).startswith(spanish)
    assert meaning({**unset, "MTASTS_LANG": "es"}, "--lang", "en").startswith(english)


@pytest.mark.lab
def test_worker_processes_speak_the_language_of_the_command(
    lab_world: World, spanish_domains: dict[str, str]
) -> None:
    """--jobs spawns workers: they must not fall back to their own locale."""
    domains = [spanish_domains["NONE"], spanish_domains["FETCH_ERROR"]]
    args = ["check", *domains, "--format", "json", "--jobs", "2", "--concurrency", "2"]
    out = runner.invoke(
        app, [*args, *lab_world.cli_args(), "--lang", "es"], env={"MTASTS_LANG": "en"}
    )
    data = json.loads(out.stdout)
    assert [d["domain"] for d in data] == domains
    assert all(d["sts_fetch_result_meaning"].startswith("Los remitentes") for d in data)


@pytest.mark.lab
def test_record_syntax_errors_in_spanish(lab_world: World, spanish_domains: dict[str, str]) -> None:
    """The parsers' own messages (RFC 8461 §3.1, RFC 8460 §3) are said in Spanish too."""
    domain = spanish_domains["NONE-record"]
    es = run_json(lab_world, domain, "--lang", "es")
    assert es["sts_fetch_result"] == "NONE"
    found = by_code(es)
    invalid = found["sts-record-id-invalid"]
    assert invalid["message"].startswith(
        "id='2024-06-01' no es válido: contiene '-'; el id debe tener de 1 a 32 letras o "
        "dígitos (A-Z, a-z, 0-9), sin guiones, puntos ni espacios Según RFC 8461 §3.1"
    )
    assert f'_mta-sts.{domain}. TXT "v=STSv1; id=20240601"' in invalid["fix"]
    tlsrpt = found["tlsrpt-rua-invalid"]
    assert tlsrpt["message"] == (
        "rua='' tiene una URI vacía (una ',' de más o nada después de 'rua='). El titular ha "
        "pedido informes y no recibirá ninguno: los remitentes ignoran el registro."
    )


@pytest.mark.lab
def test_policy_syntax_errors_in_spanish(lab_world: World, spanish_domains: dict[str, str]) -> None:
    domain = spanish_domains["FETCH_ERROR-policy"]
    es = run_json(lab_world, domain, "--lang", "es")
    assert es["sts_fetch_result"] == "FETCH_ERROR"
    invalid = by_code(es)["policy-mode-invalid"]
    assert invalid["message"] == (
        "línea 2: mode: 'Enforce' debe ser enforce, testing o none (en los valores importan "
        "las mayúsculas)"
    )
    assert invalid["tlsrpt_result_type"] == "sts-policy-invalid"
    assert invalid["fix"].startswith("mode: enforce\nSirva este fichero en https://mta-sts.")
    assert "    mode: testing" in invalid["fix"]  # the suggested policy, untranslated


@pytest.mark.lab
def test_certificate_and_network_details_in_spanish(
    lab_world: World, spanish_domains: dict[str, str]
) -> None:
    """The details inside a finding (what the TLS stack, the socket or the clock said) are
    Spanish too: an expired MX certificate, an MX that refuses, one that never greets, a
    policy host that refuses."""
    expired = spanish_domains["VALID-mx-expired"]
    found = by_code(run_json(lab_world, expired, "--lang", "es"))["mx-certificate-expired"]
    assert found["message"].startswith(f"MX mx1.{expired}: El certificado caducó el ")
    refused = spanish_domains["VALID-mx-refused"]
    found = by_code(run_json(lab_world, refused, "--lang", "es"))["mx-unreachable"]
    assert "(no se puede conectar con 127.0.0.254 en el puerto " in found["message"]
    assert "cannot connect" not in found["message"]
    silent = spanish_domains["VALID-mx-silent"]
    found = by_code(run_json(lab_world, silent, "--lang", "es"))["mx-unreachable"]
    assert "(sin respuesta de 127.0.0.16 en " in found["message"]
    assert found["message"].endswith(" s (esperando el saludo))."), found["message"]
    host = spanish_domains["FETCH_ERROR-refused"]
    found = by_code(run_json(lab_world, host, "--lang", "es"))["policy-fetch-connect-failed"]
    assert f"(no se puede conectar con mta-sts.{host}: 127.0.0.254:" in found["message"]
