"""End to end: the installed `mtasts check` on the real ports 53, 443 and 25, inside a
private network namespace so nothing else on the machine is touched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.require import require

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.system
def test_installed_cli_in_network_namespace() -> None:
    mtasts = shutil.which("mtasts", path=str(Path(sys.executable).parent))
    require(mtasts is not None, "the mtasts console script is not installed in this venv")
    require(os.geteuid() == 0, "needs root for unshare -n")
    require(shutil.which("unshare") is not None, "unshare (util-linux) is missing")
    require(shutil.which("ip") is not None, "ip (iproute2) is missing")
    assert mtasts is not None
    proc = subprocess.run(
        ["unshare", "-n", "--", sys.executable, "-m", "tests.system.netns_driver", mtasts],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr  # the broken domains have errors
    results = json.loads(proc.stdout)
    assert [r["domain"] for r in results] == [
        "good.e2e.test",
        "expired.e2e.test",
        "nostarttls.e2e.test",
    ]
    good, expired, nostarttls = results
    assert good["sts_fetch_result"] == "VALID"
    assert not [f for f in good["findings"] if f["severity"] == "error"]
    assert len(good["mx_hosts"]) == 2
    assert good["mx_hosts"][0]["addresses"][0]["certificate"]["trusted"] is True
    assert good["policy_fetch"]["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert expired["sts_fetch_result"] == "FETCH_ERROR"
    assert "policy-fetch-tls-certificate-expired" in [f["code"] for f in expired["findings"]]
    assert nostarttls["sts_fetch_result"] == "VALID"
    by_code = {f["code"]: f for f in nostarttls["findings"]}
    assert by_code["mx-starttls-missing"]["tlsrpt_result_type"] == "starttls-not-supported"
