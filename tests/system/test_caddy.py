"""deploy/Caddyfile in front of `mtasts serve`, both real processes on loopback.

Caddy runs the shipped file; only its documented environment variables differ (internal
issuer instead of ACME, loopback ports, admin off, storage in a temporary directory). A
customer domain is added through the API, delegates with its three CNAMEs in the lab DNS
(which follows them into mtasts' own DNS server, as a recursive resolver would), is
verified, and is then fetched through Caddy exactly as a sender fetches a policy.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mtasts.net.dns import Resolver
from mtasts.net.fetch import FetchResult, fetch_policy
from tests.hosting.serving import ZONE, wait_for
from tests.lab import World
from tests.lab.ports import free_port
from tests.lab.require import require
from tests.system.front import (
    POLICY_HOST,
    Caddy,
    Mtasts,
    caddy_binary,
    caddy_front,
    mtasts_serve,
    publish_delegation,
    publish_mx,
)

pytestmark = pytest.mark.system


@dataclass
class Front:
    world: World
    mtasts: Mtasts
    caddy: Caddy

    def resolver(self) -> Resolver:
        return Resolver([self.world.nameserver], timeout=3)

    def fetch(self, domain: str, ca_file: Path | None = None) -> FetchResult:
        """The policy fetch of a sender (RFC 8461 §3.3), through the lab DNS and Caddy."""
        return asyncio.run(
            fetch_policy(
                domain,
                resolver=self.resolver(),
                ca_file=str(ca_file or self.caddy.root_cert),
                port=self.caddy.https_port,
                timeout=15,
            )
        )

    def txt(self, name: str) -> list[str]:
        return list(asyncio.run(self.resolver().txt(name)).records)

    def handshake(self, server_name: str) -> ssl.SSLSocket:
        """A TLS handshake with SNI ``server_name``, trusting Caddy's root only."""
        ctx = ssl.create_default_context(cafile=str(self.caddy.root_cert))
        raw = socket.create_connection((self.caddy.host, self.caddy.https_port), timeout=15)
        try:
            return ctx.wrap_socket(raw, server_hostname=server_name)
        except BaseException:
            raw.close()
            raise

    def get(self, host: str, path: str) -> httpx.Response:
        """GET through Caddy with SNI and Host ``host``."""
        ctx = ssl.create_default_context(cafile=str(self.caddy.root_cert))
        with httpx.Client(verify=ctx, timeout=15, trust_env=False) as client:
            return client.get(
                self.caddy.url(path),
                headers={"Host": host},
                extensions={"sni_hostname": host},
            )


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    require(caddy_binary() is not None, "caddy is not installed (scripts/system-deps.sh)")
    tmp = tmp_path_factory.mktemp("caddy-front")
    with World(tmp / "lab", smtp_profiles=["good"], ipv6=False) as world:
        dns_port = free_port(udp=True)
        # the lab DNS is the senders' recursive resolver: Z is delegated to mtasts' server
        world.dns.forward(ZONE, f"127.0.0.1:{dns_port}")
        env = {"MTASTS_CA_FILE": world.ca_file, "MTASTS_SMTP_PORT": str(world.smtp_port)}
        with (
            mtasts_serve(
                tmp / "data", world.nameserver, dns=f"127.0.0.1:{dns_port}", env=env
            ) as mtasts,
            caddy_front(tmp / "caddy", mtasts.listen) as caddy,
        ):
            yield Front(world, mtasts, caddy)


def test_hosted_domain_gets_a_certificate_and_its_policy(front: Front) -> None:
    domain = "caddy-hosted.lab.test"
    publish_mx(front.world.zone, domain, front.world.smtp_ip("good"))
    added = front.mtasts.add(domain)
    assert added["state"] == "pending"

    # pending: mtasts' ask says no, so Caddy has no certificate to offer
    with pytest.raises(ssl.SSLError):
        front.handshake(f"mta-sts.{domain}").close()

    publish_delegation(front.world.zone, domain, added)
    assert front.mtasts.verify(domain)["state"] == "active"

    result = front.fetch(domain)
    assert result.ok, (result.error_code, result.error)
    assert result.status_code == 200
    assert result.content_type is not None
    assert result.content_type.startswith("text/plain")
    assert result.body == added["policy_text"].encode()
    assert b"mode: testing\r\n" in (result.body or b"")
    assert result.cname_chain[-1] == POLICY_HOST  # found through the delegation
    assert result.address == "127.0.0.1"  # policy_host_addresses, from mtasts' DNS
    assert result.certificate is not None
    assert f"mta-sts.{domain}" in result.certificate.subject_alt_names
    assert "Caddy Local Authority" in result.certificate.issuer
    # the chain ends at Caddy's root and nowhere else: the lab CA does not vouch for it
    other = front.fetch(domain, ca_file=Path(front.world.ca_file))
    assert other.error_code == "tls-certificate-untrusted", other.error
    # the `_mta-sts` TXT, reached through the CNAME, carries the served id
    record = f"v=STSv1; id={added['policy']['id']}"
    assert front.txt(f"_mta-sts.{domain}") == [record]


def test_policy_change_is_served_through_caddy(front: Front) -> None:
    domain = "caddy-change.lab.test"
    publish_mx(front.world.zone, domain, front.world.smtp_ip("good"))
    before = front.mtasts.add(domain)
    publish_delegation(front.world.zone, domain, before)
    assert front.mtasts.verify(domain)["state"] == "active"
    assert front.fetch(domain).body == before["policy_text"].encode()

    # guarded: the MX is a good lab SMTP server (STARTTLS, TLS >= 1.2, trusted certificate)
    after = front.mtasts.set_policy(domain, mode="enforce", reason="lab")
    assert after["policy"]["mode"] == "enforce"
    assert after["policy"]["id"] != before["policy"]["id"]
    result = front.fetch(domain)
    assert result.ok, result.error
    assert result.body == after["policy_text"].encode()
    assert b"mode: enforce\r\n" in (result.body or b"")
    # RFC 8461 §8.1: the TXT id follows the served policy
    new_record = f"v=STSv1; id={after['policy']['id']}"
    wait_for(lambda: front.txt(f"_mta-sts.{domain}") == [new_record], 60, "TXT has the new id")


def test_unknown_name_gets_no_certificate(front: Front) -> None:
    denied = front.mtasts.metric('mtasts_tls_ask_total{result="denied"}')
    with pytest.raises(ssl.SSLError):
        front.handshake("mta-sts.not-hosted.lab.test").close()
    # Caddy asked mtasts, which said no (the failure is not a broken Caddy)
    assert front.mtasts.metric('mtasts_tls_ask_total{result="denied"}') == denied + 1


def test_policy_host_of_the_zone_and_operator_paths(front: Front) -> None:
    # policy-host.Z gets a certificate too (TLS-RPT by HTTPS POST goes there)
    health = front.get(POLICY_HOST, "/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    # metrics and ask stay on mtasts' own listener
    assert front.get(POLICY_HOST, "/metrics").status_code == 404
    assert front.get(POLICY_HOST, f"/tls/ask?domain={POLICY_HOST}").status_code == 404
    assert httpx.get(f"{front.mtasts.base}/metrics", timeout=5).status_code == 200
