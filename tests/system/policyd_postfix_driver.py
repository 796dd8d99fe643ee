"""Runs as PID 1 of private network, mount and PID namespaces (root): a real Postfix relay
whose outbound TLS policy comes from a socketmap policy server, delivering to the lab.

    unshare --net --mount --pid --fork --mount-proc --kill-child \\
        python -m tests.system.policyd_postfix_driver WORKDIR SERVER [MTASTS]

SERVER is "policyd" (``MTASTS policyd``) or "pmr" (postfix-mta-sts-resolver's
``mta-sts-daemon``, for comparison). Prints one JSON object: per recipient the Postfix
status line, what the lab MX servers received, the socketmap answers and the log.

The lab listens on the real ports (Postfix always delivers to port 25 of the MX), and
/etc/resolv.conf is bind-mounted (in this mount namespace only) to point at the lab DNS,
because Postfix resolves MX hosts through the libc resolver. Postfix runs as its own
instance (``postfix -c WORKDIR/etc``) with a master.cf that chroots nothing; the system's
/etc/postfix is never used. When this process ends, the kernel ends every process in the
namespace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

from tests.lab import World
from tests.lab.world import DNS_IP

RELAY_IP = "127.0.0.200"  # Postfix's smtpd, where the test submits mail
POLICYD = "127.0.0.1:8461"  # PMR's default, kept by policyd
WAIT = 60.0

# recipient -> (domain, what the case is about)
CASES = {
    "alice@enforce-good.test": "enforce, good MX: delivered over verified TLS",
    "bob@enforce-expired.test": "enforce, MX certificate expired: deferred",
    "carol@testing.test": "testing, MX certificate expired: delivered",
    "dave@wild.test": "mx: *.wild.test, MX two labels deep: not delivered to that MX",
    "erin@twomodes.test": "mode enforce, then mode testing (the first counts), bad MX",
    "frank@badid.test": "an invalid id in the TXT record: no policy (RFC 8461 §3.1)",
}


def _publish(world: World) -> None:
    world.add_domain("enforce-good.test")
    world.add_domain("enforce-expired.test", mx_profile="expired")
    world.add_domain("testing.test", mode="testing", mx_profile="expired")
    # RFC 8461 §4.1: "*.wild.test" covers mx.wild.test, never mx.deep.wild.test.
    world.add_domain(
        "wild.test",
        policy="version: STSv1\r\nmode: enforce\r\nmx: *.wild.test\r\nmax_age: 86400\r\n",
    )
    world.zone.set("wild.test", "MX", ["10 mx.deep.wild.test."])
    world.zone.add("mx.deep.wild.test", "A", world.smtp_ip("good"))
    # RFC 8461 §3.2: a repeated key keeps its first value (PMR keeps the last).
    world.add_domain(
        "twomodes.test",
        mx_profile="expired",
        policy="version: STSv1\r\nmode: enforce\r\nmode: testing\r\n"
        "mx: mx1.twomodes.test\r\nmax_age: 86400\r\n",
    )
    # RFC 8461 §3.1: id is 1-32 letters and digits; PMR accepts this record.
    world.add_domain("badid.test", record="v=STSv1; id=bad_id!")


def _main_cf(work: Path, ca_file: Path) -> str:
    return f"""\
compatibility_level = 3.6
queue_directory = {work}/spool
data_directory = {work}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.lab.test
mydomain = lab.test
myorigin = $myhostname
inet_interfaces = {RELAY_IP}
inet_protocols = ipv4
maillog_file = {work}/maillog
maillog_file_prefixes = {work}
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 no local delivery in the lab
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost =
smtp_host_lookup = dns
smtp_dns_support_level = enabled
smtp_tls_security_level = may
smtp_tls_CAfile = {ca_file}
smtp_tls_policy_maps = socketmap:inet:{POLICYD}:postfix
smtp_tls_loglevel = 1
smtp_connect_timeout = 5s
smtp_helo_timeout = 10s
"""


# Nothing chrooted: a chrooted smtp would need copies of resolv.conf and the CA file.
MASTER_CF = """\
smtp       inet  n       -      n      -      -       smtpd
pickup     unix  n       -      n      60     1       pickup
cleanup    unix  n       -      n      -      0       cleanup
qmgr       unix  n       -      n      300    1       qmgr
tlsmgr     unix  -       -      n      1000?  1       tlsmgr
rewrite    unix  -       -      n      -      -       trivial-rewrite
bounce     unix  -       -      n      -      0       bounce
defer      unix  -       -      n      -      0       bounce
trace      unix  -       -      n      -      0       bounce
verify     unix  -       -      n      -      1       verify
flush      unix  n       -      n      1000?  0       flush
proxymap   unix  -       -      n      -      -       proxymap
proxywrite unix  -       -      n      -      1       proxymap
smtp       unix  -       -      n      -      -       smtp
relay      unix  -       -      n      -      -       smtp
showq      unix  n       -      n      -      -       showq
error      unix  -       -      n      -      -       error
retry      unix  -       -      n      -      -       error
discard    unix  -       -      n      -      -       discard
local      unix  -       n      n      -      -       local
anvil      unix  -       -      n      -      1       anvil
scache     unix  -       -      n      -      1       scache
postlog    unix-dgram n  -      n      -      1       postlogd
"""

PMR_YML = """\
host: 127.0.0.1
port: 8461
reuse_port: true
shutdown_timeout: 1
cache:
  type: internal
  options:
    cache_size: 100
