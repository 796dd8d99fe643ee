"""The policy fetch's outcomes in full against the lab: which answer gives which error,
with what message, summary and body, at the edges of the rules (RFC 8461 §3.2, §3.3)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from mtasts import i18n
from mtasts.net.addresses import ProbePolicy
from mtasts.net.dns import Resolver
from mtasts.net.fetch import (
    MAX_POLICY_BYTES,
    USER_AGENT,
    FetchResult,
    fetch_policy,
    peek_certificate,
)
from tests.lab import (
    DOWN_IP,
    HTTPS_IP,
    HttpsServer,
    Leaf,
    Site,
    World,
    free_port,
    loopback,
    server_context,
)
from tests.net.test_fetch import POLICY, fetch

pytestmark = pytest.mark.lab

OVER = POLICY + b"#" * (MAX_POLICY_BYTES + 1 - len(POLICY))  # 65,537 bytes


def url(world: World, domain: str) -> str:
    return f"https://mta-sts.{domain}:{world.https_port}/.well-known/mta-sts.txt"


def get(world: World, domain: str, site: Site) -> FetchResult:
    world.add_domain(domain, https=site)
    return fetch(world, domain)


def test_declared_size_over_the_limit_is_refused_before_reading(lab_world: World) -> None:
    r = get(lab_world, "declared.out.fetch.test", Site(body=OVER))
    assert r.error_code == "too-large" and r.body is None
    assert r.error == r.summary == "the policy is 65537 bytes; senders read at most 65536"


def test_streamed_size_over_the_limit(lab_world: World) -> None:
    r = get(lab_world, "streamed.out.fetch.test", Site(body=OVER, chunked=True))
    assert r.error_code == "too-large" and r.body is None
    assert r.error == "the policy is larger than 65536 bytes (RFC 8461 §3.3)"


def test_a_large_error_page_is_a_status_error_with_its_first_64_kib(lab_world: World) -> None:
    # only a 200 answer can be "too large": other statuses and media types are read up to
    # the limit and reported as what they are
    r = get(lab_world, "big404.out.fetch.test", Site(status=404, body=OVER))
    assert r.error_code == "http-status" and r.body == OVER[:MAX_POLICY_BYTES]
    html = Site(body=OVER, content_type="text/html")
    r = get(lab_world, "bightml.out.fetch.test", html)
    assert r.error_code == "content-type" and r.body == OVER[:MAX_POLICY_BYTES]


def test_status_error_keeps_the_body(lab_world: World) -> None:
    r = get(lab_world, "s404.out.fetch.test", Site(status=404, body=b"nope"))
    assert r.body == b"nope"
    assert r.error == r.summary == f"{url(lab_world, 's404.out.fetch.test')} answers HTTP 404"


@pytest.mark.parametrize(("status", "code"), [(300, "http-redirect"), (399, "http-redirect")])
def test_every_3xx_is_a_redirect(lab_world: World, status: int, code: str) -> None:
    d = f"r{status}.out.fetch.test"
    r = get(lab_world, d, Site(status=status))
    assert r.error_code == code and r.status_code == status and r.location is None
    assert r.error == f"{url(lab_world, d)} answers {status}"  # no Location: no " to"
    assert r.summary == f"{url(lab_world, d)} answers {status} (a redirect)"


def test_400_is_a_status_error(lab_world: World) -> None:
    r = get(lab_world, "r400.out.fetch.test", Site(status=400, body=b"bad"))
    assert r.error_code == "http-status" and r.location is None


def test_redirect_names_its_target_but_the_summary_does_not(lab_world: World) -> None:
    target = "https://elsewhere.example/policy"
    d = "r301.out.fetch.test"
    r = get(lab_world, d, Site(status=301, location=target))
    assert r.error == f"{url(lab_world, d)} answers 301 to {target}"
    assert r.summary == f"{url(lab_world, d)} answers 301 (a redirect)"


@pytest.mark.parametrize(
    ("label", "content_type", "said", "summarised"),
    [
        ("html", "text/html; charset=utf-8", "text/html; charset=utf-8", "text/html"),
        ("none", None, "no Content-Type", "no Content-Type"),
        ("odd", "text/<b>", "text/<b>", "an unrecognised media type"),
    ],
)
def test_wrong_media_type_is_named(
    lab_world: World, label: str, content_type: str | None, said: str, summarised: str
) -> None:
    d = f"ct-{label}.out.fetch.test"
    r = get(lab_world, d, Site(body=POLICY, content_type=content_type))
    assert r.error_code == "content-type" and r.body == POLICY
    assert r.error == f"{url(lab_world, d)} is served as {said}, not text/plain"
    assert r.summary == f"{url(lab_world, d)} is served as {summarised}, not text/plain"


def test_certificate_rejection_names_the_reason(lab_world: World) -> None:
    name = "expired.cert-msg.fetch.test"
    lab_world.add_domain(name, https="expired")
    r = fetch(lab_world, name)
    assert r.error_code == "tls-certificate-expired"
    assert r.error == f"certificate of mta-sts.{name} rejected: certificate has expired"


def test_nothing_listening_is_summarised_as_refused(lab_world: World) -> None:
    lab_world.add_domain("down.out.fetch.test", https="down")
    r = fetch(lab_world, "down.out.fetch.test")
    host = "mta-sts.down.out.fetch.test"
    assert r.error_code == "connect-failed"
    port = lab_world.https_port
    assert r.summary == f"cannot connect to {host}: {DOWN_IP}:{port}: connection refused"
    # the system's words for the error (not asyncio's, which repeat the address)
    assert r.error == f"cannot connect to {host}: {DOWN_IP}:{port}: Connection refused"


def test_tls_failures_name_the_openssl_reason(lab_world: World) -> None:
    # a port that speaks SMTP, not TLS
    lab_world.zone.add("mta-sts.smtp.out.fetch.test", "A", lab_world.smtp_ip("bad-banner"))
    r = fetch(lab_world, "smtp.out.fetch.test", port=lab_world.smtp_port)
    host = "mta-sts.smtp.out.fetch.test"
    assert r.error_code == "tls-handshake-failed"
    assert (r.error or "").startswith(
        f"TLS handshake with {host} failed: [SSL: WRONG_VERSION_NUMBER] wrong version number"
    )
    assert r.summary == f"TLS handshake failed (WRONG_VERSION_NUMBER) with {host}"


def test_a_reset_during_the_handshake(lab_world: World) -> None:
    # a server that takes the ClientHello and answers with a TCP reset (SO_LINGER 0)
    with socket.socket() as listener:
        listener.bind(("127.0.0.63", 0))
        listener.listen()

        def reset_one() -> None:
            conn, _ = listener.accept()
            conn.recv(1024)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

        thread = threading.Thread(target=reset_one, daemon=True)
        thread.start()
        lab_world.zone.add("mta-sts.reset.out.fetch.test", "A", "127.0.0.63")
        r = fetch(lab_world, "reset.out.fetch.test", port=listener.getsockname()[1])
        thread.join(60)
    host = "mta-sts.reset.out.fetch.test"
    assert r.error_code == "tls-handshake-failed"
    assert r.error == r.summary == f"{host} closed the connection during TLS"


def test_a_body_that_stops_coming_times_out(lab_world: World) -> None:
    # the server holds the rest for 30 s: only our own timeout (0.5 s) ends the fetch
    site = Site(body=POLICY, partial=10, stall=30)
    lab_world.add_domain("stall-body.out.fetch.test", https=site)
    r = fetch(lab_world, "stall-body.out.fetch.test", timeout=0.5)
    assert r.error_code == "timeout" and r.body is None
    assert r.error == "mta-sts.stall-body.out.fetch.test did not send the whole policy in time"


def test_a_body_cut_off_is_an_http_error(lab_world: World) -> None:
    lab_world.add_domain("cut-body.out.fetch.test", https=Site(body=POLICY, partial=10))
    r = fetch(lab_world, "cut-body.out.fetch.test")
    assert r.error_code == "http-error" and r.body is None
    assert (r.error or "").startswith("reading the policy failed: peer closed connection")
    assert "received 10 bytes" in (r.error or "")
    assert r.summary == "reading the policy failed (RemoteProtocolError)"  # no server words


def test_the_certificate_is_looked_at_on_the_address_that_refused_it(
    lab_world: World,
) -> None:
    # a server of its own on an address nothing else listens on: the unverified second
    # look must go to that address, not to "localhost"
    leaf = lab_world.ca.issue_expired(["mta-sts.own.out.fetch.test"])
    with HttpsServer(leaf, host="127.0.0.64") as server:
        server.policy("own.out.fetch.test", POLICY)
        lab_world.zone.add("mta-sts.own.out.fetch.test", "A", "127.0.0.64")
        r = fetch(lab_world, "own.out.fetch.test", port=server.port)
    assert r.error_code == "tls-certificate-expired" and r.verify_code == 10
    assert r.certificate is not None
    assert r.certificate.subject_alt_names == ("mta-sts.own.out.fetch.test",)


def test_the_request_asks_for_plain_text_unencoded(lab_world: World) -> None:
    lab_world.add_domain("headers.out.fetch.test")
    assert fetch(lab_world, "headers.out.fetch.test").ok
    key = "mta-sts.headers.out.fetch.test /.well-known/mta-sts.txt"
    assert lab_world.https.stats.methods[key] == "GET"  # RFC 8461 §3.3: an HTTPS GET
    sent = lab_world.https.stats.headers[key]
    assert sent["host"] == "mta-sts.headers.out.fetch.test"  # not the address connected to
    assert sent["accept"] == "text/plain"
    # no compression: the 64 KiB cap counts the bytes as sent, and no gzip bomb can come
    assert sent["accept-encoding"] == "identity"
    assert sent["user-agent"] == USER_AGENT


def test_a_head_past_its_limit_is_refused_unread(lab_world: World) -> None:
    # The status line and header fields together are bounded (mtasts.net.https.MAX_HEAD,
    # 16 KiB): a server that sends more is refused, not read on into memory.
    from mtasts.net.https import MAX_HEAD

    assert MAX_HEAD == 16 * 1024
    padding = "x" * (MAX_HEAD + 1)
    site = Site(body=POLICY, headers=(("X-Padding", padding),))
    lab_world.add_domain("fat-head.out.fetch.test", https=site)
    r = fetch(lab_world, "fat-head.out.fetch.test")
    assert r.error_code == "http-error" and r.body is None
    assert r.summary == "the HTTPS exchange failed (RemoteProtocolError)"
    # just under the limit is read as usual
    site = Site(body=POLICY, headers=(("X-Padding", "x" * (MAX_HEAD - 400)),))
    lab_world.add_domain("full-head.out.fetch.test", https=site)
    assert fetch(lab_world, "full-head.out.fetch.test").ok


def test_repeated_header_fields_are_read_as_one_list(lab_world: World) -> None:
    # RFC 9110 §5.3: a field sent twice is one comma-separated list; a Content-Type that
    # is two types at once is not text/plain
    site = Site(body=POLICY, headers=(("Content-Type", "text/html"),))
    lab_world.add_domain("two-types.out.fetch.test", https=site)
    r = fetch(lab_world, "two-types.out.fetch.test")
    assert r.error_code == "content-type"
    assert r.content_type == "text/plain, text/html"


def test_every_address_that_failed_is_named(lab_world: World) -> None:
    # two addresses, nothing listening on either: both are tried, both are named, in order
    other = "127.0.0.253"
    lab_world.zone.add("mta-sts.two-down.fetch.test", "A", DOWN_IP)
    lab_world.zone.add("mta-sts.two-down.fetch.test", "A", other)
    r = fetch(lab_world, "two-down.fetch.test")
    host = "mta-sts.two-down.fetch.test"
    port = lab_world.https_port
    assert r.error_code == "connect-failed" and set(r.addresses) == {DOWN_IP, other}
    first, second = r.addresses
    assert r.error == (
        f"cannot connect to {host}: {first}:{port}: Connection refused; "
        f"{second}:{port}: Connection refused"
    )
    assert r.summary == (
        f"cannot connect to {host}: {first}:{port}: connection refused; "
        f"{second}:{port}: connection refused"
    )


def test_looking_at_a_certificate_where_nothing_listens(lab_world: World) -> None:
    found = asyncio.run(peek_certificate(DOWN_IP, lab_world.https_port, "mta-sts.x.test"))
    assert found == (None, None)


def test_an_unrecognised_media_type_is_summarised_in_the_readers_language(
    lab_world: World,
) -> None:
    d = "ct-odd-es.out.fetch.test"
    r = get(lab_world, d, Site(body=POLICY, content_type="text/<b>"))
    with i18n.use("es"):
        said = i18n.say(r.summary or "")
    assert (
        said
        == f"{url(lab_world, d)} se sirve como un tipo de medio no reconocido, no como text/plain"
    )


def test_proxies_named_by_the_environment_are_not_used(
    lab_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the fetch connects to the very address checked (what a ProbePolicy allowed), never
    # through a proxy the environment names (here one where nothing listens); httpx reads
    # none when given a transport of its own, whatever trust_env says
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://{DOWN_IP}:9")
    lab_world.add_domain("proxy-env.out.fetch.test")
    r = fetch(lab_world, "proxy-env.out.fetch.test")
    assert r.ok, r.error


def test_an_address_that_timed_out_beside_one_that_refused(lab_world: World) -> None:
    # one address never answers the ClientHello (its share of the time runs out), the
    # other refuses: a connection failure that names both, each in its own words
    silent = lab_world.smtp_ip("silent")
    lab_world.zone.add("mta-sts.slow-down.fetch.test", "A", silent)
    lab_world.zone.add("mta-sts.slow-down.fetch.test", "A", DOWN_IP)
    r = fetch(lab_world, "slow-down.fetch.test", port=lab_world.smtp_port, timeout=2.0)
    host, port = "mta-sts.slow-down.fetch.test", lab_world.smtp_port
    assert r.error_code == "connect-failed", r.error
    assert set(r.addresses) == {silent, DOWN_IP}  # tried in the order DNS gave them
    summaries = {silent: "timed out", DOWN_IP: "connection refused"}
    assert r.summary == f"cannot connect to {host}: " + "; ".join(
        f"{ip}:{port}: {summaries[ip]}" for ip in r.addresses
    )
    # in full: the step that ran out of time, and the system's words for the refusal
    errors = {silent: r"timed out \(TLS handshake\)", DOWN_IP: "Connection refused"}
    pattern = f"cannot connect to {re.escape(host)}: " + "; ".join(
        f"{re.escape(ip)}:{port}: {errors[ip]}" for ip in r.addresses
    )
    assert re.fullmatch(pattern, r.error or ""), r.error


def test_the_whole_fetch_is_bounded_even_when_dns_is_not(lab_world: World) -> None:
    # a resolver that would wait 30 s for a name its server never answers: the fetch's own
    # bound (its timeout and a short grace) ends the fetch first, as a timeout
    name = "mta-sts.dropped.out.fetch.test"
    lab_world.dns.drop(name)
    try:
        resolver = Resolver([lab_world.nameserver], timeout=30)
        r = asyncio.run(
            fetch_policy(
                "dropped.out.fetch.test",
                resolver=resolver,
                ca_file=lab_world.ca_file,
                port=lab_world.https_port,
                timeout=0.5,
            )
        )
    finally:
        lab_world.dns.heal(name)
    assert r.error_code == "timeout"
    assert r.error == r.summary == f"no complete answer from {name} within 0.5 s"


def test_the_domain_is_read_without_case_spaces_or_final_dot(lab_world: World) -> None:
    lab_world.add_domain("caps.out.fetch.testx")
    r = fetch(lab_world, " Caps.Out.Fetch.TestX. ")
    assert r.ok, r.error
    assert r.host == "mta-sts.caps.out.fetch.testx"


def test_the_time_taken_is_counted_from_the_start_of_the_fetch(lab_world: World) -> None:
    # an ordering, not a window: what the fetch reports lies within what the caller saw
    lab_world.add_domain("elapsed.out.fetch.test")
    before = time.monotonic()
    r = fetch(lab_world, "elapsed.out.fetch.test")
    took = time.monotonic() - before
    assert r.ok and 0 <= r.elapsed <= took


def test_every_address_refused_by_the_probe_policy_is_named(lab_world: World) -> None:
    # a fetch a tenant triggers connects only to public addresses (and allowed networks)
    name = "mta-sts.loopback-only.out.fetch.test"
    lab_world.zone.add(name, "A", "127.0.0.2")
    lab_world.zone.add(name, "A", "127.0.0.3")
    r = fetch(lab_world, "loopback-only.out.fetch.test", probe_policy=ProbePolicy())
    assert r.error_code == "address-not-allowed" and r.address is None
    reasons = ", ".join(f"{ip} (a loopback address)" for ip in r.addresses)
    assert set(r.addresses) == {"127.0.0.2", "127.0.0.3"}
    assert (
        r.error
        == r.summary
        == (f"{name} resolves only to addresses mtasts does not connect to: {reasons}")
    )


# --- the A and AAAA look-ups ending differently ---------------------------------------------


@pytest.mark.parametrize("failing", ["A", "AAAA"])
def test_the_cname_chain_is_kept_when_one_lookup_fails(lab_world: World, failing: str) -> None:
    # the hosted layout (mta-sts.D CNAME policy-host.Z) behind a server that fails the
    # queries of one record type only: the chain the other look-up followed is reported
    d = f"one-type-{failing.lower()}.out.fetch.test"
    host, target = f"mta-sts.{d}", f"policy-host-{failing.lower()}.sts.out.fetch.test"
    lab_world.zone.add(host, "CNAME", f"{target}.")
    lab_world.zone.add(target, "A", HTTPS_IP)  # and no AAAA record
    lab_world.https.policy(d, POLICY)
    lab_world.dns.servfail(host, failing)
    try:
        r = fetch(lab_world, d)
    finally:
        lab_world.dns.heal(host)
    assert r.cname_chain == (target,)
    if failing == "AAAA":  # the A look-up found the address: the policy is fetched
        assert r.ok and r.addresses == (HTTPS_IP,) and r.body == POLICY, r.error
    else:  # no address: A failed, AAAA found none (NODATA at the end of the chain)
        assert r.error_code == "dns-failure" and r.addresses == ()
        # the failure in full is the failed look-up's, not the other one's "no AAAA record"
        where = lab_world.nameserver
        assert r.error == f"the address lookup of {host} failed: {where}: SERVFAIL"
        assert r.summary == f"the address lookup of {host} failed (SERVFAIL)"


def test_a_failed_aaaa_lookup_is_not_explained_by_the_missing_a_record(
    lab_world: World,
) -> None:
    # A answers NODATA (the name has only a TXT record), AAAA fails: the outcome is the
    # failure, and so is its detail (not the A look-up's "no A record")
    d = "aaaa-fails.out.fetch.test"
    host = f"mta-sts.{d}"
    lab_world.zone.add(host, "TXT", "no addresses here")
    lab_world.dns.servfail(host, "AAAA")
    try:
        r = fetch(lab_world, d)
    finally:
        lab_world.dns.heal(host)
    assert r.error_code == "dns-failure" and r.addresses == ()
    assert r.error == f"the address lookup of {host} failed: {lab_world.nameserver}: SERVFAIL"
    assert r.summary == f"the address lookup of {host} failed (SERVFAIL)"


# --- how the time is shared between the addresses of the policy host ------------------------


@contextlib.contextmanager
def _silent(ip: str, port: int) -> Iterator[None]:
    """A listener on ``ip``:``port`` that never accepts: the kernel completes the TCP
    handshake and the ClientHello is never answered."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((ip, port))
        listener.listen(16)
        yield


