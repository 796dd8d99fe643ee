"""The STARTTLS probe against the lab SMTP servers: every ProbeResult error code."""

from __future__ import annotations

import asyncio
import gc
import ssl
import warnings
from collections.abc import Iterator

import pytest

from mtasts.net.starttls import ProbeResult, probe_mx
from tests.lab import TLS11_AVAILABLE, SmtpServer, TestCA, World, free_port, ipv6_available
from tests.lab.require import require

pytestmark = pytest.mark.lab

HOST = "mx1.probe.test"
GUARD = 60.0  # seconds: turns a hang into a failure; never a timing expectation


def probe(
    world: World, profile: str, *, host: str = HOST, timeout: float = 3.0, **kw: object
) -> ProbeResult:
    options: dict[str, object] = {"ca_file": world.ca_file, "port": world.smtp_port}
    options.update(kw)
    address = str(options.pop("address", world.smtp_ip(profile)))
    return asyncio.run(probe_mx(host, address, timeout=timeout, **options))  # type: ignore[arg-type]


def test_good_server(lab_world: World) -> None:
    server = lab_world.smtp["good"]
    quits, names = server.stats.quits, len(server.stats.ehlo_names)
    r = probe(lab_world, "good", host="MX1.Probe.Test.", ehlo_name="checker.example")
    assert r.ok and r.error_code is None and r.error is None
    assert r.host == HOST and r.address == lab_world.smtp_ip("good")
    assert r.port == lab_world.smtp_port
    assert r.banner is not None and r.banner.startswith("220 good.smtp.lab.test")
    assert "STARTTLS" in r.ehlo_extensions and "PIPELINING" in r.ehlo_extensions
    assert r.starttls_offered and r.trusted is True and r.hostname_match is True
    assert r.tls_version in ("TLSv1.2", "TLSv1.3") and r.cipher
    assert r.certificate is not None and r.certificate.subject_alt_names == (HOST,)
    assert r.chain_subjects[0] == r.certificate.subject
    assert len(r.chain_subjects) == 2 and "Issuing CA" in r.chain_subjects[1]
    assert server.stats.quits == quits + 1  # polite QUIT after TLS
    assert server.stats.ehlo_names[names:] == ["checker.example"]


def test_idn_host_sends_its_a_label_as_sni(lab_world: World) -> None:
    r = probe(lab_world, "good", host="mx.bücher.probe.test")
    assert r.ok and r.certificate is not None
    assert r.certificate.subject_alt_names == ("mx.xn--bcher-kva.probe.test",)


def test_wrong_name_is_reported_apart_from_trust(lab_world: World) -> None:
    r = probe(lab_world, "wrong-name")
    assert r.error_code is None and r.trusted is True  # the chain itself is fine
    assert r.hostname_match is False and not r.ok
    assert r.certificate is not None
    assert r.certificate.subject_alt_names == ("wrong-name.lab.invalid",)


@pytest.mark.parametrize(
    ("profile", "code", "verify_code"),
    [
        ("expired", "certificate-expired", 10),
        ("not-yet-valid", "certificate-not-yet-valid", 9),
        ("untrusted", "certificate-untrusted", 20),
        ("self-signed", "certificate-untrusted", 18),
    ],
)
def test_certificate_failures_keep_the_certificate(
    lab_world: World, profile: str, code: str, verify_code: int
) -> None:
    r = probe(lab_world, profile)
    assert r.error_code == code and r.verify_code == verify_code
    assert r.trusted is False and r.hostname_match is True  # name fine, chain not
    assert r.certificate is not None and r.certificate.subject_alt_names == (HOST,)
    assert r.tls_version in ("TLSv1.2", "TLSv1.3") and r.cipher


def test_system_store_does_not_trust_the_lab(lab_world: World) -> None:
    r = probe(lab_world, "good", ca_file=None)
    assert r.error_code == "certificate-untrusted" and r.certificate is not None


@pytest.mark.parametrize(
    ("profile", "code", "text"),
    [
        ("no-starttls", "starttls-not-offered", "does not offer STARTTLS"),
        ("starttls-454", "starttls-refused", "454"),
        ("bad-banner", "smtp-banner", "554"),
        ("ehlo-fail", "smtp-ehlo", "502"),
        # plain text after the 220 is seen either before the handshake starts or by OpenSSL
        # inside it, depending on when it arrives: both name the cause
        ("tls-broken", "tls-handshake-failed", "plain text|WRONG_VERSION_NUMBER"),
        ("hang-up", "smtp-banner", "closed"),
        ("down", "connect-failed", "127.0.0.254"),
    ],
)
def test_smtp_failures(lab_world: World, profile: str, code: str, text: str) -> None:
    r = probe(lab_world, profile)
    assert r.error_code == code
    assert any(t in (r.error or "") for t in text.split("|")), r.error
    assert r.certificate is None and r.tls_version is None and r.trusted is None
    assert r.hostname_match is None and not r.ok
    assert r.starttls_offered is (profile in ("starttls-454", "tls-broken"))
    if profile in ("starttls-454", "bad-banner", "ehlo-fail"):
        assert r.reply is not None and r.reply[:3] in ("454", "554", "502")


