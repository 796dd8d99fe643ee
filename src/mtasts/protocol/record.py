"""The `_mta-sts` TXT record (RFC 8461 §3.1)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from mtasts.protocol.errors import RecordError

RFC = "RFC 8461 §3.1"
VERSION = "v=STSv1"
EXAMPLE_ID = "20240101T000000"  # shown in fixes when no usable id is at hand

# Grammar shared by the `_mta-sts` (RFC 8461 §3.1) and `_smtp._tls` (RFC 8460 §3) records.
FIELD_DELIM = re.compile(r"[ \t]*;[ \t]*")  # *WSP ";" *WSP
EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")  # (ALPHA / DIGIT) *31(... "_" "-" ".")
EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")  # 1*(%x21-3A / %x3C / %x3E-7E)
_ID = re.compile(r"[A-Za-z0-9]{1,32}")  # RFC 8461 §3.1: sts-id = %s"id=" 1*32(ALPHA / DIGIT)


def starts_with_version(raw: str, version: str) -> bool:
    """True when ``raw`` begins with the exact (case-sensitive) version tag as a whole field."""
    return raw.startswith(version) and raw[len(version) : len(version) + 1] in ("", ";", " ", "\t")


def split_fields(raw: str, version: str) -> tuple[list[tuple[str, str]], str | None]:
    """Split ``version 1*(delim field) [delim]`` into (name, value) pairs.

    The second item says what is wrong with the syntax, or is None. ``raw`` must already
    start with ``version`` (see starts_with_version).
    """
    head, *fields = FIELD_DELIM.split(raw[len(version) :])
    if head:
        if not head.strip(" \t"):
            return [], f"whitespace after {version!r} is only allowed around a ';'"
        return [], f"expected ';' after {version!r}, found {head[:20]!r}"
    if fields and not fields[-1]:
        fields.pop()  # a single trailing delimiter is allowed
    pairs = []
    for text in fields:
        if not text:
            return [], "empty field: two ';' in a row"
        if text != text.rstrip(" \t"):
            return [], "whitespace at the end is only allowed after a ';'"
        name, eq, value = text.partition("=")
        if not eq:
            return [], f"field {text[:40]!r} has no '=' (fields are name=value)"
        pairs.append((name, value))
    return pairs, None


def _suggest_id(text: str | None) -> str:
    # Keep what the owner wrote when it can be made valid, so the fix stays recognisable.
    cleaned = re.sub(r"[^A-Za-z0-9]", "", text or "")[:32]
    return cleaned or EXAMPLE_ID


def record_fix(domain: str | None, id_: str | None = None) -> str:
    """A ready-to-paste zone-file line for a valid `_mta-sts` record."""
    owner = f"_mta-sts.{domain.rstrip('.')}." if domain else "_mta-sts.<domain>."
    return f'{owner} TXT "{VERSION}; id={_suggest_id(id_)}"'


def _id_problem(value: str) -> str:
    if not value:
        return "it is empty"
    if len(value) > 32:
        return f"it is {len(value)} characters long"
    bad = sorted({c for c in value if not (c.isascii() and c.isalnum())})
    return "it contains " + ", ".join(repr(c) for c in bad)


@dataclass(frozen=True)
class StsRecord:
    id: str
    extensions: tuple[tuple[str, str], ...]  # in record order
    raw: str = field(compare=False)  # equality is about content, not spelling

    def serialize(self) -> str:
        """Strict form: ``v=STSv1; id=<id>`` then extensions, ``; `` separated.

        Raise RecordError when the fields would not parse back to this record.
        """
        text = "; ".join([f"{VERSION}; id={self.id}", *(f"{n}={v}" for n, v in self.extensions)])
        if parse_sts_record(text) != self:
            raise RecordError(
                "record-syntax",
                f"extension fields {self.extensions!r} are not name=value pairs of the record "
                "grammar (or repeat 'id')",
                RFC,
            )
        return text


def parse_sts_record(raw: str, *, domain: str | None = None) -> StsRecord:
    """Parse one record against the exact ABNF; raise RecordError with a specific code.

    Codes: ``record-version``, ``record-syntax``, ``record-id-missing``, ``record-id-invalid``,
    ``record-id-duplicate``, ``record-extension-invalid``. ``domain`` only makes fixes concrete.
    """
    # RFC 8461 §3.1: sts-version = %s"v=STSv1" comes first (case-sensitive).
    if not starts_with_version(raw, VERSION):
        raise RecordError(
            "record-version",
            f"the record must begin with exactly {VERSION!r} (case-sensitive, nothing before "
            f"it), found {raw[:20]!r}",
            RFC,
            record_fix(domain, _find_id(raw)),
        )
    pairs, problem = split_fields(raw, VERSION)
    if problem:
        # RFC 8461 §3.1: sts-field-delim = *WSP ";" *WSP between name=value fields.
        raise RecordError(
            "record-syntax", f"{problem}: {raw!r}", RFC, record_fix(domain, _find_id(raw))
        )
    ids: list[str] = []
    extensions: list[tuple[str, str]] = []
    for name, value in pairs:
        if name == "id":
            if not _ID.fullmatch(value):
                raise RecordError(
                    "record-id-invalid",
                    f"id={value!r} is invalid: {_id_problem(value)}; the id must be 1-32 "
                    "letters or digits (A-Z, a-z, 0-9), no dashes, dots or spaces",
                    RFC,
                    record_fix(domain, value),
                )
            ids.append(value)
        elif EXT_NAME.fullmatch(name) and EXT_VALUE.fullmatch(value):
            # RFC 8461 §3.1: unknown name=value fields are extensions and are ignored.
            extensions.append((name, value))
        else:
            raise RecordError(
                "record-extension-invalid",
                f"field {name}={value!r} is invalid: names are 1-32 letters, digits, '_', '-', "
                "'.'; values are visible ASCII without '=', ';' or spaces",
                RFC,
                record_fix(domain, ids[0] if ids else _find_id(raw)),
            )
    if not ids:
        # RFC 8461 §3.1: "Note that sts-id record is required" (and %s"id=" is case-sensitive).
        near = next((n for n, _ in extensions if n.lower() == "id"), None)
        hint = f" (found {near!r}: field names are case-sensitive)" if near else ""
        raise RecordError(
            "record-id-missing",
            f"the record has no id=<1-32 letters or digits> field{hint}",
            RFC,
            record_fix(domain, _find_id(raw)),
        )
    if len(ids) > 1:
        # The grammar does not say which id counts; senders disagree, so the id cannot work.
        raise RecordError(
            "record-id-duplicate",
            f"the record has {len(ids)} id fields ({', '.join(ids)}); publish exactly one",
            RFC,
            record_fix(domain, ids[0]),
        )
    return StsRecord(id=ids[0], extensions=tuple(extensions), raw=raw)


def _find_id(raw: str) -> str | None:
    match = re.search(r"\bid\s*=\s*([^;\s]*)", raw, re.IGNORECASE)
    return match.group(1) if match else None


def select_sts_record(records: Sequence[str], *, domain: str | None = None) -> StsRecord:
    """From all TXT records at `_mta-sts.<domain>` (strings already concatenated), discard
    those not starting with `v=STSv1`, then: zero -> RecordError("record-missing"), several ->
    RecordError("record-multiple"), one -> parse_sts_record().

    A record that senders discard but that was clearly meant as MTA-STS (``V=STSv1``,
    ``v=STSv1 ;``, leading space) gives ``record-version`` instead of ``record-missing``.
    """
    # RFC 8461 §3.1: "records that do not begin with "v=STSv1;" are discarded".
    kept = [r for r in records if r.startswith(VERSION + ";")]
    if len(kept) > 1:
        # RFC 8461 §3.1: "If the number of resulting records is not one" there is no policy.
        raise RecordError(
            "record-multiple",
            f"{len(kept)} records begin with 'v=STSv1;' ({'; '.join(repr(r) for r in kept)}); "
            "senders then ignore MTA-STS: keep exactly one",
            RFC,
            record_fix(domain, _find_id(kept[0])),
        )
    if kept:
        return parse_sts_record(kept[0], domain=domain)
    near = [r for r in records if r.strip().lower().startswith(VERSION.lower())]
    if near:
        raise RecordError(
            "record-version",
            f"{near[0]!r} is ignored by senders: a record must begin with exactly 'v=STSv1;' "
            "(case-sensitive, no space before ';', nothing before 'v')",
            RFC,
            record_fix(domain, _find_id(near[0])),
        )
    raise RecordError(
        "record-missing",
        "no TXT record beginning with 'v=STSv1;' at _mta-sts."
        + (domain.rstrip(".") if domain else "<domain>"),
        RFC,
        record_fix(domain),
    )
