"""Settings: defaults < TOML file < MTASTS_* environment < command-line options."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtasts.config import DEFAULT_ZONE, ConfigError, Settings, default_data_dir, load_settings


def test_defaults_are_the_embedded_set_up(tmp_path: Path) -> None:
    s = load_settings(env={"XDG_DATA_HOME": str(tmp_path)})
    assert s == Settings(data_dir=tmp_path / "mtasts")
    assert s.effective_database_url == f"sqlite:///{tmp_path}/mtasts/mtasts.db"
    assert s.listen_host_port() == ("127.0.0.1", 8000)
    assert s.zone_name == DEFAULT_ZONE
    assert s.policy_host == f"policy-host.{DEFAULT_ZONE}"
    assert s.effective_txt_delay == 2 * s.sync_interval + 1


def test_file_then_environment_then_options(tmp_path: Path) -> None:
    path = tmp_path / "mtasts.toml"
    path.write_text(
        'zone = "STS.Provider.Example."\n'
        'listen = "0.0.0.0:9000"\n'
        'policy_host_addresses = ["192.0.2.10", "2001:db8::10"]\n'
        "sync_interval = 5\n"
    )
    env = {"MTASTS_LISTEN": "127.0.0.1:9001", "MTASTS_NAMESERVERS": "127.0.0.53, 127.0.0.54:5353"}
    s = load_settings(path, env, data_dir=None, sync_interval="1.5")
    assert s.zone_name == "sts.provider.example"
    assert s.listen == "127.0.0.1:9001"  # environment beats the file
    assert s.policy_host_addresses == ("192.0.2.10", "2001:db8::10")
    assert s.nameservers == ("127.0.0.53", "127.0.0.54:5353")
    assert s.sync_interval == 1.5  # the option beats both
    assert s.data_dir == default_data_dir(env)  # None options are ignored
    assert load_settings(env={"MTASTS_KEEP_UNSIGNED_REPORTS": "no"}).keep_unsigned_reports is False
    assert load_settings(env={"MTASTS_ALERT_LANGUAGE": "es"}).alert_language == "es"
    assert s.alert_language == "en"
    # no report receiver, no MX, no mailbox of the operator's: the https: rua alone
    assert s.tlsrpt_txt("example.com") == (
        "v=TLSRPTv1; rua=https://policy-host.sts.provider.example/tlsrpt/example.com"
    )


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('database_url = "postgresql://mtasts@db/mtasts"\n')
    s = load_settings(env={"MTASTS_CONFIG": str(path)})
    assert s.effective_database_url == "postgresql://mtasts@db/mtasts"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ('zonee = "x"\n', {}, "unknown setting 'zonee'"),
        ("zone = [\n", {}, "not valid TOML"),
        ('sync_interval = "soon"\n', {}, "sync_interval"),
        ("", {"MTASTS_LISTEN": "8000"}, "HOST:PORT"),
        ("", {"MTASTS_DNS_LISTEN": "127.0.0.1:99999"}, "dns_listen"),
        ("zone = 5\n", {}, "zone"),
        ("", {"MTASTS_KEEP_UNSIGNED_REPORTS": "maybe"}, "true or false"),
        ("", {"MTASTS_SMTP_LISTEN": "25"}, "smtp_listen"),
        ('trusted_proxies = ["127.0.0.1/32", "caddy"]\n', {}, "trusted_proxies: 'caddy'"),
        ("", {"MTASTS_TRUSTED_PROXIES": "10.0.0.0/33"}, "trusted_proxies"),
        ("db_timeout = 0\n", {}, "db_timeout"),
        ('alert_language = "fr"\n', {}, "alert_language: expected one of en, es, got 'fr'"),
    ],
)
def test_bad_settings_say_which_and_why(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, env)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "nope.toml", {})


def test_trusted_proxies_from_the_environment() -> None:
    s = load_settings(None, {"MTASTS_TRUSTED_PROXIES": "127.0.0.1/32, ::1/128"})
    assert s.trusted_proxies == ("127.0.0.1/32", "::1/128")
    assert load_settings(None, {}).trusted_proxies == ()  # nobody's headers by default
