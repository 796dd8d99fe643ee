"""Issue 13: `mtasts reports fetch-imap` in the chosen language (`mtasts --lang es`,
MTASTS_LANG, the locale): its help, its refusals and the IMAP errors it explains; in
English as before. No IMAP server is needed: a closed loopback port refuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.lab.ports import free_port


def fetch(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mtasts", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "300",
             "LANG": "C.UTF-8", **env},
    )  # fmt: skip


def test_fetch_imap_speaks_the_chosen_language(tmp_path: Path) -> None:
    where = f"127.0.0.1:{free_port(['127.0.0.1'])}"  # nothing listens there
    host, port = where.split(":")
    command = ["reports", "fetch-imap", "--host", host, "--port", port, "--user", "x",
               "--security", "plain", "--data-dir", str(tmp_path / "store")]  # fmt: skip
    english = fetch(tmp_path, *command)
    assert english.returncode == 2
    assert english.stderr == (
        "no IMAP password: give --password-file FILE or set $MTASTS_IMAP_PASSWORD (never on "
        "the command line, where other users can read it)\n"
    )
    spanish = fetch(tmp_path, "--lang", "es", *command)
    assert spanish.returncode == 2
    assert spanish.stderr == (
        "no hay contraseña IMAP: indique --password-file FICHERO o defina "
        "$MTASTS_IMAP_PASSWORD (nunca en la línea de órdenes, donde otros usuarios pueden "
        "leerla)\n"
    )
    english = fetch(tmp_path, *command, MTASTS_IMAP_PASSWORD="x")
    assert english.returncode == 1
    assert english.stderr.splitlines()[-1] == (
        f"IMAP error: connection to {where} refused: is the IMAP server running on that port?"
    )
    spanish = fetch(tmp_path, *command, MTASTS_IMAP_PASSWORD="x", MTASTS_LANG="es")
    assert spanish.returncode == 1
    assert spanish.stderr.splitlines()[-1] == (
        f"error IMAP: conexión rechazada por {where}: ¿funciona el servidor IMAP en ese puerto?"
    )
    help_text = fetch(tmp_path, "--lang", "es", "reports", "fetch-imap", "--help").stdout
    assert "Recoge los informes TLS de un buzón IMAP" in help_text
    assert "Fetch TLS reports" not in help_text
    help_text = fetch(tmp_path, "reports", "fetch-imap", "--help").stdout
    assert "Fetch TLS reports from an IMAP mailbox (the rua=mailto: address) into the" in (
        help_text
    )
