"""The policy fetch against the lab: every FetchResult error code the lab can produce."""

from __future__ import annotations

import asyncio
import gc
import re
import ssl
from collections.abc import Iterator

import pytest

from mtasts.net.dns import Resolver
from mtasts.net.fetch import MAX_POLICY_BYTES, FetchResult, fetch_policy
from tests.lab import DOWN_IP, HTTPS_IP, HttpsServer, Site, World, ipv6_available
from tests.lab.require import require

pytestmark = pytest.mark.lab

POLICY = b"version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n"


def fetch(world: World, domain: str, *, timeout: float = 3.0, **kw: object) -> FetchResult:
    options: dict[str, object] = {"ca_file": world.ca_file, "port": world.https_port}
    options.update(kw)
    resolver = Resolver([world.nameserver], timeout=min(timeout, 2.0))
    return asyncio.run(
        fetch_policy(domain, resolver=resolver, timeout=timeout, **options)  # type: ignore[arg-type]
    )


def test_valid_policy(lab_world: World) -> None:
    d = lab_world.add_domain("ok.fetch.test")
    r = fetch(lab_world, "OK.fetch.test.")
    assert r.ok and r.error_code is None and r.error is None
    assert r.body == (d.policy or "").encode()
    assert r.status_code == 200 and r.content_type == "text/plain"
    assert r.host == "mta-sts.ok.fetch.test"
    assert r.url == f"https://mta-sts.ok.fetch.test:{lab_world.https_port}/.well-known/mta-sts.txt"
    assert r.addresses == (HTTPS_IP,) and r.address == HTTPS_IP
    assert r.tls_version in ("TLSv1.2", "TLSv1.3")
    assert r.certificate is not None
    assert r.certificate.subject_alt_names == ("mta-sts.ok.fetch.test",)  # chosen by SNI
    assert r.location is None and r.cname_chain == () and r.elapsed > 0


def test_url_without_default_port() -> None:
    async def main() -> FetchResult:
        resolver = Resolver(["127.0.0.1:9"], timeout=0.2)
        return await fetch_policy("x.fetch.test", resolver=resolver, timeout=1)

    r = asyncio.run(main())
    assert r.url == "https://mta-sts.x.fetch.test/.well-known/mta-sts.txt"
    assert r.error_code == "dns-failure"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "text/plain; charset=utf-8", "Text/Plain ;charset=UTF-8"]
)
def test_text_plain_with_parameters_is_accepted(lab_world: World, content_type: str) -> None:
    name = f"ct{abs(hash(content_type)) % 10**6}.fetch.test"
    lab_world.add_domain(name, https=Site(body=POLICY, content_type=content_type))
    r = fetch(lab_world, name)
    assert r.ok and r.body == POLICY and r.content_type == content_type


@pytest.mark.parametrize("content_type", ["text/html", "application/octet-stream", None])
def test_other_media_types_are_refused(lab_world: World, content_type: str | None) -> None:
    name = f"badct{abs(hash(content_type)) % 10**6}.fetch.test"
    lab_world.add_domain(name, https=Site(body=POLICY, content_type=content_type))
    r = fetch(lab_world, name)
    assert r.error_code == "content-type" and not r.ok
    assert r.content_type == content_type and r.body == POLICY  # kept for the diagnosis


def test_redirect_is_reported_not_followed(lab_world: World) -> None:
    target = "https://mta-sts.target.fetch.test/.well-known/mta-sts.txt"
    lab_world.add_domain("target.fetch.test")
    lab_world.add_domain("redirect.fetch.test", https=Site(status=301, location=target))
    r = fetch(lab_world, "redirect.fetch.test")
    assert r.error_code == "http-redirect" and r.status_code == 301 and r.location == target
    assert r.certificate is not None  # the TLS part worked
    requests = lab_world.https.stats.requests
    assert requests["mta-sts.redirect.fetch.test /.well-known/mta-sts.txt"] == 1
    assert requests["mta-sts.target.fetch.test /.well-known/mta-sts.txt"] == 0


