"""What the policy fetch says about each kind of failed connection (RFC 8461 §3.3: the
fetch fails; the result says why). The lab produces the usual failures (tests/net/
test_fetch_outcomes.py); the ones loopback never gives (an unreachable address, a broken
pipe, anyio's EndOfStream, a verification error without a code) are built here as the
exception chains httpx raises, and given to the same code that reads the lab's."""

from __future__ import annotations

import asyncio
import errno
import ssl

import anyio
import httpx
import pytest

from mtasts import i18n
from mtasts.net.fetch import _connect_error, _ConnectFailed, _joined, _State, peek_certificate
from mtasts.protocol.errors import Text
from tests.lab import DOWN_IP, World
from tests.net.test_fetch import fetch

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


@pytest.mark.lab
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
        f"cannot connect to {host}: {first}:{port}: All connection attempts failed; "
        f"{second}:{port}: All connection attempts failed"
    )
    assert r.summary == (
        f"cannot connect to {host}: {first}:{port}: connection refused; "
        f"{second}:{port}: connection refused"
    )


@pytest.mark.lab
def test_looking_at_a_certificate_where_nothing_listens(lab_world: World) -> None:
    found = asyncio.run(peek_certificate(DOWN_IP, lab_world.https_port, "mta-sts.x.test"))
    assert found == (None, None)