default_zone:
  strict_testing: false
  timeout: 4
"""


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _wait(what: str, check: object, seconds: float = 120.0) -> None:  # generous: load
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def _start_policy_server(
    kind: str, work: Path, world: World, ca_file: Path, mtasts: str
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    log = (work / "policyd.log").open("wb")
    if kind == "policyd":
        cmd = [
            mtasts,
            "policyd",
            "--listen",
            POLICYD,
            "--data-dir",
            str(work / "policyd"),
            "--nameserver",
            world.nameserver,
            "--ca-file",
            str(ca_file),
        ]
    else:
        (work / "pmr.yml").write_text(PMR_YML)
        cmd = ["mta-sts-daemon", "-v", "debug", "-c", str(work / "pmr.yml")]
        env["SSL_CERT_FILE"] = str(ca_file)  # PMR trusts the default store only
        env.pop("SSL_CERT_DIR", None)
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def _submit() -> None:
    with smtplib.SMTP(RELAY_IP, 25, local_hostname="client.lab.test", timeout=30) as smtp:
        for rcpt in CASES:
            msg = EmailMessage()
            msg["From"] = "sender@client.lab.test"
            msg["To"] = rcpt
            msg["Subject"] = f"policyd system test to {rcpt}"
            msg.set_content(f"For {rcpt}.\n")
            smtp.send_message(msg)


def _statuses(maillog: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    text = maillog.read_text(errors="replace") if maillog.exists() else ""
    for line in text.splitlines():
        m = re.search(r"to=<([^>]+)>.*status=(sent|deferred|bounced)", line)
        if m and m.group(1) in CASES and m.group(1) not in out:
            out[m.group(1)] = line
    return out


def main() -> int:
    work, kind = Path(sys.argv[1]), sys.argv[2]
    mtasts = sys.argv[3] if len(sys.argv) > 3 else "mtasts"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # Postfix insists that inet_interfaces is an address configured on an interface.
    subprocess.run(["ip", "addr", "add", f"{RELAY_IP}/32", "dev", "lo"], check=True)
    resolv = work / "resolv.conf"
    resolv.write_text(f"nameserver {DNS_IP}\noptions timeout:2 attempts:2\n")
    subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
    etc, spool = work / "etc", work / "spool"
    etc.mkdir()
    spool.mkdir()
    result: dict[str, object] = {"server": kind}
    with World(work / "lab", real_ports=True, ipv6=False, smtp_profiles=["good", "expired"]) as w:
        _publish(w)
        ca_file = work / "ca.pem"  # readable by Postfix's smtp (user postfix)
        shutil.copy(w.ca_file, ca_file)
        ca_file.chmod(0o644)
        (etc / "main.cf").write_text(_main_cf(work, ca_file))
        (etc / "master.cf").write_text(MASTER_CF)
        server = _start_policy_server(kind, work, w, ca_file, mtasts)
        started = False
        try:
            _wait("the policy server", lambda: _port_open("127.0.0.1", 8461))
            check = _run("postfix", "-c", str(etc), "check")
            start = _run("postfix", "-c", str(etc), "start")
            if check.returncode or start.returncode:
                maillog = work / "maillog"
                raise RuntimeError(
                    f"postfix did not start: {check.stderr}{start.stderr}"
                    + (maillog.read_text() if maillog.exists() else "")
                )
            started = True
            _wait("postfix smtpd", lambda: _port_open(RELAY_IP, 25))
            result["postfix_version"] = _run(
                "postconf", "-c", str(etc), "-h", "mail_version"
            ).stdout.strip()
            _submit()
            _wait(
                "an outcome for every recipient",
                lambda: len(_statuses(work / "maillog")) == len(CASES),
                WAIT,
            )
            time.sleep(0.5)  # let postlogd write the lines that follow
            result["status"] = _statuses(work / "maillog")
            result["received"] = {
                profile: [{"rcpt": list(m.rcpt_to), "tls": m.tls} for m in w.smtp[profile].messages]
                for profile in w.smtp
            }
            result["queue"] = _run("postqueue", "-c", str(etc), "-p").stdout
            answers = {}
            for rcpt in CASES:
                domain = rcpt.split("@")[1]
                q = _run(
                    "postmap", "-c", str(etc), "-q", domain, f"socketmap:inet:{POLICYD}:postfix"
                )
                answers[domain] = q.stdout.strip() if q.returncode == 0 else None
            result["answers"] = answers
        finally:
            if started:
                _run("postfix", "-c", str(etc), "stop")
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        maillog = work / "maillog"
        result["maillog"] = maillog.read_text(errors="replace") if maillog.exists() else ""
        result["policyd_log"] = (work / "policyd.log").read_text(errors="replace")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
