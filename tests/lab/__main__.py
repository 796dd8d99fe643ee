"""Run a lab World in its own process: ``python -m tests.lab --domains 100 --delay 0.03``.

Prints one JSON line (nameserver, ca_file, ports, domains, cli_args) on stdout once every
server listens, then serves until stdin closes or SIGTERM/SIGINT arrives. Benchmarks use it
to keep the servers' CPU out of the measured process; CLI tests use the printed cli_args.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
from pathlib import Path

from tests.lab.world import HTTPS_IP, SMTP_PROFILES, World


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__)
    parser.add_argument("--domains", type=int, default=10, help="valid domains to publish")
    parser.add_argument("--suffix", default="lab.test", help="parent of the domains")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per DNS answer/TCP")
    parser.add_argument("--mx-count", type=int, default=1, help="MX hosts per domain")
    parser.add_argument(
        "--delegate",
        default="",
        metavar="ZONE",
        help="publish the domains as hosted by ZONE: the three delegation CNAMEs, with their "
        "targets (TXT records, policy-host.ZONE) in the lab zone",
    )
    parser.add_argument("--dir", type=Path, default=None, help="for certificates and keys")
    parser.add_argument(
        "--profile",
        action="append",
        default=None,
        choices=sorted(SMTP_PROFILES),
        help="SMTP servers to run (repeat; default all)",
    )
    args = parser.parse_args(argv)
    if args.dir is not None:
        return _serve(args, args.dir)
    # The lab's CA and leaf keys live only as long as the lab: removed on the way out.
    with tempfile.TemporaryDirectory(prefix="mtasts-lab-") as tmp:
        return _serve(args, Path(tmp))


def _serve(args: argparse.Namespace, directory: Path) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with World(directory, delay=args.delay, smtp_profiles=args.profile) as world:
        domains = world.add_domains(args.domains, suffix=args.suffix, mx_count=args.mx_count)
        if args.delegate:
            _delegate(world, domains, args.delegate)
        info = {
            "nameserver": world.nameserver,
            "ca_file": world.ca_file,
            "https_port": world.https_port,
            "smtp_port": world.smtp_port,
            "smtp_ips": {p: world.smtp_ip(p) for p in world.smtp},
            "domains": domains,
            "cli_args": world.cli_args(),
        }
        print(json.dumps(info), flush=True)

        def wait_stdin() -> None:
            sys.stdin.read()
            stop.set()

        threading.Thread(target=wait_stdin, daemon=True).start()
        stop.wait()
    return 0


def _delegate(world: World, domains: list[str], zone: str) -> None:
    """The delegation layout of design.md, for the monitor benchmark."""
    z = world.zone
    z.add(f"policy-host.{zone}", "A", HTTPS_IP)
    for d in domains:
        lab = world.domains[d]
        for name, target, record in (
            (f"_mta-sts.{d}", f"{d}.policy.{zone}", lab.record),
            (f"_smtp._tls.{d}", f"{d}.tlsrpt.{zone}", lab.tlsrpt),
        ):
            z.remove(name)
            z.add(name, "CNAME", target + ".")
            if record is not None:
                z.add(target, "TXT", record)
        z.remove(f"mta-sts.{d}")
        z.add(f"mta-sts.{d}", "CNAME", f"policy-host.{zone}.")


if __name__ == "__main__":
    raise SystemExit(main())
