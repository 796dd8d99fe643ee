"""Commands import only what they use (issue 9): `check`, `generate` and `--help` never
load the ORM or the web stack, so a bulk check does not pay for them at every start.
Figures: bench/startup.py."""

from __future__ import annotations

import importlib.util
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mtasts.sender.socketmap import netstring
from tests.lab import World

HEAVY = ("sqlalchemy", "fastapi", "starlette", "jinja2", "uvicorn", "alembic", "mtasts.store")
PROBE = """
import runpy, sys
sys.argv = {argv!r}
try:
    runpy.run_module("mtasts", run_name="__main__")
except SystemExit:
    pass
loaded = sorted(m for m, v in sys.modules.items() if v is not None and m.startswith({heavy!r}))
print("LOADED", " ".join(loaded), file=sys.stderr)
"""
DOWN = ["-n", "127.0.0.1:9", "--timeout", "0.1"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["check", "--help"],
        ["check", "--no-smtp", *DOWN, "example.invalid"],
        ["check", "--format", "json", *DOWN, "example.invalid"],
        ["generate", "example.invalid", *DOWN],
        ["reports", "--help"],
        ["--lang", "es", "check", "--help"],
        ["check", "--lang", "es", "--no-smtp", *DOWN, "example.invalid"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_light_commands_do_not_load_the_orm_or_the_web_stack(argv: list[str]) -> None:
    code = PROBE.format(argv=["mtasts", *argv], heavy=HEAVY)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    line = next(x for x in proc.stderr.splitlines() if x.startswith("LOADED"))
    assert line.removeprefix("LOADED").split() == [], line


# What a bulk check in a machine format never needs (issue 9, bench/startup.py): Rich draws
# text only; pydantic came with Typer 0.29's parameter coercion (~80 ms); httpx and its
# stack, the policy fetch's former client; the real importlib.metadata (dnspython's feature
# checks read every installed package's metadata; its parts are loaded only by the real one).
LEAN = ("rich", "pydantic", "httpx", "httpcore", "anyio", "importlib.metadata._meta")


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_a_check_in_a_machine_format_loads_nothing_it_does_not_draw_with(fmt: str) -> None:
    argv = ["mtasts", "check", "--format", fmt, *DOWN, "example.invalid", "example.net"]
    code = PROBE.format(argv=argv, heavy=LEAN)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    line = next(x for x in proc.stderr.splitlines() if x.startswith("LOADED"))
    assert line.removeprefix("LOADED").split() == [], line


def test_the_package_exports_stay_available() -> None:
    import mtasts

    for name in mtasts.__all__:
        assert getattr(mtasts, name) is not None, name
    assert set(mtasts.__all__) <= set(dir(mtasts))
    with pytest.raises(AttributeError):
        _ = mtasts.no_such_name


def test_dns_over_https_stacks_are_not_loaded() -> None:
    """dnspython loads httpx2/h2/aioquic for DoH/DoQ when installed; mtasts uses neither."""
    code = (
        "import sys, mtasts.check.checker\n"
        "doh = ('httpx2', 'httpcore2', 'aioquic')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in doh))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert out.strip() == "[]", out


def _loaded_after(code: str, prefixes: tuple[str, ...]) -> list[str]:
    probe = (
        f"{code}\nimport sys\n"
        f"print(sorted(m for m, v in sys.modules.items() if v and m.startswith({prefixes!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    return [m.strip("' ") for m in out.strip().strip("[]").split(",") if m.strip()]


def test_help_loads_no_network_stack_and_not_the_sending_side() -> None:
    """`mtasts --help` and `--version` parse nothing that needs DNS, HTTP or X.509: the
    sending side's command line (which loads the settings and DNS stack) is imported only
    when `policyd` runs."""
    heavy = ("dns", "httpx", "httpcore", "cryptography", "mtasts.sender", "mtasts.config")
    assert _loaded_after("import mtasts.cli", heavy) == []


def test_httpx_command_line_is_not_loaded_by_check() -> None:
    """httpx imports its own CLI (click, rich, pygments) when they are installed; mtasts
    never runs it (mtasts/net/__init__.py)."""
    assert _loaded_after("import mtasts.check.checker", ("httpx._main", "pygments")) == []


# What `mtasts policyd` must not load while it serves (issue 12: its memory is the RSS
# of a daemon next to every Postfix): the rest of the CLI and its Typer/pydantic/Rich
# stack, httpx's own CLI (pygments), certificate parsing (cryptography), the ORM, the
# web stack and the Babel catalogues.
POLICYD_MUST_NOT_LOAD = (
    "typer",
    "click",
    "rich",
    "pydantic",
    "pygments",
    "cryptography",
    "babel",
    "mtasts.cli",
    "mtasts.store",
    "mtasts.web",
    "mtasts.hosting",
    "mtasts.reports",
    *HEAVY,
)
POLICYD_PROBE = """
import atexit, sys
atexit.register(lambda: print("LOADED", " ".join(sorted(
    m for m in sys.modules if m.startswith({heavy!r}) and sys.modules[m] is not None))))
sys.argv = {argv!r}
from mtasts.entry import main
main()
"""


def test_policyd_serving_loads_only_what_it_uses(lab_world: World, tmp_path: Path) -> None:
    """A real daemon process answers a lookup that fetches a policy from the lab, then
    stops on SIGTERM; the modules it had loaded by then are listed at exit."""
    domain = "imports.policyd.test"
    lab_world.add_domain(domain)
    argv = ["mtasts", "policyd", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path)]
    argv += ["--nameserver", lab_world.nameserver, "--ca-file", lab_world.ca_file]
    argv += ["--https-port", str(lab_world.https_port)]
    code = POLICYD_PROBE.format(argv=argv, heavy=POLICYD_MUST_NOT_LOAD)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        ready = proc.stderr.readline()
        address = re.search(r"socketmap on 127\.0\.0\.1:(\d+)", ready)
        assert address is not None, ready + proc.stderr.read()
        with socket.create_connection(("127.0.0.1", int(address[1])), timeout=30) as sock:
            sock.sendall(netstring(f"postfix {domain}".encode()))
            reply = b""
            while not reply.endswith(b","):
                chunk = sock.recv(4096)
                assert chunk, "connection closed"
                reply += chunk
        assert reply == netstring(f"OK secure match=mx1.{domain} servername=hostname".encode())
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    line = next(x for x in out.splitlines() if x.startswith("LOADED"))
    assert line.removeprefix("LOADED").split() == [], line
    # The daemon runs on uvloop where it is installed (less CPU per resolution).
    loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    assert ready.rstrip().endswith(f", event loop {loop})"), ready
