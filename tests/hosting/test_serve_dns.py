"""`mtasts serve` with its DNS listener: the zone follows the hosted domains, and the TXT id
changes only after the new policy is served (RFC 8461 §8.1)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.hosting.serving import ZONE, running
from tests.hosting.test_api_lab import customer, delegate
from tests.lab import World
from tests.lab.ports import free_port

from mtasts.config import Settings
from mtasts.net.dns import DnsStatus, Resolver
from mtasts.protocol.policy import parse_policy

pytestmark = pytest.mark.lab


def txt(resolver: Resolver, name: str) -> tuple[DnsStatus, tuple[str, ...]]:
    answer = asyncio.run(resolver.txt(name))
    return answer.status, answer.records


def test_zone_follows_the_hosted_domains(tmp_path: Path, lab_world: World) -> None:
    port = free_port(udp=True)
    settings = Settings(
        data_dir=tmp_path,
        zone=ZONE,
        nameservers=(lab_world.nameserver,),
        dns_listen=(f"127.0.0.1:{port}",),
        policy_host_addresses=("127.0.0.7",),
        sync_interval=0.2,
        txt_delay=1.5,
    )
    zone_dns = Resolver([f"127.0.0.1:{port}"], timeout=3)
    with running(settings) as app:
        d = customer(lab_world)
        with app.client() as c:
            claim = c.post("/api/v1/domains", json={"domain": d}).json()
            assert txt(zone_dns, f"{d}.policy.{ZONE}")[0] is DnsStatus.NXDOMAIN  # pending
            delegate(lab_world, d, claim=claim)
            assert c.post(f"/api/v1/domains/{d}/verify").json()["ok"]
            first_id = c.get(f"/api/v1/domains/{d}").json()["policy"]["id"]
            assert txt(zone_dns, f"{d}.policy.{ZONE}") == (
                DnsStatus.OK,
                (f"v=STSv1; id={first_id}",),
            )
            status, records = txt(zone_dns, f"{d}.tlsrpt.{ZONE}")
            # no report receiver and no MX: the https: rua alone (issue 16)
            assert status is DnsStatus.OK and records[0].startswith("v=TLSRPTv1; rua=https:")
            ns1 = asyncio.run(zone_dns.addresses(f"ns1.{ZONE}"))
            assert ns1.addresses == ("127.0.0.1",)  # the DNS server, not the HTTPS front
            a = asyncio.run(zone_dns.addresses(f"policy-host.{ZONE}"))
            assert a.addresses == ("127.0.0.7",)
            changed = c.put(f"/api/v1/domains/{d}/policy", json={"mode": "none"}).json()
            new_id = changed["policy"]["id"]
        changed_at = time.monotonic()
        # the policy is served at once; the TXT keeps the old id for txt_delay seconds
        assert parse_policy(app.policy(d).content).mode == "none"
        assert txt(zone_dns, f"{d}.policy.{ZONE}")[1] == (f"v=STSv1; id={first_id}",)
        assert time.monotonic() - changed_at < 1.5, "too slow to observe the delay"
        time.sleep(1.6)
        assert txt(zone_dns, f"{d}.policy.{ZONE}")[1] == (f"v=STSv1; id={new_id}",)


def test_a_dns_port_in_use_stops_the_start_with_the_reason(tmp_path: Path) -> None:
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    try:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "mtasts",
                "serve",
                "--data-dir",
                str(tmp_path),
                "--listen",
                f"127.0.0.1:{free_port()}",
                "--dns",
                f"127.0.0.1:{busy.getsockname()[1]}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        busy.close()
    assert r.returncode != 0
    assert "could not bind" in r.stderr or "in use" in r.stderr
