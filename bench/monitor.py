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

Cluster (--processes 1,2): instead of the in-process monitor, real `mtasts serve` processes
(1, then 2) on one PostgreSQL database of their own (created on --pg-admin, dropped after),
as a node runs them. Burst: every domain due at one instant T0 (after the processes are up);
checks/hour = N / (last check - T0), times from the store. Spread: monitor_interval sized
for --rate, each domain at its own spot; the checks per slice of the interval (max/mean).
CPU per check = CPU time of the serve processes (and, apart, of the PostgreSQL backends and
of the lab) between T0 and the last check, / N; each process's mtasts_checks_total shows
how the checks were shared and that none ran twice. The processes run with monitor_tick = 1
s, so that they wake within a second of T0 (the schedule is moved there once they are up).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, update  # noqa: E402

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
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress, lines
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
    parser.add_argument(
        "--processes",
        default="",
        help="cluster mode: comma-separated numbers of `mtasts serve` processes on PostgreSQL "
        "(e.g. 1,2), each measured in a burst and over one spread interval",
    )
    parser.add_argument(
        "--pg-admin",
        default=PG_ADMIN,
        help="cluster mode: where to create and drop the benchmark's database",
    )
    parser.add_argument("--slice", type=float, default=10.0, help="spread: seconds per slice")
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
            if args.processes:
                return measure_cluster(args, settings, domains, lab.pid)
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


def measure_cluster(
    args: argparse.Namespace, settings: Settings, domains: list[str], lab_pid: int
) -> int:
    n = len(domains)
    anchor_wall, anchor_cpu = run_anchor(settings, domains, args.concurrency)
    print(
        f"{n} lab domains, {args.mx_count} MX each (every MX probed), "
        f"{args.delay * 1000:.0f} ms per DNS answer and TCP connection, concurrency "
        f"{args.concurrency} per process, PostgreSQL, {os.cpu_count()} cores (shared)"
    )
    print(
        f"anchor (checks only, in process) {n / anchor_wall * 3600:8.0f} checks/h  "
        f"{anchor_cpu / n * 1000:5.1f} ms CPU/check"
    )
    for p in (int(x) for x in args.processes.split(",")):
        run_node(args, settings, domains, lab_pid, p, None)
        if args.spread:
            run_node(args, settings, domains, lab_pid, p, n / args.rate * 3600)
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


# --- cluster: real `mtasts serve` processes on PostgreSQL -----------------------------------

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (threads included), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (proc(5))


def serve_env(settings: Settings, interval: float, concurrency: int) -> dict[str, str]:
    return {
        **os.environ,
        "MTASTS_MONITOR_INTERVAL": str(interval),
        "MTASTS_MONITOR_CONCURRENCY": str(concurrency),
        "MTASTS_CA_FILE": str(settings.ca_file),
        "MTASTS_HTTPS_PORT": str(settings.https_port),
        "MTASTS_SMTP_PORT": str(settings.smtp_port),
        "MTASTS_CHECK_TIMEOUT": str(settings.check_timeout),
        "MTASTS_PROBE_ALLOWED_NETWORKS": ",".join(LAB_NETWORKS),
        # wake within a second of T0 (the schedule is moved there once the processes are up)
        "MTASTS_MONITOR_TICK": "1",
    }


class Node:
    """``processes`` `mtasts serve` processes on one fresh PostgreSQL database."""

    def __init__(self, admin_url: str, processes: int, tmp: Path) -> None:
        import psycopg

        self.admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
        self.db_name = f"mtasts_bench_{secrets.token_hex(4)}"
        self.admin.execute(f'CREATE DATABASE "{self.db_name}"')
        base = admin_url.rsplit("/", 1)[0]
        self.url = f"{base}/{self.db_name}".replace("postgresql://", "postgresql+psycopg://", 1)
        self.processes = processes
        self.tmp = tmp
        self.procs: list[tuple[subprocess.Popen[bytes], str]] = []

    def start(self, settings: Settings, interval: float, concurrency: int) -> None:
        import httpx
        from tests.lab.ports import free_port

        env = serve_env(settings, interval, concurrency)
        for k in range(self.processes):
            port = free_port()
            data = self.tmp / f"node{k}"
            data.mkdir()
            cmd = [sys.executable, "-m", "mtasts", "serve", "--data-dir", str(data)]
            cmd += ["--listen", f"127.0.0.1:{port}", "--zone", settings.zone]
            cmd += ["--nameserver", settings.nameservers[0], "--database-url", self.url]
            with (data / "serve.log").open("wb") as log:
                proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            self.procs.append((proc, f"http://127.0.0.1:{port}"))
        for proc, base in self.procs:
            for _ in range(600):
                if proc.poll() is not None:
                    raise SystemExit(f"mtasts serve exited {proc.returncode}; see {self.tmp}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            else:
                raise SystemExit("mtasts serve did not answer /healthz")

    def cpu(self) -> tuple[float, float]:
        """CPU seconds of the serve processes, and of this database's PostgreSQL backends."""
        backends = [
            pid
            for (pid,) in self.admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.db_name,)
            ).fetchall()
        ]
        pg = 0.0
        for pid in backends:
            with contextlib.suppress(OSError):  # a backend that ended in between
                pg += cpu_seconds(pid)
        return sum(cpu_seconds(p.pid) for p, _ in self.procs), pg

    def checks_per_process(self) -> list[int]:
        import httpx

        out = []
        for _proc, base in self.procs:
            text = httpx.get(f"{base}/metrics", timeout=5).text
            out.append(
                sum(
                    int(float(line.rsplit(" ", 1)[1]))
                    for line in text.splitlines()
                    if line.startswith("mtasts_checks_total{")
                )
            )
        return out

    def close(self) -> None:
        for proc, _ in self.procs:
            proc.terminate()  # the processes this run started
        for proc, _ in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)
        self.admin.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        self.admin.close()


