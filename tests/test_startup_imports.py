"""Commands import only what they use (issue 9): `check`, `generate` and `--help` never
load the ORM or the web stack, so a bulk check does not pay for them at every start.
Figures: bench/startup.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("sqlalchemy", "fastapi", "starlette", "jinja2", "uvicorn", "alembic", "mtasts.store")
PROBE = """
import runpy, sys
sys.argv = {argv!r}
try:
    runpy.run_module("mtasts", run_name="__main__")
except SystemExit:
    pass
loaded = sorted(m for m in sys.modules if m.startswith({heavy!r}))
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
