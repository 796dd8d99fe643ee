"""A real `mtasts serve` application on a loopback port, in a background thread, for the
hosting tests: uvicorn with the same app, store and settings as the command."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from tests.lab import World
from tests.lab.ports import free_port
from tests.lab.trap import LAB_NETWORKS

from mtasts.config import Settings
from mtasts.hosting.tenants import HostingService
from mtasts.web.serve import build_app, open_service, uvicorn_config

ZONE = "sts.lab.test"  # the service zone of the hosting tests


def lab_settings(data_dir: Path, world: World, **overrides: Any) -> Settings:
    """Settings of a `mtasts serve` hosting in ZONE, checking against the lab ``world``
    (its DNS, CA and SMTP servers, on the LAB_NETWORKS its probes may reach), with quick
    sync and no background re-verification."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "zone": ZONE,
        "nameservers": (world.nameserver,),
        "ca_file": world.ca_file,
        "smtp_port": world.smtp_port,
        "check_timeout": 5.0,
        "probe_allowed_networks": LAB_NETWORKS,
        "sync_interval": 0.2,
        "verify_interval": 3600,
        **overrides,
    }
    return Settings(**values)


@dataclass
class Running:
    service: HostingService
    base: str
    admin_token: str
    verify: ssl.SSLContext | bool = True  # trusting the test CA when serving HTTPS

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        return httpx.Client(
            base_url=self.base, headers=headers, timeout=60, verify=self.verify, **kwargs
        )

    def policy(self, domain: str, method: str = "GET") -> httpx.Response:
        return httpx.request(
            method,
            f"{self.base}/.well-known/mta-sts.txt",
            headers={"Host": f"mta-sts.{domain}"},
            timeout=10,
            verify=self.verify,
        )


@contextmanager
def running(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    tls: tuple[str, str] | None = None,
    ca_file: str | None = None,
    port: int | None = None,
) -> Iterator[Running]:
    """Start the app of ``settings`` on a free port of ``host`` (HTTPS with ``tls`` =
    (chain file, key file), clients trusting ``ca_file``); stop it on exit."""
    port = port or free_port([host])
    settings = Settings(**{**settings.__dict__, "listen": f"{host}:{port}"})
    service = open_service(settings)
    token = service.first_admin_token() or service.create_token("admin@localhost", admin=True)
    config = uvicorn_config(
        build_app(service),
        host,
        port,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # generous: a loaded machine
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("mtasts app did not start")
        time.sleep(0.02)
    try:
        base = f"{'https' if tls else 'http'}://{host}:{port}"
        verify = ssl.create_default_context(cafile=ca_file) if ca_file else True
        yield Running(service, base, token, verify)
    finally:
        server.should_exit = True
        thread.join(60)  # generous: load, and the monitor may end a delivery first (30 s max)
        service.close()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` until true; the seconds it took, or AssertionError."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - start


@contextmanager
def serve_process(
    data_dir: Path,
    nameserver: str,
    *extra: str,
    database_url: str | None = None,
    zone: str = ZONE,
    env: dict[str, str] | None = None,
    preexec: Callable[[], None] | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python -m mtasts serve` as a real process on a free loopback port, without the
    background monitor (no checks of test domains); yields (base URL, process). Its output
    goes to ``data_dir``/serve.log; ``preexec`` runs in the child before it starts (e.g.
    to set resource limits)."""
    port = free_port()
    full_env = {
        **os.environ,
        "MTASTS_SYNC_INTERVAL": "0.5",
        "MTASTS_VERIFY_INTERVAL": "3600",
        "MTASTS_MONITOR_INTERVAL": "0",
        "MTASTS_PROBE_ALLOWED_NETWORKS": ",".join(LAB_NETWORKS),
        **(env or {}),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "serve.log"
    cmd = [sys.executable, "-m", "mtasts", "serve", "--data-dir", str(data_dir)]
    cmd += ["--listen", f"127.0.0.1:{port}", "--zone", zone, "--nameserver", nameserver]
    if database_url:
        cmd += ["--database-url", database_url]
    cmd += extra
    with log.open("ab") as log_file:
        proc = subprocess.Popen(
            cmd, env=full_env, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=preexec
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"mtasts serve exited: {log.read_text()}")
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 120, "mtasts serve answers /healthz")
        yield base, proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate ``proc`` (kill it after 10 s) and reap it."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cli_token(
    email: str, *store: str, admin: bool = False, env: dict[str, str] | None = None
) -> str:
    """A new API token from `mtasts tokens create` (``store``: e.g. --database-url URL)."""
    cmd = [sys.executable, "-m", "mtasts", "tokens", "create", "--email", email, *store]
    return subprocess.run(
        [*cmd, "--admin"] if admin else cmd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
