"""The loopback lab: a test CA and real DNS, HTTPS and SMTP servers on 127.0.0.0/8 and ::1.

Each server runs in a background thread with its own event loop (``start()``/``stop()`` or
``with``), or in the caller's loop (``await astart()``/``astop()``). :class:`World` wires
them all together for whole-domain checks and benchmarks.
"""

from tests.lab.ca import Leaf, TestCA
from tests.lab.dnsserver import DnsServer, Zone
from tests.lab.httpsserver import POLICY_PATH, HttpsServer, Site
from tests.lab.ports import free_port, ipv6_available, loopback, require_loopback
from tests.lab.smtpserver import SmtpBehaviour, SmtpServer
from tests.lab.tls import TLS11_AVAILABLE, CertStore, server_context
from tests.lab.world import DOWN_IP, HTTPS_IP, SMTP_PROFILES, LabDomain, World

__all__ = [
    "DOWN_IP",
    "HTTPS_IP",
    "POLICY_PATH",
    "SMTP_PROFILES",
    "TLS11_AVAILABLE",
    "CertStore",
    "DnsServer",
    "HttpsServer",
    "LabDomain",
    "Leaf",
    "Site",
    "SmtpBehaviour",
    "SmtpServer",
    "TestCA",
    "World",
    "Zone",
    "free_port",
    "ipv6_available",
    "loopback",
    "require_loopback",
    "server_context",
]
