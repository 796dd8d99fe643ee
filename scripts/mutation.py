"""`make mutation`: mutation testing (mutmut 3) of the modules where a silent bug costs
the most, each against only the tests that concern it; prints the kill ratio per module.

Each target runs in its own work directory (.mutation/NAME/) holding links to src/ and
tests/ and a pyproject.toml with that target's [tool.mutmut] section, so the targets never
share mutmut's caches or test selection. The work directory is kept between runs: mutmut
then runs only the mutants of functions that changed, and the runner runs the last run's
survivors again (the tests may have changed since); `--fresh` starts from nothing. Run
them one at a time:

    python scripts/mutation.py                  # every target, fastest first
    python scripts/mutation.py protocol net.fetch
    python scripts/mutation.py --fresh protocol # every mutant again, for the figures
    python scripts/mutation.py --list           # the targets and their tests

A surviving mutant is either killed by a new test or listed, with the reason it is
equivalent (no test can tell it from the original), in docs/mutation-survivors.md. A
listed mutant counts as equivalent only while its mutated line is still the one listed,
so a listing goes stale (and the mutant counts as a survivor again) when the code moves;
a listed mutant is not run again while its listing holds.
Exit status 1 when a target is below the goal (90 % killed after equivalents).

The runner sets MTASTS_MUTATION=1: tests/conftest.py then loads the "mutation" Hypothesis
profile (fewer examples, derandomized, no shrinking, no example database) and runs each
mutant's tests fastest first. Add a target's new tests to a file it already lists (or, for
a directory, under it): mutmut reruns every mutant of a target whose test list changed.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
SURVIVORS = ROOT / "docs" / "mutation-survivors.md"
GOAL = 0.90
MUTMUT = Path(sys.executable).parent / "mutmut"


@dataclass(frozen=True)
class Target:
    """Source files to mutate (globs relative to the repository), the tests run against
    them, and optionally the functions to mutate (mutmut mutant-name globs)."""

    files: tuple[str, ...]
    tests: tuple[str, ...]
    functions: tuple[str, ...] = field(default=())


# Cheapest first (measured on 2 cores). Only the tests that exercise a module run against
# its mutants; mutmut narrows further to the tests that call the mutated function.
TARGETS: dict[str, Target] = {
    "reports.limits": Target(
        ("src/mtasts/reports/limits.py",),
        (
            "tests/reports/test_limits.py",
            "tests/reports/test_limit_errors.py",
            "tests/reports/test_bounds.py",
            "tests/reports/test_mime.py",
            "tests/reports/test_refusals_in_spanish.py",
        ),
    ),
    "net.fetch": Target(
        # https.py: the one GET the fetch makes (its head bound, deadlines, socket closing)
        ("src/mtasts/net/fetch.py", "src/mtasts/net/https.py"),
        (
            "tests/net/test_fetch_values.py",
            "tests/net/test_fetch.py",
            "tests/net/test_fetch_outcomes.py",
            "tests/check/test_probe_policy_lab.py",
        ),
    ),
    "reports.ingest": Target(
        ("src/mtasts/reports/ingest.py",),
        (
            "tests/reports/test_ingest.py",
            "tests/reports/test_ingest_counters.py",
            "tests/reports/test_ingest_store.py",
            "tests/reports/test_scope.py",
            "tests/reports/test_limits.py",
            "tests/reports/test_bounds.py",
            "tests/reports/test_refusals_in_spanish.py",
        ),
    ),
    "dashboard.auth": Target(
        ("src/mtasts/web/dashboard/auth.py", "src/mtasts/web/dashboard/views.py"),
        (
            "tests/web/test_auth_rules.py",
            "tests/web/test_password_hashes.py",
            "tests/web/test_accounts.py",
            "tests/web/test_csrf_routes.py",
            "tests/web/test_csrf_origin.py",
            "tests/web/test_dashboard_http.py",
            "tests/web/test_hardening.py",
            "tests/web/test_session_secret.py",
            "tests/web/test_password_strength.py",
            "tests/web/test_first_hour.py",
        ),
        functions=(
            "mtasts.web.dashboard.auth.*",
            # views.py: sign-in and CSRF only
            "mtasts.web.dashboard.views.x__context__mutmut_*",
            "mtasts.web.dashboard.views.x__check_post__mutmut_*",
            "mtasts.web.dashboard.views.x_page__mutmut_*",
            "mtasts.web.dashboard.views.x_action__mutmut_*",
            "mtasts.web.dashboard.views.x__safe_next__mutmut_*",
        ),
    ),
    "hosting.claims": Target(
        (
            "src/mtasts/hosting/claims.py",
            "src/mtasts/hosting/lifecycle.py",
            "src/mtasts/hosting/tenants.py",
        ),
        (
            "tests/hosting/test_claim_challenge.py",
            "tests/hosting/test_claims_lab.py",
            "tests/hosting/test_api_lab.py",
        ),
        functions=(
            "mtasts.hosting.claims.*",
            "mtasts.hosting.lifecycle.*",
            # tenants.py: the ownership checks only
            "mtasts.hosting.tenants.xǁHostingServiceǁ_owned__mutmut_*",
            "mtasts.hosting.tenants.xǁHostingServiceǁserved_name__mutmut_*",
            "mtasts.hosting.tenants.xǁHostingServiceǁ_expired__mutmut_*",
            "mtasts.hosting.tenants.xǁHostingServiceǁ_already_yours__mutmut_*",
        ),
    ),
    # 2,600 mutants (most of them in report.py): the longest run
    "protocol": Target(
        ("src/mtasts/protocol/*",), ("tests/protocol", "tests/reports/test_refusals_in_spanish.py")
    ),
}

CAUGHT = {"killed", "timeout", "caught by type check", "segfault"}


def _status(code: int | None) -> str:
    from mutmut.stats import status_by_exit_code

    return str(status_by_exit_code[code])


def _pyproject(target: Target) -> str:
    def toml_list(items: tuple[str, ...] | list[str]) -> str:
        return "[" + ", ".join(json.dumps(i) for i in items) + "]"

    return (ROOT / "pyproject.toml").read_text() + (
        "\n[tool.mutmut]\n"
        'source_paths = ["src"]\n'
        f"only_mutate = {toml_list(target.files)}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(target.tests)}\n"
        # the project's addopts plus: stop at the first failure, quietly
        'pytest_add_cli_args = ["-x", "-q", "-p", "no:cacheprovider"]\n'
        "use_git_change_detection = false\n"
        # a mutant that loops forever is stopped after 3x its tests' CPU time (+5 s), not
        # mutmut's 15x: the gzip-bomb tests alone take seconds
        "timeout_multiplier = 3.0\n"
        "timeout_constant = 5.0\n"
    )


def _prepare(name: str, target: Target, fresh: bool) -> Path:
    work = WORK / name
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for link in ("src", "tests"):
        if not (work / link).is_symlink():
            (work / link).symlink_to(ROOT / link)
    (work / "pyproject.toml").write_text(_pyproject(target))
    _forget_survivors(work)
    return work


def _metas(work: Path) -> list[Path]:
    return sorted((work / "mutants" / "src").rglob("*.py.meta"))


def _forget_survivors(work: Path) -> None:
    """Clear the cached result of every mutant not caught last time, so that mutmut runs
    it again against today's tests (it keeps a result until the mutated function changes).
    A survivor listed as equivalent, whose listing still matches its mutated line, keeps
    its result: no test can kill it, and running it again costs all its tests (mutmut
    resets it anyway when its function changes)."""
    listed = listed_equivalents()
    for meta in _metas(work):
        data = json.loads(meta.read_text())
        codes = data.get("exit_code_by_key", {})
        for mutant, code in codes.items():
            if code is None or _status(code) in CAUGHT:
                continue
            if mutant in listed and listed[mutant] in _mutated_lines(_diff(work, mutant)):
                continue
            codes[mutant] = None
        meta.write_text(json.dumps(data, indent=4))


def _results(work: Path, target: Target) -> dict[str, str]:
    """Mutant name -> status, for the target's files and functions."""
    out: dict[str, str] = {}
    for meta in _metas(work):
        data = json.loads(meta.read_text())
        for mutant, code in data.get("exit_code_by_key", {}).items():
            if target.functions and not any(fnmatch.fnmatch(mutant, f) for f in target.functions):
                continue
            out[mutant] = _status(code)
    return out


