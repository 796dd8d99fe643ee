"""Loopback addresses and free ports for the lab.

Linux routes all of 127.0.0.0/8 to ``lo``, so distinct lab behaviours get distinct addresses
(127.0.0.N) while sharing one port: the checker's ``smtp_port``/``https_port`` options hold
for a whole run. Only loopback addresses are ever accepted here.

Several test runs share the machine (two clones, other people's runs), so a port found free
must stay ours until a server binds it: :func:`free_port` takes ports below the kernel's
ephemeral range (no port-0 bind or outgoing connection gets them meanwhile) and reserves each
one for the life of the process with a byte-range lock in :data:`LOCK_FILE`, which every run
honours. :func:`reserved_block` does the same for a whole 127.53.N.0/24, for servers that
must listen on a fixed port (53) at addresses of their own.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import secrets
import socket
import threading
from collections.abc import Iterable, Iterator

# Below Linux's default ephemeral range (32768-60999, /proc/sys/net/ipv4/ip_local_port_range)
LAB_PORTS = range(20000, 32768)
# One byte per reservation: ports at their number, 127.53.N blocks at _BLOCK_KEYS + N. The
# kernel drops a process's locks when it exits, however it exits: nothing to clean up.
LOCK_FILE = "/tmp/mtasts-lab-ports.lock"
_BLOCK_KEYS = 1 << 16
_lock = threading.Lock()
_lock_fd: int | None = None
_held: set[int] = set()


def _reserve(key: int) -> bool:
    """Lock byte ``key`` of LOCK_FILE for this process; False when another process or this
    one already holds it."""
    global _lock_fd
    with _lock:
        if key in _held:
            return False
        if _lock_fd is None:
            _lock_fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
            with contextlib.suppress(OSError):  # others' runs (any user) lock it too
                os.fchmod(_lock_fd, 0o666)
        try:
            fcntl.lockf(_lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, key)
        except OSError:
            return False
        _held.add(key)
        return True


def _release(key: int) -> None:
    with _lock:
        if key in _held and _lock_fd is not None:
            fcntl.lockf(_lock_fd, fcntl.LOCK_UN, 1, key)
            _held.discard(key)


def require_loopback(host: str) -> str:
    """Return ``host`` when it is a loopback address (127.0.0.0/8 or ::1), else ValueError."""
    address = ipaddress.ip_address(host)
    if not address.is_loopback:
        raise ValueError(f"the lab only uses loopback addresses, not {host}")
    return host


def loopback(n: int) -> str:
    """127.0.0.n (1 <= n <= 254)."""
    if not 1 <= n <= 254:
        raise ValueError(f"127.0.0.{n} is not a usable lab address")
    return f"127.0.0.{n}"


def format_hostport(host: str, port: int) -> str:
    """ "127.0.0.1:53" or "[::1]:53"."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def ipv6_available() -> bool:
    """True when ::1 can be bound (containers sometimes disable IPv6)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def _can_bind(host: str, port: int, kind: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as s:
        if kind == socket.SOCK_STREAM:
            # servers bind with SO_REUSEADDR too, so TIME_WAIT leftovers do not matter
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(
    hosts: Iterable[str] = ("127.0.0.1",), *, udp: bool = False, ports: range = LAB_PORTS
) -> int:
    """A port of ``ports`` that is free (TCP, and UDP when ``udp``) on every one of
    ``hosts``, reserved for this process: no other run of the lab gets it, nor does a later
    call here (so a port left free on purpose, e.g. at DOWN_IP, stays free)."""
    hosts = [require_loopback(h) for h in hosts] or ["127.0.0.1"]
    kinds = [socket.SOCK_STREAM] + ([socket.SOCK_DGRAM] if udp else [])
    start = secrets.randbelow(len(ports))  # runs starting together spread out
    for i in range(len(ports)):
        port = ports[(start + i) % len(ports)]
        if not _reserve(port):
            continue
        if all(_can_bind(h, port, k) for h in hosts for k in kinds):
            return port
        _release(port)  # someone outside the lab has it
    raise OSError(f"no port of {ports} free on all of {', '.join(hosts)}")


@contextlib.contextmanager
def reserved_block(port: int) -> Iterator[str]:
    """A prefix "127.53.N" (1 <= N <= 254) whose addresses no other run of the lab uses
    while the ``with`` lasts, with ``port`` free at 127.53.N.1-10 (TCP and UDP): for
    servers that must listen on a fixed port (DNS referrals carry no port)."""
    for n in range(1, 255):  # 127.53.0.x: older clones of the suite used it unreserved
        if not _reserve(_BLOCK_KEYS + n):
            continue
        prefix = f"127.53.{n}"
        hosts = [f"{prefix}.{i}" for i in range(1, 11)]
        kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM)
        if all(_can_bind(h, port, k) for h in hosts for k in kinds):
            try:
                yield prefix
            finally:
                _release(_BLOCK_KEYS + n)
            return
        _release(_BLOCK_KEYS + n)
    raise OSError(f"no 127.53.N.0/24 with port {port} free")
