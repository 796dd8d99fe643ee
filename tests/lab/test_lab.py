"""Smoke tests of the lab itself, with third-party clients (dnspython queries, ssl sockets,
raw SMTP), so that the net tests can trust what the lab serves."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.lab import (
    TLS11_AVAILABLE,
    CertStore,
    DnsServer,
    HttpsServer,
    Leaf,
    Site,
    SmtpServer,
    TestCA,
    World,
    Zone,
    free_port,
    require_loopback,
    server_context,
)
from tests.lab.ports import LAB_PORTS, _can_bind, reserved_block
from tests.lab.require import require

pytestmark = pytest.mark.lab


# --- CA ---------------------------------------------------------------------------------


def test_ca_leaf_chain_verifies_with_ssl(test_ca: TestCA) -> None:
    leaf = test_ca.issue(["ca-check.lab.test", "*.ca-check.lab.test"], key="rsa")
    assert Path(test_ca.ca_file).read_bytes() == test_ca.root_pem
    assert leaf.chain_pem.startswith(leaf.cert_pem)
    assert leaf.chain_pem.count(b"BEGIN CERTIFICATE") == 2  # leaf + intermediate
    assert Path(leaf.chain_file).read_bytes() == leaf.chain_pem
    assert b"PRIVATE KEY" in Path(leaf.key_file).read_bytes()
    assert leaf.not_before < datetime.now(UTC) < leaf.not_after
    assert _handshake_version(leaf_ctx(leaf), test_ca.ca_file, "x.ca-check.lab.test") is not None


def test_ca_untrusted_and_expired_leaves_fail_verification(
    test_ca: TestCA, untrusted_ca: TestCA
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError) as exc:
        _handshake_version(
            leaf_ctx(untrusted_ca.issue(["u.lab.test"])), test_ca.ca_file, "u.lab.test"
        )
    assert exc.value.verify_code == 20  # unable to get local issuer certificate
    with pytest.raises(ssl.SSLCertVerificationError) as exc:
        _handshake_version(
            leaf_ctx(test_ca.issue_expired(["e.lab.test"])), test_ca.ca_file, "e.lab.test"
        )
    assert exc.value.verify_code == 10  # expired
    with pytest.raises(ssl.SSLCertVerificationError) as exc:
        _handshake_version(leaf_ctx(test_ca.issue(["w.lab.test"])), test_ca.ca_file, "x.lab.test")
    assert exc.value.verify_code == 62  # host name mismatch


def test_ca_lax_der_leaf_verifies_but_cryptography_refuses_it(test_ca: TestCA) -> None:
    leaf = test_ca.issue_lax_der(["lax.lab.test"])
    assert _handshake_version(leaf_ctx(leaf), test_ca.ca_file, "lax.lab.test") is not None
    assert Path(leaf.chain_file).read_bytes() == leaf.chain_pem
    assert leaf.chain_pem.startswith(leaf.cert_pem)
    assert leaf.cert_pem != leaf.certificate.public_bytes(serialization.Encoding.PEM)
    with pytest.raises(ValueError, match="EncodedDefault"):
        x509.load_pem_x509_certificate(leaf.cert_pem)
    # the strict twin: the same names, every extension non-critical but two
    critical = [e.critical for e in leaf.certificate.extensions]
    assert critical.count(True) == 2 and leaf.names == ("lax.lab.test",)


def leaf_ctx(leaf: Leaf) -> ssl.SSLContext:
    return server_context(leaf)


def _handshake_version(server: ssl.SSLContext, ca_file: str, name: str) -> str | None:
    """In-memory handshake; raises the client's SSLError."""
    client = ssl.create_default_context(cafile=ca_file)
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=name)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = [False, False]
    for _ in range(10):
        for i, obj in enumerate((c, s)):
            if not done[i]:
                try:
                    obj.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError:
                    if i == 0:
                        raise
                    done[i] = True
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done):
            break
    return c.version()


# --- ports ------------------------------------------------------------------------------


def test_free_port_is_free_on_every_address() -> None:
    hosts = ["127.0.0.31", "127.0.0.32", "127.0.0.33"]
    port = free_port(hosts, udp=True)
    for h in hosts:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind((h, port))


