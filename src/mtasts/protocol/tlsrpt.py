"""The `_smtp._tls` TLS-RPT TXT record (RFC 8460 §3)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from mtasts.protocol.errors import Text, TlsRptRecordError
from mtasts.protocol.record import (
    EXT_NAME,
    EXT_VALUE,
    RecordNote,
    is_quoted,
    lone_record_note,
    split_fields,
    starts_with_version,
    version_problem,
)

RFC = "RFC 8460 §3"
VERSION = "v=TLSRPTv1"

# RFC 8460 §3: tlsrpt-rua = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
_URI_DELIM = re.compile(r"[ \t]*,[ \t]*")
# RFC 3986 §2: unreserved / reserved / pct-encoded; RFC 8460 §3 takes out "," "!" ";".
_URI = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@$&'()*+=]|%[0-9A-Fa-f]{2})+")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")  # RFC 3986 §3.1
# RFC 8460 §3: "commas (ASCII 0x2C), exclamation points (ASCII 0x21), and semicolons
# (ASCII 0x3B) MUST be encoded".
_MUST_ENCODE = str.maketrans({",": "%2C", "!": "%21", ";": "%3B"})


def tlsrpt_fix(domain: str | None, rua: str | None = None) -> str:
    """A ready-to-paste zone-file line for a valid `_smtp._tls` record."""
    name = domain.rstrip(".") if domain else "<domain>"
    return f'_smtp._tls.{name}. TXT "{VERSION}; rua={rua or f"mailto:tlsrpt@{name}"}"'


def _uri_problem(uri: str) -> tuple[str, Text, str | None] | None:
    """(code, message, corrected URI or None) for a bad report URI, or None when it is fine."""
    if "!" in uri:
        return (
            "tlsrpt-rua-invalid",
            Text(
                "{uri!r}: '!' must be percent-encoded as %21 (TLS-RPT has no DMARC-style "
                "size limit)",
                uri=uri,
            ),
            uri.replace("!", "%21"),
        )
    if '"' in uri:
        return (
            "tlsrpt-rua-invalid",
            Text(
                "{uri!r} contains literal double quotes ('\"'); remove them from the TXT value",
                uri=uri,
            ),
            uri.replace('"', "") or None,
        )
    if not _URI.fullmatch(uri):
        return (
            "tlsrpt-rua-invalid",
            Text(
                "{uri!r} is not a URI: spaces, quotes, non-ASCII and '%' without two hex "
                "digits must be percent-encoded",
                uri=uri,
            ),
            None,
        )
    scheme = _SCHEME.match(uri)
    if not scheme:
        return (
            "tlsrpt-rua-invalid",
            Text("{uri!r} has no scheme; write mailto:<address> or https://<host>/<path>", uri=uri),
            "mailto:" + uri if "@" in uri else None,
        )
    name, rest = scheme.group(1).lower(), uri[scheme.end() :]
    # RFC 8460 §3: "Two URI schemes are supported: mailto and https."
    if name not in ("mailto", "https"):
        return (
            "tlsrpt-rua-scheme",
            Text(
                "{uri!r} uses the scheme {scheme!r}; only mailto: and https: are allowed",
                uri=uri,
                scheme=name,
            ),
            "https:" + rest if name == "http" else None,
        )
    if name == "mailto":
        local, at, host = rest.partition("?")[0].rpartition("@")
        if not (local and at and host):
            return (
                "tlsrpt-rua-invalid",
                Text("{uri!r} has no mail address; write mailto:tlsrpt@example.com", uri=uri),
                None,
            )
        return None
    try:
        host_ok = rest.startswith("//") and bool(urlsplit(uri).hostname)
    except ValueError:  # e.g. an unbalanced '[' in the authority
        host_ok = False
    if not host_ok:
        return (
            "tlsrpt-rua-invalid",
            Text("{uri!r} has no host; write https://reports.example.com/tlsrpt", uri=uri),
            None,
        )
    return None


@dataclass(frozen=True)
class TlsRptRecord:
    rua: tuple[str, ...]  # decoded URIs (`%2C` etc. kept as written), mailto: or https:
    extensions: tuple[tuple[str, str], ...]
    raw: str = field(compare=False)  # equality is about content, not spelling
    notes: tuple[RecordNote, ...] = field(default=(), compare=False)

    def serialize(self) -> str:
        """Strict form: ``v=TLSRPTv1; rua=<uri>,<uri>`` with `,`/`!`/`;` inside URIs encoded.

        Raise TlsRptRecordError when the result would not parse back to the same content.
        """
        rua = tuple(uri.translate(_MUST_ENCODE) for uri in self.rua)
        text = "; ".join(
            [f"{VERSION}; rua={','.join(rua)}", *(f"{n}={v}" for n, v in self.extensions)]
        )
        parsed = parse_tlsrpt_record(text)
        if (parsed.rua, parsed.extensions) != (rua, self.extensions):
            raise TlsRptRecordError(
                "tlsrpt-syntax",
                Text(
                    "extension fields {extensions!r} are not name=value pairs of the record "
                    "grammar (or repeat 'rua')",
                    extensions=self.extensions,
                ),
                RFC,
            )
        return text


def parse_tlsrpt_record(raw: str, *, domain: str | None = None) -> TlsRptRecord:
    """Parse one `_smtp._tls` record against the RFC 8460 §3 ABNF.

    Codes: ``tlsrpt-version``, ``tlsrpt-quoted``, ``tlsrpt-syntax``, ``tlsrpt-rua-missing``,
    ``tlsrpt-rua-duplicate``, ``tlsrpt-rua-invalid``, ``tlsrpt-rua-scheme``,
    ``tlsrpt-extension-invalid``. ``domain`` only makes fixes concrete.
    """
    # RFC 8460 §3: tlsrpt-version = %s"v=TLSRPTv1" comes first (case-sensitive).
    if is_quoted(raw, VERSION):
        raise TlsRptRecordError(
            "tlsrpt-quoted", version_problem(raw, VERSION, several=False), RFC, tlsrpt_fix(domain)
        )
    if not starts_with_version(raw, VERSION):
        raise TlsRptRecordError(
            "tlsrpt-version",
            Text(
                "the record must begin with exactly {version!r} (case-sensitive, nothing "
                "before it), found {found!r}",
                version=VERSION,
                found=raw[:20],
            ),
            RFC,
            tlsrpt_fix(domain),
        )
    pairs, problem = split_fields(raw, VERSION)
    if problem:
        # RFC 8460 §3: field-delim = *WSP ";" *WSP between name=value fields.
        raise TlsRptRecordError(
            "tlsrpt-syntax",
            Text("{problem}: {raw!r}", problem=problem, raw=raw),
            RFC,
            tlsrpt_fix(domain),
        )
    ruas: list[tuple[str, ...]] = []
    extensions: list[tuple[str, str]] = []
    for name, value in pairs:
        if name == "rua":
            uris = tuple(_URI_DELIM.split(value))
            for uri in uris:
                if not uri:
                    raise TlsRptRecordError(
                        "tlsrpt-rua-invalid",
                        Text(
                            "rua={value!r} has an empty URI (a stray ',' or nothing after 'rua=')",
                            value=value,
                        ),
                        RFC,
                        tlsrpt_fix(domain),
                    )
                found = _uri_problem(uri)
                if found:
                    code, message, better = found
                    fixed = ",".join(better if u == uri else u for u in uris) if better else None
                    raise TlsRptRecordError(code, message, RFC, tlsrpt_fix(domain, fixed))
            ruas.append(uris)
        elif EXT_NAME.fullmatch(name) and EXT_VALUE.fullmatch(value):
            # RFC 8460 §3: unknown fields are extensions and are ignored.
            extensions.append((name, value))
        else:
            raise TlsRptRecordError(
                "tlsrpt-extension-invalid",
                Text(
                    "field {name}={value!r} is invalid: names are 1-32 letters, digits, '_', "
                    "'-', '.'; values are visible ASCII without '=', ';' or spaces",
                    name=name,
                    value=value,
                ),
                RFC,
                tlsrpt_fix(domain),
            )
    if not ruas:
        # RFC 8460 §3: "Note that the tlsrpt-rua field is required" (%s"rua=" is case-sensitive).
        near = next((n for n, _ in extensions if n.lower() == "rua"), None)
        raise TlsRptRecordError(
            "tlsrpt-rua-missing",
            Text(
                "the record has no rua=<mailto: or https: URI> field (found {near!r}: field "
                "names are case-sensitive)",
                near=near,
            )
            if near
            else Text("the record has no rua=<mailto: or https: URI> field"),
            RFC,
            tlsrpt_fix(domain),
        )
    if len(ruas) > 1:
        # Which rua counts is undefined; list all URIs comma-separated in one field instead.
        merged = ",".join(u for uris in ruas for u in uris)
        raise TlsRptRecordError(
            "tlsrpt-rua-duplicate",
            Text(
                "the record has {count} rua fields; put all URIs in one, comma-separated",
                count=len(ruas),
            ),
            RFC,
            tlsrpt_fix(domain, merged),
        )
    return TlsRptRecord(rua=ruas[0], extensions=tuple(extensions), raw=raw)


def select_tlsrpt_record(records: Sequence[str], *, domain: str | None = None) -> TlsRptRecord:
    """Same selection rule as MTA-STS: with several TXT records keep those starting with
    `v=TLSRPTv1;`; zero -> TlsRptRecordError("tlsrpt-missing"), several -> "tlsrpt-multiple".

    A lone record is judged by the grammar alone (``v=TLSRPTv1 ;rua=...`` is accepted with
    the note ``tlsrpt-space-before-delimiter``). A record that senders discard but that was
    clearly meant as TLS-RPT (``V=TLSRPTv1``, leading space, literal quotes) gives
    ``tlsrpt-version`` or ``tlsrpt-quoted`` instead of ``tlsrpt-missing``.
    """
    # RFC 8460 §3: "If multiple TXT records for _smtp._tls are returned by the resolver,
    # records that do not begin with "v=TLSRPTv1;" are discarded."
    kept = [r for r in records if r.startswith(VERSION + ";")]
    if len(kept) > 1:
        # RFC 8460 §3: "If the number of resulting records is not one", no TLS-RPT.
        raise TlsRptRecordError(
            "tlsrpt-multiple",
            Text(
                "{count} records begin with 'v=TLSRPTv1;' ({records}); senders then send no "
                "reports: keep one",
                count=len(kept),
                records="; ".join(repr(r) for r in kept),
            ),
            RFC,
            tlsrpt_fix(domain),
        )
    if kept:
        return parse_tlsrpt_record(kept[0], domain=domain)
    if len(records) == 1 and starts_with_version(records[0], VERSION):
        # RFC 8460 §3: field-delim = *WSP ";" *WSP, so "v=TLSRPTv1 ;rua=..." is valid.
        record = parse_tlsrpt_record(records[0], domain=domain)
        note = lone_record_note(record.raw, VERSION, RFC, "tlsrpt-space-before-delimiter")
        return replace(record, notes=(note,))
    quoted = [r for r in records if is_quoted(r, VERSION)]
    if quoted:
        raise TlsRptRecordError(
            "tlsrpt-quoted",
            version_problem(quoted[0], VERSION, several=len(records) > 1),
            RFC,
            tlsrpt_fix(domain),
        )
    near = [r for r in records if r.strip().lower().startswith(VERSION.lower())]
    if near:
        raise TlsRptRecordError(
            "tlsrpt-version",
            Text(
                "{problem}; senders ignore it and send no reports",
                problem=version_problem(near[0], VERSION, several=len(records) > 1),
            ),
            RFC,
            tlsrpt_fix(domain),
        )
    raise TlsRptRecordError(
        "tlsrpt-missing",
        Text(
            "no TXT record beginning with 'v=TLSRPTv1;' at _smtp._tls.{domain}",
            domain=domain.rstrip(".") if domain else "<domain>",
        ),
        RFC,
        tlsrpt_fix(domain),
    )
