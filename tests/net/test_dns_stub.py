"""The stub resolver's own rules (mtasts.net.dns): answers that are not ours are ignored,
malformed ones end the lookup at that server, resolv.conf is read as resolv.conf(5) says."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.rrset
import pytest

from mtasts.net.dns import DnsStatus, Resolver, system_nameservers


class _Replier:
    """A UDP server on loopback that answers each query with the datagrams ``script``
    makes of it, in order."""

    def __init__(self, script: Callable[[dns.message.Message], list[bytes]]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(30)
        self.script = script
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            data, peer = self.sock.recvfrom(4096)
        except OSError:
            return
        for datagram in self.script(dns.message.from_wire(data)):
            self.sock.sendto(datagram, peer)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(30)


def _answer(query: dns.message.Message, text: str) -> dns.message.Message:
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text(query.question[0].name, 300, "IN", "TXT", text))
    return response


def test_only_our_answer_counts() -> None:
    def script(query: dns.message.Message) -> list[bytes]:
        wrong_id = _answer(query, '"spoofed id"')
        wrong_id.id = (query.id + 1) % 65536
        other = dns.message.make_query("other.example.", "TXT")
        other.id = query.id
        wrong_question = _answer(other, '"spoofed question"')
        not_a_response = dns.message.make_query(query.question[0].name, "TXT")
        not_a_response.id = query.id  # QR clear: a query, not an answer
        return [
            wrong_id.to_wire(),
            wrong_question.to_wire(),
            not_a_response.to_wire(),
            b"\x00",  # too short to be anything
            _answer(query, '"v=STSv1; id=ours"').to_wire(),
        ]

    server = _Replier(script)
    try:
        answer = asyncio.run(Resolver([server.address], timeout=20).txt("_mta-sts.example."))
    finally:
        server.close()
    assert answer.status is DnsStatus.OK
    assert answer.records == ("v=STSv1; id=ours",)


def test_a_malformed_answer_with_our_id_is_an_error_not_a_crash() -> None:
    def script(query: dns.message.Message) -> list[bytes]:
        good = _answer(query, '"v=STSv1; id=1"').to_wire()
        return [good[:-5]]  # cut inside the answer record

    server = _Replier(script)
    try:
        answer = asyncio.run(Resolver([server.address], timeout=20).txt("_mta-sts.example."))
    finally:
        server.close()
    assert answer.status is DnsStatus.ERROR and answer.status.temporary
    assert "malformed answer" in (answer.error or ""), answer.error


def test_resolv_conf_nameservers(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# comment\n"
        "search example.com\n"
        "nameserver 192.0.2.53 # trailing comment\n"
        "; nameserver 192.0.2.99\n"
        "nameserver fe80::1%eth0\n"
        "nameserver not-an-address\n"
        "nameserver 2001:db8::53\n"
        "options timeout:1\n"
    )
    assert system_nameservers(conf) == (
        ("192.0.2.53", 53),
        ("fe80::1%eth0", 53),
        ("2001:db8::53", 53),
    )
    conf.write_text("search example.com\n")
    with pytest.raises(ValueError, match="names no nameserver"):
        system_nameservers(conf)
    with pytest.raises(OSError):
        system_nameservers(tmp_path / "missing.conf")