# Another run of the suite, in a process of its own: it takes a port (or a block) as the
# lab does, prints it and holds it until its stdin closes.
_OTHER_RUN = """
import sys
from tests.lab import ports
if sys.argv[1] == "block":
    with ports.reserved_block(int(sys.argv[2])) as prefix:
        print(prefix, flush=True)
        sys.stdin.read()
else:
    print(ports.free_port(), flush=True)
    sys.stdin.read()
"""


def _other_run(*args: str) -> subprocess.Popen[str]:
    root = Path(__file__).parents[2]
    return subprocess.Popen(
        [sys.executable, "-c", _OTHER_RUN, *args],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_free_port_never_gives_a_port_another_run_holds() -> None:
    other = _other_run("port")
    try:
        assert other.stdout is not None
        theirs = int(other.stdout.readline())
        assert theirs in LAB_PORTS  # below the ephemeral range
        # free to bind (nothing listens yet), but reserved: not for us
        assert _can_bind("127.0.0.1", theirs, socket.SOCK_STREAM)
        with pytest.raises(OSError, match="no port of"):
            free_port(ports=range(theirs, theirs + 1))
    finally:
        other.communicate("")
    mine = free_port(["127.0.0.31", "127.0.0.32"], udp=True)
    with pytest.raises(OSError, match="no port of"):  # nor twice in this run
        free_port(ports=range(mine, mine + 1))


def test_reserved_block_is_not_shared_with_another_run() -> None:
    port = free_port([f"127.53.{n}.{i}" for n in range(1, 4) for i in range(1, 11)], udp=True)
    other = _other_run("block", str(port))
    try:
        assert other.stdout is not None
        theirs = other.stdout.readline().strip()
        assert theirs.startswith("127.53.")
        with reserved_block(port) as mine, reserved_block(port) as again:
            assert len({theirs, mine, again}) == 3
            assert not mine.startswith("127.53.0.")  # left to older clones
    finally:
        other.communicate("")


def test_lab_refuses_non_loopback_addresses() -> None:
    with pytest.raises(ValueError, match="loopback"):
        require_loopback("192.0.2.1")
    with pytest.raises(ValueError, match="loopback"):
        DnsServer(host="10.0.0.1")
    assert require_loopback("::1") == "::1"


# --- DNS --------------------------------------------------------------------------------


def _q(server: DnsServer, name: str, rdtype: str, *, tcp: bool = False) -> dns.message.Message:
    async def ask() -> dns.message.Message:
        query = dns.message.make_query(name, rdtype)
        if tcp:
            return await dns.asyncquery.tcp(query, server.host, timeout=2, port=server.port)
        return await dns.asyncquery.udp(
            query, server.host, timeout=2, port=server.port, ignore_unexpected=True
        )

    return asyncio.run(ask())


def test_dns_answers_nxdomain_nodata_and_cname_chains(lab_dns: DnsServer) -> None:
    z = lab_dns.zone
    z.add("lab-dns.test", "A", "127.0.0.9")
    z.add("a.b.lab-dns.test", "TXT", "deep")
    z.add("alias.lab-dns.test", "CNAME", "mid.lab-dns.test.")
    z.add("mid.lab-dns.test", "CNAME", "lab-dns.test.")
    z.add("dangling.lab-dns.test", "CNAME", "gone.lab-dns.test.")

    r = _q(lab_dns, "lab-dns.test", "A")
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert [rr.to_text() for rr in r.answer[0]] == ["127.0.0.9"]
    r = _q(lab_dns, "lab-dns.test", "MX")  # exists, other type: NODATA
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    r = _q(lab_dns, "b.lab-dns.test", "TXT")  # empty non-terminal: NODATA (RFC 8020)
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    r = _q(lab_dns, "nope.lab-dns.test", "TXT")
    assert r.rcode() == dns.rcode.NXDOMAIN
    r = _q(lab_dns, "ALIAS.lab-dns.test", "A")  # case-insensitive, chain + target records
    assert r.rcode() == dns.rcode.NOERROR
    assert [rrset.rdtype for rrset in r.answer] == [
        dns.rdatatype.CNAME,
        dns.rdatatype.CNAME,
        dns.rdatatype.A,
    ]
    r = _q(lab_dns, "dangling.lab-dns.test", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN and r.answer[0].rdtype == dns.rdatatype.CNAME
    z.remove("lab-dns.test")
    assert _q(lab_dns, "lab-dns.test", "A").rcode() == dns.rcode.NOERROR  # ENT still
    z.remove("a.b.lab-dns.test")
    assert _q(lab_dns, "b.lab-dns.test", "A").rcode() == dns.rcode.NXDOMAIN


def test_dns_faults_and_truncation(lab_dns: DnsServer) -> None:
    z = lab_dns.zone
    z.add("sf.lab-fault.test", "TXT", "x")
    z.add("ref.lab-fault.test", "TXT", "x")
    z.add("drop.lab-fault.test", "TXT", "x")
    for i in range(40):
        z.add("big.lab-fault.test", "TXT", f"v=spf1 include:_spf{i}.example.com ~all " + "x" * 40)
    lab_dns.servfail("sf.lab-fault.test")
    lab_dns.refuse("ref.lab-fault.test")
    lab_dns.drop("drop.lab-fault.test")
    try:
        assert _q(lab_dns, "sf.lab-fault.test", "TXT").rcode() == dns.rcode.SERVFAIL
        assert _q(lab_dns, "ref.lab-fault.test", "TXT").rcode() == dns.rcode.REFUSED
        with pytest.raises(dns.exception.Timeout):
            asyncio.run(
                dns.asyncquery.udp(
                    dns.message.make_query("drop.lab-fault.test", "TXT"),
                    lab_dns.host,
                    timeout=0.3,
                    port=lab_dns.port,
                    ignore_unexpected=True,
                )
            )
        udp = _q(lab_dns, "big.lab-fault.test", "TXT")
        assert udp.flags & dns.flags.TC and not udp.answer
        tcp = _q(lab_dns, "big.lab-fault.test", "TXT", tcp=True)
        assert len(tcp.answer[0]) == 40
    finally:
        lab_dns.heal()
    assert _q(lab_dns, "sf.lab-fault.test", "TXT").rcode() == dns.rcode.NOERROR


def test_dns_faults_of_one_record_type(lab_dns: DnsServer) -> None:
    z = lab_dns.zone
    z.add("typed.lab-fault.test", "CNAME", "target.lab-fault.test.")
    z.add("target.lab-fault.test", "A", "127.0.0.9")
    z.add("target.lab-fault.test", "AAAA", "::9")
    lab_dns.servfail("typed.lab-fault.test", "AAAA")
    lab_dns.refuse("target.lab-fault.test", "TXT")  # on the chain's target
    try:
        assert _q(lab_dns, "typed.lab-fault.test", "AAAA").rcode() == dns.rcode.SERVFAIL
        a = _q(lab_dns, "typed.lab-fault.test", "A")
        assert a.rcode() == dns.rcode.NOERROR
        assert [rrset.rdtype for rrset in a.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
        assert _q(lab_dns, "typed.lab-fault.test", "TXT").rcode() == dns.rcode.REFUSED
        assert _q(lab_dns, "target.lab-fault.test", "AAAA").rcode() == dns.rcode.NOERROR
        lab_dns.heal("typed.lab-fault.test")  # every type of the name
        assert _q(lab_dns, "typed.lab-fault.test", "AAAA").rcode() == dns.rcode.NOERROR
        assert _q(lab_dns, "typed.lab-fault.test", "TXT").rcode() == dns.rcode.REFUSED
    finally:
        lab_dns.heal("target.lab-fault.test")
    assert _q(lab_dns, "typed.lab-fault.test", "TXT").rcode() == dns.rcode.NOERROR


def test_dns_gives_records_in_the_order_added_when_asked(lab_dns: DnsServer) -> None:
    addresses = [f"127.0.0.{n}" for n in (40, 3, 77, 12, 9, 200, 31, 5)]
    for ip in addresses:
        lab_dns.zone.add("ordered.lab-order.test", "A", ip)
    lab_dns.zone.add("alias.lab-order.test", "CNAME", "ordered.lab-order.test.")
    lab_dns.ordered("ordered.lab-order.test")
    try:
        for name in ("ordered.lab-order.test", "alias.lab-order.test") * 5:
            answer = _q(lab_dns, name, "A").answer[-1]
            assert [rr.to_text() for rr in answer] == addresses
        lab_dns.heal("ordered.lab-order.test")
        # shuffled again: 20 answers in the order added would happen once in 40320**20
        orders = {
            tuple(rr.to_text() for rr in _q(lab_dns, "ordered.lab-order.test", "A").answer[0])
            for _ in range(20)
        }
        assert orders != {tuple(addresses)}
    finally:
        lab_dns.heal("ordered.lab-order.test")


def test_dns_serves_hundreds_of_concurrent_queries_with_delay() -> None:
    zone = Zone()
    for i in range(300):
        zone.add(f"h{i}.lab-many.test", "A", f"127.0.1.{i % 250 + 1}")

    async def main() -> None:
        async with DnsServer(zone, host="127.0.0.1", delay=1.0) as server:
            answers = await asyncio.gather(
                *(
                    dns.asyncquery.udp(
                        dns.message.make_query(f"h{i}.lab-many.test", "A"),
                        server.host,
                        timeout=60,  # generous: a loaded machine
                        port=server.port,
                        ignore_unexpected=True,
                    )
                    for i in range(300)
                )
            )
        assert all(a.rcode() == dns.rcode.NOERROR and a.answer for a in answers)
        assert server.stats.udp_queries == 300
        # sleeping does not block the server: it held several answers at once (counted by
        # the server, not timed; a blocking server never holds more than one)
        assert server.stats.most_delaying > 1

    asyncio.run(main())


# --- HTTPS ------------------------------------------------------------------------------


def _https_get(ip: str, port: int, host: str, ca_file: str, path: str = "/x") -> tuple[str, bytes]:
    """(SAN of the presented certificate, raw response) with stdlib ssl."""
    ctx = ssl.create_default_context(cafile=ca_file)
    with (
        socket.create_connection((ip, port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as s,
    ):
        cert = s.getpeercert()
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert cert is not None
    sans: tuple[tuple[str, str], ...] = cert.get("subjectAltName", ())  # type: ignore[assignment]
    names = [v for k, v in sans if k == "DNS"]
    return ",".join(names), data


def test_https_picks_certificate_by_sni_and_serves_sites(test_ca: TestCA) -> None:
    store = CertStore(test_ca.issue(["default.lab-https.test"]), ca=test_ca)
    store.add(test_ca.issue(["*.wild.lab-https.test"]))
    with HttpsServer(store, host="127.0.0.41") as server:
        server.site("a.lab-https.test", Site(body=b"hello", content_type="text/plain"), "/x")
        server.site("r.wild.lab-https.test", Site(status=302, location="https://e/"), "/x")
        san, data = _https_get("127.0.0.41", server.port, "a.lab-https.test", test_ca.ca_file)
        assert san == "a.lab-https.test"  # issued on demand
        assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\nhello")
        san, data = _https_get("127.0.0.41", server.port, "r.wild.lab-https.test", test_ca.ca_file)
        assert san == "*.wild.lab-https.test"
        assert b"302 Found" in data and b"Location: https://e/" in data
        _, data = _https_get("127.0.0.41", server.port, "a.lab-https.test", test_ca.ca_file, "/y")
        assert b" 404 " in data.split(b"\r\n")[0]
        assert server.stats.requests["a.lab-https.test /x"] == 1


# --- SMTP -------------------------------------------------------------------------------


async def _smtp_reply(reader: asyncio.StreamReader) -> bytes:
    reply = b""
    while True:
        raw = await reader.readline()
        reply += raw
        if len(raw) < 4 or raw[3:4] != b"-":
            return reply


async def _smtp_chat(ip: str, port: int, lines: list[bytes]) -> list[bytes]:
    """The banner and the reply to each line, each reply complete (multi-line)."""
    reader, writer = await asyncio.open_connection(ip, port)
    out = [await _smtp_reply(reader)]
    for line in lines:
        writer.write(line + b"\r\n")
        await writer.drain()
        out.append(await _smtp_reply(reader))
    writer.close()
    await writer.wait_closed()
    return out


def test_smtp_behaviours(lab_world: World) -> None:
    port = lab_world.smtp_port
    good = asyncio.run(_smtp_chat(lab_world.smtp_ip("good"), port, [b"EHLO me", b"QUIT"]))
    assert good[0].startswith(b"220 ") and b"250-STARTTLS" in good[1]
    assert good[2].startswith(b"221")
    none = asyncio.run(
        _smtp_chat(lab_world.smtp_ip("no-starttls"), port, [b"EHLO me", b"STARTTLS"])
    )
    assert b"STARTTLS" not in none[1] and none[2].startswith(b"502")
    refused = asyncio.run(
        _smtp_chat(lab_world.smtp_ip("starttls-454"), port, [b"EHLO me", b"STARTTLS"])
    )
    assert refused[2].startswith(b"454 ")
    banner = asyncio.run(_smtp_chat(lab_world.smtp_ip("bad-banner"), port, []))
    assert banner[0].startswith(b"554 ")
    ehlo = asyncio.run(_smtp_chat(lab_world.smtp_ip("ehlo-fail"), port, [b"EHLO me"]))
    assert ehlo[1].startswith(b"502 ")


def test_smtp_accepts_mail(test_ca: TestCA) -> None:
    leaf = test_ca.issue(["mx.lab-mail.test"])
    with SmtpServer(leaf, host="127.0.0.42", banner="mx.lab-mail.test ESMTP\nwelcome") as server:
        replies = asyncio.run(
            _smtp_chat(
                "127.0.0.42",
                server.port,
                [b"EHLO me", b"MAIL FROM:<a@x>", b"RCPT TO:<b@y>", b"DATA", b"hi\r\n..dot\r\n."],
            )
        )
        assert replies[0] == b"220-mx.lab-mail.test ESMTP\r\n220 welcome\r\n"  # multi-line
        assert replies[-1].startswith(b"250 ")
    assert server.messages[0].data == b"hi\r\n.dot\r\n" and server.messages[0].rcpt_to == ("<b@y>",)


def test_tls11_flag_matches_openssl(lab_world: World) -> None:
    """TLS11_AVAILABLE is what the old-TLS SMTP server can actually do."""
    require(TLS11_AVAILABLE, "the local OpenSSL cannot negotiate TLS 1.1 (@SECLEVEL=0)")
    from mtasts.net.certs import legacy_context

    async def main() -> str | None:
        reader, writer = await asyncio.open_connection(
            lab_world.smtp_ip("tls11"), lab_world.smtp_port
        )
        await reader.readline()
        writer.write(b"STARTTLS\r\n")
        await reader.readline()
        ctx = legacy_context()
        assert ctx is not None
        await writer.start_tls(ctx, server_hostname="mx.old.test")
        version = writer.get_extra_info("ssl_object").version()
        writer.close()
        await writer.wait_closed()
        return str(version)

    assert asyncio.run(main()) == "TLSv1.1"


# --- World ------------------------------------------------------------------------------


def test_world_publishes_domains(lab_world: World) -> None:
    names = lab_world.add_domains(3, suffix="lab-world.test")
    assert names == sorted(names) and len(set(names)) == 3
    d = lab_world.domains[names[0]]
    assert d.policy is not None and f"mx: {d.mx_hosts[0]}" in d.policy
    r = _q(lab_world.dns, f"_mta-sts.{names[0]}", "TXT")
    assert b"v=STSv1" in r.answer[0][0].strings[0]
    args = lab_world.cli_args()
    assert args[args.index("--smtp-port") + 1] == str(lab_world.smtp_port)


def test_world_runs_in_the_callers_loop(tmp_path: Path, test_ca: TestCA) -> None:
    async def main() -> None:
        world = World(tmp_path, ca=test_ca, smtp_profiles=["good"], ipv6=False)
        async with world:
            world.add_domain("inloop.test")
            reply = await _smtp_chat(world.smtp_ip("good"), world.smtp_port, [b"QUIT"])
            assert reply[0].startswith(b"220 ")

    asyncio.run(main())


def test_servers_stop_cleanly_and_twice(test_ca: TestCA) -> None:
    server = SmtpServer(test_ca.issue(["mx.stop.test"]), host="127.0.0.43").start()
    port = server.port
    server.stop()
    server.stop()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.43", port)) != 0


def test_world_runs_as_a_process() -> None:
    """``python -m tests.lab`` serves a world for benchmarks and CLI tests."""
    from mtasts.net.dns import Resolver

    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.lab", "--domains", "2", "--profile", "good"],
        cwd=root,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        info = json.loads(proc.stdout.readline())
        assert info["domains"] == ["d0001.lab.test", "d0002.lab.test"]
        assert "--nameserver" in info["cli_args"]
        answer = asyncio.run(Resolver([info["nameserver"]], timeout=2).mx("d0002.lab.test"))
        assert [m.exchange for m in answer.records] == ["mx1.d0002.lab.test"]
        proc.stdin.close()
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
