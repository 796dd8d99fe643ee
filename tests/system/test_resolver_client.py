"""A real client agrees: postfix-mta-sts-resolver's ``mta-sts-query`` (the reference
resolver Postfix uses) finds a domain hosted by `mtasts serve` behind Caddy VALID, through
a DNS that delegates as a customer's does, and sees the new id and mode after a change.

``mta-sts-query`` has no options for ports or resolvers: it asks the system resolver and
connects to port 443. So the whole scene runs in a private network and mount namespace
(tests/system/resolver_driver.py), where the lab DNS answers on 127.0.0.53:53 through a
bind-mounted /etc/resolv.conf and Caddy listens on 443. Caddy's local root is trusted
through SSL_CERT_FILE (aiohttp builds its context with ssl.create_default_context()).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.lab.require import require
from tests.system.front import caddy_binary
from tests.system.resolver_driver import parse_query_output

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.system


def test_output_parser_reads_each_result() -> None:
    valid = parse_query_output(
        "(<STSFetchResult.VALID: 1>, ('id1', {'mx': ['mx1.a.test'], 'version': 'STSv1', "
        "'mode': 'enforce', 'max_age': 86400}))\n"
    )
    assert valid["result"] == "VALID" and valid["id"] == "id1"
    assert valid["policy"]["mode"] == "enforce"
    assert parse_query_output("(<STSFetchResult.NONE: 0>, None)")["result"] == "NONE"
    with pytest.raises(ValueError, match="unexpected"):
        parse_query_output("Traceback (most recent call last): ...")


def _run_driver() -> dict[str, Any]:
    require(os.geteuid() == 0, "needs root for unshare -n -m and the bind mount")
    require(shutil.which("unshare") is not None, "unshare (util-linux) is missing")
    require(shutil.which("ip") is not None, "ip (iproute2) is missing")
    require(
        shutil.which("mta-sts-query") is not None,
        "mta-sts-query is missing (Debian package postfix-mta-sts-resolver)",
    )
    require(caddy_binary() is not None, "caddy is not installed (scripts/system-deps.sh)")
    proc = subprocess.run(
        ["unshare", "-n", "-m", "--", sys.executable, "-m", "tests.system.resolver_driver"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    return {**json.loads(proc.stdout), "log": proc.stderr[-5000:]}  # the driver's progress


def test_mta_sts_query_agrees_before_and_after_a_mode_change() -> None:
    r = _run_driver()
    assert r["verified"] == "active"

    before = r["before"]
    assert before["result"] == "VALID", (before, r["log"])
    assert before["id"] == r["added"]["id"]
    assert before["policy"] == {
        "version": "STSv1",
        "mode": "testing",
        "mx": r["added"]["mx"],
        "max_age": r["added"]["max_age"],
    }
    assert before["exit_status"] == 0  # mta-sts-query exits 0 whatever the result

    after = r["after"]
    assert after["result"] == "VALID", (r["seen_after_change"], r["log"])
    assert after["id"] == r["changed"]["id"] != before["id"]
    assert after["policy"]["mode"] == "enforce"
    assert after["policy"]["mx"] == r["changed"]["mx"]
    # RFC 8461 §8.1: the new policy is served before the new id is published, so no client
    # ever caches the old policy under the new id
    for seen in r["seen_after_change"]:
        assert seen["result"] == "VALID"
        assert seen["id"] in (before["id"], after["id"])
        assert seen["policy"]["mode"] == "enforce", r["seen_after_change"]

    # the same client, the same names, but not trusting Caddy's root: refused
    assert r["untrusted"]["result"] == "FETCH_ERROR"
    # added but never verified: nothing in the zone, no policy
    assert r["pending"]["result"] == "NONE"
    # a record pointing at us for a domain we do not host: no certificate, fetch error
    assert r["not_hosted"]["result"] == "FETCH_ERROR"
