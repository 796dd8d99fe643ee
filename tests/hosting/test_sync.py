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
