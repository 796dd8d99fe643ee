"""Monitor capacity: full checks per hour of one `mtasts serve`-equivalent monitor over lab
domains, and the CPU one check costs, with the engine alone (`mtasts check`'s Checker, same
concurrency, same process) as the anchor of the same run.

The lab runs in its own process (``python -m tests.lab --delay``: every DNS answer and every
TCP connection waits --delay seconds, 30 ms by default; no netem here), so its CPU is not
counted. This process is the monitor: a store (SQLite in a temporary directory, or
--database-url), N active hosted domains seeded with bulk INSERTs, and Monitor.run_forever,
the loop `mtasts serve` runs, with --concurrency checks in flight.

What one monitor check does per domain (the anchor does only the first line):
  check:      _mta-sts TXT, policy fetch (HTTPS, PKIX), MX lookup, A/AAAA of each MX, SMTP
              STARTTLS probe of every MX address with certificate checks, TLS-RPT TXT;
  delegation: the three CNAMEs (the lab publishes them, and their targets, as a hosted
              domain has them; --broken-delegation: none, so each name answers NODATA and
              the records standing there instead are looked up, and three alerts open);
  store:      claim (conditional UPDATE), last result, the TLS-report queries of the
              domain, alerts reconciled, no alert channel configured.

Phase 1 (burst): every domain due at once; checks/hour = N / wall time; CPU per check =
process CPU time / N. Phase 2 (spread, --spread): monitor_interval chosen so that N
domains arrive at --rate checks/hour; after one interval, the checks per 10-second window
show whether they stay even.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, update  # noqa: E402

from mtasts.check.checker import Checker, CheckOptions  # noqa: E402
from mtasts.config import Settings  # noqa: E402
from mtasts.monitor.scheduler import Monitor, next_spot  # noqa: E402
from mtasts.net.addresses import ProbePolicy  # noqa: E402
from mtasts.store.db import make_engine, migrate, session_factory  # noqa: E402
from mtasts.store.models import Domain, DomainCheck, DomainState, PolicyVersion, User  # noqa: E402
from mtasts.web.serve import open_service  # noqa: E402

LAB_NETWORKS = ("127.0.0.0/24", "::1/128")
LAB_POLICY_ID = "20240601T000000"  # what the lab publishes in every _mta-sts TXT
LAB_MAX_AGE = 86400


def start_lab(
    n: int, delay: float, mx_count: int, delegate: str
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    cmd = [sys.executable, "-m", "tests.lab", "--domains", str(n), "--delay", str(delay)]
    cmd += ["--mx-count", str(mx_count), "--suffix", "mon.bench.test", "--profile", "good"]
    if delegate:
        cmd += ["--delegate", delegate]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("the lab did not start")
    return proc, json.loads(line)


def seed(settings: Settings, domains: list[str], mx_count: int) -> None:
    """The lab's domains as active hosted domains, with the policy the lab serves."""
    engine = make_engine(settings.effective_database_url)
    migrate(engine)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    with sessions.begin() as db:
        owner = User(email="bench@example.net", is_admin=True, created_at=now)
        db.add(owner)
        db.flush()
        db.execute(
            insert(Domain),
            [
                {
                    "id": i,
                    "name": d,
                    "owner_id": owner.id,
                    "state": DomainState.ACTIVE,
                    "latest_version": 1,
                    "created_at": now,
                    "verified_at": now,
                    "challenge": f"bench{i}",
                }
                for i, d in enumerate(domains, start=1)
            ],
        )
        db.execute(
            insert(PolicyVersion),
            [
                {
                    "domain_id": i,
                    "number": 1,
                    "policy_id": LAB_POLICY_ID,
                    "mode": "enforce",
                    "mx": [f"mx{k}.{d}" for k in range(1, mx_count + 1)],
                    "max_age": LAB_MAX_AGE,
                    "author_id": owner.id,
                    "reason": "bench",
                    "forced": False,
                    "created_at": now,
                }
                for i, d in enumerate(domains, start=1)
            ],
        )
    engine.dispose()


def run_monitor(monitor: Monitor, n: int, concurrency: int) -> tuple[float, float]:
    """Run the monitor loop until ``n`` more checks finished; (wall s, CPU s)."""
    done_before = sum(monitor.metrics.checks.values())
    stop = threading.Event()
    loop = threading.Thread(target=monitor.run_forever, args=(stop, concurrency))
    wall, cpu = time.perf_counter(), time.process_time()
    loop.start()
    while sum(monitor.metrics.checks.values()) - done_before < n:
        time.sleep(0.05)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stop.set()
    loop.join()
    return wall, cpu


