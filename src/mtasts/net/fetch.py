"""The HTTPS policy fetch, exactly as RFC 8461 §3.3 asks of a sender."""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
from dataclasses import dataclass, replace

from mtasts.i18n import N_
from mtasts.net import https
from mtasts.net.addresses import AddressVerdict, ProbePolicy, describe_refused
from mtasts.net.certs import (
    CertInfo,
    client_context,
    insecure_context,
    parse_certificate,
    verify_message,
)
from mtasts.net.dns import DnsStatus, Resolver
from mtasts.net.starttls import connect_summary, tls_summary
from mtasts.protocol.errors import Text

MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 §3.3: senders may limit the body (64 KiB)
POLICY_PATH = "/.well-known/mta-sts.txt"  # RFC 8461 §3.2
_OUTER_GRACE = 0.5  # seconds
USER_AGENT = "mtasts-check (+https://github.com/mtasts)"

# OpenSSL X509_V_ERR_* codes (include/openssl/x509_vfy.h) -> our error codes
_VERIFY_EXPIRED = {10}  # CERT_HAS_EXPIRED
_VERIFY_NOT_YET_VALID = {9}  # CERT_NOT_YET_VALID
# 2 UNABLE_TO_GET_ISSUER_CERT, 18 DEPTH_ZERO_SELF_SIGNED_CERT, 19 SELF_SIGNED_CERT_IN_CHAIN,
# 20 UNABLE_TO_GET_ISSUER_CERT_LOCALLY, 21 UNABLE_TO_VERIFY_LEAF_SIGNATURE
_VERIFY_UNTRUSTED = {2, 18, 19, 20, 21}
_VERIFY_HOST_MISMATCH = {62}  # HOSTNAME_MISMATCH


@dataclass(frozen=True)
class FetchResult:
    """Outcome of GET https://mta-sts.<domain>/.well-known/mta-sts.txt.

    ``error_code`` is None on success (HTTP 200, text/plain, body within limits), else one of:
    "dns-nxdomain", "dns-nodata", "dns-failure" (SERVFAIL/timeout/other), "connect-failed",
    "timeout", "tls-handshake-failed", "tls-certificate-expired", "tls-certificate-untrusted",
    "tls-certificate-host-mismatch", "tls-certificate-invalid", "http-redirect", "http-status",
    "content-type", "too-large", "http-error", and "address-not-allowed" (under a
    :class:`ProbePolicy`, every address of the host was refused: see ``refused``).
    """

    url: str
    host: str  # mta-sts.<domain>
    addresses: tuple[str, ...]  # what the host resolved to
    address: str | None  # the address actually used
    status_code: int | None
    content_type: str | None  # raw Content-Type header
    body: bytes | None  # present on success, and on content-type/status errors when read
    location: str | None  # Location header of a redirect
    tls_version: str | None  # "TLSv1.3" ...
    certificate: CertInfo | None  # leaf of the policy host, kept even when verification failed
    cname_chain: tuple[str, ...]
    error_code: str | None
    error: str | None  # human-readable detail
    elapsed: float  # seconds
    verify_code: int | None = None  # OpenSSL X509_V_ERR_* when verification failed
    # addresses of the host a ProbePolicy refused: never connected to
    refused: tuple[AddressVerdict, ...] = ()
    # ``error`` without anything the server sent and without local error text
    summary: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_code is None

    def redacted(self) -> FetchResult:
        """This result without what the server said beyond the policy itself: no body unless
        it is the policy, no Location, the media type only when it is a plain token, and
        ``error`` replaced by ``summary``. For results shown to tenants."""
        return replace(
            self,
            body=self.body if self.ok else None,
            location=None,
            content_type=_clean_media_type(self.content_type),
            error=self.summary if self.error_code is not None else None,
        )


