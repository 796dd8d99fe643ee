"""Runs inside a private network namespace (``unshare -n``): brings up loopback, starts the
lab on the real ports 53, 443 and 25, publishes a healthy and a broken domain, and runs the
installed ``mtasts check`` against them with no port options, exactly as a user would.
Prints mtasts' JSON on stdout and exits with its exit status."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from tests.lab import World
from tests.lab.world import DNS_IP


def main() -> int:
    mtasts = sys.argv[1]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with tempfile.TemporaryDirectory() as tmp, World(Path(tmp), real_ports=True, ipv6=False) as w:
        w.add_domain("good.e2e.test", mx_count=2)
        w.add_domain("expired.e2e.test", https="expired")
        w.add_domain("nostarttls.e2e.test", mx_profile="no-starttls", mode="testing")
        cmd = [
            mtasts,
            "check",
            "good.e2e.test",
            "expired.e2e.test",
            "nostarttls.e2e.test",
            "--format",
            "json",
            "--nameserver",
            DNS_IP,
            "--ca-file",
            w.ca_file,
            "--timeout",
            "5",
        ]
        return subprocess.run(cmd, check=False, timeout=120).returncode


if __name__ == "__main__":
    sys.exit(main())