@pytest.mark.parametrize("status", [404, 500, 204])
def test_non_200_status(lab_world: World, status: int) -> None:
    name = f"status{status}.fetch.test"
    lab_world.add_domain(name, https=Site(status=status, body=b"nope" if status != 204 else b""))
    r = fetch(lab_world, name)
    assert r.error_code == "http-status" and r.status_code == status
    assert str(status) in (r.error or "")


def test_size_limit_boundary(lab_world: World) -> None:
    exact = POLICY + b"#" * (MAX_POLICY_BYTES - len(POLICY))
    lab_world.add_domain("exact.fetch.test", https=Site(body=exact))
    lab_world.add_domain("over.fetch.test", https=Site(body=exact + b"#"))
    lab_world.add_domain("chunked.fetch.test", https=Site(body=exact * 4, chunked=True))
    assert fetch(lab_world, "exact.fetch.test").body == exact
    over = fetch(lab_world, "over.fetch.test")
    assert over.error_code == "too-large" and over.body is None
    chunked = fetch(lab_world, "chunked.fetch.test")  # no Content-Length: cut while streaming
    assert chunked.error_code == "too-large"


def test_size_limit_is_64_kib() -> None:
    assert MAX_POLICY_BYTES == 65_536  # RFC 8461 §3.3, written out: not derived from the code


def test_endless_body_is_cut_at_the_limit(lab_world: World) -> None:
    lab_world.add_domain("endless.fetch.test", https=Site(body=b"#" * 4096, endless=True))
    r = fetch(lab_world, "endless.fetch.test", timeout=30)
    # A client reading on past the limit reaches the server's stop (ENDLESS_BYTES, with the
    # body unterminated) and times out: only one that stops at 64 KiB says "too-large".
    assert r.error_code == "too-large" and r.body is None


def test_connection_closed_without_answer(lab_world: World) -> None:
    lab_world.add_domain("close.fetch.test", https=Site(close=True))
    r = fetch(lab_world, "close.fetch.test")
    assert r.error_code == "http-error" and r.status_code is None
    assert r.certificate is None or r.tls_version is not None
    assert r.error == "RemoteProtocolError: the server sent no answer"
    assert r.summary == "the HTTPS exchange failed (RemoteProtocolError)"  # no server words


def test_slow_server_times_out_within_the_limit(lab_world: World) -> None:
    lab_world.add_domain("slow.fetch.test", https=Site(body=POLICY, delay=600))
    r = fetch(lab_world, "slow.fetch.test", timeout=0.5)
    # Bounded by the server's own event (its answer after 600 s: a client that kept waiting
    # would get the policy), never by a timing window; the lab cancels the pending answer.
    assert r.error_code == "timeout" and r.body is None
    assert r.error == r.summary == "mta-sts.slow.fetch.test did not answer in time (ReadTimeout)"


def test_dns_outcomes(lab_world: World) -> None:
    lab_world.zone.add("mta-sts.nodata.fetch.test", "TXT", "not an address")
    lab_world.zone.add("mta-sts.servfail.fetch.test", "A", HTTPS_IP)
    lab_world.dns.servfail("mta-sts.servfail.fetch.test")
    try:
        nx = fetch(lab_world, "nxdomain.fetch.test")
        assert nx.error_code == "dns-nxdomain"
        assert (
            nx.error == nx.summary == "mta-sts.nxdomain.fetch.test does not exist in DNS (NXDOMAIN)"
        )
        nodata = fetch(lab_world, "nodata.fetch.test")
        assert nodata.error_code == "dns-nodata" and nodata.addresses == ()
        assert nodata.error == nodata.summary == "mta-sts.nodata.fetch.test has no A or AAAA record"
        failed = fetch(lab_world, "servfail.fetch.test")
        assert failed.error_code == "dns-failure"
        host = "mta-sts.servfail.fetch.test"
        # in full: the resolver's own words (server and port); in summary: the status only
        # in full: the server asked and what it said; in summary: the status only
        where = lab_world.nameserver
        assert failed.error == f"the address lookup of {host} failed: {where}: SERVFAIL"
        assert (failed.error or "").endswith(": SERVFAIL")
        assert failed.summary == f"the address lookup of {host} failed (SERVFAIL)"
    finally:
        lab_world.dns.heal("mta-sts.servfail.fetch.test")


