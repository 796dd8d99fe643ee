"""Session-wide fixtures: the test CA and the loopback lab servers (see tests/lab/)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher, profiles
from hypothesis import Phase, settings

from mtasts import i18n
from mtasts.web.dashboard import auth as dashboard_auth
from tests.lab import DnsServer, TestCA, World, Zone

# Hypothesis fails an example that takes over 200 ms by default: a wall-clock window that a
# loaded runner (or a mutation run sharing the cores) trips with no bug at all.
settings.register_profile("mtasts", deadline=None)
# `make mutation` (scripts/mutation.py) runs the tests once per mutant, thousands of times:
# there they draw fewer examples, the same ones on every run (derandomize: a mutant is
# killed or survives the same way each time, and no example database carries one mutant's
# failures into the next), and a failing example is reported as found, not shrunk (a
# mutant only needs one failure; shrinking one costs hundreds of runs of the test).
settings.register_profile(
    "mutation",
    deadline=None,
    max_examples=25,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
)
MUTATION_RUN = os.environ.get("MTASTS_MUTATION") == "1"  # set by scripts/mutation.py
settings.load_profile("mutation" if MUTATION_RUN else "mtasts")


def _mutmut_durations() -> dict[str, float]:
    """While mutmut runs a mutant's tests (MUTANT_UNDER_TEST names it; the working
    directory is its mutants/ copy), the time each test took in its clean run."""
    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", ""):
        return {}
    try:
        durations = json.loads(Path("mutmut-stats.json").read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return durations if isinstance(durations, dict) else {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run each module's tests together and in the order they are written, also when the
    tests are named one by one in a mixed order (mutmut names the tests of a mutant as a
    set): otherwise a module-scoped fixture (a running app, a mail sink) is torn down and
    started again at every switch between modules. A plain run is already in this order.
    Under mutmut, the quickest modules go first: it stops at the first failure, so a
    mutant that a unit test kills costs no lab test."""
    first: dict[Path, int] = {}
    cost: dict[Path, float] = {}
    durations = _mutmut_durations()
    for i, item in enumerate(items):
        first.setdefault(item.path, i)
        if durations:
            took = durations.get(item.nodeid, 1.0)
            cost[item.path] = cost.get(item.path, 0.0) + (took if isinstance(took, float) else 1.0)
    items.sort(
        key=lambda item: (cost.get(item.path, 0.0), first[item.path], item.reportinfo()[1] or 0)
    )


@pytest.fixture(autouse=True)
def english_by_default(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests read English unless they ask for Spanish, whatever the locale of the machine
    running them (`mtasts` follows LC_ALL/LC_MESSAGES/LANG); a test that switches the
    process language (e.g. `check --lang es` in-process) leaves English behind."""
    monkeypatch.setenv("MTASTS_LANG", "en")
    i18n.set_language("en")
    yield
    i18n.set_language("en")


@pytest.fixture(scope="session")
def lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for certificates and keys, shared by the session."""
    return tmp_path_factory.mktemp("lab")


@pytest.fixture(scope="session")
def test_ca(lab_dir: Path) -> TestCA:
    """The trusted test CA: its root is ``test_ca.ca_file``."""
    return TestCA(lab_dir / "ca")


@pytest.fixture(scope="session")
def untrusted_ca(lab_dir: Path) -> TestCA:
    """A CA nobody trusts, for untrusted-chain cases."""
    return TestCA.untrusted(lab_dir / "untrusted")


@pytest.fixture(scope="session")
def lab_dns() -> Iterator[DnsServer]:
    """A DNS server on 127.0.0.1 (ephemeral port) with an empty zone: tests add names of
    their own (unique per test) to ``lab_dns.zone`` and give ``lab_dns.address`` to the
    resolver. Faults set on it must be healed by the test."""
    with DnsServer(Zone(), host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture(scope="session")
def lab_world(lab_dir: Path, test_ca: TestCA, untrusted_ca: TestCA) -> Iterator[World]:
    """The whole lab (DNS, HTTPS, every SMTP behaviour) sharing ``test_ca``; tests publish
    domains with ``lab_world.add_domain(...)`` under names of their own."""
    with World(lab_dir / "world", ca=test_ca, untrusted_ca=untrusted_ca) as world:
        yield world


PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the local server (dropped afterwards)."""
    import secrets

    import psycopg

    from tests.lab.require import require

    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        require(False, f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
        raise
    name = f"mtasts_test_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


PRODUCTION_HASHER: PasswordHasher = dashboard_auth._hasher  # as imported, before the swap


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashes() -> Iterator[None]:
    """Dashboard passwords hashed with argon2-cffi's CHEAPEST profile (made for tests):
    the same argon2id and the same code paths, without the cost that only slows guessing
    down (64 MiB and ~0.3 s per hash on 2 shared cores; a test that signs in 30 times
    spent seconds hashing, and a mutation run repeats it for every mutant). What the
    tests check (who gets in, how often one may try) does not depend on the cost; the
    production parameters have a test of their own (tests/web/test_password_hashes.py)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dashboard_auth, "_hasher", PasswordHasher.from_parameters(profiles.CHEAPEST))
        yield
