"""Two services on one store: the second catches up with the first's changes by sync."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from tests.hosting.serving import ZONE
from tests.hosting.test_api_lab import customer, delegate
from tests.lab import World

from mtasts.config import Settings
from mtasts.protocol.policy import Mode, parse_policy
from mtasts.web.serve import open_service

pytestmark = pytest.mark.lab


def test_sync_patches_changes_of_another_process(tmp_path: Path, lab_world: World) -> None:
    settings = Settings(data_dir=tmp_path, zone=ZONE, nameservers=(lab_world.nameserver,))
    a, b = open_service(settings), open_service(settings)
    try:
        user = a.authenticate(a.create_token("ops@example.org"))
        assert user is not None
        d = customer(lab_world)
        delegate(lab_world, d, claim=a.add_domain(user, d))
        assert a.verify(user, d)["state"] == "active"
        assert d in a.snapshot.hosts and d not in b.snapshot.hosts
        loaded = b.snapshot.loaded_at
        assert b.sync() is True
        assert b.snapshot.loaded_at == loaded  # patched, not reloaded
        assert b.snapshot.hosts[d] == a.snapshot.hosts[d]
        assert b.sync() is False  # nothing new
        a.set_policy(user, d, Mode.NONE)
        b.sync()
        assert parse_policy(b.snapshot.hosts[d].body).mode == "none"
        assert b.snapshot.hosts[d].previous_id == a.snapshot.hosts[d].previous_id is not None
        a.retire(user, d)
        real = a.clock
        a.clock = lambda: real() + timedelta(days=400)
        assert a.finish_retirements() == 1
        assert d not in a.snapshot.hosts
        b.sync()
        assert d not in b.snapshot.hosts
        assert b.snapshot.generation == a.generation()
    finally:
        a.close()
        b.close()


def test_soa_serial_is_shared_by_processes_and_survives_a_restart(
    tmp_path: Path, lab_world: World
) -> None:
    """Issue 16: the serial comes from the store's change counter, so two processes on one
    store hand out the same serial, a restart does not move it, and it moves with changes
    (the clock was the serial before: it differed between processes and every second)."""
    from mtasts.hosting.dnsserver import ZoneAnswerer

    settings = Settings(
        data_dir=tmp_path, zone=ZONE, nameservers=(lab_world.nameserver,), txt_delay=0.0
    )
    a, b = open_service(settings), open_service(settings)
    try:
        zone_a = ZoneAnswerer(settings, lambda: a.snapshot)
        zone_b = ZoneAnswerer(settings, lambda: b.snapshot)
        user = a.authenticate(a.create_token("ops@example.org"))
        assert user is not None
        d = customer(lab_world)
        delegate(lab_world, d, claim=a.add_domain(user, d))
        assert a.verify(user, d)["state"] == "active"
        a.sync()
        b.sync()
        first = zone_a.serial()
        assert first == zone_b.serial() == 2 * a.generation() + 1
        a.set_policy(user, d, Mode.NONE)
        a.sync()
        b.sync()
        assert zone_a.serial() == zone_b.serial() > first
        after = zone_a.serial()
        assert a.sync() is False and zone_a.serial() == after  # no change, same serial
        restarted = open_service(settings)
        try:
            assert ZoneAnswerer(settings, lambda: restarted.snapshot).serial() == after
        finally:
            restarted.close()
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("reload", [False, True], ids=["patch", "full-reload"])
def test_a_sync_read_before_a_local_change_never_undoes_it(
    tmp_path: Path, lab_world: World, reload: bool
) -> None:
    """The background sync reads the store, a local change commits and is patched in, then
    the sync applies what it read: the fresh entry stays (issue 9: a newly activated domain
    answered 404 until the next sync). The interleaving is driven step by step."""
    settings = Settings(data_dir=tmp_path, zone=ZONE, nameservers=(lab_world.nameserver,))
    a = open_service(settings)
    try:
        user = a.authenticate(a.create_token("ops@example.org"))
        assert user is not None
        d = customer(lab_world)
        delegate(lab_world, d, claim=a.add_domain(user, d))
        if reload:
            a.snapshot.loaded_at = 0.0  # the next sync reloads everything
        read = a.read_changes()  # the sync reads: d is still pending
        assert read is not None and d not in read.entries
        assert a.verify(user, d)["state"] == "active"  # commits and patches d in
        assert d in a.snapshot.hosts
        a.apply_changes(read)  # the sync applies what it read before the activation
        assert d in a.snapshot.hosts, "the sync dropped the freshly activated domain"

        fresh = a.snapshot.hosts[d]
        if reload:
            a.snapshot.loaded_at = 0.0
        a.set_policy(user, d, Mode.TESTING, max_age=172800)  # so the next sync reads
        read = a.read_changes()
        assert read is not None
        a.set_policy(user, d, Mode.NONE)  # commits and patches the newer version in
        newest = a.snapshot.hosts[d]
        assert newest.policy_id != fresh.policy_id
        a.apply_changes(read)  # read before the last change: must not put it back
        assert a.snapshot.hosts[d] == newest, "the sync put back the previous version"
        assert parse_policy(a.snapshot.hosts[d].body).mode == "none"
        a.sync()  # and a later sync agrees
        assert a.snapshot.hosts[d] == newest
    finally:
        a.close()