def test_policy_host_behind_cname(lab_world: World) -> None:
    # the hosted-mode layout: mta-sts.D CNAME policy-host.Z
    lab_world.zone.add("mta-sts.cname.fetch.test", "CNAME", "policy-host.sts.fetch.test.")
    lab_world.zone.add("policy-host.sts.fetch.test", "A", HTTPS_IP)
    lab_world.https.policy("cname.fetch.test", POLICY)
    r = fetch(lab_world, "cname.fetch.test")
    assert r.ok and r.body == POLICY
    assert r.cname_chain == ("policy-host.sts.fetch.test",)
    assert r.certificate is not None
    assert r.certificate.subject_alt_names == ("mta-sts.cname.fetch.test",)


def test_nothing_listening(lab_world: World) -> None:
    lab_world.add_domain("down.fetch.test", https="down")
    r = fetch(lab_world, "down.fetch.test")
    assert r.error_code == "connect-failed" and r.addresses == (DOWN_IP,)
    assert DOWN_IP in (r.error or "")


def test_next_address_is_tried_when_one_refuses(lab_world: World) -> None:
    # A before AAAA (the order within one RRset is the server's choice, RFC 2181 §5)
    require(ipv6_available() and lab_world.ipv6, "::1 cannot be bound (IPv6 disabled)")
    lab_world.zone.add("mta-sts.second.fetch.test", "A", DOWN_IP)
    lab_world.zone.add("mta-sts.second.fetch.test", "AAAA", "::1")
    lab_world.https.policy("second.fetch.test", POLICY)
    r = fetch(lab_world, "second.fetch.test")
    assert r.ok and r.addresses == (DOWN_IP, "::1") and r.address == "::1"


def test_ipv6_policy_host(lab_world: World) -> None:
    require(ipv6_available() and lab_world.ipv6, "::1 cannot be bound (IPv6 disabled)")
    lab_world.add_domain("v6.fetch.test", ipv6=True)
    lab_world.zone.remove("mta-sts.v6.fetch.test", "A")
    r = fetch(lab_world, "v6.fetch.test")
    assert r.ok and r.address == "::1" and r.addresses == ("::1",)


@pytest.mark.parametrize(
    ("kind", "code", "verify_code"),
    [
        ("expired", "tls-certificate-expired", 10),
        ("untrusted", "tls-certificate-untrusted", 20),
        ("self-signed", "tls-certificate-untrusted", 18),
        ("wrong-name", "tls-certificate-host-mismatch", 62),
        ("not-yet-valid", "tls-certificate-invalid", 9),
    ],
)
def test_certificate_failures_keep_the_certificate(
    lab_world: World, kind: str, code: str, verify_code: int
) -> None:
    name = f"{kind}.cert.fetch.test"
    lab_world.add_domain(name, https=kind)  # type: ignore[arg-type]
    r = fetch(lab_world, name)
    assert r.error_code == code and r.verify_code == verify_code
    assert r.body is None and r.status_code is None  # nothing was requested
    assert r.certificate is not None and r.tls_version is not None
    expected = ("wrong-name.lab.invalid",) if kind == "wrong-name" else (f"mta-sts.{name}",)
    assert r.certificate.subject_alt_names == expected


@pytest.mark.parametrize(("kind", "code"), [("good", None), ("expired", "tls-certificate-expired")])
def test_verdict_only_fetch_verifies_without_describing(
    lab_world: World, kind: str, code: str | None
) -> None:
    """`mtasts policyd` asks for the verdict only: the same PKIX verdict, the certificate
    neither parsed nor looked at again over an unverified connection."""
    name = f"{kind}.verdict.fetch.test"
    lab_world.add_domain(name, https=kind)  # type: ignore[arg-type]
    r = fetch(lab_world, name, describe_certificate=False)
    assert r.error_code == code
    assert r.certificate is None
    assert (r.body is not None) is (code is None)
    if code is not None:
        assert r.verify_code == 10 and r.tls_version is None  # no second connection


