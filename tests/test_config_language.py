"""Issue 13: a bad setting is explained in the language of the command that reads it
(``--lang``, ``MTASTS_LANG``, the locale), and in English exactly as before otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mtasts import i18n
from mtasts.config import ConfigError, load_settings
from mtasts.sender.settings import load_policyd_settings

CASES = [
    (
        'zonee = "x"\n',
        {},
        "{path}: unknown setting 'zonee' (known: ",
        "{path}: ajuste desconocido 'zonee' (los conocidos son: ",
    ),
    (
        "",
        {"MTASTS_KEEP_UNSIGNED_REPORTS": "maybe"},
        "MTASTS_KEEP_UNSIGNED_REPORTS: expected true or false (got 'maybe')",
        "MTASTS_KEEP_UNSIGNED_REPORTS: se esperaba true o false (vale 'maybe')",
    ),
    (
        # Python's own words in English (unchanged); Spanish says what was expected
        "sync_interval = 'soon'\n",
        {},
        "sync_interval: could not convert string to float: 'soon' (got 'soon')",
        "sync_interval: se esperaba un número (vale 'soon')",
    ),
    (
        "",
        {"MTASTS_LISTEN": "8000"},
        "listen: expected HOST:PORT, e.g. 127.0.0.1:8000, got '8000'",
        "listen: se esperaba HOST:PUERTO, p. ej. 127.0.0.1:8000, pero vale '8000'",
    ),
    (
        'trusted_proxies = ["caddy"]\n',
        {},
        "trusted_proxies: 'caddy' is not a network in CIDR form "
        "('caddy' does not appear to be an IPv4 or IPv6 network); e.g. 127.0.0.1/32 or ::1/128",
        "trusted_proxies: 'caddy' no es una red en notación CIDR "
        "('caddy' does not appear to be an IPv4 or IPv6 network); p. ej. 127.0.0.1/32 o ::1/128",
    ),
    (
        'alert_language = "fr"\n',
        {},
        "alert_language: expected one of en, es, got 'fr'",
        "alert_language: se esperaba uno de en, es, pero vale 'fr'",
    ),
    (
        "dns_secondaries = ['ns2']\n",
        {},
        "dns_secondaries: 'ns2' is not IP[:PORT] (e.g. 192.0.2.53 or [2001:db8::53]:53)",
        "dns_secondaries: 'ns2' no tiene la forma IP[:PUERTO] (p. ej. 192.0.2.53 o "
        "[2001:db8::53]:53)",
    ),
    (
        "report_max_bytes = 0\n",
        {},
        "report_max_bytes: must be positive, got 0",
        "report_max_bytes: debe ser positivo, pero vale 0",
    ),
]


@pytest.mark.parametrize(("text", "env", "english", "spanish"), CASES)
def test_bad_settings_in_both_languages(
    tmp_path: Path, text: str, env: dict[str, str], english: str, spanish: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env)
    assert str(info.value).startswith(english.format(path=path)), str(info.value)
    with i18n.use("es"), pytest.raises(ConfigError) as info:
        load_settings(path, env)
    assert str(info.value).startswith(spanish.format(path=path)), str(info.value)


def test_policyd_settings_in_both_languages() -> None:
    env = {"MTASTS_POLICYD_LISTEN": "nowhere"}
    english = "listen: expected HOST:PORT or unix:PATH, e.g. 127.0.0.1:8461, got 'nowhere'"
    with pytest.raises(ConfigError) as info:
        load_policyd_settings(None, env)
    assert str(info.value) == english
    with i18n.use("es"), pytest.raises(ConfigError) as info:
        load_policyd_settings(None, env)
    assert str(info.value) == (
        "listen: se esperaba HOST:PUERTO o unix:RUTA, p. ej. 127.0.0.1:8461, pero vale 'nowhere'"
    )
    with i18n.use("es"), pytest.raises(ConfigError) as info:
        load_policyd_settings(None, {"MTASTS_POLICYD_CACHE_SIZE": "0"})
    assert str(info.value) == "cache_size: debe valer al menos 1"


def test_commands_say_a_bad_setting_in_the_chosen_language(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    env["MTASTS_DATA_DIR"] = str(tmp_path / "store")
    env["MTASTS_TXT_TTL"] = "-5"
    argv = [sys.executable, "-m", "mtasts", "reports", "summary", "example.com"]
    run = {"capture_output": True, "text": True, "timeout": 120, "check": False}
    english = subprocess.run(argv, env=env, **run)  # type: ignore[call-overload]
    assert english.returncode == 2
    assert english.stderr == (
        "mtasts: error: configuration: txt_ttl: expected seconds >= 0, got -5\n"
    )
    spanish = subprocess.run([*argv, "--lang", "es"], env=env, **run)  # type: ignore[call-overload]
    assert spanish.returncode == 2
    assert spanish.stderr == (
        "mtasts: error: configuración: txt_ttl: se esperaban segundos >= 0, pero vale -5\n"
    )
    policyd = [sys.executable, "-m", "mtasts", "policyd", "query", "example.com"]
    env_policyd = {**env, "MTASTS_POLICYD_BACKOFF_MIN": "0", "MTASTS_LANG": "es"}
    r = subprocess.run(policyd, env=env_policyd, **run)  # type: ignore[call-overload]
    assert r.returncode == 2
    assert r.stderr == (
        "mtasts: error: configuración: backoff_min debe ser > 0 y backoff_max >= backoff_min\n"
    )
