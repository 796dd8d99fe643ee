"""Attacks on a real `mtasts serve` on loopback, and what they cost it (issue 11).

    python bench/attack.py [--only report,dns,slow,store] [--domains 1000]

Every phase starts its own `python -m mtasts serve` (SQLite store seeded with --domains
hosted domains by bench/policy_host_seed.py) and prints its figures:

  report  peak RSS (VmHWM) under 48 parallel gzip bombs (50 KB inflating to 49 MiB of JSON
          whitespace) POSTed to /tlsrpt/<domain> and 60 parallel 15 MB report mails (from
          60 loopback addresses), and whether the policy host kept answering meanwhile;
  dns     policy-host req/s (wrk, bench/policy_host.lua) without and with a 5,000 q/s ANY
          flood from one source (127.0.0.2), their ratio, and the share of queries from
          other sources (127.0.1.x) answered during the flood;
  slow    with NOFILE soft 1024 / hard 8192 on the server, 1,500 slow HTTP clients and 300
          slow SMTP clients (30 addresses) trickling a byte every 4 s and reconnecting when
          closed: the latency of a new HTTP client and of a new SMTP client's greeting, and
          the growth of the server's log;
  store   bytes added to the store per hour by one client POSTing valid, distinct, large
          reports (extrapolated from a short flood), and the answers it got.

All traffic stays on 127.0.0.0/8. The server runs on CPU 0 and wrk on CPU 1 where there are
two CPUs; the DNS flooder is not pinned (it shares the cores, as an attacker on the same
machine would). Goals (issue 11) are printed next to the figures. To measure other code,
put its src/ first on PYTHONPATH: the servers are started with this interpreter and env.
"""

from __future__ import annotations

import argparse
import email.policy
import gzip
import json
import os
import random
import resource
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from email.message import EmailMessage
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from tests.lab.ports import free_port  # noqa: E402

from policy_host_seed import domain_name, seed  # noqa: E402

ZONE = "sts.bench.example"
MiB = 1 << 20
TWO_CPUS = (os.cpu_count() or 1) >= 2


# --- the server ---------------------------------------------------------------------------