def listed_equivalents() -> dict[str, str]:
    """Mutant name -> mutated line (as listed) from docs/mutation-survivors.md rows
    ``| `name` | `mutated line` | reason |``."""
    if not SURVIVORS.exists():
        return {}
    rows: dict[str, str] = {}
    for line in SURVIVORS.read_text().splitlines():
        # cells split at the pipes that are not escaped (a pipe in code is written \|), so
        # a reason that ends in code does not run into the mutated line's cell
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)]
        if len(cells) < 4 or cells[0]:
            continue
        name, mutated = re.fullmatch(r"`(.*)`", cells[1]), re.fullmatch(r"`(.*)`", cells[2])
        if name and mutated and re.search(r"__mutmut_\d+$", name.group(1)):
            rows[name.group(1)] = mutated.group(1).replace("\\|", "|").strip()
    return rows


def _diff(work: Path, mutant: str) -> str:
    r = subprocess.run(  # noqa: S603 (our venv's mutmut, our mutant names)
        [str(MUTMUT), "show", mutant], cwd=work, capture_output=True, text=True, check=False
    )
    return r.stdout


def _mutated_lines(diff: str) -> list[str]:
    """The lines a mutant puts in; for a mutant that only deletes, the deleted lines with
    a leading "-" (so a deletion is listed as `-<the line>`)."""
    lines = diff.splitlines()
    added = [ln[1:].strip() for ln in lines if ln.startswith("+") and not ln.startswith("++")]
    if added:
        return added
    return ["-" + ln[1:].strip() for ln in lines if ln.startswith("-") and not ln.startswith("--")]


