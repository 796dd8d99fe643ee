"""Issue 13: `mtasts policyd --help` and the daemon's start-up line speak the language
chosen as for the rest of the CLI (``--lang``, then MTASTS_LANG, then the locale); in
English they read as before. Run as real processes: what an operator sees is tested."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mtasts.sender.socketmap import netstring
from tests.lab.ports import free_port

ENGLISH_HELP = [
    "usage: mtasts policyd [-h] [--listen HOST:PORT|unix:PATH]",
    "The sending side: an MTA-STS policy server for Postfix (socketmap), a drop-in for",
    "options:",
    "  -h, --help            show this help message and exit",
    "HOST:PORT or unix:PATH of the socketmap (default 127.0.0.1:8461).",
    "  --verbose, -v         Log every lookup.",
    "commands:",
    "Postfix main.cf: smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix",
]
SPANISH_HELP = [
    "uso: mtasts policyd [-h] [--listen HOST:PORT|unix:PATH]",
    "El lado remitente: un servidor de políticas MTA-STS para Postfix (socketmap) que",
    "opciones:",
    "  -h, --help            muestra esta ayuda y termina",
    "HOST:PUERTO o unix:RUTA del socketmap (por defecto 127.0.0.1:8461).",
    "  --verbose, -v         Registra en el log cada consulta.",
    "órdenes:",
    "En el main.cf de Postfix: smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix",
]


def policyd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mtasts", "policyd", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "100", **env},
    )


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--help", "--lang", "es"], {"LANG": "C.UTF-8"}),
        (["--lang=es", "--help"], {"LANG": "C.UTF-8"}),
        (["--help"], {"MTASTS_LANG": "es"}),
        (["--help"], {"LANG": "es_ES.UTF-8"}),
    ],
)
def test_help_in_spanish(args: list[str], env: dict[str, str]) -> None:
    out = policyd(*args, env=env)
    assert out.returncode == 0, out.stderr
    for line in SPANISH_HELP:
        assert line in out.stdout, out.stdout
    for line in ENGLISH_HELP:
        assert line not in out.stdout


def test_help_in_spanish_through_the_main_command_line() -> None:
    """`mtasts --lang es policyd --help`: the main CLI's option hands its choice on."""
    out = subprocess.run(
        [sys.executable, "-m", "mtasts", "--lang", "es", "policyd", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "100", "LANG": "C.UTF-8"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("uso: mtasts policyd [-h]"), out.stdout


def test_help_in_english_is_unchanged() -> None:
    out = policyd("--help", env={"LANG": "C.UTF-8"})
    assert out.returncode == 0, out.stderr
    for line in ENGLISH_HELP:
        assert line in out.stdout, out.stdout
    query = policyd("query", "--help", "--lang", "en", env={"MTASTS_LANG": "es"})
    assert query.stdout.startswith("usage: mtasts policyd query [-h] [--data-dir DIR]")
    assert "positional arguments:\n  DOMAIN                The mail domain Postfix would" in (
        query.stdout
    )
    bad = policyd("query", env={"LANG": "C.UTF-8"})
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1] == (
        "mtasts policyd query: error: the following arguments are required: DOMAIN"
    )
    bad = policyd("query", env={"LANG": "es_ES.UTF-8"})
    assert bad.stderr.startswith("uso: mtasts policyd query [-h]")
    assert bad.stderr.splitlines()[-1].startswith("mtasts policyd query: error: ")
    bad = policyd("--lang", "fr", env={"LANG": "C.UTF-8"})
    assert (bad.returncode, bad.stderr) == (2, "mtasts: error: --lang: 'fr' (en or es)\n")


def start_up_line(tmp_path: Path, *lang: str) -> str:
    port = free_port(["127.0.0.1"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "mtasts", "policyd", "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(tmp_path), *lang],
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        # one exchange: the daemon handles SIGTERM once its loop serves requests
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(netstring(b"postfix"))
            assert sock.recv(4096)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    cache = f"sqlite:///{tmp_path}/policyd.db"
    return line.replace(str(port), "PORT").replace(cache, "CACHE")


def test_start_up_line_in_the_chosen_language(tmp_path: Path) -> None:
    english = start_up_line(tmp_path)
    assert re.fullmatch(
        r"mtasts policyd: socketmap on 127\.0\.0\.1:PORT \(cache CACHE, event loop \w+\)\n",
        english,
    ), english
    spanish = start_up_line(tmp_path, "--lang", "es")
    assert re.fullmatch(
        r"mtasts policyd: socketmap en 127\.0\.0\.1:PORT \(caché CACHE, bucle de eventos \w+\)\n",
        spanish,
    ), spanish


def test_usage_errors_speak_spanish_and_english_is_argparses_own() -> None:
    """argparse's reasons for a usage error (through the standard library's gettext) follow
    --lang es; in English they are argparse's own words, unchanged."""
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    cases = (
        (["query"], "faltan estos argumentos: DOMAIN", "the following arguments are required"),
        (["--bogus"], "argumentos no reconocidos: --bogus", "unrecognized arguments"),
        (["--https-port", "x"], "valor no válido para int: 'x'", "invalid int value"),
    )
    for argv, spanish, english in cases:
        for lang, expected, absent in (
            (["--lang", "es"], spanish, english),
            ([], english, spanish),
        ):
            proc = subprocess.run(
                [sys.executable, "-m", "mtasts", "policyd", *lang, *argv],
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
                check=False,
            )
            assert proc.returncode == 2, proc.stderr
            assert expected in proc.stderr and absent not in proc.stderr, proc.stderr
