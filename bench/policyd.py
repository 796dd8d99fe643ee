"""policyd benchmark: `mtasts policyd` against postfix-mta-sts-resolver (PMR, the anchor)'s
`mta-sts-daemon`, in one run, on the same lab:

1. cached socketmap answers per second: 16 connections, each keeping --window requests in
   flight (pipelined), over --keys domains already in both caches; and each daemon's memory
   (VmRSS after the load, VmHWM = peak).
2. cold-cache resolution of --domains lab domains at --delay seconds per DNS answer and per
   TCP connection (30 ms: a realistic round trip): --concurrency connections each asking one
   domain after another, as Postfix's smtp processes do. Both daemons start empty.

Everything runs inside a private network and mount namespace (root; `unshare -n -m`): the lab
listens on the real ports 53 and 443 and /etc/resolv.conf points at the lab DNS, because PMR
resolves through the system resolver (aiodns). Both daemons are separate processes; the load
generator and the lab share this process.

What each side does per cold domain: _mta-sts TXT lookup, then the policy fetch (A lookup,
TCP, TLS with PKIX validation, HTTP GET), parse, answer. PMR's cache_grace is raised to an
hour so that its cached answers do not re-check the TXT record during the load (policyd
re-checks in the background, never on the answer path).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lab import World  # noqa: E402
from tests.lab.world import DNS_IP  # noqa: E402

MARK = "MTASTS_BENCH_NETNS"
POLICYD_PORT, PMR_PORT = 8461, 8462
CONNECTIONS = 16
WARM_UP_ROUNDS = 5


def reexec_in_namespace() -> int:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        print("policyd bench: needs root and unshare (util-linux) for a private network namespace")
        return 2
    env = {**os.environ, MARK: "1"}
    cmd = ["unshare", "-n", "-m", "--", sys.executable, __file__, *sys.argv[1:]]
    return subprocess.run(cmd, env=env, check=False).returncode


def netstring(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


@dataclass
class Daemon:
    name: str
    proc: subprocess.Popen[bytes]
    port: int

    def memory_kib(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in KiB."""
        values = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
        return values["VmRSS"], values["VmHWM"]

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"daemon exited:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"daemon did not listen on {port}:\n{log.read_text()[-3000:]}")


def start_policyd(world: World, work: Path, tag: str) -> Daemon:
    mtasts = str(Path(sys.executable).parent / "mtasts")
    log = work / f"policyd-{tag}.log"
    cmd = [
        mtasts,
        "policyd",
        "--listen",
        f"127.0.0.1:{POLICYD_PORT}",
        "--data-dir",
        str(work / f"policyd-{tag}"),
        "--nameserver",
        DNS_IP,
        "--ca-file",
        world.ca_file,
    ]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    _wait_port(POLICYD_PORT, proc, log)
    return Daemon("mtasts policyd", proc, POLICYD_PORT)


