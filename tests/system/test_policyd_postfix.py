"""System test: Debian's Postfix, driven by `mtasts policyd` over socketmap, delivers,
defers and refuses as MTA-STS says (RFC 8461 §4.1, §5), in private namespaces. The same
cases against postfix-mta-sts-resolver's daemon show where it differs (the wildcard)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.require import require

ROOT = Path(__file__).resolve().parents[2]


def _requirements() -> str:
    mtasts = shutil.which("mtasts", path=str(Path(sys.executable).parent))
    require(mtasts is not None, "the mtasts console script is not installed in this venv")
    require(os.geteuid() == 0, "needs root for unshare --net --mount --pid and Postfix")
    require(shutil.which("unshare") is not None, "unshare (util-linux) is missing")
    require(shutil.which("ip") is not None, "ip (iproute2) is missing")
    require(
        Path("/usr/sbin/postfix").exists(),
        "postfix is missing (scripts/system-deps.sh installs it)",
    )
    assert mtasts is not None
    return mtasts


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Postfix's processes (user postfix) walk to the queue and the CA file: no 0700 parents.
    work = Path(tempfile.mkdtemp(prefix="mtasts-postfix-"))
    work.chmod(0o755)
    yield work
    shutil.rmtree(work, ignore_errors=True)


def _run(server: str, work: Path, mtasts: str) -> dict[str, Any]:
    proc = subprocess.run(
        [
            "unshare",
            "--net",
            "--mount",
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            sys.executable,
            "-m",
            "tests.system.policyd_postfix_driver",
            str(work),
            server,
            mtasts,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _received(result: dict[str, Any], profile: str, rcpt: str) -> list[bool]:
    """TLS flags of the messages the lab MX ``profile`` received for ``rcpt``."""
    return [m["tls"] for m in result["received"][profile] if rcpt in m["rcpt"][0]]


@pytest.mark.system
def test_postfix_with_policyd(workdir: Path) -> None:
    mtasts = _requirements()
    r = _run("policyd", workdir, mtasts)
    status, log = r["status"], r["maillog"]
    context = f"maillog:\n{log}\npolicyd log:\n{r['policyd_log']}"

    # enforce, good MX: delivered, and over *verified* TLS (a NOTFOUND would only give
    # "Trusted" or "Untrusted").
    assert "status=sent" in status["alice@enforce-good.test"], context
    assert "Verified TLS connection established to mx1.enforce-good.test" in log, context
    assert _received(r, "good", "alice@enforce-good.test") == [True]

    # enforce, expired MX certificate: deferred, still queued, nothing delivered.
    assert "status=deferred" in status["bob@enforce-expired.test"], context
    assert "Server certificate not verified" in status["bob@enforce-expired.test"]
    assert "certificate has expired" in log
    assert _received(r, "expired", "bob@enforce-expired.test") == []
    assert "bob@enforce-expired.test" in r["queue"]

    # testing, the same broken MX: delivered.
    assert "status=sent" in status["carol@testing.test"], context
    assert _received(r, "expired", "carol@testing.test") == [True]

    # "*.wild.test" and the MX mx.deep.wild.test (two labels deep): not delivered there.
    assert "status=deferred" in status["dave@wild.test"], context
    assert "relay=mx.deep.wild.test" in status["dave@wild.test"]
    assert _received(r, "good", "dave@wild.test") == []

    # Two mode lines: the first (enforce) counts, so the broken MX gets nothing.
    assert "status=deferred" in status["erin@twomodes.test"], context
    assert _received(r, "expired", "erin@twomodes.test") == []
    # An invalid id: no policy, delivered with opportunistic TLS (not "Verified").
    assert "status=sent" in status["frank@badid.test"], context
    assert "Verified TLS connection established to mx1.badid.test" not in log

    answers = r["answers"]
    assert answers["badid.test"] is None
    assert answers["twomodes.test"] == "secure match=mx1.twomodes.test servername=hostname"
    assert answers["enforce-good.test"] == (
        "secure match=mx1.enforce-good.test servername=hostname"
    )
    assert answers["testing.test"] is None  # NOTFOUND
    assert "match=.wild.test" not in answers["wild.test"]
    assert "policy-fetch" not in r["policyd_log"]  # every policy was fetched
    assert "enforce-good.test: VALID policy-enforce" in r["policyd_log"]


@pytest.mark.system
def test_postfix_with_pmr_widens_the_wildcard(workdir: Path) -> None:
    """The anchor: postfix-mta-sts-resolver answers `match=.wild.test`, which Postfix
    applies at any depth, so the mail goes to mx.deep.wild.test, which the policy does
    not cover (RFC 8461 §4.1); it keeps the last of two mode lines (testing: the broken MX
    gets the mail) and accepts an invalid id. The first three cases agree with policyd."""
    mtasts = _requirements()
    require(shutil.which("mta-sts-daemon") is not None, "postfix-mta-sts-resolver is missing")
    r = _run("pmr", workdir, mtasts)
    status, log = r["status"], r["maillog"]
    context = f"maillog:\n{log}\npmr log:\n{r['policyd_log']}"
    assert r["answers"]["wild.test"] == "secure match=.wild.test servername=hostname", context
    assert "status=sent" in status["dave@wild.test"], context
    assert "Verified TLS connection established to mx.deep.wild.test" in log
    assert _received(r, "good", "dave@wild.test") == [True]
    assert r["answers"]["twomodes.test"] is None  # mode: testing won
    assert "status=sent" in status["erin@twomodes.test"], context
    assert _received(r, "expired", "erin@twomodes.test") == [True]
    assert r["answers"]["badid.test"] == "secure match=mx1.badid.test servername=hostname"
    assert "Verified TLS connection established to mx1.badid.test" in log
    assert "status=sent" in status["alice@enforce-good.test"], context
    assert "status=deferred" in status["bob@enforce-expired.test"], context
    assert "status=sent" in status["carol@testing.test"], context
