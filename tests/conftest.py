"""Session-wide fixtures: the test CA and the loopback lab servers (see tests/lab/)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import Phase, settings

from mtasts import i18n
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In a mutation run, the tests of each mutant run fastest first (mutmut gives them in
    no particular order and stops at the first failure): a killed mutant then costs its
    cheapest failing test, not whatever came first. Modules stay together (the fastest
    module first) so that module-scoped servers start once. Durations are mutmut's own
    (mutants/mutmut-stats.json, the working directory of a mutation run)."""
    stats = Path("mutmut-stats.json")
    if not MUTATION_RUN or not stats.is_file():
        return
    took: dict[str, float] = json.loads(stats.read_text()).get("duration_by_test", {})
    per_module: dict[str, float] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        per_module[module] = per_module.get(module, 0.0) + took.get(item.nodeid, 0.0)
    items.sort(key=lambda i: (per_module[i.nodeid.split("::", 1)[0]], took.get(i.nodeid, 0.0)))


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
