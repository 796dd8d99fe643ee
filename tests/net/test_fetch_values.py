"""The value side of the policy fetch, without the network: OpenSSL verification codes
mapped to our error codes, the redacted result shown to tenants, and what the fetch's one
GET (mtasts.net.https) reads of an answer and where it stops (head size, interim answers,
deadline, cut bodies), from bytes fed to a standard asyncio.StreamReader as a connection
would (the lab tests, test_fetch*.py, do the same through real TLS)."""

from __future__ import annotations

import asyncio
import errno
import ssl
import time
from dataclasses import replace

import h11
import pytest

from mtasts import i18n
from mtasts.net import https
from mtasts.net.fetch import (
    FetchResult,
    _connect_failure,
    _ConnectFailed,
    _joined,
    _State,
    _tls_error,
    verify_error_code,
)
from mtasts.net.https import (
    MAX_HEAD,
    MAX_INTERIM,
    ReadTimeout,
    RemoteProtocolError,
    _Exchange,
    _text,
)
from mtasts.protocol.errors import Text


@pytest.mark.parametrize(
    ("verify_code", "suffix"),
    [
        (10, "expired"),  # X509_V_ERR_CERT_HAS_EXPIRED
        (9, "invalid"),  # CERT_NOT_YET_VALID counts as invalid for the policy host
        (2, "untrusted"),  # UNABLE_TO_GET_ISSUER_CERT
        (18, "untrusted"),  # DEPTH_ZERO_SELF_SIGNED_CERT
        (19, "untrusted"),  # SELF_SIGNED_CERT_IN_CHAIN
        (20, "untrusted"),  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        (21, "untrusted"),  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
        (62, "host-mismatch"),  # HOSTNAME_MISMATCH
        (0, "invalid"),
        (26, "invalid"),  # INVALID_PURPOSE
    ],
)
def test_verify_error_codes(verify_code: int, suffix: str) -> None:
    assert verify_error_code(verify_code) == f"tls-certificate-{suffix}"
    assert verify_error_code(verify_code, prefix="mx-certificate-") == f"mx-certificate-{suffix}"


FAILED = FetchResult(
    url="https://mta-sts.example.test/.well-known/mta-sts.txt",
    host="mta-sts.example.test",
    addresses=("192.0.2.1",),
    address="192.0.2.1",
    status_code=404,
    content_type="text/html; charset=utf-8",
    body=b"<h1>internal page of someone else</h1>",
    location="https://intranet.example.test/",
    tls_version="TLSv1.3",
    certificate=None,
    cname_chain=("cdn.example.test",),
    error_code="http-status",
    error="https://... answers HTTP 404 (local detail: /tmp/x)",
    elapsed=0.25,
    verify_code=None,
    summary="https://... answers HTTP 404",
)


def test_redacted_failure_keeps_only_what_tenants_may_see() -> None:
    r = FAILED.redacted()
    assert r.body is None and r.location is None
    assert r.content_type == "text/html"  # the media type only
    assert r.error == "https://... answers HTTP 404" and r.summary == FAILED.summary
    # the rest is as it was
    kept = replace(r, body=FAILED.body, location=FAILED.location)
    assert replace(kept, content_type=FAILED.content_type, error=FAILED.error) == FAILED
    assert not r.ok


@pytest.mark.parametrize(
    ("content_type", "shown"),
    [
        (None, None),
        ("TEXT/Plain", "text/plain"),
        ("application/octet-stream;x=1", "application/octet-stream"),
        ("text/html<script>", "an unrecognised media type"),
        ("text", "an unrecognised media type"),
        ("a" * 65 + "/plain", "an unrecognised media type"),
        ("", "an unrecognised media type"),
    ],
)
def test_redacted_media_type(content_type: str | None, shown: str | None) -> None:
    assert replace(FAILED, content_type=content_type).redacted().content_type == shown


def test_redacted_success_keeps_the_policy() -> None:
    ok = replace(FAILED, status_code=200, error_code=None, error=None, summary=None)
    r = ok.redacted()
    assert r.ok and r.body == FAILED.body and r.error is None and r.location is None


def test_media_type_is_the_part_before_the_first_parameter() -> None:
    r = replace(FAILED, content_type="Text/HTML ; charset=utf-8; format=flowed").redacted()
    assert r.content_type == "text/html"


