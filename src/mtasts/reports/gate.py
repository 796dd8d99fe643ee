"""Bounded concurrency for parsing reports (issue 11: memory).

Parsing a report costs a few times its size in memory (an e-mail about 8x: the stdlib
parser keeps lines, the body and the decoded part); a flood of reports parsed at once
multiplies that. One gate, shared by the HTTPS route (the web event loop) and the SMTP
receiver (its own thread and loop), runs at most ``slots`` reports at once, in threads of
its own, and lets ``queue`` more wait; anything beyond is refused at once (HTTP 503, SMTP
451, both with a time to retry) rather than held in memory. A report that waited more
than ``wait`` seconds is refused when its turn comes (its sender retries later).

Own threads, not the event loops' shared pools: glibc gives each thread that allocates
a malloc arena of its own and keeps freed memory there, so large parses spread over 40
pool threads left the process at 600 MiB after a flood; confined to ``slots`` threads,
the memory they keep is bounded by what ``slots`` parses take.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

RETRY_AFTER = 60  # seconds a refused sender is asked to wait
T = TypeVar("T")


class Busy(Exception):
    """Every parse slot is taken and the queue is full (or the wait ran out)."""

    retry_after = RETRY_AFTER


@dataclass(frozen=True, slots=True)
class GateState:
    active: int
    waiting: int


class ParseGate:
    """At most ``slots`` reports parsed at once and ``queue`` waiting; see the module
    docstring."""

    def __init__(self, slots: int = 2, queue: int = 8, wait: float = 5.0) -> None:
        if slots < 1 or queue < 0 or wait < 0:
            raise ValueError("ParseGate: slots >= 1, queue >= 0, wait >= 0")
        self.slots, self.queue, self.wait = slots, queue, wait
        self._lock = threading.Lock()
        self._active = 0
        self._pending = 0  # running or queued
        self._executor = ThreadPoolExecutor(slots, thread_name_prefix="mtasts-report-parse")

    @property
    def state(self) -> GateState:
        with self._lock:
            return GateState(self._active, self._pending - self._active)

    async def run(self, work: Callable[[], T]) -> T:
        """The result of ``work()``, run in a parse slot; Busy when none is to be had."""
        with self._lock:
            if self._pending >= self.slots + self.queue:
                raise Busy("every report parse slot is busy")
            queued = self._pending >= self.slots  # no slot free: it waits its turn
            self._pending += 1
        queued_at = time.monotonic()

        def job() -> T:
            with self._lock:
                self._active += 1
            try:
                if queued and time.monotonic() - queued_at > self.wait:
                    raise Busy("every report parse slot stayed busy")
                return work()
            finally:
                with self._lock:
                    self._active -= 1

        def done(_: Future[T]) -> None:
            # also when the job never ran: cancelled in the queue (the sender went away)
            with self._lock:
                self._pending -= 1

        try:
            future = self._executor.submit(job)
        except RuntimeError:  # shut down
            with self._lock:
                self._pending -= 1
            raise Busy("the report receiver is stopping") from None
        future.add_done_callback(done)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Refuse new work; work already queued still runs."""
        self._executor.shutdown(wait=False)


M_MMAP_THRESHOLD = -3  # glibc mallopt parameter (malloc.h)


def return_large_buffers_to_the_system(threshold: int = 256 * 1024) -> bool:
    """Have glibc serve allocations above ``threshold`` bytes by mmap, so that the memory
    of a parsed report goes back to the system when it is freed. Without it glibc raises
    its threshold after the first large free (up to 32 MiB) and keeps report-sized
    buffers in its arenas: RSS stays at the flood's peak. False where not glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False
