"""Start-up benchmark: how long `mtasts` takes before it does any work, next to the bare
interpreter start (the anchor, measured in the same run). Bulk checks start many
processes, so this is part of every `mtasts check` figure.

Prints, for each command line, the median and the best of --runs runs (wall time of the
whole process), the best CPU time (user + system of the process: what a loaded machine
distorts least), and the modules of the ORM and web stack each one loaded (there should be
none: `check`, `generate` and `--help` import only what they use).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

HEAVY = ("sqlalchemy", "fastapi", "starlette", "jinja2", "uvicorn", "alembic")
PROBE = (
    "import runpy, sys\n"
    "sys.argv = {argv!r}\n"
    "try:\n"
    "    runpy.run_module('mtasts', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))\n"
    "print('HEAVY', ','.join(heavy), file=sys.stderr)\n"
)


# As installed: Python's cached bytecode (.pyc) is written and used. Some environments set
# PYTHONDONTWRITEBYTECODE, which makes every start compile mtasts' sources anew.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wall(cmd: list[str], runs: int) -> tuple[float, float, float]:
    """Median and best wall time, best CPU time."""
    times, cpu = [], []
    subprocess.run(cmd, capture_output=True, check=False, timeout=120, env=ENV)  # writes .pyc
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), _children_cpu()
        subprocess.run(cmd, capture_output=True, check=False, timeout=120, env=ENV)
        times.append(time.perf_counter() - start)
        cpu.append(_children_cpu() - start_cpu)
    return statistics.median(times), min(times), min(cpu)


def heavy_modules(argv: list[str]) -> str:
    code = PROBE.format(argv=["mtasts", *argv], heavy=HEAVY)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    line = next((x for x in proc.stderr.splitlines() if x.startswith("HEAVY")), "HEAVY ?")
    return line.removeprefix("HEAVY").strip() or "none"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    py = sys.executable
    unreachable = ["-n", "127.0.0.1:9", "--timeout", "0.1"]
    cases = [
        ("python -c pass (anchor)", [py, "-c", "pass"], None),
        ("mtasts --version", [py, "-m", "mtasts", "--version"], ["--version"]),
        ("mtasts --help", [py, "-m", "mtasts", "--help"], ["--help"]),
        ("mtasts check --help", [py, "-m", "mtasts", "check", "--help"], ["check", "--help"]),
        (
            "import of `check` (cli + engine)",
            [py, "-c", "import mtasts.cli, mtasts.check.checker, mtasts.check.output"],
            None,
        ),
        (
            "mtasts check (DNS down)",
            [py, "-m", "mtasts", "check", "--no-smtp", *unreachable, "example.invalid"],
            ["check", "--no-smtp", *unreachable, "example.invalid"],
        ),
        (
            "mtasts generate (DNS down)",
            [py, "-m", "mtasts", "generate", "example.invalid", *unreachable],
            ["generate", "example.invalid", *unreachable],
        ),
    ]
    anchor = None
    print(
        f"{'command':36} {'median':>8} {'best':>8}  {'- anchor':>9}  {'CPU best':>8}  "
        "ORM/web modules loaded"
    )
    for label, cmd, argv in cases:
        median, best, cpu = wall(cmd, args.runs)
        anchor = best if anchor is None else anchor
        heavy = heavy_modules(argv) if argv is not None else "-"
        print(
            f"{label:36} {median * 1000:6.0f} ms {best * 1000:6.0f} ms  "
            f"{(best - anchor) * 1000:6.0f} ms  {cpu * 1000:5.0f} ms  {heavy}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