def run_anchor(settings: Settings, domains: list[str], concurrency: int) -> tuple[float, float]:
    """The engine alone, as `mtasts check --concurrency` runs it; (wall s, CPU s)."""
    from mtasts.net.dns import Resolver

    options = CheckOptions(
        ca_file=settings.ca_file,
        timeout=settings.check_timeout,
        https_port=settings.https_port,
        smtp_port=settings.smtp_port,
        probe_policy=ProbePolicy.from_cidrs(LAB_NETWORKS),
    )

    async def all_checks() -> None:
        checker = Checker(Resolver(list(settings.nameservers), timeout=5.0), options)
        sem = asyncio.Semaphore(concurrency)

        async def one(d: str) -> None:
            async with sem:
                await checker.check(d)

        await asyncio.gather(*(one(d) for d in domains))

    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(all_checks())
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.03)
    parser.add_argument("--mx-count", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--database-url", default="")
    parser.add_argument(
        "--broken-delegation",
        action="store_true",
        help="publish the domains without the delegation CNAMEs (3 alerts each, 21 DNS "
        "queries per check instead of 12)",
    )
    parser.add_argument("--spread", action="store_true", help="also run phase 2")
    parser.add_argument("--rate", type=float, default=100_000, help="phase 2: checks/hour")
    args = parser.parse_args()
    zone = "sts.bench.test"
    lab, info = start_lab(
        args.domains, args.delay, args.mx_count, "" if args.broken_delegation else zone
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(
                data_dir=Path(tmp),
                database_url=args.database_url,
                zone=zone,
                nameservers=(info["nameserver"],),
                ca_file=info["ca_file"],
                https_port=info["https_port"],
                smtp_port=info["smtp_port"],
                check_timeout=10.0,
                probe_allowed_networks=LAB_NETWORKS,
                monitor_interval=3600,
                monitor_concurrency=args.concurrency,
            )
            domains: list[str] = info["domains"]
            seed(settings, domains, args.mx_count)
            return measure(args, settings, domains)
    finally:
        assert lab.stdin is not None
        lab.stdin.close()
        try:
            lab.wait(30)
        except subprocess.TimeoutExpired:
            lab.terminate()  # the lab process this run started
            lab.wait(30)


def measure(args: argparse.Namespace, settings: Settings, domains: list[str]) -> int:
    n = len(domains)
    anchor_wall, anchor_cpu = run_anchor(settings, domains, args.concurrency)
    svc = open_service(settings)
    try:
        monitor = Monitor(svc, holder="bench")
        monitor.claim_due(1)  # schedules every domain; then make them all due now
        with svc.sessions.begin() as db:
            db.execute(update(DomainCheck).values(next_check_at=datetime.now(UTC)))
        wall, cpu = run_monitor(monitor, n, args.concurrency)
        errors = monitor.metrics.checks["error"]
        alerting = monitor.metrics.checks["alerting"]
        # a second pass: alerts are open now, as in steady state
        with svc.sessions.begin() as db:
            db.execute(update(DomainCheck).values(next_check_at=datetime.now(UTC)))
        wall2, cpu2 = run_monitor(monitor, n, args.concurrency)
        per_hour = n / wall2 * 3600
        cpu_check = cpu2 / n
        store = svc.settings.effective_database_url.split(":")[0]
        print(
            f"{n} lab domains, {args.mx_count} MX each (every MX probed), "
            f"{args.delay * 1000:.0f} ms per DNS answer and TCP connection, "
            f"concurrency {args.concurrency}, store {store}"
        )
        print(
            f"anchor (checks only)  {n / anchor_wall * 3600:10.0f} checks/h  "
            f"{anchor_cpu / n * 1000:6.1f} ms CPU/check"
        )
        print(
            f"monitor, first pass   {n / wall * 3600:10.0f} checks/h  "
            f"{cpu / n * 1000:6.1f} ms CPU/check (opens the alerts)"
        )
        print(
            f"monitor, steady       {per_hour:10.0f} checks/h  "
            f"{cpu_check * 1000:6.1f} ms CPU/check  ({errors} errors, {alerting} alerting)"
        )
        print(
            f"ratio monitor/anchor  {anchor_wall / wall2:10.2f}x wall, {cpu2 / anchor_cpu:.2f}x CPU"
        )
        print(
            f"CPU bound, one core:  {3600 / cpu_check:10.0f} checks/h; two cores (GIL: one "
            "process uses about one): run two processes on one store"
        )
        if args.spread:
            spread(monitor, svc, domains, args)
    finally:
        svc.close()
    return 0


def spread(monitor: Monitor, svc: object, domains: list[str], args: argparse.Namespace) -> None:
    """Phase 2: the domains at their spots in an interval sized for --rate; per window."""
    from mtasts.hosting.tenants import HostingService

    assert isinstance(svc, HostingService)
    n = len(domains)
    interval = n / args.rate * 3600
    svc.settings = replace(svc.settings, monitor_interval=interval)
    monitor.settings = svc.settings
    start = datetime.now(UTC)
    with svc.sessions.begin() as db:
        for i, d in enumerate(domains, start=1):
            db.execute(
                update(DomainCheck)
                .where(DomainCheck.domain_id == i)
                .values(next_check_at=next_spot(d, interval, start), last_check_at=None)
            )
    wall, cpu = run_monitor(monitor, n, args.concurrency)
    with svc.sessions() as db:
        from sqlalchemy import select

        times = [
            t if t.tzinfo else t.replace(tzinfo=UTC)
            for t in db.scalars(select(DomainCheck.last_check_at))
            if t is not None
        ]
    windows = Counter(int((t - start).total_seconds() // 10) for t in times)
    counts = [windows.get(w, 0) for w in range(int(interval // 10))]
    print(
        f"spread at {args.rate:.0f}/h: interval {interval:.0f} s for {n} domains, "
        f"{len(times)} checked in {wall:.0f} s; per 10 s window: mean "
        f"{statistics.mean(counts):.1f}, min {min(counts)}, max {max(counts)} "
        f"(expected {n / (interval / 10):.1f}); {cpu / n * 1000:.1f} ms CPU/check"
    )


if __name__ == "__main__":
    sys.exit(main())
