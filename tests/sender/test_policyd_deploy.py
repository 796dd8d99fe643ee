"""The shipped policyd files are what the code accepts: the example settings load and
start a daemon that answers, the systemd unit runs a real command line."""

from __future__ import annotations

import configparser
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

from mtasts.sender.settings import PolicydSettings, load_policyd_settings
from mtasts.sender.socketmap import netstring
from tests.lab.ports import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_example_settings_load() -> None:
    s = load_policyd_settings(DEPLOY / "policyd.toml", {})
    assert s.listen == "127.0.0.1:8461"  # PMR's port: main.cf stays as it is
    assert s.data_dir == Path("/var/lib/mtasts-policyd")
    assert s.effective_database_url == "sqlite:////var/lib/mtasts-policyd/policyd.db"
    assert s.metrics_listen == "127.0.0.1:9461"
    defaults = PolicydSettings()
    assert (s.cache_size, s.negative_ttl, s.testing_answer) == (
        defaults.cache_size,
        defaults.negative_ttl,
        defaults.testing_answer,
    )


def test_example_settings_start_a_daemon(tmp_path: Path) -> None:
    port, metrics = free_port(), free_port()
    env = {
        **os.environ,
        "MTASTS_POLICYD_DATA_DIR": str(tmp_path),
        "MTASTS_POLICYD_LISTEN": f"127.0.0.1:{port}",
        "MTASTS_POLICYD_METRICS_LISTEN": f"127.0.0.1:{metrics}",
    }
    cmd = [sys.executable, "-m", "mtasts", "policyd", "--config", str(DEPLOY / "policyd.toml")]
    with (tmp_path / "log").open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120  # generous: a loaded machine
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "log").read_text()
                assert time.monotonic() < deadline, "no answer"
                time.sleep(0.1)
        with sock:
            # Postfix's lookup of a parent domain: answered without any network work.
            sock.sendall(netstring(b"postfix .example.net"))
            assert sock.recv(100) == netstring(b"NOTFOUND ")
        assert (tmp_path / "policyd.db").exists()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_systemd_unit_runs_policyd_with_the_config() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "mtasts-policyd.service")
    exec_start = shlex.split(unit["Service"]["ExecStart"])
    assert exec_start[1:] == ["policyd", "--config", "/etc/mtasts/policyd.toml"]
    assert exec_start[0].endswith("/bin/mtasts")
    assert unit["Service"]["Restart"] == "always"
    help_text = subprocess.run(
        [sys.executable, "-m", "mtasts", "policyd", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "120"},
    ).stdout
    assert "--config" in help_text
