"""The in-memory snapshot: Host lookup, the RFC 8461 §8.1 TXT delay, the file copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtasts.hosting.snapshot import Hosted, Snapshot

ENTRY = Hosted("example.com", "active", "new1", b"version: STSv1\r\n", 1000.0, "old1")


def test_lookup_host_forms() -> None:
    snap = Snapshot({"example.com": ENTRY})
    for host in (
        "mta-sts.example.com",
        "MTA-STS.Example.COM",
        "mta-sts.example.com:443",
        "mta-sts.example.com.",
    ):
        assert snap.lookup_host(host) is ENTRY, host
    for host in (
        "example.com",
        "www.example.com",
        "mta-sts.example.org",
        "",
        "[::1]:443",
        "mta-sts.",
        "xmta-sts.example.com",
    ):
        assert snap.lookup_host(host) is None, host


def test_txt_id_lags_the_policy_by_the_delay() -> None:
    assert ENTRY.txt_id(1000.0, 5.0) == "old1"
    assert ENTRY.txt_id(1004.9, 5.0) == "old1"
    assert ENTRY.txt_id(1005.0, 5.0) == "new1"
    first = Hosted("example.com", "active", "first", b"", 1000.0, None)
    assert first.txt_id(1000.0, 5.0) == "first"  # nothing older to protect


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    snap = Snapshot(
        {
            "example.com": ENTRY,
            "b.example": Hosted("b.example", "retiring", "x", b"mode: none\r\n", 5.5),
        },
        generation=42,
    )
    path = tmp_path / "d" / "snapshot.json"
    snap.save(path)
    loaded = Snapshot.load(path)
    assert loaded.hosts == snap.hosts and loaded.generation == 42
    assert loaded.loaded_at == 0.0  # marks it stale: the next sync reloads everything
    assert not list(path.parent.glob("*.tmp"))


@pytest.mark.parametrize("content", ["", "{", '{"format": 2}', '{"format": 1}', "[1]"])
def test_a_damaged_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "snapshot.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="snapshot"):
        Snapshot.load(path)
