"""Certificate parsing and RFC 6125 host name matching."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from hypothesis import given
from hypothesis import strategies as st

from mtasts import i18n
from mtasts.net.certs import (
    CertInfo,
    format_duration,
    hostname_matches,
    judge_expiry,
    parse_certificate,
)
from tests.lab import TestCA


def test_parse_certificate_reports_names_dates_and_fingerprint(test_ca: TestCA) -> None:
    leaf = test_ca.issue(["mx.parse.test", "*.parse.test", "127.0.0.1"])
    info = parse_certificate(leaf.der)
    cert = x509.load_der_x509_certificate(leaf.der)
    assert info.subject == "CN=mx.parse.test,O=mtasts lab"
    assert info.issuer == "CN=mtasts Lab Root CA - Issuing CA,O=mtasts lab"
    assert info.subject_alt_names == ("mx.parse.test", "*.parse.test")  # DNS names only
    assert info.not_before == cert.not_valid_before_utc and info.not_before.tzinfo is not None
    assert info.not_after == cert.not_valid_after_utc
    assert int(info.serial, 16) == cert.serial_number
    assert info.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()
    assert info.fingerprint_sha256 == info.fingerprint_sha256.lower()


def test_parse_certificate_without_san(test_ca: TestCA) -> None:
    info = parse_certificate(test_ca.issue([], common_name="cn-only.test").der)
    assert info.subject_alt_names == ()
    assert not hostname_matches("cn-only.test", info.subject_alt_names)  # CN is not used


def test_parse_certificate_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_certificate(b"not a certificate")


def _info(not_after: datetime) -> CertInfo:
    return CertInfo("CN=x", "CN=y", ("x",), not_after - timedelta(days=90), not_after, "1", "00")


def test_days_left_counts_whole_days_and_goes_negative() -> None:
    now = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    assert _info(now + timedelta(days=30)).days_left(now) == 30
    assert _info(now + timedelta(days=30, hours=23)).days_left(now) == 30
    assert _info(now + timedelta(hours=23)).days_left(now) == 0
    assert _info(now - timedelta(hours=1)).days_left(now) == -1
    assert _info(now - timedelta(days=3)).days_left(now) == -3
    assert _info(now + timedelta(days=1)).days_left(now.replace(tzinfo=None)) == 1  # naive=UTC


MATCH_TABLE = [
    # RFC 6125 §6.4.1: exact, case-insensitive, trailing dots ignored
    ("mx.example.com", ("mx.example.com",), True),
    ("MX.Example.COM", ("mx.example.com",), True),
    ("mx.example.com.", ("MX.EXAMPLE.COM.",), True),
    ("mx.example.com", ("mx2.example.com", "mx.example.com"), True),
    ("mx.example.com", ("example.com",), False),
    ("mx.example.com", (), False),
    # RFC 6125 §6.4.3: wildcard as the whole left-most label, exactly one label
    ("mx.example.com", ("*.example.com",), True),
    ("MX.EXAMPLE.com", ("*.Example.COM",), True),
    ("a.mx.example.com", ("*.example.com",), False),
    ("example.com", ("*.example.com",), False),
    ("mx.example.com", ("m*.example.com",), False),
    ("mx.example.com", ("*x.example.com",), False),
    ("mx.example.com", ("mx.*.com",), False),
    ("mx.example.com", ("*.*.com",), False),
    ("example.com", ("*.com",), False),  # never a wildcard right under one label
    ("mx.example.com", ("*",), False),
    (".example.com", ("*.example.com",), False),
    # A-labels: an IDN host matches its A-label SAN, wildcard over an A-label is whole-label
    ("mx.bücher.example", ("mx.xn--bcher-kva.example",), True),
    ("xn--bcher-kva.example.com", ("*.example.com",), True),
    ("mx.bücher.example", ("mx.bücher.example",), False),  # U-labels in a SAN: malformed
    # IP addresses are never matched against DNS names (RFC 6125 §1.7.2)
    ("192.0.2.1", ("192.0.2.1",), False),
    ("::1", ("::1",), False),
    ("192.0.2.1", ("*.0.2.1",), False),
    ("", ("",), False),
    ("*.example.com", ("*.example.com",), False),  # "*" in the reference: not a host name
    ("a..example.com", ("a..example.com",), False),
]


@pytest.mark.parametrize(("host", "names", "expected"), MATCH_TABLE)
def test_hostname_matches_table(host: str, names: tuple[str, ...], expected: bool) -> None:
    assert hostname_matches(host, names) is expected


label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True).filter(
    lambda s: not s.startswith("xn--")
)
tld = st.from_regex(r"[a-z]{2,6}", fullmatch=True)  # alphabetic: never an IP literal
hostnames = st.builds(
    lambda labels, top: ".".join([*labels, top]), st.lists(label, min_size=1, max_size=4), tld
)


@given(hostnames)
def test_every_name_matches_itself_in_any_case(host: str) -> None:
    assert hostname_matches(host, (host,))
    assert hostname_matches(host.upper(), (host,))
    assert hostname_matches(host, (host.upper() + ".",))


@given(label, hostnames)
def test_wildcard_matches_exactly_one_label(first: str, parent: str) -> None:
    pattern = ("*." + parent,)
    assert hostname_matches(f"{first}.{parent}", pattern)
    assert not hostname_matches(parent, pattern)
    assert not hostname_matches(f"{first}.{first}.{parent}", pattern)


@given(hostnames, hostnames)
def test_different_names_do_not_match(a: str, b: str) -> None:
    assert hostname_matches(a, (b,)) is (a == b)


# --- expiry judged by the certificate's own lifetime (issue 14 #6) ----------------------


def _cert(lifetime: timedelta, start: datetime) -> CertInfo:
    return CertInfo("CN=x", "CN=ca", ("x",), start, start + lifetime, "1", "00")


@pytest.mark.parametrize(
    ("lifetime", "left", "expected"),
    [
        (timedelta(hours=12), timedelta(hours=11), None),  # Caddy internal CA: healthy
        (timedelta(hours=12), timedelta(hours=3), (1, "warning")),  # renewal window passed
        (timedelta(hours=12), timedelta(minutes=50), (2, "critical")),  # under a tenth
        (timedelta(days=6), timedelta(days=3), None),
        (timedelta(days=6), timedelta(hours=30), (1, "warning")),
        (timedelta(days=6), timedelta(hours=20), (3, "critical")),  # under a day
        (timedelta(days=47), timedelta(days=20), None),
        (timedelta(days=47), timedelta(days=14), (1, "warning")),
        (timedelta(days=90), timedelta(days=25), (1, "warning")),  # 21 days was too late
        (timedelta(days=90), timedelta(days=8), (2, "critical")),
        (timedelta(days=90), timedelta(hours=12), (3, "critical")),
        (timedelta(days=90), -timedelta(hours=1), (4, "critical")),
    ],
)
def test_expiry_by_lifetime(
    lifetime: timedelta, left: timedelta, expected: tuple[int, str] | None
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    now = start + lifetime - left
    got = judge_expiry(_cert(lifetime, start), now)
    assert ((got.level, got.severity) if got else None) == expected


def test_expiry_reason_speaks_hours_not_zero_days() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    got = judge_expiry(_cert(timedelta(days=90), start), start + timedelta(days=90, hours=-12))
    assert got is not None
    assert "expires in 12 hours" in got.reason and "in 0 day" not in got.reason
    assert "lifetime" in got.reason and "renewal is failing" in got.reason
    assert format_duration(timedelta(days=3, hours=5)) == "3 days"
    assert format_duration(timedelta(hours=47)) == "47 hours"
    assert format_duration(timedelta(minutes=30)) == "30 minutes"


def test_certificate_lifetimes_in_spanish() -> None:
    """judge_expiry's reasons (check findings and alerts) in the current language."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    cert = _cert(timedelta(days=90), start)
    late = start + timedelta(days=65)
    with i18n.use("es"):
        warning = judge_expiry(cert, late)
        failing = judge_expiry(cert, start + timedelta(days=89, hours=12))
        expired = judge_expiry(cert, start + timedelta(days=93))
    assert warning and failing and expired
    assert warning.reason == (
        "caduca dentro de 25 días (2026-04-01 00:00 UTC), con el 28% de su vigencia de 90 días "
        "por delante: ya debería haberse renovado (los clientes ACME renuevan cuando queda "
        "más o menos un tercio)."
    )
    assert failing.reason.startswith("caduca dentro de 12 horas (2026-04-01 00:00 UTC), con el 1%")
    assert "la renovación está fallando" in failing.reason
    assert expired.reason == "caducó hace 3 días (2026-04-01 00:00 UTC)."
    english = judge_expiry(cert, late)
    assert english and english.reason.startswith("expires in 25 days (2026-04-01 00:00 UTC)")