class Server:
    def __init__(self, data_dir: Path, proc: subprocess.Popen[bytes], port: int) -> None:
        self.data_dir = data_dir
        self.proc = proc
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log = data_dir / "serve.log"

    def status(self, key: str) -> int:
        """A /proc/PID/status figure in bytes (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def policy(self, domain: str, timeout: float = 5.0) -> float:
        """Seconds to fetch a hosted policy with a new connection; raises on failure."""
        start = time.monotonic()
        r = httpx.get(
            f"{self.base}/.well-known/mta-sts.txt",
            headers={"Host": f"mta-sts.{domain}"},
            timeout=timeout,
        )
        r.raise_for_status()
        return time.monotonic() - start


@contextmanager
def serve(
    data_dir: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    nofile: tuple[int, int] | None = None,
) -> Iterator[Server]:
    port = free_port()
    cmd = [sys.executable, "-m", "mtasts", "serve", "--data-dir", str(data_dir)]
    cmd += ["--listen", f"127.0.0.1:{port}", "--zone", ZONE, "--nameserver", "127.0.0.1:9"]
    if TWO_CPUS:
        cmd = ["taskset", "-c", "0", *cmd]
    full_env = {
        **os.environ,
        "MTASTS_MONITOR_INTERVAL": "0",
        "MTASTS_VERIFY_INTERVAL": "86400",
        **(env or {}),
    }

    def limits() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

    with (data_dir / "serve.log").open("ab") as log:
        proc = subprocess.Popen(
            [*cmd, *extra], env=full_env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limits
        )
    server = Server(data_dir, proc, port)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mtasts serve exited: {server.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{server.base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("mtasts serve did not start")
            time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def seeded(tmp: Path, name: str, domains: int) -> tuple[Path, Path]:
    data_dir = tmp / name
    data_dir.mkdir()
    hosts = data_dir / "hosts.txt"
    seed(data_dir, domains, hosts, data_dir / "policy.txt")
    return data_dir, hosts


def run_threads(targets: list[Callable[[], None]], timeout: float) -> int:
    """Run ``targets`` in parallel; the number still running after ``timeout``."""
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return sum(t.is_alive() for t in threads)


class Watch:
    """Fetches a policy every 0.2 s in the background: answered / asked, worst latency."""

    def __init__(self, server: Server, domain: str) -> None:
        self.server, self.domain = server, domain
        self.ok = self.asked = 0
        self.worst = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.asked += 1
            try:
                self.worst = max(self.worst, self.server.policy(self.domain, timeout=5))
                self.ok += 1
            except (httpx.HTTPError, OSError):
                self.worst = max(self.worst, 5.0)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def __str__(self) -> str:
        return f"{self.ok}/{self.asked} policy fetches answered, worst {self.worst * 1000:.0f} ms"


# --- report flood ---------------------------------------------------------------------------


def report_flood(tmp: Path, domains: int) -> None:
    data_dir, _hosts = seeded(tmp, "report", domains)
    domain = domain_name(1)
    bomb = gzip.compress(b"{" + b" " * (49 * MiB) + b"}", 9)
    mail = EmailMessage()
    mail["From"] = "reports@sender.example"
    mail["To"] = f"tlsrpt@{ZONE}"
    mail["Subject"] = f"Report Domain: {domain} Submitter: sender.example Report-ID: <x@y>"
    mail["TLS-Report-Domain"] = domain
    mail["TLS-Report-Submitter"] = "sender.example"
    mail.set_content("TLS report attached.")
    mail.add_attachment(
        random.Random(1).randbytes(11 * MiB),  # base64: ~15 MB on the wire
        maintype="application",
        subtype="tlsrpt+gzip",
        filename="report.json.gz",
    )
    raw = mail.as_bytes(policy=email.policy.SMTP)  # CRLF line ends
    smtp_port = free_port()
    answers: dict[str, int] = {}
    lock = threading.Lock()

    def count(key: str) -> None:
        with lock:
            answers[key] = answers.get(key, 0) + 1

    with serve(data_dir, "--smtp", f"127.0.0.1:{smtp_port}") as server:
        time.sleep(1)
        rss_before = server.status("VmRSS")

        def upload() -> None:
            try:
                r = httpx.post(
                    f"{server.base}/tlsrpt/{domain}",
                    content=bomb,
                    headers={"Content-Type": "application/tlsrpt+gzip"},
                    timeout=120,
                )
                count(f"HTTPS {r.status_code}")
            except httpx.HTTPError as exc:
                count(f"HTTPS {type(exc).__name__}")

        def send_mail(i: int) -> Callable[[], None]:
            def run() -> None:
                try:
                    with smtplib.SMTP(
                        "127.0.0.1",
                        smtp_port,
                        timeout=120,
                        source_address=(f"127.0.3.{i + 1}", 0),
                    ) as c:
                        c.sendmail("reports@sender.example", [f"tlsrpt@{ZONE}"], raw)
                    count("SMTP 250")
                except smtplib.SMTPResponseException as exc:
                    count(f"SMTP {exc.smtp_code}")
                except (smtplib.SMTPException, OSError) as exc:
                    count(f"SMTP {type(exc).__name__}")

            return run

        with Watch(server, domain) as watch:
            started = time.monotonic()
            left = run_threads([upload] * 48 + [send_mail(i) for i in range(60)], 120)
            took = time.monotonic() - started
        peak = server.status("VmHWM")
    print("report flood: 48 parallel gzip bombs (HTTPS) + 60 parallel 15 MB mails (SMTP)")
    print(f"  RSS {rss_before / MiB:.0f} MiB before; peak {peak / MiB:.0f} MiB (goal <= 512 MiB)")
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(answers.items()))
    print(f"  answers: {summary}; {left} unfinished after {took:.0f} s")
    print(f"  policy host meanwhile: {watch}")


# --- DNS flood ------------------------------------------------------------------------------

FLOODER = r"""
import socket, sys, time, dns.message
port, rate, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
wire = dns.message.make_query(sys.argv[4], "ANY").to_wire()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.2", 0))
s.setblocking(False)
sent, got, start = 0, 0, time.monotonic()
while (now := time.monotonic()) - start < seconds:
    due = int((now - start) * rate)
    while sent < due:
        try:
            s.sendto(wire, ("127.0.0.1", port))
        except BlockingIOError:
            pass
        sent += 1
        try:
            s.recv(4096)  # keep the receive buffer from filling
            got += 1
        except BlockingIOError:
            pass
    time.sleep(0.002)
