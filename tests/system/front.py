"""`mtasts serve` behind a real Caddy running the shipped deploy/Caddyfile, on loopback.

Used by the Caddy system test and, inside a private network namespace, by the driver of
the postfix-mta-sts-resolver test. Everything is a real process: `python -m mtasts serve`
(token from `mtasts tokens create`), and `caddy run` on deploy/Caddyfile with only its
documented environment variables set (internal issuer, loopback ports, admin off), its
storage in a temporary directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.hosting.serving import ZONE, cli_token, serve_process, stop, wait_for
from tests.lab.dnsserver import Zone
from tests.lab.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
CADDYFILE = ROOT / "deploy" / "Caddyfile"
POLICY_HOST = f"policy-host.{ZONE}"


def caddy_binary() -> str | None:
    return shutil.which("caddy") or shutil.which("caddy", path="/usr/bin:/usr/local/bin")


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --- DNS of the customer ------------------------------------------------------------------


def publish_mx(zone: Zone, domain: str, mx_ip: str) -> str:
    """``domain`` MX 10 mx1.<domain>, which has address ``mx_ip``; returns the MX name."""
    mx = f"mx1.{domain}"
    zone.add(domain, "MX", f"10 {mx}.")
    zone.add(mx, "A", mx_ip)
    return mx


def publish_delegation(
    zone: Zone, domain: str, claim: dict[str, Any], service_zone: str = ZONE
) -> None:
    """The three CNAMEs a customer publishes (design.md "Delegation layout") and the
    challenge TXT of their claim (``claim``: the answer of adding the domain)."""
    zone.add(f"_mta-sts.{domain}", "CNAME", f"{domain}.policy.{service_zone}.")
    zone.add(f"mta-sts.{domain}", "CNAME", f"policy-host.{service_zone}.")
    zone.add(f"_smtp._tls.{domain}", "CNAME", f"{domain}.tlsrpt.{service_zone}.")
    for r in claim["dns_records"]:
        if r["type"] == "TXT":
            zone.add(r["name"], "TXT", r["value"])


# --- mtasts serve ---------------------------------------------------------------------------


@dataclass
class Mtasts:
    """A running `mtasts serve` process."""

    base: str  # http://127.0.0.1:PORT
    listen: str  # 127.0.0.1:PORT
    token: str
    log: Path
    proc: subprocess.Popen[bytes]

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.base}/api/v1",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
        )

    def add(self, domain: str) -> dict[str, Any]:
        with self.api() as api:
            r = api.post("/domains", json={"domain": domain})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def verify(self, domain: str) -> dict[str, Any]:
        with self.api() as api:
            r = api.post(f"/domains/{domain}/verify")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def set_policy(self, domain: str, **body: Any) -> dict[str, Any]:
        with self.api() as api:
            r = api.put(f"/domains/{domain}/policy", json=body)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def metric(self, sample: str) -> float:
        """The value of one sample of /metrics, e.g. ``mtasts_tls_ask_total{result="denied"}``."""
        text = httpx.get(f"{self.base}/metrics", timeout=5).text
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            if name == sample:
                return float(value)
        raise AssertionError(f"{sample} not in /metrics:\n{text}")


@contextmanager
def mtasts_serve(
    data_dir: Path,
    nameserver: str,
    *,
    dns: str | None = None,
    env: dict[str, str] | None = None,
    zone: str = ZONE,
) -> Iterator[Mtasts]:
    """`python -m mtasts serve` on a free loopback port, with an admin token made by
    `mtasts tokens create`; output in ``data_dir``/serve.log."""
    data_dir.mkdir(parents=True, exist_ok=True)
    token = cli_token("admin@lab.test", "--data-dir", str(data_dir), admin=True, env=env)
    extra = ["--dns", dns] if dns else []
    with serve_process(data_dir, nameserver, *extra, zone=zone, env=env) as (base, proc):
        yield Mtasts(base, base.removeprefix("http://"), token, data_dir / "serve.log", proc)


# --- Caddy ----------------------------------------------------------------------------------


@dataclass
class Caddy:
    """A running Caddy with deploy/Caddyfile and its internal issuer."""

    host: str
    https_port: int
    data_home: Path  # XDG_DATA_HOME: Caddy keeps certificates and its local CA here
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def root_cert(self) -> Path:
        """Root of Caddy's local CA (the internal issuer signs with it)."""
        return self.data_home / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    def url(self, path: str) -> str:
        return f"https://{self.host}:{self.https_port}{path}"

    def certificate_for(self, name: str, timeout: float = 120.0) -> None:
        """Wait until Caddy presents a certificate for ``name`` that its root verifies. The
        first handshake for a name makes Caddy ask mtasts and issue one (on demand): on a
        loaded machine that can outlast a client's own short timeout (mta-sts-query: 4 s),
        where a sender would simply try again later."""
        ctx = ssl.create_default_context(cafile=str(self.root_cert))

        def issued() -> bool:
            try:
                with (
                    socket.create_connection((self.host, self.https_port), timeout=30) as raw,
                    ctx.wrap_socket(raw, server_hostname=name),
                ):
                    return True
            except OSError:  # ssl.SSLError included: no certificate for the name yet
                return False

        wait_for(issued, timeout, f"Caddy presents a certificate for {name}")


def caddy_env(
    workdir: Path, upstream: str, *, host: str, https_port: int, http_port: int
) -> dict[str, str]:
    """The environment that turns the shipped Caddyfile into its test variant."""
    return {
        **os.environ,
        "HOME": str(workdir),
        "XDG_DATA_HOME": str(workdir / "data"),
        "XDG_CONFIG_HOME": str(workdir / "config"),
        "MTASTS_UPSTREAM": upstream,
        "MTASTS_TLS_ISSUER": "internal",
        "MTASTS_CADDY_BIND": host,
        "MTASTS_HTTPS_PORT": str(https_port),
        "MTASTS_HTTP_PORT": str(http_port),
        "MTASTS_CADDY_ADMIN": "off",
    }


@contextmanager
def caddy_front(
    workdir: Path,
    upstream: str,
    *,
    host: str = "127.0.0.1",
    https_port: int | None = None,
    http_port: int | None = None,
) -> Iterator[Caddy]:
    """`caddy run` on deploy/Caddyfile in front of ``upstream`` (HOST:PORT of mtasts),
    HTTPS on ``host``:``https_port`` (default: free ports); output in ``workdir``/caddy.log."""
    binary = caddy_binary()
    if binary is None:
        raise RuntimeError("caddy is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    https_port = https_port or free_port([host], udp=True)  # UDP too: HTTP/3
    http_port = http_port or free_port([host])
    env = caddy_env(workdir, upstream, host=host, https_port=https_port, http_port=http_port)
    log = workdir / "caddy.log"
    cmd = [binary, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    caddy = Caddy(host, https_port, workdir / "data", log, proc)
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"caddy exited: {log.read_text()}")
            return _accepts(host, https_port) and caddy.root_cert.exists()

        wait_for(up, 120, f"caddy listens on {host}:{https_port} with its local CA")
        yield caddy
    finally:
        stop(proc)
