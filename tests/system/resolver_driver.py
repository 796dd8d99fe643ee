"""Runs inside a private network and mount namespace (``unshare -n -m``, root): a customer
domain hosted by `mtasts serve` behind Caddy (deploy/Caddyfile) on the real port 443, the
lab DNS on 127.0.0.53:53 as the system resolver (bind-mounted /etc/resolv.conf) that follows
the customer's CNAMEs into mtasts' own DNS server, and postfix-mta-sts-resolver's
``mta-sts-query`` asked about it before and after a mode change, as a sending MTA would.

Prints one JSON object on stdout: what the API said and what ``mta-sts-query`` saw
(tests/system/test_resolver_client.py judges it). Progress goes to stderr.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.hosting.serving import ZONE
from tests.lab import World
from tests.lab.ports import free_port
from tests.lab.world import DNS_IP
from tests.system.front import (
    caddy_front,
    mtasts_serve,
    publish_delegation,
    publish_mx,
)

QUERY_TIMEOUT = 60.0
CHANGE_TIMEOUT = 30.0  # seconds for the new id to reach the TXT (RFC 8461 §8.1 lag: 2 s)
_OUTPUT = re.compile(r"^\(<STSFetchResult\.(\w+): \d+>, (.*)\)$", re.DOTALL)


def parse_query_output(text: str) -> dict[str, Any]:
    """``mta-sts-query`` prints the repr of ``(STSFetchResult, (id, policy) | None)``."""
    match = _OUTPUT.match(text.strip())
    if match is None:
        raise ValueError(f"unexpected mta-sts-query output: {text!r}")
    detail = ast.literal_eval(match.group(2))
    out: dict[str, Any] = {"result": match.group(1), "id": None, "policy": None}
    if detail is not None:
        out["id"], out["policy"] = detail[0], detail[1]
    return out


def mta_sts_query(binary: str, domain: str, ca_file: Path | None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSL_CERT", "PYTHON"))}
    if ca_file is not None:
        env["SSL_CERT_FILE"] = str(ca_file)  # aiohttp: ssl.create_default_context()
    proc = subprocess.run(
        [binary, domain],
        env=env,
        capture_output=True,
        text=True,
        timeout=QUERY_TIMEOUT,
        check=False,
    )
    print(f"mta-sts-query {domain}: {proc.stdout.strip()} {proc.stderr.strip()}", file=sys.stderr)
    return {**parse_query_output(proc.stdout), "exit_status": proc.returncode}


def main() -> int:
    query = shutil.which("mta-sts-query") or "/usr/bin/mta-sts-query"
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        resolv = tmp / "resolv.conf"
        resolv.write_text(f"nameserver {DNS_IP}\noptions timeout:3 attempts:2\n")
        subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
        with World(tmp / "lab", real_ports=True, smtp_profiles=["good"], ipv6=False) as world:
            zone = world.zone
            dns_listen = f"127.0.0.1:{free_port(udp=True)}"
            world.dns.forward(ZONE, dns_listen)  # Z is delegated to mtasts' DNS server
            env = {"MTASTS_CA_FILE": world.ca_file}  # the MX certificates; SMTP port 25
            with (
                mtasts_serve(tmp / "data", DNS_IP, dns=dns_listen, env=env) as mtasts,
                caddy_front(tmp / "caddy", mtasts.listen, https_port=443, http_port=80) as caddy,
            ):
                domain = "client.lab.test"
                publish_mx(zone, domain, world.smtp_ip("good"))
                added = mtasts.add(domain)
                report["added"] = added["policy"]
                publish_delegation(zone, domain, added)
                report["verified"] = mtasts.verify(domain)["state"]
                caddy.certificate_for(f"mta-sts.{domain}")  # issued on demand, first
                report["before"] = mta_sts_query(query, domain, caddy.root_cert)
                # without Caddy's root the client must refuse the certificate
                report["untrusted"] = mta_sts_query(query, domain, None)

                changed = mtasts.set_policy(domain, mode="enforce", reason="lab")
                report["changed"] = changed["policy"]
                report["changed_policy_text"] = changed["policy_text"]
                deadline = time.monotonic() + CHANGE_TIMEOUT
                seen = []
                while True:
                    after = mta_sts_query(query, domain, caddy.root_cert)
                    seen.append(after)
                    if after["id"] == changed["policy"]["id"] or time.monotonic() > deadline:
                        break
                    time.sleep(0.3)
                report["after"] = after
                report["seen_after_change"] = seen

                # added but never verified: the TXT name in Z does not exist
                pending = "pending.lab.test"
                publish_mx(zone, pending, world.smtp_ip("good"))
                publish_delegation(zone, pending, mtasts.add(pending))
                report["pending"] = mta_sts_query(query, pending, caddy.root_cert)
                # a record but no hosting: Caddy's ask is refused, no certificate
                stray = "stray.lab.test"
                zone.add(f"_mta-sts.{stray}", "TXT", "v=STSv1; id=stray1")
                zone.add(f"mta-sts.{stray}", "CNAME", f"policy-host.{ZONE}.")
                report["not_hosted"] = mta_sts_query(query, stray, caddy.root_cert)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
