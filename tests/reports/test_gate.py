"""The parse gate (slots, a short queue, refusal beyond) and the spool (disk above a
threshold), without servers; synchronised on events, never on time."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from mtasts.reports.gate import Busy, ParseGate
from mtasts.reports.spool import Spool


def test_slots_then_queue_then_busy_and_cancelled_waiters_give_their_place_back() -> None:
    gate = ParseGate(slots=1, queue=1, wait=3600)
    release = threading.Event()
    started = threading.Event()

    def hold() -> str:
        started.set()
        release.wait(60)
        return "held"

    async def scenario() -> None:
        holder = asyncio.ensure_future(gate.run(hold))
        await asyncio.to_thread(started.wait, 60)
        assert gate.state.active == 1
        queued = asyncio.ensure_future(gate.run(lambda: "queued"))
        await asyncio.sleep(0)
        assert gate.state.waiting == 1
        with pytest.raises(Busy):
            await gate.run(lambda: "refused")
        queued.cancel()  # the sender went away while waiting
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert gate.state.waiting == 0  # its place is free again
        again = asyncio.ensure_future(gate.run(lambda: "again"))
        await asyncio.sleep(0)
        release.set()
        assert await holder == "held"
        assert await again == "again"
        assert gate.state == type(gate.state)(0, 0)

    asyncio.run(scenario())
    gate.close()


def test_a_report_that_waited_too_long_is_refused_when_its_turn_comes() -> None:
    gate = ParseGate(slots=1, queue=1, wait=0)
    release, started = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(60)

    async def scenario() -> None:
        holder = asyncio.ensure_future(gate.run(hold))
        await asyncio.to_thread(started.wait, 60)
        late = asyncio.ensure_future(gate.run(lambda: "late"))
        await asyncio.sleep(0)
        release.set()
        await holder
        with pytest.raises(Busy):
            await late

    asyncio.run(scenario())
    gate.close()


def test_spool_stays_in_memory_below_the_threshold_and_moves_to_disk_above(
    tmp_path: Path,
) -> None:
    with Spool(threshold=10, directory=tmp_path / "spool") as small:
        small.write(b"0123456789")
        assert not small.on_disk and small.read() == b"0123456789"
    with Spool(threshold=10, directory=tmp_path / "spool") as big:
        big.write(b"01234")
        big.write(b"567890")
        assert big.on_disk and big.size == 11
        big.write(b"abc")
        assert big.read() == b"01234567890abc"
    assert list((tmp_path / "spool").iterdir()) == []  # unnamed temporary files only