def start_pmr(pmr: str, world: World, work: Path, tag: str) -> Daemon:
    config = work / f"pmr-{tag}.yml"
    config.write_text(
        f"host: 127.0.0.1\nport: {PMR_PORT}\nreuse_port: true\nshutdown_timeout: 1\n"
        "cache_grace: 3600\ncache:\n  type: internal\n  options:\n    cache_size: 10000\n"
        "default_zone:\n  strict_testing: false\n  timeout: 4\n"
    )
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["SSL_CERT_FILE"] = world.ca_file
    env.pop("SSL_CERT_DIR", None)
    log = work / f"pmr-{tag}.log"
    proc = subprocess.Popen(
        [pmr, "-v", "warn", "-c", str(config)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    _wait_port(PMR_PORT, proc, log)
    return Daemon("PMR mta-sts-daemon", proc, PMR_PORT)


def start_daemon(
    which: str, args: argparse.Namespace, world: World, work: Path, tag: str
) -> Daemon:
    if which == "policyd":
        return start_policyd(world, work, tag)
    return start_pmr(args.pmr, world, work, tag)


async def _ask_each(port: int, keys: Sequence[str], concurrency: int) -> dict[str, bytes]:
    """One request at a time per connection, ``concurrency`` connections."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for k in keys:
        queue.put_nowait(k)
    answers: dict[str, bytes] = {}

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not queue.empty():
                key = queue.get_nowait()
                writer.write(netstring(b"postfix " + key.encode()))
                head = await reader.readuntil(b":")
                answers[key] = (await reader.readexactly(int(head[:-1]) + 1))[:-1]
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(keys)))))
    return answers


async def _load(
    port: int, keys: Sequence[str], expected: dict[str, bytes], rounds: int, window: int
) -> float:
    """16 connections, each with ``window`` requests in flight, ``rounds`` windows each;
    returns answers per second. Replies are counted by their known length (every key's
    answer is known from the warm-up), so the generator does little work per answer."""
    batches = []
    for c in range(CONNECTIONS):
        chosen = [keys[(c * window + i) % len(keys)] for i in range(window)]
        request = b"".join(netstring(b"postfix " + k.encode()) for k in chosen)
        reply_len = sum(len(netstring(expected[k])) for k in chosen)
        batches.append((request, reply_len))
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(CONNECTIONS)]

    async def drive(c: int) -> None:
        reader, writer = conns[c]
        request, reply_len = batches[c]
        for _ in range(rounds):
            writer.write(request)
            got = 0
            while got < reply_len:
                chunk = await reader.read(1 << 20)
                if not chunk:
                    raise SystemExit("daemon closed the connection during the load")
                got += len(chunk)
            if got != reply_len:
                raise SystemExit(f"unexpected answers: {got} bytes, expected {reply_len}")

    start = time.perf_counter()
    await asyncio.gather(*(drive(c) for c in range(CONNECTIONS)))
    elapsed = time.perf_counter() - start
    for _, writer in conns:
        writer.close()
    return CONNECTIONS * rounds * window / elapsed


def cached_phase(args: argparse.Namespace, work: Path) -> list[tuple[str, float, int, int]]:
    out = []
    with World(work / "lab-cached", real_ports=True, ipv6=False, smtp_profiles=["good"]) as world:
        keys = world.add_domains(args.keys, suffix="cached.bench.test")
        for which in ("policyd", "pmr"):
            daemon = start_daemon(which, args, world, work, "cached")
            try:
                answers = asyncio.run(_ask_each(daemon.port, keys, 32))
                bad = [k for k in keys if not answers[k].startswith(b"OK secure match=")]
                # A loaded machine makes some first fetches time out (PMR's timeout is 4 s):
                # ask those again, so that both caches hold every key before the load.
                for _ in range(WARM_UP_ROUNDS):
                    if not bad:
                        break
                    answers.update(asyncio.run(_ask_each(daemon.port, bad, 32)))
                    bad = [k for k in bad if not answers[k].startswith(b"OK secure match=")]
                if bad:
                    raise SystemExit(f"{daemon.name}: unexpected answers, e.g. {answers[bad[0]]!r}")
                rate = asyncio.run(_load(daemon.port, keys, answers, args.rounds, args.window))
                rss, hwm = daemon.memory_kib()
                out.append((daemon.name, rate, rss, hwm))
            finally:
                daemon.stop()
    return out


def cold_phase(args: argparse.Namespace, work: Path) -> list[tuple[str, float, int, float, int]]:
    out = []
    with World(
        work / "lab-cold", real_ports=True, ipv6=False, delay=args.delay, smtp_profiles=["good"]
    ) as world:
        domains = world.add_domains(args.domains, suffix="cold.bench.test")
        # The lab issues a certificate per policy host on first use; issue them all now,
        # so that neither daemon pays (or profits from) the lab's warm-up.
        for d in domains:
            world.https.certs.context_for(f"mta-sts.{d}")
        for which in ("policyd", "pmr"):
            daemon = start_daemon(which, args, world, work, "cold")
            try:
                cpu0 = daemon.cpu_seconds()
                queries0 = world.dns.stats.udp_queries + world.dns.stats.tcp_queries
                t0 = time.perf_counter()
                answers = asyncio.run(_ask_each(daemon.port, domains, args.concurrency))
                elapsed = time.perf_counter() - t0
                ok = sum(a.startswith(b"OK secure match=") for a in answers.values())
                queries = world.dns.stats.udp_queries + world.dns.stats.tcp_queries - queries0
                out.append((daemon.name, elapsed, ok, daemon.cpu_seconds() - cpu0, queries))
            finally:
                daemon.stop()
    return out


def run(args: argparse.Namespace) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        work = Path(tmp_name)
        resolv = work / "resolv.conf"
        resolv.write_text(f"nameserver {DNS_IP}\noptions timeout:5 attempts:1\n")
        subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
        cached = cached_phase(args, work) if not args.cold_only else []
        cold = cold_phase(args, work)
    version = (
        subprocess.run(
            [
                str(Path(args.pmr).with_name("python")),
                "-c",
                "import importlib.metadata as m; print(m.version('postfix-mta-sts-resolver'))",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        or "?"
    )
    if cached:
        print(
            f"cached answers: {args.keys} domains in cache, "
            f"{CONNECTIONS} connections x {args.window} pipelined"
        )
        for name, rate, rss, hwm in cached:
            print(
                f"  {name:<22} {rate:10.0f} answers/s   "
                f"RSS {rss / 1024:6.1f} MiB (peak {hwm / 1024:6.1f} MiB)"
            )
        (_, ours_rate, ours_rss, ours_hwm), (_, pmr_rate, pmr_rss, pmr_hwm) = cached
        print(
            f"  ratio answers/s {ours_rate / pmr_rate:.2f}x; RSS {ours_rss / pmr_rss:.2f}x; "
            f"peak {ours_hwm / pmr_hwm:.2f}x"
        )
    print(
        f"cold cache: {args.domains} lab domains, {args.delay * 1000:.0f} ms per DNS answer "
        f"and per TCP connection, {args.concurrency} connections"
    )
    for name, elapsed, ok, cpu, queries in cold:
        print(
            f"  {name:<22} {elapsed:7.2f} s  {args.domains / elapsed:7.1f} domains/s  "
            f"({ok} OK secure; daemon CPU {cpu:.2f} s; {queries} DNS queries)"
        )
    (_, ours_s, *_), (_, pmr_s, *_) = cold
    print(f"  ratio {pmr_s / ours_s:.2f}x (PMR time / policyd time)")
    print(f"anchor: postfix-mta-sts-resolver {version} ({args.pmr})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pmr", default=str(ROOT / ".venv-pmr" / "bin" / "mta-sts-daemon"))
    parser.add_argument("--keys", type=int, default=200, help="domains in the cached phase")
    parser.add_argument("--window", type=int, default=64, help="requests in flight per connection")
    parser.add_argument("--rounds", type=int, default=100, help="windows per connection")
    parser.add_argument("--domains", type=int, default=1000, help="domains in the cold phase")
    parser.add_argument("--delay", type=float, default=0.03)
    parser.add_argument("--concurrency", type=int, default=100, help="connections, cold phase")
    parser.add_argument("--cold-only", action="store_true", help="skip the cached phase")
    args = parser.parse_args()
    if not Path(args.pmr).exists():
        print(f"policyd bench: no PMR daemon at {args.pmr} (make bench-policyd installs it)")
        return 2
    if os.environ.get(MARK) != "1":
        return reexec_in_namespace()
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
