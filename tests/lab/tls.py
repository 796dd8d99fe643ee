"""Server-side TLS for the lab: contexts from leaves, SNI certificate selection, and whether
the local OpenSSL can still speak TLS 1.1 (needed for the "old TLS" SMTP server)."""

from __future__ import annotations

import ssl
import tempfile
import threading
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.lab.ca import Leaf, TestCA

LEGACY_CIPHERS = "DEFAULT:@SECLEVEL=0"


def server_context(
    leaf: Leaf,
    *,
    maximum_version: ssl.TLSVersion | None = None,
    minimum_version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    """A server context presenting ``leaf`` with its chain.

    A maximum below TLS 1.2 also lowers the minimum and the OpenSSL security level (OpenSSL
    3 refuses TLS 1.0/1.1 at level 1 and above), as an outdated mail server would be set up.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(leaf.chain_file, leaf.key_file)
    legacy = maximum_version is not None and maximum_version < ssl.TLSVersion.TLSv1_2
    with warnings.catch_warnings():
        # Python deprecates TLSv1/TLSv1_1 in these setters; the lab wants them on purpose.
        warnings.simplefilter("ignore", DeprecationWarning)
        if legacy:
            ctx.set_ciphers(LEGACY_CIPHERS)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        if minimum_version is not None:
            ctx.minimum_version = minimum_version
        if maximum_version is not None:
            ctx.maximum_version = maximum_version
    return ctx


class CertStore:
    """Certificates per server name for an SNI callback.

    Lookup order: exact name, then a ``*.parent`` wildcard, then (when ``ca`` or ``issuer``
    is given) a leaf issued on demand for that name and cached, then ``default``. A
    handshake without SNI gets ``default``. ``issuer`` makes the on-demand leaves special,
    e.g. ``issuer=ca.issue_expired`` for a server whose certificates are all expired.
    """

    def __init__(
        self,
        default: Leaf,
        *,
        ca: TestCA | None = None,
        issuer: Callable[[list[str]], Leaf] | None = None,
    ) -> None:
        self.default = default
        self.issuer = issuer or (ca.issue if ca is not None else None)
        self._leaves: dict[str, Leaf] = {}
        # contexts per (leaf, maximum version): switching to a context in the SNI callback
        # also switches its protocol limits and security level, so they must match
        self._contexts: dict[tuple[str, ssl.TLSVersion | None], ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def add(self, leaf: Leaf, names: tuple[str, ...] | None = None) -> None:
        """Serve ``leaf`` for ``names`` (default: the names in the leaf)."""
        for n in names if names is not None else leaf.names:
            self._leaves[n.lower().rstrip(".")] = leaf

    def remove(self, name: str) -> None:
        self._leaves.pop(name.lower().rstrip("."), None)

    def leaf_for(self, server_name: str | None) -> Leaf:
        if not server_name:
            return self.default
        name = server_name.lower().rstrip(".")
        leaf = self._leaves.get(name)
        if leaf is None and "." in name:
            leaf = self._leaves.get("*." + name.split(".", 1)[1])
        if leaf is None and self.issuer is not None:
            with self._lock:
                leaf = self._leaves.get(name)
                if leaf is None:
                    leaf = self.issuer([name])
                    self._leaves[name] = leaf
        return leaf or self.default

    def context_for(
        self, server_name: str | None, maximum_version: ssl.TLSVersion | None = None
    ) -> ssl.SSLContext:
        leaf = self.leaf_for(server_name)
        key = (leaf.chain_file, maximum_version)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = server_context(leaf, maximum_version=maximum_version)
            self._contexts[key] = ctx
        return ctx

    def listening_context(self, *, maximum_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        """The context a server starts handshakes with; the SNI callback then picks the
        certificate (in a context with the same protocol limits)."""
        ctx = server_context(self.default, maximum_version=maximum_version)

        def sni(sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
            sslobj.context = self.context_for(server_name, maximum_version)

        ctx.sni_callback = sni
        return ctx


def _probe_tls11() -> bool:
    """Can this OpenSSL complete a TLS 1.1 handshake with itself (memory BIOs, no sockets)?"""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tls11.probe")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with tempfile.TemporaryDirectory() as tmp:
        certfile, keyfile = Path(tmp, "c.pem"), Path(tmp, "k.pem")
        certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        keyfile.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                server.load_cert_chain(certfile, keyfile)
                server.set_ciphers(LEGACY_CIPHERS)
                server.minimum_version = ssl.TLSVersion.TLSv1
                server.maximum_version = ssl.TLSVersion.TLSv1_1
                client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                client.check_hostname = False
                client.verify_mode = ssl.CERT_NONE
                client.set_ciphers(LEGACY_CIPHERS)
                client.minimum_version = ssl.TLSVersion.TLSv1
        except (ssl.SSLError, ValueError):
            return False
        return _memory_handshake(client, server) == "TLSv1.1"


def _memory_handshake(client: ssl.SSLContext, server: ssl.SSLContext) -> str | None:
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_side=False, server_hostname="tls11.probe")
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):
        for side, obj in (("c", c), ("s", s)):
            if done[side]:
                continue
            try:
                obj.do_handshake()
                done[side] = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                return None
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if done["c"] and done["s"]:
            return c.version()
    return None


TLS11_AVAILABLE: bool = _probe_tls11()
"""True when the local OpenSSL can negotiate TLS 1.1 (with @SECLEVEL=0)."""