def test_system_store_does_not_trust_the_lab(lab_world: World) -> None:
    lab_world.add_domain("system.fetch.test")
    r = fetch(lab_world, "system.fetch.test", ca_file=None)
    assert r.error_code == "tls-certificate-untrusted" and r.certificate is not None


@pytest.fixture
def old_https(lab_world: World) -> Iterator[HttpsServer]:
    """An HTTPS server that stops at TLS 1.1, on an address of its own."""
    leaf = lab_world.ca.issue(["mta-sts.old.fetch.test"])
    with HttpsServer(leaf, host="127.0.0.61", maximum_version=ssl.TLSVersion.TLSv1_1) as server:
        yield server


def test_handshake_failures(lab_world: World, old_https: HttpsServer) -> None:
    lab_world.zone.add("mta-sts.old.fetch.test", "A", old_https.host)
    r = fetch(lab_world, "old.fetch.test", port=old_https.port)
    assert r.error_code == "tls-handshake-failed" and r.certificate is None
    # a port that speaks SMTP, not TLS
    lab_world.zone.add("mta-sts.smtp.fetch.test", "A", lab_world.smtp_ip("bad-banner"))
    r = fetch(lab_world, "smtp.fetch.test", port=lab_world.smtp_port)
    assert r.error_code == "tls-handshake-failed"


def test_stalled_handshake_times_out_without_leaking(lab_world: World) -> None:
    # a server that accepts and never answers the ClientHello (the silent SMTP server)
    lab_world.zone.add("mta-sts.stall.fetch.test", "A", lab_world.smtp_ip("silent"))
    r = fetch(lab_world, "stall.fetch.test", port=lab_world.smtp_port, timeout=0.5)
    # httpx's own timeout ended the handshake and closed the socket ("timed out"), not
    # the outer bound that cancels the task ("no complete answer ... within"), which
    # would leave the socket open: told apart by the message, not by the clock
    assert r.error_code == "timeout" and "timed out" in (r.error or ""), r.error
    assert "no complete answer" not in (r.error or "")
    host, where = "mta-sts.stall.fetch.test", f"{lab_world.smtp_ip('silent')}:{lab_world.smtp_port}"
    assert r.summary == f"connecting to {host} timed out"
    assert re.fullmatch(
        rf"connecting to {re.escape(host)} timed out: {re.escape(where)}: timed out \(.+\)",
        r.error or "",
    ), r.error
    gc.collect()  # an unclosed socket would surface here as an (error) ResourceWarning


def test_peer_hanging_up_is_a_handshake_failure(lab_world: World) -> None:
    lab_world.zone.add("mta-sts.hangup.fetch.test", "A", lab_world.smtp_ip("hang-up"))
    r = fetch(lab_world, "hangup.fetch.test", port=lab_world.smtp_port)
    assert r.error_code == "tls-handshake-failed"


def test_hundreds_of_concurrent_fetches(lab_world: World) -> None:
    names = lab_world.add_domains(200, suffix="bulk.fetch.test")

    async def main() -> list[FetchResult]:
        # generous timeouts: on a loaded machine 200 TLS handshakes at once (client and lab
        # server in this process) can starve the last lookups for tens of seconds
        resolver = Resolver([lab_world.nameserver], timeout=120)
        return await asyncio.gather(
            *(
                fetch_policy(
                    n,
                    resolver=resolver,
                    ca_file=lab_world.ca_file,
                    port=lab_world.https_port,
                    timeout=120,
                )
                for n in names
            )
        )

    results = asyncio.run(main())
    assert [r.error_code for r in results] == [None] * len(names)
    assert all(
        r.body and f"mx: mx1.{n}".encode() in r.body for r, n in zip(results, names, strict=True)
    )
