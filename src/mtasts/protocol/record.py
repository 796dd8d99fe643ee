"""The `_mta-sts` TXT record (RFC 8461 §3.1)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from mtasts.protocol.errors import RecordError, Text

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


@dataclass(frozen=True)
class RecordNote:
    """A non-fatal observation about a record senders accept (e.g. a space before ';')."""

    code: str
    message: str  # a Text: interfaces say it in the reader's language
    rfc: str


def lone_record_note(raw: str, version: str, rfc: str, code: str) -> RecordNote:
    """The warning for a lone record that is valid by the ABNF but does not begin with
    ``version;`` (whitespace before the first ';')."""
    return RecordNote(
        code,
        Text(
            "{raw!r} has whitespace before the first ';'. The grammar allows it "
            '(*WSP ";" *WSP) and a lone record is judged by the grammar, but literal-minded '
            "senders look for {tag!r} and may drop it; write {tag!r} with no space.",
            raw=raw,
            tag=version + ";",
        ),
        rfc,
    )


def is_quoted(raw: str, version: str) -> bool:
    """True when ``raw`` is a record wrapped in literal double quotes (zone-file quoting
    that a DNS tool stored as part of the value)."""
    return raw.lstrip(" \t").startswith('"') and raw.strip(' \t"').startswith(version)


def version_problem(raw: str, version: str, *, several: bool) -> Text:
    """Say exactly why senders discard ``raw``, a record clearly meant as ``version``."""
    if is_quoted(raw, version):
        return Text(
            "{raw!r} contains literal double quotes ('\"'): they are part of the TXT value, "
            "so it does not begin with {tag!r}; remove the quotes from the value "
            "in your DNS tool (zone files quote TXT data, the value itself has none)",
            raw=raw,
            tag=version + ";",
        )
    if raw[:1] in (" ", "\t"):
        return Text(
            "{raw!r} starts with whitespace: nothing may come before {version!r}",
            raw=raw,
            version=version,
        )
    if not raw.startswith(version):
        return Text(
            "{raw!r} does not begin with exactly {version!r}: the version tag is case-sensitive",
            raw=raw,
            version=version,
        )
    if several and raw[len(version) :].lstrip(" \t").startswith(";"):
        return Text(
            "{raw!r} has whitespace before the first ';': when several TXT records come "
            "back, senders discard every record not beginning exactly with {tag!r}",
            raw=raw,
            tag=version + ";",
        )
    return Text(
        "{raw!r}: {version!r} must be followed directly by ';' and the fields",
        raw=raw,
        version=version,
    )


def split_fields(raw: str, version: str) -> tuple[list[tuple[str, str]], Text | None]:
    """Split ``version 1*(delim field) [delim]`` into (name, value) pairs.

    The second item says what is wrong with the syntax, or is None. ``raw`` must already
    start with ``version`` (see starts_with_version).
    """
    head, *fields = FIELD_DELIM.split(raw[len(version) :])
    if head:
        if not head.strip(" \t"):
            return [], Text(
                "whitespace after {version!r} is only allowed around a ';'", version=version
            )
        return [], Text(
            "expected ';' after {version!r}, found {found!r}", version=version, found=head[:20]
        )
    if fields and not fields[-1]:
        fields.pop()  # a single trailing delimiter is allowed
    pairs = []
    for text in fields:
        if not text:
            return [], Text("empty field: two ';' in a row")
        if text != text.rstrip(" \t"):
            return [], Text("whitespace at the end is only allowed after a ';'")
        name, eq, value = text.partition("=")
        if not eq:
            return [], Text("field {field!r} has no '=' (fields are name=value)", field=text[:40])
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


def _id_problem(value: str) -> Text:
    if not value:
        return Text("it is empty")
    if '"' in value:
        return Text("it contains literal double quotes ('\"'), which belong around the TXT data")
    if len(value) > 32:
        return Text("it is {length} characters long", length=len(value))
    bad = sorted({c for c in value if not (c.isascii() and c.isalnum())})
    return Text("it contains {characters}", characters=", ".join(repr(c) for c in bad))


@dataclass(frozen=True)
class StsRecord:
    id: str
    extensions: tuple[tuple[str, str], ...]  # in record order
    raw: str = field(compare=False)  # equality is about content, not spelling
    notes: tuple[RecordNote, ...] = field(default=(), compare=False)

    def serialize(self) -> str:
        """Strict form: ``v=STSv1; id=<id>`` then extensions, ``; `` separated.

        Raise RecordError when the fields would not parse back to this record.
        """
        text = "; ".join([f"{VERSION}; id={self.id}", *(f"{n}={v}" for n, v in self.extensions)])
        if parse_sts_record(text) != self:
            raise RecordError(
                "record-syntax",
                Text(
                    "extension fields {extensions!r} are not name=value pairs of the record "
                    "grammar (or repeat 'id')",
                    extensions=self.extensions,
                ),
                RFC,
            )
        return text


def parse_sts_record(raw: str, *, domain: str | None = None) -> StsRecord:
    """Parse one record against the exact ABNF; raise RecordError with a specific code.

    Codes: ``record-version``, ``record-quoted``, ``record-syntax``, ``record-id-missing``,
    ``record-id-invalid``, ``record-id-duplicate``, ``record-extension-invalid``.
    ``domain`` only makes fixes concrete.
    """
    # RFC 8461 §3.1: sts-version = %s"v=STSv1" comes first (case-sensitive).
    if is_quoted(raw, VERSION):
        raise RecordError(
            "record-quoted",
            version_problem(raw, VERSION, several=False),
            RFC,
            record_fix(domain, _find_id(raw)),
        )
    if not starts_with_version(raw, VERSION):
        raise RecordError(
            "record-version",
            Text(
                "the record must begin with exactly {version!r} (case-sensitive, nothing "
                "before it), found {found!r}",
                version=VERSION,
                found=raw[:20],
            ),
            RFC,
            record_fix(domain, _find_id(raw)),
        )
    pairs, problem = split_fields(raw, VERSION)
    if problem:
        # RFC 8461 §3.1: sts-field-delim = *WSP ";" *WSP between name=value fields.
        raise RecordError(
            "record-syntax",
            Text("{problem}: {raw!r}", problem=problem, raw=raw),
            RFC,
            record_fix(domain, _find_id(raw)),
        )
    ids: list[str] = []
    extensions: list[tuple[str, str]] = []
    for name, value in pairs:
        if name == "id":
            if not _ID.fullmatch(value):
                raise RecordError(
                    "record-id-invalid",
                    Text(
                        "id={value!r} is invalid: {problem}; the id must be 1-32 letters or "
                        "digits (A-Z, a-z, 0-9), no dashes, dots or spaces",
                        value=value,
                        problem=_id_problem(value),
                    ),
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
                Text(
                    "field {name}={value!r} is invalid: names are 1-32 letters, digits, '_', "
                    "'-', '.'; values are visible ASCII without '=', ';' or spaces",
                    name=name,
                    value=value,
                ),
                RFC,
                record_fix(domain, ids[0] if ids else _find_id(raw)),
            )
    if not ids:
        # RFC 8461 §3.1: "Note that sts-id record is required" (and %s"id=" is case-sensitive).
        near = next((n for n, _ in extensions if n.lower() == "id"), None)
        raise RecordError(
            "record-id-missing",
            Text(
                "the record has no id=<1-32 letters or digits> field (found {near!r}: field "
                "names are case-sensitive)",
                near=near,
            )
            if near
            else Text("the record has no id=<1-32 letters or digits> field"),
            RFC,
            record_fix(domain, _find_id(raw)),
        )
    if len(ids) > 1:
        # The grammar does not say which id counts; senders disagree, so the id cannot work.
        raise RecordError(
            "record-id-duplicate",
            Text(
                "the record has {count} id fields ({ids}); publish exactly one",
                count=len(ids),
                ids=", ".join(ids),
            ),
            RFC,
            record_fix(domain, ids[0]),
        )
    return StsRecord(id=ids[0], extensions=tuple(extensions), raw=raw)


def _find_id(raw: str) -> str | None:
    match = re.search(r"\bid\s*=\s*([^;\s]*)", raw, re.IGNORECASE)
    return match.group(1) if match else None


def select_sts_record(records: Sequence[str], *, domain: str | None = None) -> StsRecord:
    """From all TXT records at `_mta-sts.<domain>` (strings already concatenated), pick the
    one senders use: zero -> RecordError("record-missing"), several ->
    RecordError("record-multiple"), one -> parse_sts_record().

    With several TXT records, those not beginning with ``v=STSv1;`` are discarded first. A
    lone record is judged by the grammar alone, so ``v=STSv1 ; id=1`` is accepted with a
    note (``record-space-before-delimiter``). A record that senders discard but that was
    clearly meant as MTA-STS (``V=STSv1``, leading space, literal quotes) gives
    ``record-version`` or ``record-quoted`` instead of ``record-missing``.
    """
    # RFC 8461 §3.1: "If multiple TXT records for _mta-sts are returned by the resolver,
    # records that do not begin with "v=STSv1;" are discarded."
    kept = [r for r in records if r.startswith(VERSION + ";")]
    if len(kept) > 1:
        # RFC 8461 §3.1: "If the number of resulting records is not one" there is no policy.
        raise RecordError(
            "record-multiple",
            Text(
                "{count} records begin with 'v=STSv1;' ({records}); senders then ignore "
                "MTA-STS: keep exactly one",
                count=len(kept),
                records="; ".join(repr(r) for r in kept),
            ),
            RFC,
            record_fix(domain, _find_id(kept[0])),
        )
    if kept:
        return parse_sts_record(kept[0], domain=domain)
    if len(records) == 1 and starts_with_version(records[0], VERSION):
        # RFC 8461 §3.1: sts-field-delim = *WSP ";" *WSP, so "v=STSv1 ; id=1" is valid.
        record = parse_sts_record(records[0], domain=domain)
        note = lone_record_note(record.raw, VERSION, RFC, "record-space-before-delimiter")
        return replace(record, notes=(note,))
    quoted = [r for r in records if is_quoted(r, VERSION)]
    if quoted:
        raise RecordError(
            "record-quoted",
            version_problem(quoted[0], VERSION, several=len(records) > 1),
            RFC,
            record_fix(domain, _find_id(quoted[0])),
        )
    near = [r for r in records if r.strip().lower().startswith(VERSION.lower())]
    if near:
        raise RecordError(
            "record-version",
            Text(
                "{problem}; senders ignore it and see no policy",
                problem=version_problem(near[0], VERSION, several=len(records) > 1),
            ),
            RFC,
            record_fix(domain, _find_id(near[0])),
        )
    raise RecordError(
        "record-missing",
        Text(
            "no TXT record beginning with 'v=STSv1;' at _mta-sts.{domain}",
            domain=domain.rstrip(".") if domain else "<domain>",
        ),
        RFC,
        record_fix(domain),
    )
