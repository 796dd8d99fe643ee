"""`mtasts policyd` and `mtasts policyd query` against the lab."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from mtasts.cli import app
from mtasts.sender.socketmap import netstring
from tests.lab import World
from tests.lab.ports import free_port

runner = CliRunner()


def _lab_args(world: World, data_dir: Path) -> list[str]:
    return [
        "--nameserver",
        world.nameserver,
        "--ca-file",
        world.ca_file,
        "--https-port",
        str(world.https_port),
        "--data-dir",
        str(data_dir),
    ]


def test_query_prints_answer_cached_policy_and_why(lab_world: World, tmp_path: Path) -> None:
    good, broken = "good.query-cli.test", "broken.query-cli.test"
    lab_world.add_domain(good)
    lab_world.add_domain(broken, https="expired")
    args = _lab_args(lab_world, tmp_path)
    result = runner.invoke(app, ["policyd", "query", good, *args])
    assert result.exit_code == 0, result.output
    assert f"answer:  OK secure match=mx1.{good} servername=hostname" in result.output
    assert "cached policy: id 20240601T000000" in result.output
    assert "mode: enforce" in result.output
    result = runner.invoke(app, ["policyd", "query", broken, *args])
    assert "answer:  NOTFOUND" in result.output
    assert "outcome: FETCH_ERROR policy-fetch-tls-certificate-expired" in result.output
    assert "why (diagnosis findings):" in result.output
    assert "cached policy: none" in result.output
    # The cache is persistent: with the record gone, the policy is still in force.
    lab_world.zone.remove(f"_mta-sts.{good}")
    result = runner.invoke(app, ["policyd", "query", good, *args])
    assert f"answer:  OK secure match=mx1.{good}" in result.output
    assert "outcome: NONE sts-record-missing" in result.output
    assert "the cached policy stays in force until" in result.output


def test_query_speaks_spanish(lab_world: World, tmp_path: Path) -> None:
    """Issue 13: `--lang es` (or MTASTS_LANG=es) gives the explanation in Spanish; the
    answer Postfix gets, the codes and the policy text stay as they are."""
    good, broken = "good.query-es.test", "broken.query-es.test"
    lab_world.add_domain(good)
    lab_world.add_domain(broken, https="expired")
    args = _lab_args(lab_world, tmp_path)
    result = runner.invoke(app, ["policyd", "query", good, *args, "--lang", "es"])
    assert result.exit_code == 0, result.output
    assert f"respuesta: OK secure match=mx1.{good} servername=hostname" in result.output
    assert "resultado: VALID policy-enforce: política con id 20240601T000000: modo " in (
        result.output
    )
    assert "política en caché: id 20240601T000000, descargada el " in result.output
    assert "mode: enforce" in result.output  # the policy text, untranslated
    result = runner.invoke(
        app, ["policyd", "query", broken, *args], env={"MTASTS_LANG": "es", "LC_ALL": None}
    )
    assert result.exit_code == 0, result.output
    assert "respuesta: NOTFOUND" in result.output
    assert (
        f"resultado: FETCH_ERROR policy-fetch-tls-certificate-expired: El certificado de "
        f"mta-sts.{broken} ha caducado (certificado de mta-sts.{broken} rechazado: el "
        "certificado ha caducado)."
    ) in result.output
    assert "por qué (hallazgos del diagnóstico):" in result.output
    assert "política en caché: ninguna" in result.output
    for english in ("answer:", "outcome:", "cached policy", "why (", "rejected", "has expired"):
        assert english not in result.output
    bad = runner.invoke(app, ["policyd", "query", good, *args, "--lang", "fr"])
    assert bad.exit_code == 2


def test_bad_settings_are_usage_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["policyd", "--listen", "nonsense", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "listen" in result.output
    config = tmp_path / "policyd.toml"
    config.write_text('testing_answer = "maybe"\n')
    result = runner.invoke(app, ["policyd", "--config", str(config)])
    assert result.exit_code == 2


def test_serving_options_before_query_are_refused_not_ignored(tmp_path: Path) -> None:
    # `policyd --metrics ... query D` would serve no metrics: a usage error, not silence
    for options in (["--listen", "127.0.0.1:9"], ["--metrics", "127.0.0.1:9"], ["--verbose"]):
        argv = ["policyd", *options, "--data-dir", str(tmp_path), "query", "example.test"]
        result = runner.invoke(app, argv)
        assert result.exit_code == 2, (options, result.output)
        assert f"{options[0]}: only for serving, not for query" in result.output
    # what both take is still welcome before `query` (no lookup: not a domain name)
    result = runner.invoke(app, ["policyd", "--data-dir", str(tmp_path), "query", "bad..name"])
    assert result.exit_code == 0 and "only for serving" not in result.output


def _reply(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b","):
        chunk = sock.recv(4096)
        assert chunk, "connection closed"
        data += chunk
    return data


def test_a_sigterm_right_after_the_ready_line_is_a_clean_stop(tmp_path: Path) -> None:
    # a service manager may stop what it has just started: the handlers are in place
    # before the ready line is written, so this is exit 0, never death by SIGTERM (-15)
    port = free_port(["127.0.0.1"])
    mtasts = str(Path(sys.executable).with_name("mtasts"))
    argv = [mtasts, "policyd", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path)]
    for _ in range(3):
        with subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) as proc:
            assert proc.stderr is not None
            assert "socketmap on" in proc.stderr.readline()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0


def test_serve_process(lab_world: World, tmp_path: Path) -> None:
    d = "serve.policyd-cli.test"
    lab_world.add_domain(d)
    port, metrics_port = free_port(["127.0.0.1"]), free_port(["127.0.0.1"])
    mtasts = str(Path(sys.executable).with_name("mtasts"))
    proc = subprocess.Popen(
        [
            mtasts,
            "policyd",
            "--listen",
            f"127.0.0.1:{port}",
            "--metrics",
            f"127.0.0.1:{metrics_port}",
            *_lab_args(lab_world, tmp_path),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert f"socketmap on 127.0.0.1:{port}" in line, line
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(netstring(f"postfix {d}".encode()))
            assert _reply(sock) == netstring(
                f"OK secure match=mx1.{d} servername=hostname".encode()
            )
        with socket.create_connection(("127.0.0.1", metrics_port), timeout=20) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            body = b""
            while chunk := sock.recv(65536):
                body += chunk
        assert b'mtasts_policyd_answers_total{kind="OK"} 1' in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        log = proc.stderr.read()
        assert f"{d}: VALID policy-enforce" in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_policyd_does_not_load_the_rest_of_the_cli() -> None:
    """The daemon runs next to every Postfix: `mtasts policyd` skips the hosting, reports
    and dashboard commands (and SQLAlchemy, with the default SQLite cache)."""
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print(sorted(m for m in ('mtasts.cli', 'sqlalchemy', "
        "'fastapi', 'mtasts.web') if m in sys.modules)))\n"
        "sys.argv = ['mtasts', 'policyd', '--help']\n"
        "from mtasts.entry import main\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_query_escapes_control_characters_from_the_network(
    lab_world: World, tmp_path: Path
) -> None:
    """A policy host must not drive the admin's terminal through `policyd query`."""
    d = "escape.query-cli.test"
    policy = (
        f"version: STSv1\r\nmode: enforce\r\nmx: mx1.{d}\r\nmax_age: 86400\r\n"
        "x-note: \x1b[2Jcleared\r\n"
    )
    lab_world.add_domain(d, policy=policy)
    result = runner.invoke(app, ["policyd", "query", d, *_lab_args(lab_world, tmp_path)])
    assert result.exit_code == 0, result.output
    assert "x-note: \\x1b[2Jcleared" in result.output
    assert "\x1b" not in result.output
