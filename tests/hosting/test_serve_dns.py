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

TXT_DELAY = 3.0  # seconds (RFC 8461 §8.1 delay of the served zone)


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
        txt_delay=TXT_DELAY,
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
            # RFC 8461 §8.1: the new policy is served at once, the TXT keeps the old id for
            # txt_delay seconds. An answer counts as seen within the delay only when it
            # was asked before `before + TXT_DELAY` (on a busy runner it may not be: then
            # change the policy again); the new id can never appear before that.
            old_id, modes = first_id, ["none", "testing"] * 3
            for mode in modes:
                before = time.time()
                new_id = c.put(f"/api/v1/domains/{d}/policy", json={"mode": mode}).json()["policy"][
                    "id"
                ]
                assert parse_policy(app.policy(d).content).mode == mode
                seen = txt(zone_dns, f"{d}.policy.{ZONE}")[1]
                if time.time() < before + TXT_DELAY:
                    assert seen == (f"v=STSv1; id={old_id}",)
                    break
                old_id = new_id
            else:
                pytest.fail("no TXT answer within the §8.1 delay in any of the tries")
            while txt(zone_dns, f"{d}.policy.{ZONE}")[1] != (f"v=STSv1; id={new_id}",):
                assert time.time() < before + TXT_DELAY + 60, "the new id never appeared"
                time.sleep(0.1)
            assert time.time() >= before + TXT_DELAY  # not before the delay ended


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
