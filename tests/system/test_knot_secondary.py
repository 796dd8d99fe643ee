"""The two-name-server layout of deploy/: `mtasts serve` as the primary and a real Knot
(knotd) as its secondary, configured by deploy/knot.conf with the addresses and paths moved
to loopback and a temporary directory. Knot loads the zone by transfer, and follows a
policy change after mtasts' NOTIFY (its own refresh timer is an hour: only NOTIFY can
bring the change within the test's deadline), serving the new TXT id."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from mtasts.config import Settings, load_settings
from mtasts.net.dns import DnsStatus, Resolver
from tests.hosting.serving import ZONE, running, wait_for
from tests.hosting.test_api_lab import customer, delegate
from tests.lab import World
from tests.lab.ports import free_port
from tests.lab.require import require

pytestmark = pytest.mark.system

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SECONDARY = "127.0.0.21"
PRIMARY = "127.0.0.1"


def knot_conf(tmp: Path, knot_port: int, primary_port: int) -> str:
    """deploy/knot.conf on loopback: every address, path and the zone name replaced."""
    text = (DEPLOY / "knot.conf").read_text()
    swaps = [
        (r"listen: \[.*\]", f"listen: {SECONDARY}@{knot_port}"),
        (r'rundir: ".*"', f'rundir: "{tmp / "run"}"'),
        (r'storage: ".*"', f'storage: "{tmp / "db"}"'),
        (r"address: \[ 192\.0\.2\.53@53, .*\]", f"address: {PRIMARY}@{primary_port}"),
        (r"address: \[ 192\.0\.2\.53, .*\]", f"address: {PRIMARY}"),
        (r"via: \[.*\]", f"via: {SECONDARY}"),
        (r"target: syslog", "target: stderr"),
        (r"domain: sts\.provider\.example", f"domain: {ZONE}"),
        (r"user: knot:knot", "user: root:root" if os.geteuid() == 0 else ""),
    ]
    for pattern, new in swaps:
        text, n = re.subn(pattern, new, text)
        assert n >= 1, f"deploy/knot.conf no longer has {pattern!r}"
    return text


def soa_serial(port: int) -> int | None:
    try:
        r = dns.query.udp(
            dns.message.make_query(ZONE, "SOA"),
            SECONDARY,
            port=port,
            timeout=0.5,
            ignore_unexpected=True,
        )
    except (dns.exception.Timeout, OSError):
        return None
    if r.rcode() != dns.rcode.NOERROR or not r.answer:
        return None
    return int(next(iter(r.answer[0])).serial)


@pytest.fixture
def knot_secondary(tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    """(knot port, primary port, knotd log): knotd running deploy/knot.conf."""
    require(os.path.exists(KNOTD), "knotd (Debian package knot) is not installed")
    tmp = tmp_path / "knot"
    for d in ("run", "db"):
        (tmp / d).mkdir(parents=True)
    knot_port = free_port([SECONDARY], udp=True)
    primary_port = free_port([PRIMARY], udp=True)
    (tmp / "knot.conf").write_text(knot_conf(tmp, knot_port, primary_port))
    log = tmp / "knotd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [KNOTD, "-c", str(tmp / "knot.conf")], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield knot_port, primary_port, log
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_knot_secondary_follows_the_zone_after_notify(
    tmp_path: Path, lab_world: World, knot_secondary: tuple[int, int, Path]
) -> None:
    knot_port, primary_port, log = knot_secondary
    deploy = load_settings(DEPLOY / "mtasts.toml", {})
    settings = Settings(
        data_dir=tmp_path / "data",
        zone=ZONE,
        nameservers=(lab_world.nameserver,),
        dns_listen=(f"{PRIMARY}:{primary_port}",),
        zone_ns=(f"ns1.{ZONE}", f"ns2.{ZONE}"),
        zone_ns_addresses=(f"ns2.{ZONE}={SECONDARY}",),
        dns_secondaries=(f"{SECONDARY}:{knot_port}",),
        dns_tsig_name=deploy.dns_tsig_name,  # the key both deploy files share
        dns_tsig_secret=deploy.dns_tsig_secret,
        policy_host_addresses=("127.0.0.7",),
        sync_interval=0.2,
        txt_delay=1.0,
    )
    knot = Resolver([f"{SECONDARY}:{knot_port}"], timeout=2)

    def knot_txt(name: str) -> tuple[DnsStatus, tuple[str, ...]]:
        answer = asyncio.run(knot.txt(name))
        return answer.status, answer.records

    with running(settings) as app:
        # the zone is loaded from us (NOTIFY at start, or Knot's first refresh)
        wait_for(lambda: soa_serial(knot_port) is not None, 60, f"Knot loads {ZONE}:\n{log}")
        ns2 = asyncio.run(knot.addresses(f"ns2.{ZONE}"))
        assert ns2.addresses == (SECONDARY,)
        d = customer(lab_world)
        with app.client() as c:
            claim = c.post("/api/v1/domains", json={"domain": d}).json()
            delegate(lab_world, d, claim=claim)
            assert c.post(f"/api/v1/domains/{d}/verify").json()["ok"]
            first_id = c.get(f"/api/v1/domains/{d}").json()["policy"]["id"]
            wait_for(
                lambda: (
                    knot_txt(f"{d}.policy.{ZONE}") == (DnsStatus.OK, (f"v=STSv1; id={first_id}",))
                ),
                60,
                "Knot serves the new domain's TXT",
            )
            new_id = c.put(f"/api/v1/domains/{d}/policy", json={"mode": "none"}).json()["policy"][
                "id"
            ]
        assert new_id != first_id
        wait_for(
            lambda: knot_txt(f"{d}.policy.{ZONE}") == (DnsStatus.OK, (f"v=STSv1; id={new_id}",)),
            60,
            "Knot serves the new TXT id after NOTIFY",
        )
        # the secondary's serial is the primary's, taken from the store's change counter
        primary = dns.query.udp(
            dns.message.make_query(ZONE, "SOA"),
            PRIMARY,
            port=primary_port,
            timeout=2,
            ignore_unexpected=True,
        )
        serial = int(next(iter(primary.answer[0])).serial)
        wait_for(lambda: soa_serial(knot_port) == serial, 30, "Knot has the primary's serial")
        assert serial == 2 * app.service.generation() + 1
        text = log.read_text()
        assert "notify, incoming" in text, text  # the change came by NOTIFY