print(sent / (time.monotonic() - start), got / max(sent, 1))
"""


def wrk(url: str, hosts: Path, seconds: int) -> float:
    cmd = ["wrk", "-t1", "-c64", f"-d{seconds}s", "-s", str(ROOT / "bench/policy_host.lua")]
    cmd += [url, "--", str(hosts)]
    if TWO_CPUS:
        cmd = ["taskset", "-c", "1", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(out)


def dns_flood(tmp: Path, domains: int, seconds: int = 5, rounds: int = 2) -> None:
    data_dir, hosts = seeded(tmp, "dns", domains)
    dns_port = free_port(udp=True)
    with serve(data_dir, "--dns", f"127.0.0.1:{dns_port}") as server:
        url = f"{server.base}/.well-known/mta-sts.txt"
        wrk(url, hosts, 2)  # warm up
        calm: list[float] = []
        flooded: list[float] = []
        rates: list[float] = []
        replies: list[float] = []
        asked = answered = 0
        for _ in range(rounds):
            calm.append(wrk(url, hosts, seconds))
            flooder = subprocess.Popen(
                [sys.executable, "-c", FLOODER, str(dns_port), "5000", str(seconds + 2), ZONE],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(0.5)
            stop = threading.Event()
            tally = [0, 0]

            def others(tally: list[int] = tally, stop: threading.Event = stop) -> None:
                i = 0
                while not stop.wait(0.1):
                    i += 1
                    q = dns.message.make_query(f"{domain_name(i)}.policy.{ZONE}", "TXT")
                    tally[0] += 1
                    try:
                        r = dns.query.udp(
                            q, "127.0.0.1", port=dns_port, timeout=2, source=f"127.0.1.{i % 12 + 1}"
                        )
                        if r.flags & dns.flags.TC:  # an honest resolver retries over TCP
                            r = dns.query.tcp(q, "127.0.0.1", port=dns_port, timeout=2)
                        tally[1] += bool(r.answer)
                    except (dns.exception.DNSException, OSError):
                        pass

            thread = threading.Thread(target=others, daemon=True)
            thread.start()
            flooded.append(wrk(url, hosts, seconds))
            stop.set()
            thread.join(5)
            out, _ = flooder.communicate(timeout=30)
            rate, share = [*out.split(), "0", "0"][:2]
            rates.append(float(rate))
            replies.append(float(share))
            asked += tally[0]
            answered += tally[1]
    a, b = statistics.median(calm), statistics.median(flooded)
    print(f"DNS ANY flood from one source ({statistics.mean(rates):.0f} q/s achieved), wrk -c64")

    def runs(xs: list[float]) -> str:
        return ", ".join(f"{x:.0f}" for x in xs)

    print(f"  flooder got a reply to {statistics.mean(replies):.0%} of its queries")
    print(f"  policy host without flood {a:9.0f} req/s   ({runs(calm)})")
    print(f"  policy host under flood   {b:9.0f} req/s   ({runs(flooded)})")
    print(f"  ratio                     {b / a:9.2f}x     (goal >= 0.5x)")
    print(f"  other sources answered    {answered}/{asked}   (goal: all)")


# --- slow clients ---------------------------------------------------------------------------


class Slow:
    """A slow client: connects, then sends one byte every ``every`` seconds; reconnects
    when the server closes it (an attacker would)."""

    def __init__(self, port: int, source: str, opening: bytes, every: float = 4.0) -> None:
        self.port, self.source, self.opening, self.every = port, source, opening, every
        self.sock: socket.socket | None = None
        self.next = 0.0
        self.closed = 0

    def connect(self) -> None:
        try:
            s = socket.create_connection(
                ("127.0.0.1", self.port), timeout=1, source_address=(self.source, 0)
            )
            s.setblocking(False)
            s.send(self.opening)
            self.sock = s
        except OSError:
            self.sock = None
        self.next = time.monotonic() + self.every

    def tick(self, now: float) -> None:
        if self.sock is None:
            self.connect()
            return
        try:
            if self.sock.recv(4096) == b"":
                raise ConnectionResetError
        except BlockingIOError:
            pass
        except OSError:
            self.sock.close()
            self.closed += 1
            self.connect()
            return
        if now >= self.next:
            self.next = now + self.every
            with suppress(OSError):
                self.sock.send(b"X")


def smtp_greeting(port: int, source: str, timeout: float = 10.0) -> float:
    start = time.monotonic()
    with socket.create_connection(
        ("127.0.0.1", port), timeout=timeout, source_address=(source, 0)
    ) as s:
        data = s.recv(512)
    if not data.startswith(b"220"):
        raise OSError(f"no greeting: {data[:60]!r}")
    return time.monotonic() - start


def slow_clients(tmp: Path, domains: int, settle: float = 20.0) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4000 <= hard or hard == resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 20000), hard))
    data_dir, _hosts = seeded(tmp, "slow", domains)
    smtp_port = free_port()
    domain = domain_name(1)
    with serve(data_dir, "--smtp", f"127.0.0.1:{smtp_port}", nofile=(1024, 8192)) as server:
        log_before = server.log.stat().st_size
        clients = [
            Slow(server.port, "127.0.0.1", b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nX")
            for _ in range(1500)
        ]
        clients += [Slow(smtp_port, f"127.0.5.{i % 30 + 1}", b"N") for i in range(300)]
        for c in clients:
            c.connect()
        stop = threading.Event()

        def keep() -> None:
            while not stop.wait(0.5):
                now = time.monotonic()
                for c in clients:
                    c.tick(now)

        keeper = threading.Thread(target=keep, daemon=True)
        keeper.start()
        time.sleep(settle)
        http_times, smtp_times, failures = [], [], []
        for i in range(5):
            try:
                http_times.append(server.policy(domain, timeout=10))
            except (httpx.HTTPError, OSError) as exc:
                failures.append(f"HTTP {type(exc).__name__}")
            try:
                smtp_times.append(smtp_greeting(smtp_port, f"127.0.6.{i + 1}"))
            except OSError as exc:
                failures.append(f"SMTP {type(exc).__name__}: {exc}"[:80])
        open_now = sum(c.sock is not None for c in clients)
        stop.set()
        keeper.join(10)
        reconnects = sum(c.closed for c in clients)
        for c in clients:
            if c.sock is not None:
                c.sock.close()
        time.sleep(1)
        growth = server.log.stat().st_size - log_before

    def fmt(xs: list[float]) -> str:
        if not xs:
            return "none answered"
        return f"median {statistics.median(xs) * 1000:.0f} ms, worst {max(xs) * 1000:.0f} ms"

    print("slow clients: 1,500 HTTP + 300 SMTP (30 addresses), server NOFILE 1024/8192")
    print(f"  client sockets open at the end {open_now}, reconnects after a close {reconnects}")
    print(f"  new HTTP client  {len(http_times)}/5 served, {fmt(http_times)}   (goal < 5 s)")
    print(f"  new SMTP client  {len(smtp_times)}/5 greeted, {fmt(smtp_times)}   (goal < 5 s)")
    if failures:
        print(f"  failures: {'; '.join(failures)}")
    print(f"  log growth {growth / MiB:.2f} MiB   (goal < 10 MiB)")


# --- disk: bytes per attacker per hour ------------------------------------------------------


def big_report(domain: str, i: int, details: int = 2000) -> bytes:
    rng = random.Random(i)
    failures = [
        {
            "result-type": "certificate-expired",
            "sending-mta-ip": f"198.51.100.{rng.randrange(256)}",
            "receiving-mx-hostname": f"mx{rng.randrange(10**9)}.{domain}",
            "receiving-ip": f"203.0.113.{rng.randrange(256)}",
            "failed-session-count": rng.randrange(1, 100),
            "failure-reason-code": rng.randbytes(48).hex(),
        }
        for _ in range(details)
    ]
    report = {
        "organization-name": "Attacker Inc.",
        "date-range": {
            "start-datetime": "2026-10-01T00:00:00Z",
            "end-datetime": "2026-10-01T23:59:59Z",
        },
        "contact-info": "mailto:a@attacker.example",
        "report-id": f"attack-{i}-{rng.randrange(10**12)}",
        "policies": [
            {
                "policy": {"policy-type": "sts", "policy-domain": domain},
                "summary": {
                    "total-successful-session-count": 1,
                    "total-failure-session-count": sum(
                        int(str(f["failed-session-count"])) for f in failures
                    ),
                },
                "failure-details": failures,
            }
        ],
    }
    return gzip.compress(json.dumps(report).encode())


def store_flood(tmp: Path, domains: int, seconds: float = 10.0) -> None:
    data_dir, _hosts = seeded(tmp, "store", domains)
    domain = domain_name(1)
    reports = [big_report(domain, i) for i in range(40)]

    def store_bytes() -> int:
        return sum(p.stat().st_size for p in data_dir.glob("mtasts.db*"))

    with serve(data_dir) as server:
        before = store_bytes()
        answers: dict[int, int] = {}
        sent_bytes = 0
        lock = threading.Lock()
        deadline = time.monotonic() + seconds
        counter = iter(range(10**9))
        at_first_429: list[int] = []

        def attacker() -> None:
            nonlocal sent_bytes
            with httpx.Client(timeout=30) as c:
                while time.monotonic() < deadline:
                    i = next(counter)
                    body = reports[i % len(reports)]
                    if i >= len(reports):  # a new report-id each time: no dedup
                        body = big_report(domain, i, 2000)
                    r = c.post(
                        f"{server.base}/tlsrpt/{domain}",
                        content=body,
                        headers={"Content-Type": "application/tlsrpt+gzip"},
                    )
                    with lock:
                        answers[r.status_code] = answers.get(r.status_code, 0) + 1
                        sent_bytes += len(body)
                        if r.status_code == 429 and not at_first_429:
                            at_first_429.append(store_bytes())

        started = time.monotonic()
        run_threads([attacker] * 4, seconds + 60)
        took = time.monotonic() - started
        time.sleep(0.5)
        grown = store_bytes() - before
    codes = ", ".join(f"{k}: {v}" for k, v in sorted(answers.items()))
    print(f"store flood: one client, 4 connections, large valid reports for {took:.0f} s")
    print(f"  answers {codes}; sent {sent_bytes / MiB:.1f} MiB (gzip)")
    print(f"  store grew {grown / MiB:.1f} MiB")
    if at_first_429:
        after = grown - (at_first_429[0] - before)
        print(
            f"  of which {after / MiB:.1f} MiB after the first 429 (over quota): per attacker and"
            " domain at most the daily quota a day, whatever the rate"
        )
    else:
        per_hour = grown * 3600 / took
        print(f"  no 429 seen: {per_hour / 2**30:.1f} GiB per attacker per hour (extrapolated)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="report,dns,slow,store")
    parser.add_argument("--domains", type=int, default=1000)
    args = parser.parse_args()
    phases = {"report": report_flood, "dns": dns_flood, "slow": slow_clients, "store": store_flood}
    wanted = [p.strip() for p in args.only.split(",") if p.strip()]
    with tempfile.TemporaryDirectory(prefix="mtasts-attack-") as tmp:
        for name in wanted:
            started = time.monotonic()
            phases[name](Path(tmp), args.domains)
            print(f"  ({name}: {time.monotonic() - started:.0f} s)\n", flush=True)


if __name__ == "__main__":
    main()
