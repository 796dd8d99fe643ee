"""Guarded enforce through the REST API is no port scanner: an MX on an address outside
probe_allowed_networks is refused without a connection, and what a probed server says is
never shown to the tenant."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.hosting.serving import Running, lab_settings, running
from tests.hosting.test_api_lab import hosted
from tests.lab import World
from tests.lab.trap import TRAP_IP, Trap

from mtasts.protocol.policy import parse_policy

pytestmark = pytest.mark.lab

SECRET = "secret-internal-host"
TALKER_IP = "127.0.0.100"  # inside the lab's allowed networks


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, lab_world: World) -> Iterator[Running]:
    settings = lab_settings(tmp_path_factory.mktemp("serve"), lab_world)
    with running(settings) as r:
        yield r


def test_enforce_is_refused_for_an_mx_on_a_refused_address_without_connecting(
    app: Running, lab_world: World
) -> None:
    with Trap(TRAP_IP, lab_world.smtp_port, replies=[f"220 {SECRET} ESMTP"]) as trap:
        d = hosted(app, lab_world)
        lab_world.zone.set(f"mx1.{d}", "A", [TRAP_IP])  # the tenant points its MX inside
        with app.client() as c:
            r = c.put(f"/api/v1/domains/{d}/policy", json={"mode": "enforce"})
            assert r.status_code == 409, r.text
            error = r.json()["error"]
            assert error["code"] == "enforce-refused"
            found = [f for f in error["findings"] if f["code"] == "address-not-allowed"]
            assert [f["subject"] for f in found] == [f"mx1.{d}"]
            assert found[0]["severity"] == "error" and "loopback" in found[0]["message"]
            assert found[0]["fix"]
            assert c.get(f"/api/v1/domains/{d}").json()["policy"]["mode"] == "testing"
        assert trap.connections() == []
    assert parse_policy(app.policy(d).content).mode == "testing"


def test_what_the_mx_says_is_not_echoed(app: Running, lab_world: World) -> None:
    replies = [f"554 5.7.1 {SECRET} ESMTP Exim 4.96 ready"]
    with Trap(TALKER_IP, lab_world.smtp_port, replies=replies) as talker:
        d = hosted(app, lab_world)
        lab_world.zone.set(f"mx1.{d}", "A", [TALKER_IP])
        with app.client() as c:
            r = c.put(f"/api/v1/domains/{d}/policy", json={"mode": "enforce"})
        assert r.status_code == 409, r.text
        assert len(talker.connections()) == 1  # it was probed, allowed
    assert SECRET not in r.text and "Exim" not in r.text
    messages = [f["message"] for f in r.json()["error"]["findings"]]
    assert any("greeting code 554" in m for m in messages), messages