def test_an_address_that_never_answers_leaves_the_next_one_its_share(lab_world: World) -> None:
    # The first address takes the connection and never answers the ClientHello. It gets
    # its share of the time (half of it, with two addresses), and the second address then
    # serves the policy. Letting the first one run out the whole timeout would fail here
    # whatever the speed of the machine: the second would be left no time at all.
    silent = loopback(66)
    d = "share.out.fetch.test"
    host = f"mta-sts.{d}"
    lab_world.zone.add(host, "A", silent)
    lab_world.zone.add(host, "A", HTTPS_IP)
    lab_world.dns.ordered(host)  # the silent address first
    lab_world.https.policy(d, POLICY)
    try:
        with _silent(silent, lab_world.https_port):
            r = fetch(lab_world, d, timeout=6.0)
    finally:
        lab_world.dns.heal(host)
    assert r.ok and r.body == POLICY, r.error
    assert r.addresses == (silent, HTTPS_IP) and r.address == HTTPS_IP


def test_the_last_address_is_given_all_the_time_left(lab_world: World) -> None:
    # Two addresses that never answer the ClientHello: the first gets half the time, the
    # last all that is left, so the fetch gives up at its timeout and not before (a policy
    # host answering late, but in time, is not abandoned). An ordering, not a window: the
    # time reported is at least the timeout.
    first, second = loopback(66), loopback(67)
    d = "share-all.out.fetch.test"
    host = f"mta-sts.{d}"
    lab_world.zone.add(host, "A", first)
    lab_world.zone.add(host, "A", second)
    lab_world.dns.ordered(host)
    port = lab_world.https_port
    try:
        with _silent(first, port), _silent(second, port):
            r = fetch(lab_world, d, timeout=3.0)
    finally:
        lab_world.dns.heal(host)
    assert r.error_code == "timeout" and r.addresses == (first, second)
    assert r.error == (
        f"connecting to {host} timed out: {first}:{port}: timed out (TLS handshake); "
        f"{second}:{port}: timed out (TLS handshake)"
    )
    assert r.elapsed >= 3.0 - 1e-6  # asyncio's timeouts never fire early


