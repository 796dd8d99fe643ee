"""Run an asyncio server either in the caller's event loop or in a thread of its own.

Every lab server derives from :class:`LabServer` and implements ``astart``/``astop``. Tests
and the CLI subprocess tests use ``start()``/``stop()`` (or ``with server:``), which run the
server in a daemon thread with its own event loop; a benchmark that wants everything in one
loop awaits ``astart()``/``astop()`` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")


class _QuietSslEof(logging.Filter):
    """asyncio logs "returning true from eof_received() has no effect when using ssl" when
    a peer hangs up right after a server-side start_tls() (a race inside the stdlib
    streams); the lab provokes exactly that, so the line is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received() has no effect" not in record.getMessage()


logging.getLogger("asyncio").addFilter(_QuietSslEof())


class LabServer:
    """Base class: start()/stop() in a background thread, astart()/astop() in a loop."""

    name = "lab-server"

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._running = False

    # --- to implement -------------------------------------------------------------------

    async def astart(self) -> None:
        """Bind and start serving in the running loop."""
        raise NotImplementedError

    async def astop(self) -> None:
        """Stop serving and close every connection; safe to call twice."""
        raise NotImplementedError

    # --- background thread --------------------------------------------------------------

    def start(self) -> Self:
        """Start in a daemon thread with its own event loop; returns once bound."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                try:
                    loop.run_until_complete(self.astart())
                except BaseException as exc:
                    failure.append(exc)
                    return
                finally:
                    ready.set()
                loop.run_forever()
            finally:
                _close_loop(loop)

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop the background thread started by start(); idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        try:
            if thread.is_alive():
                asyncio.run_coroutine_threadsafe(self.astop(), loop).result(timeout=10)
        finally:
            if thread.is_alive():
                loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._thread = None
            self._loop = None

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` in the server's background loop and return its result."""
        if self._loop is None:
            coro.close()
            raise RuntimeError(f"{self.name} is not running in a background thread")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    # --- helpers for subclasses ---------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Start a task that astop() cancels; keeps a reference so it is not collected."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


async def close_writer(writer: asyncio.StreamWriter, timeout: float = 1.0) -> None:
    """Close a stream writer without raising, aborting it when a TLS close hangs."""
    with contextlib.suppress(Exception):
        writer.close()
    try:
        async with asyncio.timeout(timeout):
            await writer.wait_closed()
    except asyncio.CancelledError:
        writer.transport.abort()
        raise
    except Exception:
        with contextlib.suppress(Exception):
            writer.transport.abort()