def test_cause_chains_are_searched_and_cycles_end() -> None:
    from mtasts.net.fetch import _find, _reason

    a, b = ValueError("a"), KeyError("b")
    a.__context__, b.__context__ = b, a  # a cycle
    assert _find(a, OSError) is None and _find(a, KeyError) is b
    refused = ConnectionRefusedError(111, "Connection refused")
    wrapper = RuntimeError("All connection attempts failed")
    wrapper.__cause__ = refused
    assert _find(wrapper, OSError) is refused
    assert _reason(wrapper) == "[Errno 111] Connection refused"  # the OS error's words
    tls = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    tls.__context__ = refused  # the TLS error is preferred to any OS error
    outer = RuntimeError("handshake")
    outer.__cause__ = tls
    assert _reason(outer) == str(tls)
    # also when an OS error comes first in the chain (a reset caused by the TLS failure)
    reset = ConnectionResetError(104, "Connection reset by peer")
    reset.__context__ = tls
    assert _reason(reset) == str(tls)
    assert _reason(RuntimeError()) == "RuntimeError"  # no words: the type
    assert _reason(RuntimeError("plain")) == "plain"


# --- mtasts.net.https: reading one answer ----------------------------------------------


def _exchange(data: bytes, *, eof: bool = True, deadline: float | None = None) -> _Exchange:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x.test")]))
    conn.send(h11.EndOfMessage())
    return _Exchange(reader, conn, time.monotonic() + 60 if deadline is None else deadline)


def _head_of(size: int) -> bytes:
    """An answer whose status line and header fields are exactly ``size`` bytes."""
    start, end = b"HTTP/1.1 200 OK\r\nX-Pad: ", b"\r\nContent-Length: 2\r\n\r\n"
    return start + b"p" * (size - len(start) - len(end)) + end


def _read_all(data: bytes) -> tuple[int, bytes]:
    """The status code and body of ``data`` read as an answer."""

    async def read() -> tuple[int, bytes]:
        exchange = _exchange(data)  # the reader belongs to this loop
        head = await exchange.head()
        body = b"".join([chunk async for chunk in exchange.body()])
        return head.status_code, body

    return asyncio.run(read())


def test_a_head_of_exactly_the_limit_is_read_one_more_byte_is_not() -> None:
    assert len(_head_of(MAX_HEAD)) == MAX_HEAD
    assert _read_all(_head_of(MAX_HEAD) + b"ok") == (200, b"ok")
    with pytest.raises(RemoteProtocolError, match=f"head is {MAX_HEAD + 1} bytes, over"):
        _read_all(_head_of(MAX_HEAD + 1) + b"ok")


def test_interim_answers_are_skipped_up_to_a_bound() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    final = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    assert _read_all(interim * MAX_INTERIM + final) == (200, b"ok")
    with pytest.raises(RemoteProtocolError, match=r"^the server sent no answer$"):
        _read_all(interim * (MAX_INTERIM + 1) + final)


def test_nothing_before_the_deadline_is_a_read_timeout() -> None:
    # a server that sends half a status line and then nothing: the deadline ends it
    async def read() -> None:
        exchange = _exchange(b"HTTP/1.1 2", eof=False, deadline=time.monotonic() - 1)
        await exchange.head()

    with pytest.raises(ReadTimeout):
        asyncio.run(read())


def test_a_body_cut_short_is_the_servers_fault_in_h11s_words() -> None:
    with pytest.raises(RemoteProtocolError, match="received 5 bytes, expected 10"):
        _read_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")


def test_a_chunked_body_ends_at_its_last_chunk() -> None:
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    assert _read_all(answer + b"junk after") == (200, b"ok")


def test_header_values_are_utf8_else_latin1() -> None:
    assert _text("café".encode()) == "café"
    assert _text(b"caf\xe9") == "café"  # not UTF-8: each byte one character
    assert _text(b"text/plain") == "text/plain"


# What the fetch says about each kind of failed connection (RFC 8461 §3.3: the fetch fails;
# the result says why). The lab gives the usual failures (test_fetch_outcomes.py); the ones
# loopback never gives (an unreachable address, a broken pipe, an EOF in the handshake, a
# verification error without a code) are built here as the errors mtasts.net.https raises
# (the cause chained, as it chains it) and given to the same code that reads the lab's.

HOST = "mta-sts.broken.fetch.test"


def _state() -> _State:
    # describe_certificate=False: a rejected certificate is not looked at again (no I/O)
    url = f"https://{HOST}/.well-known/mta-sts.txt"
    return _State("broken.fetch.test", HOST, url, describe_certificate=False)


def _tls(cause: BaseException | None, message: str = "") -> https.TlsError:
    exc = https.TlsError(message or str(cause))
    exc.__cause__ = cause
    return exc


def _read(exc: https.TlsError) -> _State:
    state = _state()
    asyncio.run(_tls_error(state, exc, "127.0.0.1", 443))
    return state