def _pending(work: Path, target: Target) -> list[str]:
    """The target's mutants without a result (never run, or survivors forgotten above)."""
    return sorted(m for m, s in _results(work, target).items() if s == "not checked")


def _run_mutmut(name: str, target: Target, children: int, fresh: bool) -> Path:
    """Run the target's mutants that have no result yet. mutmut itself skips mutants with
    a result only when it is given no names; given names or globs (a target's
    ``functions``) it runs every mutant they match, killed ones included. So a target
    with ``functions`` is run by name, pending mutants only, once the mutants exist; a
    second pass takes the mutants that mutmut made anew in that run (a changed function)."""
    work = _prepare(name, target, fresh)
    # tests/conftest.py: Hypothesis draws fewer, fixed examples and does not shrink; the
    # tests of a mutant run quickest module first
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "MTASTS_MUTATION": "1"}
    log = work / "mutmut.log"
    started = time.monotonic()
    tried: set[str] = set()
    with log.open("w") as fh:
        for _pass in range(2):
            names: list[str] | tuple[str, ...] = target.functions
            if target.functions and _metas(work):
                names = [m for m in _pending(work, target) if m not in tried]
                if not names:
                    break
                tried.update(names)
            cmd = [str(MUTMUT), "run", "--max-children", str(children), *names]
            proc = subprocess.Popen(  # noqa: S603 (our venv's mutmut)
                cmd, cwd=work, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                proc.wait()
            finally:
                if proc.poll() is None:  # interrupted: stop mutmut and the mutants it forked
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait()
            if not target.functions or proc.returncode != 0:
                break
    print(f"{name}: mutmut ran {time.monotonic() - started:.0f} s", flush=True)
    return work


def report_target(name: str, target: Target) -> tuple[int, int, int, int]:
    """Print a target's figures from mutmut's results; returns (caught, equivalent, total,
    not run yet). Mutants not run yet (an interrupted run) are left out of the ratio."""
    work = WORK / name
    everything = _results(work, target)
    results = {m: s for m, s in everything.items() if s != "not checked"}
    not_run = len(everything) - len(results)
    if not results:
        print(f"{name}: no mutant run (see {work / 'mutmut.log'})")
        return 0, 0, 0, not_run
    listed = listed_equivalents()
    caught = sum(1 for s in results.values() if s in CAUGHT)
    equivalent = 0
    unexplained: list[str] = []
    for mutant, status in sorted(results.items()):
        if status in CAUGHT:
            continue
        if mutant in listed:
            if listed[mutant] in _mutated_lines(_diff(work, mutant)):
                equivalent += 1
                continue
            status += ", listing stale"
        unexplained.append(f"{mutant} ({status})")
    total = len(results)
    raw = caught / total
    adjusted = caught / (total - equivalent) if total > equivalent else 1.0
    print(
        f"{name}: {caught}/{total} killed ({raw:.1%}); {equivalent} listed equivalent; "
        f"{adjusted:.1%} of the non-equivalent; {len(unexplained)} unexplained; "
        f"{not_run} not run yet",
        flush=True,
    )
    for u in unexplained:
        print(f"    survived: {u}")
    return caught, equivalent, total, not_run


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # stop mutmut's process group on the way out
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help=f"some of: {', '.join(TARGETS)}")
    parser.add_argument("--list", action="store_true", help="show the targets and their tests")
    parser.add_argument("--children", type=int, default=2, help="parallel mutants (default 2)")
    parser.add_argument(
        "--fresh", action="store_true", help="forget mutmut's cached results: run every mutant"
    )
    parser.add_argument(
        "--report", action="store_true", help="only print the figures of the last run(s)"
    )
    args = parser.parse_args(argv)
    if args.list:
        for name, t in TARGETS.items():
            print(f"{name}: {' '.join(t.files)} <- {' '.join(t.tests)}")
            for f in t.functions:
                print(f"    only {f}")
        return 0
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s): {', '.join(unknown)}")
    below: list[str] = []
    summary: list[str] = []
    for name in args.targets or list(TARGETS):
        if not args.report:
            _run_mutmut(name, TARGETS[name], args.children, args.fresh)
        caught, equivalent, total, not_run = report_target(name, TARGETS[name])
        ratio = caught / (total - equivalent) if total > equivalent else 1.0
        line = f"  {name:16} {caught:5}/{total - equivalent:<5} {ratio:6.1%}"
        summary.append(line + (f" ({not_run} not run yet)" if not_run else ""))
        if total == 0 or ratio < GOAL or not_run:
            below.append(name)
    print("\nkill ratio per module (killed / mutants not listed as equivalent):")
    print("\n".join(summary))
    if below:
        print(f"below {GOAL:.0%} or not fully run: {', '.join(below)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