# --- a certificate verified but not readable, a TLS close never answered --------------------


def test_a_certificate_openssl_accepts_but_cannot_describe(lab_world: World) -> None:
    # The policy host's certificate spells out "critical: FALSE" (a DEFAULT value, which
    # DER forbids): OpenSSL verifies it, the certificate parser refuses it. The policy is
    # fetched all the same; only the description of the certificate is missing.
    d = "lax-der.out.fetch.test"
    host = f"mta-sts.{d}"
    lab_world.add_domain(d, https=Site(body=POLICY))
    lab_world.https.certificate(lab_world.ca.issue_lax_der([host]), (host,))
    r = fetch(lab_world, d)
    assert r.ok and r.body == POLICY, r.error
    assert r.certificate is None and r.tls_version in ("TLSv1.2", "TLSv1.3")


@contextlib.contextmanager
def _never_closing(leaf: Leaf, ip: str, port: int) -> Iterator[None]:
    """A TLS server on ``ip``:``port`` presenting ``leaf`` that, once a handshake is done,
    neither reads nor closes until the ``with`` ends: a peer that never answers the
    client's close_notify (asyncio would wait 30 s for it)."""
    ctx = server_context(leaf)
    done = threading.Event()
    held: list[ssl.SSLSocket] = []
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((ip, port))
        listener.listen(16)

        def serve() -> None:
            while True:
                conn, _ = listener.accept()
                if done.is_set():  # the wake-up call below
                    conn.close()
                    return
                try:
                    held.append(ctx.wrap_socket(conn, server_side=True))
                except (OSError, ssl.SSLError):  # a client that refused the certificate
                    conn.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            socket.create_connection((ip, port)).close()
            thread.join(60)
            for tls in held:
                tls.close()


def test_a_peer_that_never_closes_does_not_hold_the_certificate_look(lab_world: World) -> None:
    # The verified handshake refuses the expired certificate; the second, unverified one
    # reads it to describe it, and then the server never answers our TLS close. The
    # fetch stops waiting for it (after 1 s) and reports the certificate, long before its
    # own timeout (10 s), which would otherwise end it as a timeout.
    d = "never-closes.out.fetch.test"
    host, ip = f"mta-sts.{d}", loopback(68)
    lab_world.zone.add(host, "A", ip)
    port = free_port([ip])
    with _never_closing(lab_world.ca.issue_expired([host]), ip, port):
        r = fetch(lab_world, d, port=port, timeout=10.0)
    assert r.error_code == "tls-certificate-expired", r.error
    assert r.certificate is not None and r.certificate.subject_alt_names == (host,)