def _failed(cause: OSError | None, message: str) -> _ConnectFailed:
    exc = https.ConnectError(message)
    exc.__cause__ = cause
    return _connect_failure(exc)


def _spanish(text: str) -> str:
    with i18n.use("es"):
        return i18n.say(text)


def _verification_error(code: int, words: str) -> ssl.SSLCertVerificationError:
    # what ssl sets on the error it raises (a plain constructor leaves both unset)
    exc = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {words}")
    exc.verify_code = code
    exc.verify_message = words
    return exc


def test_a_known_verification_reason_is_said_in_the_readers_language() -> None:
    state = _read(_tls(_verification_error(10, "certificate has expired")))
    assert state.error_code == "tls-certificate-expired" and state.verify_code == 10
    assert (
        state.error == state.summary == f"certificate of {HOST} rejected: certificate has expired"
    )
    assert _spanish(state.error) == f"certificado de {HOST} rechazado: el certificado ha caducado"


def test_a_verification_error_without_code_or_words() -> None:
    exc = _verification_error(0, "")  # 0: X509_V_OK, no reason known
    state = _read(_tls(exc))
    assert state.error_code == "tls-certificate-invalid" and state.verify_code == 0
    # no words of its own: the error as a whole
    assert state.error == f"certificate of {HOST} rejected: {exc}"


def test_a_broken_pipe_during_the_handshake_is_a_hang_up() -> None:
    state = _read(_tls(BrokenPipeError(errno.EPIPE, "Broken pipe")))
    assert state.error_code == "tls-handshake-failed"
    assert state.error == state.summary == f"{HOST} closed the connection during TLS"


def test_an_unreachable_address_is_a_connection_failure() -> None:
    # the system's words for the error (https.ConnectError carries them), its cause chained
    failed = _failed(OSError(errno.EHOSTUNREACH, "No route to host"), "No route to host")
    assert failed.text == "No route to host" and not failed.timed_out
    assert failed.summary == "address unreachable"


def test_a_connection_failure_without_the_socket_error() -> None:
    failed = _failed(None, "connection failed somehow")
    assert failed.text == "connection failed somehow" and not failed.timed_out
    assert failed.summary == "connection failed"
    assert _spanish(failed.summary) == "falló la conexión"


def test_a_connection_or_handshake_that_timed_out_names_the_step() -> None:
    for exc in (
        https.ConnectError("TCP connection", timed_out=True),
        https.TlsError("TLS handshake", timed_out=True),
    ):
        failed = _connect_failure(exc)
        assert failed.timed_out and failed.summary == "timed out"
        assert failed.text == f"timed out ({exc})"
        assert _spanish(failed.summary) == "se agotó el tiempo"


def test_a_peer_hanging_up_in_the_handshake_without_an_os_error() -> None:
    # an EOF in the middle of the handshake: neither an OSError nor a TLS error
    state = _read(_tls(EOFError(), "EOF"))
    assert state.error_code == "tls-handshake-failed"
    assert state.error == f"TLS handshake with {HOST} failed: EOF"
    assert state.summary == f"TLS handshake with {HOST} failed"
    assert _spanish(state.error) == f"falló la negociación TLS con {HOST}: EOF"
    assert _spanish(state.summary) == f"falló la negociación TLS con {HOST}"


def test_failures_are_joined_in_order() -> None:
    assert _joined(["a"]) == "a"
    joined = _joined(["a", Text("connection failed"), "c"])
    assert joined == "a; connection failed; c"
    assert _spanish(joined) == "a; falló la conexión; c"


def test_a_connection_closed_before_or_inside_the_head_is_said_so() -> None:
    with pytest.raises(RemoteProtocolError, match=r"^the server sent no answer$"):
        _read_all(b"")
    with pytest.raises(RemoteProtocolError, match=r"^the head was cut off$"):
        _read_all(b"HTTP/1.1 200 OK\r\nContent-Ty")


def test_a_head_that_comes_in_several_reads_is_measured_whole() -> None:
    # each read under the limit, the head over it: refused all the same
    head = _head_of(MAX_HEAD + 2048)
    half = len(head) // 2

    async def read() -> None:
        exchange = _exchange(head[:half], eof=False)
        asyncio.get_running_loop().call_later(0.01, exchange.reader.feed_data, head[half:])
        await exchange.head()

    with pytest.raises(RemoteProtocolError, match=f"head is {len(head)} bytes, over"):
        asyncio.run(read())


def test_an_ipv6_address_is_written_in_brackets() -> None:
    from mtasts.net.fetch import _url_host

    assert _url_host("2001:db8::1") == "[2001:db8::1]"
    assert _url_host("192.0.2.1") == "192.0.2.1"