def verify_error_code(verify_code: int, *, prefix: str = "tls-certificate-") -> str:
    """Map an OpenSSL verification error to our code suffix: expired, untrusted,
    host-mismatch or invalid (not-yet-valid counts as invalid for the policy host)."""
    if verify_code in _VERIFY_EXPIRED:
        return prefix + "expired"
    if verify_code in _VERIFY_UNTRUSTED:
        return prefix + "untrusted"
    if verify_code in _VERIFY_HOST_MISMATCH:
        return prefix + "host-mismatch"
    return prefix + "invalid"


def _url_host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def _find(exc: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _reason(exc: BaseException) -> str:
    inner = _find(exc, ssl.SSLError) or _find(exc, OSError) or exc
    text = str(inner) or type(inner).__name__
    return text


def _joined(parts: list[str]) -> str:
    """``parts`` joined by "; ", as a Text whose parts are said in the reader's language."""
    out = parts[0]
    for part in parts[1:]:
        out = Text("{first}; {then}", first=out, then=part)
    return out


class _ConnectFailed(Exception):
    def __init__(self, message: str, *, summary: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.text = message  # a Text, when it is one
        self.summary = summary
        self.timed_out = timed_out


@dataclass
class _State:
    domain: str
    host: str
    url: str
    describe_certificate: bool = True
    addresses: tuple[str, ...] = ()
    address: str | None = None
    status_code: int | None = None
    content_type: str | None = None
    body: bytes | None = None
    location: str | None = None
    tls_version: str | None = None
    certificate: CertInfo | None = None
    cname_chain: tuple[str, ...] = ()
    error_code: str | None = None
    error: str | None = None
    verify_code: int | None = None
    refused: tuple[AddressVerdict, ...] = ()
    summary: str | None = None

    def fail(self, code: str, error: str, summary: str | None = None) -> None:
        """Record the outcome; ``summary`` is ``error`` without foreign or local detail
        (the same text when ``error`` has none)."""
        self.error_code, self.error, self.summary = code, error, summary or error

    def result(self, elapsed: float) -> FetchResult:
        return FetchResult(
            url=self.url,
            host=self.host,
            addresses=self.addresses,
            address=self.address,
            status_code=self.status_code,
            content_type=self.content_type,
            body=self.body,
            location=self.location,
            tls_version=self.tls_version,
            certificate=self.certificate,
            cname_chain=self.cname_chain,
            error_code=self.error_code,
            error=self.error,
            elapsed=elapsed,
            verify_code=self.verify_code,
            refused=self.refused,
            summary=self.summary,
        )


async def fetch_policy(
    domain: str,
    *,
    resolver: Resolver,
    ca_file: str | None = None,
    timeout: float = 10.0,
    port: int = 443,
    probe_policy: ProbePolicy | None = None,
    describe_certificate: bool = True,
) -> FetchResult:
    """Fetch the policy of ``domain``: resolve mta-sts.<domain> with ``resolver``, connect to
    the address on ``port`` with SNI, PKIX validation (``ca_file`` or the system store), never
    follow redirects, accept HTTP 200 with media type text/plain only, cap the body at 64 KiB
    while streaming, and bound the whole fetch by ``timeout``.

    With ``probe_policy`` (a fetch a tenant triggers), only addresses it allows are tried,
    at most ``max_addresses_per_host`` of them; the rest are listed in ``refused``. The
    connection goes to the very address checked (an IP literal; SNI, Host and the
    certificate name check use mta-sts.<domain>), so DNS cannot rebind it in between.

    ``describe_certificate=False`` leaves ``certificate`` (and, on a failed verification,
    ``tls_version``) empty: the certificate is verified all the same, but not parsed, and a
    rejected one is not looked at over a second, unverified connection. For callers that
    need the verdict only (`mtasts policyd`)."""
    started = time.monotonic()
    domain = domain.strip().rstrip(".").lower()
    host = f"mta-sts.{domain}"  # RFC 8461 §3.3
    url = f"https://{host}{'' if port == 443 else f':{port}'}{POLICY_PATH}"
    state = _State(domain, host, url, describe_certificate=describe_certificate)
    try:
        # every step enforces the deadline itself (and closes its socket); the outer
        # bound, a little later, only catches what escapes them.
        async with asyncio.timeout(timeout + _OUTER_GRACE):
            await _fetch(state, resolver, ca_file, port, started + timeout, probe_policy)
    except TimeoutError:
        state.fail(
            "timeout",
            Text("no complete answer from {host} within {timeout:g} s", host=host, timeout=timeout),
        )
    return state.result(time.monotonic() - started)


async def _fetch(
    state: _State,
    resolver: Resolver,
    ca_file: str | None,
    port: int,
    deadline: float,
    probe_policy: ProbePolicy | None,
) -> None:
    answer = await resolver.addresses(state.host)
    state.addresses = answer.addresses
    state.cname_chain = answer.a.cname_chain or answer.aaaa.cname_chain
    if not answer.addresses:
        status = answer.status
        detail = answer.error or str(status)
        if status is DnsStatus.NXDOMAIN:
            state.fail(
                "dns-nxdomain",
                Text("{host} does not exist in DNS (NXDOMAIN)", host=state.host),
            )
        elif status is DnsStatus.NODATA:
            state.fail("dns-nodata", Text("{host} has no A or AAAA record", host=state.host))
        else:
            state.fail(
                "dns-failure",
                Text(
                    "the address lookup of {host} failed: {detail}", host=state.host, detail=detail
                ),
                Text(
                    "the address lookup of {host} failed ({status})", host=state.host, status=status
                ),
            )
        return
    addresses = list(answer.addresses)
    if probe_policy is not None:
        verdicts = [probe_policy.check(ip) for ip in addresses]
        state.refused = tuple(v for v in verdicts if not v.allowed)
        # connect to the normalised text of the address checked, nothing resolved later
        allowed = list(dict.fromkeys(v.address for v in verdicts if v.allowed))
        addresses = allowed[: probe_policy.max_addresses_per_host]
        if not addresses:
            reasons = describe_refused(state.refused)
            state.fail(
                "address-not-allowed",
                Text(
                    "{host} resolves only to addresses mtasts does not connect to: {reasons}",
                    host=state.host,
                    reasons=reasons,
                ),
            )
            return
    # only now that there is somewhere to connect to: loading the system's CA store costs
    # tens of milliseconds, once per process
    ctx = client_context(ca_file, check_hostname=True)
    failures: list[str] = []
    summaries: list[str] = []
    all_timed_out = True
    n = len(addresses)
    # RFC 8461 §3.3 leaves address selection to HTTPS; like browsers, try each address
    # in turn (A first) until one accepts the connection.
    for i, ip in enumerate(addresses):
        left = max(0.001, deadline - time.monotonic())
        connect_timeout = left / (n - i)  # leave time for the addresses after this one
        state.address = ip
        try:
            await _get(state, ip, ctx, port, connect_timeout, deadline)
            return
        except _ConnectFailed as exc:
            where = f"{_url_host(ip)}:{port}"
            failures.append(Text("{address}: {reason}", address=where, reason=exc.text))
            summaries.append(Text("{address}: {reason}", address=where, reason=exc.summary))
            all_timed_out = all_timed_out and exc.timed_out
    if all_timed_out:
        state.fail(
            "timeout",
            Text(
                "connecting to {host} timed out: {failures}",
                host=state.host,
                failures=_joined(failures),
            ),
            Text("connecting to {host} timed out", host=state.host),
        )
    else:
        state.fail(
            "connect-failed",
            Text(
                "cannot connect to {host}: {failures}", host=state.host, failures=_joined(failures)
            ),
            Text(
                "cannot connect to {host}: {failures}", host=state.host, failures=_joined(summaries)
            ),
        )


async def _get(
    state: _State, ip: str, ctx: ssl.SSLContext, port: int, connect_timeout: float, deadline: float
) -> None:
    headers = {"Accept-Encoding": "identity", "User-Agent": USER_AGENT, "Accept": "text/plain"}
    try:
        # the connection goes to the address our resolver found, while SNI, Host and the
        # certificate's name check use mta-sts.<domain>
        async with https.get(
            ip,
            port,
            state.host,
            POLICY_PATH,
            headers,
            ctx,
            connect_timeout=connect_timeout,
            deadline=deadline,
        ) as response:
            await _read(state, response)
    except https.TlsError as exc:
        if not exc.timed_out:
            await _tls_error(state, exc, ip, port)
            return
        raise _connect_failure(exc) from exc
    except https.ConnectError as exc:
        raise _connect_failure(exc) from exc
    except https.ReadTimeout as exc:
        state.fail(
            "timeout",
            Text(
                "{host} did not answer in time ({error})",
                host=state.host,
                error=type(exc).__name__,
            ),
        )
    except https.HttpsError as exc:
        state.fail(
            "http-error",
            f"{type(exc).__name__}: {_reason(exc)}",
            Text("the HTTPS exchange failed ({error})", error=type(exc).__name__),
        )


def _connect_failure(exc: https.ConnectError | https.TlsError) -> _ConnectFailed:
    """No connection to this address (refused, unreachable, or timed out before TLS was
    done): the next address is tried."""
    if exc.timed_out:
        return _ConnectFailed(
            Text("timed out ({reason})", reason=str(exc)),  # the step that ran out
            summary=Text("timed out"),
            timed_out=True,
        )
    cause = _find(exc, OSError)
    summary = connect_summary(cause) if isinstance(cause, OSError) else Text("connection failed")
    return _ConnectFailed(str(exc), summary=summary)


async def _tls_error(state: _State, exc: https.TlsError, ip: str, port: int) -> None:
    verify = _find(exc, ssl.SSLCertVerificationError)
    if isinstance(verify, ssl.SSLCertVerificationError):
        code = int(verify.verify_code or 0)
        state.verify_code = code
        state.fail(
            verify_error_code(code),
            Text(
                "certificate of {host} rejected: {reason}",
                host=state.host,
                reason=verify_message(code, verify.verify_message or str(verify)),
            ),
        )
        if state.describe_certificate:
            # Report the certificate anyway: look at it over an unverified handshake.
            state.certificate, state.tls_version = await peek_certificate(ip, port, state.host)
        return
    tls = _find(exc, ssl.SSLError)
    if isinstance(tls, ssl.SSLError):
        state.fail(
            "tls-handshake-failed",
            Text("TLS handshake with {host} failed: {reason}", host=state.host, reason=tls),
            Text("{summary} with {host}", summary=tls_summary(tls), host=state.host),
        )
        return
    if _find(exc, ConnectionResetError) or _find(exc, BrokenPipeError):
        state.fail(
            "tls-handshake-failed",
            Text("{host} closed the connection during TLS", host=state.host),
        )
        return
    # the peer hung up mid-handshake (an EOF), or another socket error
    state.fail(
        "tls-handshake-failed",
        Text("TLS handshake with {host} failed: {reason}", host=state.host, reason=_reason(exc)),
        Text("TLS handshake with {host} failed", host=state.host),
    )


async def peek_certificate(
    ip: str, port: int, server_name: str
) -> tuple[CertInfo | None, str | None]:
    """The leaf certificate and TLS version that ``ip``:``port`` presents for SNI
    ``server_name``, without verifying anything; (None, None) when that fails too."""
    writer: asyncio.StreamWriter | None = None
    try:
        _reader, writer = await asyncio.open_connection(
            ip, port, ssl=insecure_context(), server_hostname=server_name
        )
        sslobj = writer.get_extra_info("ssl_object")
        der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
        version = sslobj.version() if sslobj is not None else None
        return (parse_certificate(der) if der else None), version
    except (OSError, ssl.SSLError, ValueError):
        return None, None
    finally:
        if writer is not None:
            await _close(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
    except asyncio.CancelledError:
        writer.transport.abort()
        raise
    except Exception:
        with contextlib.suppress(Exception):
            writer.transport.abort()


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


# a JSON value (FetchResult.content_type of a redacted result): said in words only in prose
UNRECOGNISED_MEDIA_TYPE = N_("an unrecognised media type")
_NO_CONTENT_TYPE = Text("no Content-Type")
_NAME_CHARS = r"[a-z0-9!#$&^_.+-]{1,64}"  # RFC 6838 §4.2 restricted-name characters
_PLAIN_MEDIA_TYPE = re.compile(f"{_NAME_CHARS}/{_NAME_CHARS}")


def _clean_media_type(content_type: str | None) -> str | None:
    """The media type of ``content_type`` when it is a plain type/subtype token (e.g.
    "text/html"), "an unrecognised media type" otherwise, None when there is none."""
    if content_type is None:
        return None
    media = _media_type(content_type)
    return media if _PLAIN_MEDIA_TYPE.fullmatch(media) else UNRECOGNISED_MEDIA_TYPE


async def _read(state: _State, response: https.Response) -> None:
    sslobj = response.ssl_object
    if sslobj is not None:
        state.tls_version = sslobj.version()
        der = sslobj.getpeercert(binary_form=True) if state.describe_certificate else None
        if der:
            with contextlib.suppress(ValueError):
                state.certificate = parse_certificate(der)
    state.status_code = response.status_code
    state.content_type = response.headers.get("content-type")
    if 300 <= response.status_code < 400:
        # RFC 8461 §3.3: "HTTP 3xx redirects MUST NOT be followed"
        state.location = response.headers.get("location")
        state.fail(
            "http-redirect",
            (
                Text("{url} answers {status} to {location}")
                if state.location
                else Text("{url} answers {status}")
            ).format(url=state.url, status=response.status_code, location=state.location),
            Text("{url} answers {status} (a redirect)", url=state.url, status=response.status_code),
        )
        return
    declared = response.headers.get("content-length")
    media_ok = _media_type(state.content_type) == "text/plain"
    too_big = declared is not None and declared.isdigit() and int(declared) > MAX_POLICY_BYTES
    if response.status_code == 200 and media_ok and too_big:
        state.fail(
            "too-large",
            Text(
                "the policy is {size} bytes; senders read at most {limit}",
                size=declared,
                limit=MAX_POLICY_BYTES,
            ),
        )
        return
    body = bytearray()
    too_large = False
    try:
        async for chunk in response.chunks():
            body += chunk
            if len(body) > MAX_POLICY_BYTES:
                too_large = True
                break
    except https.ReadTimeout:
        state.fail("timeout", Text("{host} did not send the whole policy in time", host=state.host))
        return
    except https.HttpsError as exc:
        state.fail(
            "http-error",
            Text("reading the policy failed: {reason}", reason=_reason(exc)),
            Text("reading the policy failed ({error})", error=type(exc).__name__),
        )
        return
    # RFC 8461 §3.3: only HTTP 200 counts; other answers are a failed fetch
    if response.status_code != 200:
        state.body = bytes(body[:MAX_POLICY_BYTES])
        state.fail(
            "http-status",
            Text("{url} answers HTTP {status}", url=state.url, status=response.status_code),
        )
        return
    # RFC 8461 §3.2: the media type is "text/plain" (parameters such as charset allowed)
    if not media_ok:
        state.body = bytes(body[:MAX_POLICY_BYTES])
        served = N_("{url} is served as {content_type!s}, not text/plain")
        clean = _clean_media_type(state.content_type)
        state.fail(
            "content-type",
            Text(served, url=state.url, content_type=state.content_type or _NO_CONTENT_TYPE),
            Text(
                served,
                url=state.url,
                content_type=Text(UNRECOGNISED_MEDIA_TYPE)
                if clean == UNRECOGNISED_MEDIA_TYPE
                else clean or _NO_CONTENT_TYPE,
            ),
        )
        return
    if too_large:
        state.fail(
            "too-large",
            Text("the policy is larger than {limit} bytes (RFC 8461 §3.3)", limit=MAX_POLICY_BYTES),
        )
        return
    state.body = bytes(body)
