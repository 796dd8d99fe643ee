"""Session-wide fixtures: the test CA and the loopback lab servers (see tests/lab/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import DnsServer, TestCA, World, Zone


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