# The import of cryptography.x509 is held until the main thread has ended (the process is
# on its way out), then let through; "imported" is written once the module has loaded.
_EXIT_DURING_PRELOAD = r"""
import importlib.abc
import importlib.machinery
import sys
import threading
import time
from pathlib import Path

work = Path(sys.argv[1])


class Held(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "cryptography.x509":
            return None
        while threading.main_thread().is_alive():
            time.sleep(0.005)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        real = spec.loader

        class Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return real.create_module(spec)

            def exec_module(self, module):
                real.exec_module(module)
                (work / "imported").touch()

        spec.loader = Loader()
        return spec


sys.meta_path.insert(0, Held())
from mtasts.net.certs import preload_parser

preload_parser()
"""


def test_a_process_ending_during_the_preload_waits_for_it(tmp_path: Path) -> None:
    """A check can end while the certificate parser is still being imported in its thread;
    the process then waits for the import instead of stopping the thread inside
    cryptography's Rust code at interpreter exit (which aborts it: SIGABRT, "FATAL:
    exception not rethrown", seen as a failed `mtasts check`)."""
    run = subprocess.run(
        [sys.executable, "-c", _EXIT_DURING_PRELOAD, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (run.returncode, run.stderr) == (0, "")
    assert (tmp_path / "imported").exists()
