"""Loopback addresses and free ports for the lab.

Linux routes all of 127.0.0.0/8 to ``lo``, so distinct lab behaviours get distinct addresses
(127.0.0.N) while sharing one port: the checker's ``smtp_port``/``https_port`` options hold
for a whole run. Only loopback addresses are ever accepted here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterable

_PORT_ATTEMPTS = 200


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


def free_port(hosts: Iterable[str] = ("127.0.0.1",), *, udp: bool = False) -> int:
    """A port that is free (TCP, and UDP when ``udp``) on every one of ``hosts``.

    The port is only probed, not held: bind it soon. Racing processes may still take it,
    which lab servers report as an OSError at start.
    """
    hosts = [require_loopback(h) for h in hosts] or ["127.0.0.1"]
    kinds = [socket.SOCK_STREAM] + ([socket.SOCK_DGRAM] if udp else [])
    for _ in range(_PORT_ATTEMPTS):
        family = socket.AF_INET6 if ":" in hosts[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((hosts[0], 0))
            port = int(s.getsockname()[1])
        with contextlib.suppress(OSError):
            if all(_can_bind(h, port, k) for h in hosts for k in kinds):
                return port
    raise OSError(f"no port free on all of {', '.join(hosts)}")