def test_silent_server_times_out(lab_world: World) -> None:
    # The silent server never sends its banner: only our timeout can end the probe. The
    # outer guard (generous, far above the 0.5 s timeout) turns a missing timeout into a
    # failure instead of a hang; no upper bound on the time, which a busy runner stretches.
    async def bounded() -> ProbeResult:
        return await asyncio.wait_for(
            probe_mx(
                HOST,
                lab_world.smtp_ip("silent"),
                port=lab_world.smtp_port,
                ca_file=lab_world.ca_file,
                timeout=0.5,
            ),
            GUARD,
        )

    r = asyncio.run(bounded())
    assert r.error_code == "timeout" and "banner" in (r.error or "")
    assert r.elapsed >= 0.4  # it waited for the banner (a timeout never fires early)


def test_stalled_handshake_times_out(lab_world: World) -> None:
    r = probe(lab_world, "tls-stall", timeout=0.5)
    assert r.error_code == "timeout" and "TLS handshake" in (r.error or "")
    assert r.starttls_offered and r.banner is not None
    gc.collect()  # the aborted TLS transport must not be left unclosed


def test_old_tls_version_is_named(lab_world: World) -> None:
    require(TLS11_AVAILABLE, "the local OpenSSL cannot negotiate TLS 1.1 (@SECLEVEL=0)")
    r = probe(lab_world, "tls11")
    assert r.error_code == "tls-version-too-old" and r.tls_version == "TLSv1.1"
    assert "TLSv1.1" in (r.error or "")
    assert r.certificate is not None and r.hostname_match is True
    assert r.trusted is None  # not judged over an outdated protocol


def test_ipv6_address(lab_world: World) -> None:
    require(ipv6_available() and lab_world.ipv6, "::1 cannot be bound (IPv6 disabled)")
    r = probe(lab_world, "good", address="::1")
    assert r.ok and r.address == "::1"


def test_multiline_banner_and_delay(test_ca: TestCA) -> None:
    leaf = test_ca.issue(["mx.multi.probe.test"])
    banner = "mx.multi.probe.test ESMTP\nno UCE\nwelcome"
    with SmtpServer(leaf, host="127.0.0.62", banner=banner, delay=0.2) as server:
        r = asyncio.run(
            probe_mx(
                "mx.multi.probe.test",
                "127.0.0.62",
                port=server.port,
                ca_file=test_ca.ca_file,
                timeout=30,  # generous: the 0.2 s delay must not race a busy runner
            )
        )
    assert r.ok
    assert r.banner == "220-mx.multi.probe.test ESMTP\n220-no UCE\n220 welcome"
    assert r.elapsed >= 0.2


def test_concurrent_probes(lab_world: World) -> None:
    hosts = [f"mx{i}.bulk.probe.test" for i in range(100)]

    async def main() -> list[ProbeResult]:
        return await asyncio.gather(
            *(
                probe_mx(
                    h,
                    lab_world.smtp_ip("good"),
                    port=lab_world.smtp_port,
                    ca_file=lab_world.ca_file,
                    timeout=120,  # generous: 100 handshakes at once on a loaded machine
                )
                for h in hosts
            )
        )

    results = asyncio.run(main())
    assert [r.error_code for r in results] == [None] * len(hosts)
    assert [r.certificate.subject_alt_names for r in results if r.certificate] == [
        (h,) for h in hosts
    ]


# --- a third-party SMTP server keeps the probe honest -----------------------------------


@pytest.fixture
def aiosmtpd_server(test_ca: TestCA) -> Iterator[tuple[str, int]]:
    try:
        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Sink
    except ImportError:  # pragma: no cover - part of the test extras
        require(False, "aiosmtpd is not installed (pip install -e '.[test]')")
        raise
    leaf = test_ca.issue(["mx.aiosmtpd.probe.test"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(leaf.chain_file, leaf.key_file)
    host = "127.0.0.63"
    port = free_port([host])
    with warnings.catch_warnings():
        # aiosmtpd 1.4 still calls asyncio APIs that newer Pythons deprecate
        warnings.simplefilter("ignore", DeprecationWarning)
        controller = Controller(Sink(), hostname=host, port=port, tls_context=ctx)
        controller.start()
    try:
        yield host, port
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            controller.stop()


def test_probe_against_aiosmtpd(test_ca: TestCA, aiosmtpd_server: tuple[str, int]) -> None:
    host, port = aiosmtpd_server
    r = asyncio.run(
        probe_mx("mx.aiosmtpd.probe.test", host, port=port, ca_file=test_ca.ca_file, timeout=5)
    )
    assert r.ok, r.error
    assert r.starttls_offered and r.banner is not None and r.banner.startswith("220 ")
    assert r.certificate is not None
    assert r.certificate.subject_alt_names == ("mx.aiosmtpd.probe.test",)
