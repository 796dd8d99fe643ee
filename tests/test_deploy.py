"""The shipped deployment files are what the code accepts: the example settings load and
start a server, the systemd unit runs a real `mtasts` command line."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mtasts.config import load_settings
from tests.lab.ports import free_port
from tests.lab.require import require

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_example_settings_load() -> None:
    s = load_settings(DEPLOY / "mtasts.toml", {})
    assert s.zone_name == "sts.provider.example"
    assert s.policy_host_addresses == ("192.0.2.10", "2001:db8::10")
    assert s.effective_database_url.startswith("postgresql://")
    assert s.smtp_listen == "0.0.0.0:25"
    assert s.trusted_proxies == ("127.0.0.1/32", "::1/128")  # Caddy on this host
    # issue 16: the zone publishes only addresses the DNS server listens on (v4 and v6),
    # and the second name server's own
    listen = [host for host, _ in s.dns_listen_addresses()]
    assert listen == ["192.0.2.53", "2001:db8::53"]
    glue = s.zone_ns_glue(strict=True)
    assert glue["ns1.sts.provider.example"] == tuple(listen)
    assert glue["ns2.sts.provider.example"] == ("198.51.100.53", "2001:db8:1::53")
    assert set(s.dns_secondaries) == {"198.51.100.53", "[2001:db8:1::53]"}
    assert s.tlsrpt_txt("example.com") == (
        "v=TLSRPTv1; rua=mailto:tlsrpt@sts.provider.example,"
        "https://policy-host.sts.provider.example/tlsrpt/example.com"
    )


def test_example_settings_start_a_server(tmp_path: Path) -> None:
    """The example file with only the host-specific parts overridden by environment."""
    port = free_port()
    env = {
        **os.environ,
        "MTASTS_DATA_DIR": str(tmp_path),
        "MTASTS_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
        "MTASTS_LISTEN": f"127.0.0.1:{port}",
        "MTASTS_DNS_LISTEN": "",
        "MTASTS_SMTP_LISTEN": "",
        "MTASTS_MONITOR_INTERVAL": "0",
    }
    cmd = [sys.executable, "-m", "mtasts", "serve", "--config", str(DEPLOY / "mtasts.toml")]
    with (tmp_path / "log").open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120  # generous: a loaded machine
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, (tmp_path / "log").read_text()
                assert time.monotonic() < deadline, "no answer"
                time.sleep(0.1)
        assert health.json()["status"] == "ok"
        text = (tmp_path / "log").read_text()
        assert "zone sts.provider.example" in text
        assert "authoritative DNS" not in text and "receiver" not in text  # overridden off
    finally:
        proc.terminate()
        proc.wait(10)


def test_systemd_unit_runs_serve_with_the_config() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "mtasts.service")
    exec_start = shlex.split(unit["Service"]["ExecStart"])
    assert exec_start[1:] == ["serve", "--config", "/etc/mtasts/mtasts.toml"]
    assert exec_start[0].endswith("/bin/mtasts")
    assert unit["Service"]["Restart"] == "always"
    assert "CAP_NET_BIND_SERVICE" in unit["Service"]["AmbientCapabilities"]
    assert unit["Service"]["UMask"] == "0077"  # data directory 0700, files 0600
    assert unit["Service"]["StateDirectoryMode"] == "0700"
    help_text = subprocess.run(
        [sys.executable, "-m", "mtasts", *exec_start[1:2], "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "120"},
    ).stdout
    assert "--config" in help_text


def test_knot_secondary_config_matches_the_primary() -> None:
    """deploy/knot.conf is valid for knotd and describes the secondary mtasts.toml names:
    the same key, the primary at mtasts' listen addresses, listening (and transferring
    from) the addresses the zone publishes for ns2. tests/system/test_knot_secondary.py
    runs it."""
    text = (DEPLOY / "knot.conf").read_text()
    s = load_settings(DEPLOY / "mtasts.toml", {})

    def addresses(key: str) -> list[list[str]]:
        found = re.findall(rf"^\s+{key}: \[(.*)\]$", text, re.MULTILINE)
        return [[a.strip().split("@")[0] for a in f.split(",")] for f in found]

    [listen] = addresses("listen")
    [primary, notify_from] = addresses("address")
    [via] = addresses("via")
    assert primary == notify_from == [host for host, _ in s.dns_listen_addresses()]
    assert listen == via == list(s.zone_ns_glue()["ns2.sts.provider.example"])
    assert {a.strip("[]") for a in s.dns_secondaries} == set(listen)
    assert f"id: {s.dns_tsig_name}\n" in text and f"secret: {s.dns_tsig_secret}\n" in text
    assert f"domain: {s.zone_name}\n" in text
    knotc = shutil.which("knotc") or "/usr/sbin/knotc"
    require(Path(knotc).exists(), "knotc (Debian package knot) is not installed")
    check = subprocess.run(
        [knotc, "-c", str(DEPLOY / "knot.conf"), "conf-check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
