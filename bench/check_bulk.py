"""Bulk check benchmark: N lab domains checked by `mtasts check` and, in the same run, by
checkdmarc 6.0.4's MTA-STS + TLS-RPT checks (the anchor). Prints domains/s, the ratio and
how often the two agree on "valid MTA-STS policy".

Everything runs inside a private network namespace (root; `unshare -n -m`) where the lab
listens on the real ports 53, 443 and 25 and /etc/resolv.conf points at the lab DNS, because
checkdmarc fetches the policy with `requests` through the system resolver. Every DNS answer
and every TCP connection is delayed by --delay seconds (no netem here: the servers sleep).

What each side does per domain:
  mtasts:     _mta-sts TXT, policy fetch (HTTPS, PKIX), policy parse, MX lookup, A/AAAA of each
              MX, SMTP STARTTLS probe of every MX address with certificate checks, TLS-RPT TXT;
              domains checked concurrently (--concurrency) in --jobs worker processes.
  checkdmarc: _mta-sts TXT, policy fetch, policy parse, TLS-RPT TXT; no MX lookup and no
              STARTTLS probe; one domain after another, as its command line does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lab import World  # noqa: E402
from tests.lab.world import DNS_IP  # noqa: E402

MARK = "MTASTS_BENCH_NETNS"


def reexec_in_namespace() -> int:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        print("check_bulk: needs root and unshare (util-linux) for a private network namespace")
        return 2
    env = {**os.environ, MARK: "1"}
    cmd = ["unshare", "-n", "-m", "--", sys.executable, __file__, *sys.argv[1:]]
    return subprocess.run(cmd, env=env, check=False).returncode


def publish(world: World, n: int) -> list[str]:
    """A realistic mix: 80 % healthy with two MX, the rest broken in common ways."""
    broken = n // 5
    healthy = world.add_domains(n - broken, mx_count=2, suffix="ok.bench.test")
    kinds = ["expired", "norecord", "nostarttls", "redirect"]
    others = []
    for i in range(broken):
        kind = kinds[i % len(kinds)]
        name = f"b{i:04d}.{kind}.bench.test"
        if kind == "expired":
            world.add_domain(name, https="expired", mx_count=2)
        elif kind == "norecord":
            world.add_domain(name, record=None, mx_count=2)
        elif kind == "nostarttls":
            world.add_domain(name, mx_profile="no-starttls", mode="testing")
        else:
            from tests.lab.httpsserver import Site

            world.add_domain(name, https=Site(status=302, location="https://example.net/"))
        others.append(name)
    return healthy + others


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, list[str]]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=900)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout.splitlines()


def run(args: argparse.Namespace) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        resolv = tmp / "resolv.conf"
        resolv.write_text(f"nameserver {DNS_IP}\noptions timeout:5 attempts:1\n")
        subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
        with World(tmp / "lab", real_ports=True, delay=args.delay, ipv6=False) as world:
            domains = publish(world, args.domains)
            # The lab issues a certificate per host name on first use; issue them all now,
            # so that the side measured first does not pay for the lab's warm-up (the
            # other would then meet a warm lab). As bench/policyd.py does.
            stores = [world.https.certs, *(s.certs for s in world.smtp.values() if s.certs)]
            for d in domains:
                for host in (f"mta-sts.{d}", *(f"mx{i}.{d}" for i in (1, 2))):
                    for store in stores:
                        store.context_for(host)
            listing = tmp / "domains.txt"
            listing.write_text("\n".join(domains) + "\n")
            mtasts = str(Path(sys.executable).parent / "mtasts")
            # As installed: with cached bytecode (.pyc), written by one untimed start, even
            # where the environment sets PYTHONDONTWRITEBYTECODE.
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            warm = "import mtasts.cli, mtasts.check.checker, mtasts.check.output"
            subprocess.run([sys.executable, "-c", warm], env=env, check=True)
            ours_s, ours_out = timed(
                [
                    mtasts,
                    "check",
                    "--file",
                    str(listing),
                    "--format",
                    "jsonl",
                    "--nameserver",
                    DNS_IP,
                    "--ca-file",
                    world.ca_file,
                    "--concurrency",
                    str(args.concurrency),
                    "--jobs",
                    str(args.jobs),
                    "--timeout",
                    "5",
                ],
                env=env,
            )
            env = {**env, "REQUESTS_CA_BUNDLE": world.ca_file}
            anchor_s, anchor_out = timed(
                [sys.executable, str(ROOT / "bench" / "_checkdmarc_side.py"), str(listing), DNS_IP],
                env=env,
            )
    ours = {d["domain"]: d for d in map(json.loads, ours_out)}
    anchor = {d["domain"]: d for d in map(json.loads, anchor_out)}
    assert len(ours) == len(anchor) == len(domains), (len(ours), len(anchor))
    agree = sum(
        (ours[d]["sts_fetch_result"] == "VALID") == bool(anchor[d]["mta_sts_valid"])
        for d in domains
    )
    tlsrpt_agree = sum(
        (ours[d]["tlsrpt"] is not None) == bool(anchor[d]["tlsrpt_valid"]) for d in domains
    )
    probes = sum(len(h["addresses"]) for r in ours.values() for h in r["mx_hosts"])
    n = len(domains)
    print(f"{n} lab domains, {args.delay * 1000:.0f} ms per DNS answer and per TCP connection")
    print(
        f"mtasts check      {n / ours_s:8.1f} domains/s  ({ours_s:6.2f} s, {probes} MX probes,"
        f" --jobs {args.jobs})"
    )
    print(f"checkdmarc 6.0.4  {n / anchor_s:8.1f} domains/s  ({anchor_s:6.2f} s, no MX probes)")
    print(f"ratio             {anchor_s / ours_s:8.1f}x")
    print(
        f"agreement on 'valid MTA-STS policy': {agree}/{n}; on TLS-RPT record: {tlsrpt_agree}/{n}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=300)
    parser.add_argument("--delay", type=float, default=0.03)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=1, help="mtasts --jobs (worker processes)")
    args = parser.parse_args()
    if os.environ.get(MARK) != "1":
        return reexec_in_namespace()
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
