"""`mtasts serve` and `mtasts tokens` as a user runs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tests.lab.ports import free_port

MTASTS = [sys.executable, "-m", "mtasts"]


def test_first_start_prints_a_working_admin_token_once(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "MTASTS_ZONE": "sts.test.example", "COLUMNS": "60"}
    cmd = [*MTASTS, "serve", "--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{port}"]
    log = tmp_path / "serve.log"

    def start() -> tuple[subprocess.Popen[bytes], str]:
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120  # generous: a loaded machine
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success:
                    return proc, log.read_text()
            except httpx.TransportError:
                time.sleep(0.1)
        proc.kill()
        raise AssertionError(f"serve did not start: {log.read_text()}")

    proc, text = start()
    try:
        tokens = re.findall(r"mtasts_[A-Za-z0-9_-]{20,}", text)
        assert tokens, text
        token = tokens[0]
        assert (
            f"curl -H 'Authorization: Bearer {token}' http://127.0.0.1:{port}/api/v1/domains"
            in text
        )
        r = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/domains", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200 and r.json() == []
        assert "zone sts.test.example" in text
        password = re.search(r"dashboard password: (\S+)", text)
        assert password, text
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as browser:
            page = browser.get("/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert csrf, page.text
            signed_in = browser.post(
                "/login",
                data={"email": "admin@localhost", "password": password[1], "csrf_token": csrf[1]},
                headers={"Origin": f"http://127.0.0.1:{port}"},
            )
            assert signed_in.status_code == 303, signed_in.text
            assert "Domains" in browser.get("/").text
    finally:
        proc.terminate()
        proc.wait(10)
    assert (tmp_path / "mtasts.db").exists()
    proc, text = start()  # second start: no new token
    proc.terminate()
    proc.wait(10)
    assert "mtasts_" not in text.replace("mtasts serve", "")


def test_start_up_lines_speak_the_operators_language(tmp_path: Path) -> None:
    """Issue 13: with MTASTS_LANG=es the start-up lines are Spanish; the API still answers
    a client that sends no Accept-Language in English."""
    port = free_port()
    env = {**os.environ, "MTASTS_ZONE": "sts.test.example", "MTASTS_LANG": "es", "COLUMNS": "200"}
    cmd = [*MTASTS, "serve", "--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{port}"]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        # until it answers (or dies); the bound only keeps a broken start from hanging
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).is_success:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        text = log.read_text()
        base = f"http://127.0.0.1:{port}"
        assert f"mtasts serve: {base}  (almacén sqlite:///" in text, text
        assert "zona sts.test.example; 0 dominios servidos" in text
        assert f"Panel: {base}/   Documentación de la API: {base}/api/docs" in text
        assert "Primer arranque: se ha creado el usuario administrador admin@localhost" in text
        assert re.search(r"contraseña del panel: \S+", text)
        assert "Nueva contraseña cuando quiera: mtasts users set-password" in text
        refused = httpx.get(f"{base}/api/v1/domains").json()["error"]
        assert refused["message"].startswith("Send an API token as")
        spanish = httpx.get(f"{base}/api/v1/domains", headers={"Accept-Language": "es"})
        assert spanish.json()["error"]["message"].startswith("Envíe un token de la API")
    finally:
        proc.terminate()
        proc.wait(10)


def test_tokens_create_prints_only_the_token(tmp_path: Path) -> None:
    out = subprocess.run(
        [*MTASTS, "tokens", "create", "--email", "Ops@Example.org", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert re.fullmatch(r"mtasts_[A-Za-z0-9_-]{40,}\n", out.stdout)
    bad = subprocess.run(
        [*MTASTS, "tokens", "create", "--email", "nobody", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert "not an e-mail address" in bad.stderr


def test_bad_configuration_exits_2_with_the_reason(tmp_path: Path) -> None:
    r = subprocess.run(
        [*MTASTS, "serve", "--data-dir", str(tmp_path), "--listen", "nowhere"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "listen: expected HOST:PORT" in r.stderr


def test_serve_help_explains_the_options() -> None:
    r = subprocess.run(
        [*MTASTS, "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "120"},
    )
    for option in ("--data-dir", "--database-url", "--listen", "--dns", "--zone", "--config"):
        assert option in r.stdout