def run_node(
    args: argparse.Namespace,
    settings: Settings,
    domains: list[str],
    lab_pid: int,
    processes: int,
    interval: float | None,
) -> None:
    """One measurement on a fresh database: a burst (``interval`` None: every domain due at
    T0) or one spread interval (each domain at its spot in ``interval`` from T0)."""
    n = len(domains)
    with tempfile.TemporaryDirectory() as tmp:
        node = Node(args.pg_admin, processes, Path(tmp))
        try:
            store = replace(settings, database_url=node.url)
            seed(store, domains, args.mx_count)
            engine = make_engine(node.url)
            later = datetime.now(UTC) + timedelta(days=1)  # nothing due while they start
            with session_factory(engine).begin() as db:
                db.execute(
                    insert(DomainCheck),
                    [
                        {"domain_id": i, "next_check_at": later, "claimed_by": ""}
                        for i in range(1, n + 1)
                    ],
                )
            node.start(settings, interval or 3600.0, args.concurrency)
            t0 = datetime.now(UTC) + timedelta(seconds=3)
            with session_factory(engine).begin() as db:
                db.execute(  # bulk UPDATE by primary key
                    update(DomainCheck),
                    [
                        {
                            "domain_id": i,
                            "next_check_at": t0
                            if interval is None
                            else next_spot(d, interval, t0 - _US),
                        }
                        for i, d in enumerate(domains, start=1)
                    ],
                )
            wait = (t0 - datetime.now(UTC)).total_seconds()
            if wait < 0:
                raise SystemExit("moving the schedule to T0 took too long")
            time.sleep(wait)
            cpu0, pg0, lab0, load0 = *node.cpu(), cpu_seconds(lab_pid), os.getloadavg()[0]
            sessions = session_factory(engine)
            done = 0
            while done < n:
                time.sleep(0.5)
                with sessions() as db:
                    done = (
                        db.scalar(select(func.count()).where(DomainCheck.last_check_at >= t0)) or 0
                    )
            cpu1, pg1, lab1, load1 = *node.cpu(), cpu_seconds(lab_pid), os.getloadavg()[0]
            shares = node.checks_per_process()
            with sessions() as db:
                times = sorted(
                    _aware(t) for t in db.scalars(select(DomainCheck.last_check_at)) if t
                )
            engine.dispose()
        finally:
            node.close()
    cpu, pg, lab_cpu = cpu1 - cpu0, pg1 - pg0, lab1 - lab0
    span = (times[-1] - t0).total_seconds()
    what = "burst " if interval is None else "spread"
    head = (
        f"{processes} process{'es' if processes > 1 else '  '} {what}  "
        f"{n / span * 3600:8.0f} checks/h  {cpu / n * 1000:5.1f} ms CPU/check "
        f"(+ PostgreSQL {pg / n * 1000:.1f}, lab {lab_cpu / n * 1000:.1f})  "
        f"checks per process {shares}  load {load0:.1f}->{load1:.1f}"
    )
    if interval is None:
        print(head + f"  ({n} checks in {span:.1f} s)")
        return
    slices = max(1, round(interval / args.slice))
    width = interval / slices
    counts = Counter(min(slices - 1, int((t - t0).total_seconds() // width)) for t in times)
    per = [counts.get(k, 0) for k in range(slices)]
    late = sum(1 for t in times if (t - t0).total_seconds() >= interval)
    mean = statistics.mean(per)
    print(
        head + f"\n    interval {interval:.0f} s ({n / interval * 3600:.0f} checks/h due); per "
        f"{width:.0f} s slice: mean {mean:.1f}, min {min(per)}, max {max(per)}, "
        f"max/mean {max(per) / mean:.2f}; last check {span:.1f} s after T0"
        + (f"; {late} after the interval" if late else "")
    )


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


_US = timedelta(microseconds=1)


if __name__ == "__main__":
    sys.exit(main())
