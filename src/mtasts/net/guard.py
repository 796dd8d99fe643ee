"""Guards of the listeners of `mtasts serve` against floods and slow clients.

Invariant: nothing a client sends without credentials may cost the process unbounded
descriptors, memory or log lines. This module holds the pieces the HTTP, SMTP and DNS
listeners share:

- :class:`RateLimitedLog`: a log line per kind of event and interval, never one per event
  (accept errors under EMFILE arrive thousands of times a second);
- :func:`accept_error_handler`: an asyncio exception handler that routes the loop's
  "socket.accept() out of system resource" (and other repeated reports) through it;
- :func:`raise_nofile`: the soft RLIMIT_NOFILE up to the hard limit at start;
- :func:`source_prefix`: the network a client address is counted in (/24 or /56 for DNS
  rate limits, /32 or /64 for SMTP sessions);
- :class:`TokenBuckets`: a bounded table of token buckets per key (response rate limiting).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

log = logging.getLogger("mtasts.guard")

LOG_INTERVAL = 60.0  # seconds between two log lines of one kind


class RateLimitedLog:
    """Logs the first event of a kind, then at most one line per ``interval`` saying how
    many more happened ("N more in the last 60 s"). Thread-safe enough for logging: the
    worst race logs one line too many."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(
        self,
        key: str,
        level: int,
        message: str,
        *args: object,
        exc_info: BaseException | None = None,
    ) -> bool:
        """Log ``message % args`` (with the traceback of ``exc_info``) unless a line of kind
        ``key`` was logged less than ``interval`` ago (then count it); True when a line was
        written."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        more = self._suppressed.pop(key, 0)
        self._last[key] = now
        if more:
            self.logger.log(
                level,
                message + " (%d more in the last %d s)",
                *args,
                more,
                round(self.interval),
                exc_info=exc_info,
            )
        else:
            self.logger.log(level, message, *args, exc_info=exc_info)
        return True


_ACCEPT_LOG = RateLimitedLog(log)
# out of descriptors, buffers or memory: the state of the machine, not a bug (no traceback)
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def accept_error_handler(
    limiter: RateLimitedLog | None = None,
) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """An exception handler for an event loop (``loop.set_exception_handler``): reports of
    the loop are logged once per interval and kind instead of once per event; accept
    errors under EMFILE/ENFILE and the like in one line, anything else with the traceback
    of its first occurrence."""
    limiter = limiter or _ACCEPT_LOG

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", "event loop error"))
        exc = context.get("exception")
        key = f"{message}|{type(exc).__name__}"
        detail = f": {exc}" if exc is not None else ""
        resource = isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS
        trace = exc if isinstance(exc, BaseException) and not resource else None
        limiter.log(key, logging.ERROR, "%s%s", message, detail, exc_info=trace)

    return handle


def raise_nofile() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (each slow client holds a descriptor;
    systemd's default soft limit is 1024); returns (soft, hard) after the change."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open files limit to %s: %s", target, exc)
    return soft, hard


def nofile_soft() -> int:
    """The current soft RLIMIT_NOFILE (65536 when unlimited)."""
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 65536


def source_prefix(address: str, v4_bits: int, v6_bits: int) -> str:
    """The network ``address`` is counted in, as text ("192.0.2.0/24"); the address itself
    when it is not an IP literal (e.g. a Unix socket)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bits = v4_bits if ip.version == 4 else v6_bits
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


def fast_prefix(address: str, v4_bits: int = 24, v6_bits: int = 56) -> str:
    """:func:`source_prefix` with a fast path for the common /24 of a dotted IPv4 address
    (a string split instead of ipaddress objects: this runs for every datagram)."""
    if v4_bits == 24 and "." in address and ":" not in address:
        return address.rsplit(".", 1)[0]
    return source_prefix(address, v4_bits, v6_bits)


class TokenBuckets:
    """A token bucket per key: ``rate`` tokens a second, at most ``burst``; the table keeps
    the ``max_keys`` most recently seen keys (least recently used are forgotten, which can
    only give a forgotten source a fresh bucket, never take one from an honest one)."""

    def __init__(
        self,
        rate: float,
        burst: float,
        max_keys: int = 65536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def take(self, key: str) -> bool:
        """Take a token for ``key``: True when there was one."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._buckets.popitem(last=False)
            self._buckets[key] = [self.burst - 1.0, now]
            return True
        self._buckets.move_to_end(key)
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return True
        bucket[0] = tokens
        return False

    def __len__(self) -> int:
        return len(self._buckets)


__all__ = [
    "RateLimitedLog",
    "TokenBuckets",
    "accept_error_handler",
    "fast_prefix",
    "nofile_soft",
    "raise_nofile",
    "source_prefix",
]
