"""The value side of the policy fetch, without the network: OpenSSL verification codes
mapped to our error codes, and the redacted result shown to tenants."""

from __future__ import annotations

import asyncio
import errno
import ssl
from dataclasses import replace

import anyio
import httpx
import pytest

from mtasts import i18n
from mtasts.net.fetch import (
    FetchResult,
    _connect_error,
    _ConnectFailed,
    _joined,
    _State,
    verify_error_code,
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


# What the fetch says about each kind of failed connection (RFC 8461 §3.3: the fetch fails;
# the result says why). The lab gives the usual failures (test_fetch_outcomes.py); the ones
# loopback never gives (an unreachable address, a broken pipe, anyio's EndOfStream, a
# verification error without a code) are built here as the exception chains httpx raises
# and given to the same code that reads the lab's.

HOST = "mta-sts.broken.fetch.test"


def _state() -> _State:
    # describe_certificate=False: a rejected certificate is not looked at again (no I/O)
    url = f"https://{HOST}/.well-known/mta-sts.txt"
    return _State("broken.fetch.test", HOST, url, describe_certificate=False)


def _wrapped(cause: BaseException | None, message: str = "") -> httpx.ConnectError:
    exc = httpx.ConnectError(message)
    exc.__cause__ = cause
    return exc


def _read(exc: httpx.ConnectError) -> _State:
    state = _state()
    asyncio.run(_connect_error(state, exc, "127.0.0.1", 443))
    return state


def _failed(exc: httpx.ConnectError) -> _ConnectFailed:
    with pytest.raises(_ConnectFailed) as caught:
        _read(exc)
    return caught.value


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
    state = _read(_wrapped(_verification_error(10, "certificate has expired")))
    assert state.error_code == "tls-certificate-expired" and state.verify_code == 10
    assert (
        state.error == state.summary == f"certificate of {HOST} rejected: certificate has expired"
    )
    assert _spanish(state.error) == f"certificado de {HOST} rechazado: el certificado ha caducado"


def test_a_verification_error_without_code_or_words() -> None:
    exc = _verification_error(0, "")  # 0: X509_V_OK, no reason known
    state = _read(_wrapped(exc))
    assert state.error_code == "tls-certificate-invalid" and state.verify_code == 0
    # no words of its own: the error as a whole
    assert state.error == f"certificate of {HOST} rejected: {exc}"


def test_a_broken_pipe_during_the_handshake_is_a_hang_up() -> None:
    state = _read(_wrapped(BrokenPipeError(errno.EPIPE, "Broken pipe")))
    assert state.error_code == "tls-handshake-failed"
    assert state.error == state.summary == f"{HOST} closed the connection during TLS"


def test_an_unreachable_address_is_a_connection_failure() -> None:
    # the socket's own error, without anyio's "All connection attempts failed" around it
    exc = _wrapped(OSError(errno.EHOSTUNREACH, "No route to host"), "No route to host")
    failed = _failed(exc)
    assert failed.text == "[Errno 113] No route to host" and not failed.timed_out
    assert failed.summary == "address unreachable"


def test_connection_attempts_failed_without_the_socket_error() -> None:
    failed = _failed(_wrapped(None, "All connection attempts failed"))
    assert failed.text == "All connection attempts failed" and not failed.timed_out
    assert failed.summary == "connection failed"
    assert _spanish(failed.summary) == "falló la conexión"


def test_a_peer_hanging_up_as_anyio_reports_it() -> None:
    # anyio's EndOfStream (no words): neither an OSError nor a TLS error
    state = _read(_wrapped(anyio.EndOfStream()))
    assert state.error_code == "tls-handshake-failed"
    assert state.error == f"TLS handshake with {HOST} failed: ConnectError"
    assert state.summary == f"TLS handshake with {HOST} failed"
    assert _spanish(state.error) == f"falló la negociación TLS con {HOST}: ConnectError"
    assert _spanish(state.summary) == f"falló la negociación TLS con {HOST}"


def test_failures_are_joined_in_order() -> None:
    assert _joined(["a"]) == "a"
    joined = _joined(["a", Text("connection failed"), "c"])
    assert joined == "a; connection failed; c"
    assert _spanish(joined) == "a; falló la conexión; c"
