"""A test certificate authority made with ``cryptography``.

``TestCA(directory)`` writes its root to ``<directory>/ca.pem`` (``.ca_file``) and signs
leaves through an intermediate, as public CAs do, so servers send a real chain (leaf first,
then the intermediate). Expired, not-yet-valid and wrong-name leaves come from the same
``issue``; ``TestCA.untrusted(directory)`` is a second, unrelated CA whose leaves no client
of the lab trusts.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyKind = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

DEFAULT_LEAF_DAYS = 90


@dataclass(frozen=True)
class Leaf:
    """An issued end-entity certificate and its files."""

    names: tuple[str, ...]  # DNS names (and IP literals) in the subjectAltName
    certificate: x509.Certificate
    cert_pem: bytes  # the leaf alone
    key_pem: bytes
    chain_pem: bytes  # leaf first, then the intermediate(s): what a server sends
    cert_file: str  # the leaf alone
    key_file: str
    chain_file: str  # leaf + intermediates (load this in servers)

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc


def _new_key(kind: KeyKind) -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mtasts lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(names: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


class TestCA:
    """Root CA + intermediate; ``issue`` signs leaves (thread-safe)."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        directory: str | Path,
        *,
        name: str = "mtasts Lab Root CA",
        intermediate: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self._lock = threading.Lock()
        self._counter = 0
        now = datetime.now(UTC)
        self._root_key = _new_key("ec")
        root_name = _name(name)
        ski = x509.SubjectKeyIdentifier.from_public_key(self._root_key.public_key())
        self.root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(self._root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(ski, critical=False)
            .sign(self._root_key, hashes.SHA256())
        )
        self.ca_file = str(self.directory / "ca.pem")
        Path(self.ca_file).write_bytes(_pem(self.root))
        # The certificate and key that sign leaves (the intermediate, or the root itself).
        self._signer: x509.Certificate = self.root
        self._signer_key: PrivateKey = self._root_key
        self.intermediates: tuple[x509.Certificate, ...] = ()
        if intermediate:
            key = _new_key("ec")
            inter = (
                x509.CertificateBuilder()
                .subject_name(_name(f"{name} - Issuing CA"))
                .issuer_name(root_name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=1825))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(_ca_key_usage(), critical=True)
                .add_extension(
                    x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
                )
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                    critical=False,
                )
                .sign(self._root_key, hashes.SHA256())
            )
            self._signer, self._signer_key = inter, key
            self.intermediates = (inter,)

    @classmethod
    def untrusted(cls, directory: str | Path) -> TestCA:
        """A second CA, unrelated to the first: its leaves fail verification."""
        return cls(directory, name="Untrusted Lab Root CA")

    @property
    def root_pem(self) -> bytes:
        return _pem(self.root)

    def issue(
        self,
        names: Sequence[str],
        *,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        key: KeyKind = "ec",
        common_name: str | None = None,
        self_signed: bool = False,
    ) -> Leaf:
        """Sign a leaf for ``names`` (DNS names; IP literals become iPAddress SANs).

        Defaults: valid from an hour ago for 90 days. Pass past dates for an expired leaf,
        future ones for a not-yet-valid leaf, other names for a wrong-name leaf, an empty
        ``names`` with ``common_name`` for a CN-only leaf, ``self_signed`` for a leaf that is
        its own issuer.
        """
        now = datetime.now(UTC)
        not_before = not_before or now - timedelta(hours=1)
        not_after = not_after or now + timedelta(days=DEFAULT_LEAF_DAYS)
        leaf_key = _new_key(key)
        cn = common_name or (names[0] if names else "lab leaf")
        subject = _name(cn)
        issuer_name = subject if self_signed else self._signer.subject
        signing_key: PrivateKey = leaf_key if self_signed else self._signer_key
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=key == "rsa",
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
            )
        )
        if not self_signed:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._signer_key.public_key()),
                critical=False,
            )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(_san(names)), False)
        cert = builder.sign(signing_key, hashes.SHA256())
        cert_pem = _pem(cert)
        chain_pem = cert_pem + (b"" if self_signed else b"".join(map(_pem, self.intermediates)))
        key_pem = _key_pem(leaf_key)
        with self._lock:
            self._counter += 1
            stem = f"{self._counter:04d}-{_file_safe(cn)}"
        base = self.directory / stem
        files = {".crt": cert_pem, ".key": key_pem, ".chain.pem": chain_pem}
        for suffix, data in files.items():
            Path(f"{base}{suffix}").write_bytes(data)
        return Leaf(
            names=tuple(names),
            certificate=cert,
            cert_pem=cert_pem,
            key_pem=key_pem,
            chain_pem=chain_pem,
            cert_file=f"{base}.crt",
            key_file=f"{base}.key",
            chain_file=f"{base}.chain.pem",
        )

    def issue_expired(self, names: Sequence[str], *, days_ago: int = 1) -> Leaf:
        """A leaf that expired ``days_ago`` days ago."""
        now = datetime.now(UTC)
        return self.issue(
            names, not_before=now - timedelta(days=90), not_after=now - timedelta(days=days_ago)
        )

    def issue_lax_der(self, names: Sequence[str]) -> Leaf:
        """A leaf whose non-critical extensions say ``critical FALSE`` out loud, signed as
        such by this CA. DER forbids encoding a DEFAULT value (X.690 §11.5); OpenSSL reads
        it and verifies the signature over the bytes as sent, ``cryptography`` refuses to
        load it. The files (``cert_pem``, ``chain_pem`` and their files) hold the lax
        leaf; ``certificate`` is the strict DER leaf it was made from (the same names,
        dates and key, another encoding and signature), since ``cryptography`` cannot
        hold the lax one."""
        strict = self.issue(names)
        cert_tag, cert = _der_read(strict.der)[0]
        (tbs_tag, tbs), (alg_tag, alg), (sig_tag, _signature) = _der_read(cert)
        fields = []
        for tag, value in _der_read(tbs):
            if tag == _EXTENSIONS_TAG:  # [3] EXPLICIT Extensions
                ((seq_tag, extensions),) = _der_read(value)
                spelled = []
                for ext_tag, ext in _der_read(extensions):
                    parts = _der_read(ext)
                    if len(parts) == 2:  # extnID, extnValue: critical left to its DEFAULT
                        parts = [parts[0], (_BOOLEAN_TAG, b"\x00"), parts[1]]
                    spelled.append(_der(ext_tag, b"".join(_der(t, v) for t, v in parts)))
                value = _der(seq_tag, b"".join(spelled))
            fields.append(_der(tag, value))
        lax_tbs = _der(tbs_tag, b"".join(fields))
        key = self._signer_key
        if not isinstance(key, ec.EllipticCurvePrivateKey):  # the lab's CAs use EC keys
            raise TypeError("issue_lax_der needs an EC signing key")
        signature = key.sign(lax_tbs, ec.ECDSA(hashes.SHA256()))
        lax = _der(cert_tag, lax_tbs + _der(alg_tag, alg) + _der(sig_tag, b"\x00" + signature))
        cert_pem = ssl.DER_cert_to_PEM_cert(lax).encode()
        chain_pem = cert_pem + b"".join(map(_pem, self.intermediates))
        Path(strict.cert_file).write_bytes(cert_pem)
        Path(strict.chain_file).write_bytes(chain_pem)
        return replace(strict, cert_pem=cert_pem, chain_pem=chain_pem)

    def issue_not_yet_valid(self, names: Sequence[str], *, days_ahead: int = 2) -> Leaf:
        """A leaf whose validity starts ``days_ahead`` days from now."""
        now = datetime.now(UTC)
        return self.issue(
            names,
            not_before=now + timedelta(days=days_ahead),
            not_after=now + timedelta(days=days_ahead + 90),
        )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


_BOOLEAN_TAG = 0x01
_EXTENSIONS_TAG = 0xA3


def _der_read(data: bytes) -> list[tuple[int, bytes]]:
    """The (tag, contents) of each DER element in ``data``, one level deep (single-byte
    tags, definite lengths: all a certificate of this CA holds)."""
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        tag, length, i = data[i], data[i + 1], i + 2
        if length & 0x80:
            size = length & 0x7F
            length, i = int.from_bytes(data[i : i + size], "big"), i + size
        out.append((tag, data[i : i + length]))
        i += length
    return out


def _der(tag: int, contents: bytes) -> bytes:
    n = len(contents)
    if n < 0x80:
        return bytes([tag, n]) + contents
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + contents


def _file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text.replace("*", "wildcard"))[:60]
