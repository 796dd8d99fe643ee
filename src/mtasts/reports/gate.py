"""Bounded concurrency for parsing reports (issue 11: memory).

Parsing a report costs a few times its size in memory; a flood of reports parsed at once
multiplies that. One gate, shared by the HTTPS route (the web event loop) and the SMTP
receiver (its own thread and loop), lets ``slots`` reports be parsed and stored at once
and ``queue`` more wait up to ``wait`` seconds; anything beyond is refused at once (HTTP
503, SMTP 451, both with a time to retry) rather than held in memory.

The gate is thread-based because its users run in worker threads of two event loops.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

RETRY_AFTER = 60  # seconds a refused sender is asked to wait


class Busy(Exception):
    """Every parse slot is taken and the queue is full (or the wait ran out)."""

    retry_after = RETRY_AFTER


@dataclass(frozen=True, slots=True)
class GateState:
    active: int
    waiting: int


class ParseGate:
    """At most ``slots`` holders at once and ``queue`` waiters; see the module docstring."""

    def __init__(self, slots: int = 2, queue: int = 8, wait: float = 5.0) -> None:
        if slots < 1 or queue < 0 or wait < 0:
            raise ValueError("ParseGate: slots >= 1, queue >= 0, wait >= 0")
        self.slots, self.queue, self.wait = slots, queue, wait
        self._cond = threading.Condition()
        self._active = 0
        self._waiting = 0

    @property
    def state(self) -> GateState:
        with self._cond:
            return GateState(self._active, self._waiting)

    def acquire(self) -> None:
        """Take a slot, waiting in the queue if there is room; Busy otherwise."""
        with self._cond:
            if self._active < self.slots and self._waiting == 0:
                self._active += 1
                return
            if self._waiting >= self.queue:
                raise Busy("every report parse slot is busy")
            self._waiting += 1
            try:
                if not self._cond.wait_for(lambda: self._active < self.slots, self.wait):
                    raise Busy("every report parse slot stayed busy")
                self._active += 1
            finally:
                self._waiting -= 1

    def release(self) -> None:
        with self._cond:
            self._active -= 1
            self._cond.notify()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """``with gate.slot():`` parse and store one report (raises Busy)."""
        self.acquire()
        try:
            yield
        finally:
            self.release()
