"""The MTA-STS policy file (RFC 8461 §3.2)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from mtasts.protocol.errors import MxPatternError, PolicyError, Text
from mtasts.protocol.mx import sender_accepted_pattern, validate_mx_pattern
from mtasts.protocol.record import EXT_NAME

MAX_AGE_LIMIT = 31_557_600  # RFC 8461 §3.2: max_age up to 31557600 (about 1 year)
RFC = "RFC 8461 §3.2"
# RFC 8461 §3.3: senders may refuse a policy body over 64 KiB (mtasts' own fetch does)
MAX_POLICY_BYTES = 64 * 1024

_MAX_AGE = re.compile(r"[0-9]{1,10}")  # RFC 8461 §3.2: sts-policy-max-age-value = 1*10(DIGIT)
# RFC 8461 §3.2: sts-policy-ext-value excludes CTLs; surrogates are not UTF-8 characters.
_BAD_EXT_CHAR = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_MX_CODES = {"mx-ip-literal": "policy-mx-ip-literal", "mx-ulabel": "policy-mx-ulabel"}
# Notes about mx lines senders accept but that cover no MX host (or only for some senders).
_MX_NOTES = {"mx-ip-address": "policy-mx-ip-address", "mx-underscore": "policy-mx-underscore"}
MX_WARNING_NOTES = frozenset(_MX_NOTES.values())


class Mode(StrEnum):
    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


_MODES = frozenset(m.value for m in Mode)


@dataclass(frozen=True)
class PolicyNote:
    """A non-fatal observation made while parsing (duplicate key, unknown key, LF endings)."""

    code: str
    message: str
    rfc: str


@dataclass(frozen=True)
class Policy:
    version: str  # always "STSv1" once parsed
    mode: Mode
    max_age: int
    mx: tuple[str, ...]  # patterns as written (lower-cased), in file order
    extensions: tuple[tuple[str, str], ...] = ()
    # Notes describe how a file was written, not what it says: equality ignores them.
    notes: tuple[PolicyNote, ...] = field(default=(), compare=False)

    def serialize(self) -> str:
        """Strict form: CRLF line endings, canonical order version, mode, mx..., max_age.

        Extensions follow max_age. Raise PolicyError (same codes as parse_policy) when a
        field is invalid, so a served policy always parses back to this one.
        """
        lines = [
            f"version: {self.version}",
            f"mode: {self.mode}",
            *(f"mx: {pattern}" for pattern in self.mx),
            f"max_age: {self.max_age}",
            *(f"{key}: {value}" for key, value in self.extensions),
        ]
        text = "".join(line + "\r\n" for line in lines)
        parsed = parse_policy(text)
        ip_like = [n for n in parsed.notes if n.code == "policy-mx-ip-address"]
        if ip_like:
            # Parse leniently, serialize strictly: never write a line that covers no MX host.
            raise PolicyError("policy-mx-ip-literal", ip_like[0].message, RFC)
        if parsed != self:  # notes do not take part in equality
            raise PolicyError(
                "policy-syntax",
                Text(
                    "the policy does not parse back to itself: mx patterns must be lower-case "
                    "without trailing dot, extension keys unique and not "
                    "version/mode/mx/max_age, values without line breaks"
                ),
                RFC,
            )
        return text


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return _check_bom(data)
    try:
        text = data.decode("utf-8")  # a UTF-8 BOM survives decoding as U+FEFF
    except UnicodeDecodeError as exc:
        utf16 = data[:2] in (b"\xff\xfe", b"\xfe\xff")
        raise PolicyError(
            "policy-encoding",
            (
                Text(
                    "byte {byte} at offset {offset} is not UTF-8 (it looks like UTF-16)",
                    byte=f"{data[exc.start]:#04x}",
                    offset=exc.start,
                )
                if utf16
                else Text(
                    "byte {byte} at offset {offset} is not UTF-8",
                    byte=f"{data[exc.start]:#04x}",
                    offset=exc.start,
                )
            ),
            RFC,
            Text("save the policy as UTF-8 (plain ASCII is best)"),
        ) from None
    return _check_bom(text)


def _check_bom(text: str) -> str:
    # A BOM glues itself to the first key ("\ufeffversion"), so senders see no version.
    if text.startswith("\ufeff"):
        raise PolicyError(
            "policy-bom",
            Text("the policy starts with a UTF-8 byte order mark (EF BB BF)"),
            RFC,
            Text("save the policy as UTF-8 without BOM"),
        )
    return text


def _split_lines(text: str) -> tuple[list[str], list[PolicyNote]]:
    # RFC 8461 §3.2: sts-policy-term = LF / CRLF; a bare CR ends no line.
    bare_cr = re.search(r"\r(?!\n)", text)
    if bare_cr:
        line = text.count("\n", 0, bare_cr.start()) + 1
        raise PolicyError(
            "policy-syntax",
            Text(
                "line {line} ends with a bare CR (old Mac line ending); lines must end with CRLF",
                line=line,
            ),
            RFC,
            Text("save the policy with CRLF line endings"),
        )
    pieces = text.split("\n")
    terminated = pieces[:-1]
    if not pieces[-1]:
        pieces.pop()  # RFC 8461 §3.2: the last line may or may not end with a terminator
    notes = []
    if any(not line.endswith("\r") for line in terminated):
        notes.append(
            PolicyNote(
                "policy-lf-endings",
                Text(
                    "lines end with LF only; the ABNF allows it, the text says CRLF "
                    "(erratum 6253): CRLF is the safe choice"
                ),
                RFC,
            )
        )
    return [line.removesuffix("\r") for line in pieces], notes


def _near(key: str, seen: list[tuple[str, str]]) -> str | None:
    """A key that was probably meant as ``key`` (wrong case, '-' for '_'), or None."""
    for other, _ in seen:
        if other.lower().replace("-", "_") == key:
            return other
    return None


def _check_single(key: str, value: str, line: int) -> str:
    """Validate version, mode or max_age; return the value or raise PolicyError."""
    where = {"line": line, "key": key, "value": value}
    if key == "version" and value != "STSv1":
        # RFC 8461 §3.2: sts-policy-version-value = %s"STSv1"
        message = (
            Text(
                "line {line}: {key}: {value!r} must be 'STSv1' (the value is case-sensitive)",
                **where,
            )
            if value.lower() == "stsv1"
            else Text("line {line}: {key}: {value!r} must be 'STSv1'", **where)
        )
        raise PolicyError("policy-version-invalid", message, RFC, "version: STSv1")
    if key == "mode" and value not in _MODES:
        # RFC 8461 §3.2: sts-policy-mode-value = %s"testing" / %s"enforce" / %s"none"
        lower = value.lower()
        case = lower in _MODES
        raise PolicyError(
            "policy-mode-invalid",
            Text(
                "line {line}: {key}: {value!r} must be one of enforce, testing, none (values "
                "are case-sensitive)",
                **where,
            )
            if case
            else Text(
                "line {line}: {key}: {value!r} must be one of enforce, testing, none", **where
            ),
            RFC,
            f"mode: {lower if case else 'testing'}",
        )
    if key == "max_age":
        # RFC 8461 §3.2: 1*10(DIGIT), "maximum value of 31557600".
        if not _MAX_AGE.fullmatch(value):
            raise PolicyError(
                "policy-max-age-invalid",
                Text(
                    "line {line}: {key}: {value!r} must be a number of seconds (1-10 digits, "
                    "no unit or sign)",
                    **where,
                ),
                RFC,
                "max_age: 604800",
            )
        if int(value) > MAX_AGE_LIMIT:
            raise PolicyError(
                "policy-max-age-invalid",
                Text(
                    "line {line}: {key}: {value!r} exceeds the maximum of {limit} seconds "
                    "(about one year)",
                    limit=MAX_AGE_LIMIT,
                    **where,
                ),
                RFC,
                f"max_age: {MAX_AGE_LIMIT}",
            )
    return value


def _check_mx(value: str, line: int) -> tuple[str, PolicyNote | None]:
    try:
        return validate_mx_pattern(value), None
    except MxPatternError as exc:
        accepted = sender_accepted_pattern(value)
        if accepted is not None:
            # RFC 8461 §3.2: a valid Domain keeps the policy valid, as senders see it.
            pattern, code, message = accepted
            return pattern, PolicyNote(
                _MX_NOTES[code], Text("line {line}: {message}", line=line, message=message), RFC
            )
        code = _MX_CODES.get(exc.code, "policy-mx-invalid")
        raise PolicyError(
            code, Text("line {line}: {message}", line=line, message=exc.message), exc.rfc, exc.fix
        ) from None


def _missing_line(key: str, near: str | None) -> Text:
    if near is None:
        return Text("the policy has no '{key}:' line", key=key)
    return Text(
        "the policy has no '{key}:' line (found {near!r}: keys are case-sensitive, write {key!r})",
        key=key,
        near=near,
    )


def _mx_missing(mode: Mode, near: str | None) -> Text:
    if near is None:
        return Text(
            "mode is {mode} but the policy has no 'mx:' line; list each MX host name (or a "
            "'*.' pattern covering it) on its own line",
            mode=str(mode),
        )
    return Text(
        "mode is {mode} but the policy has no 'mx:' line (found {near!r}: keys are "
        "case-sensitive, write 'mx'); list each MX host name (or a '*.' pattern covering it) "
        "on its own line",
        mode=str(mode),
        near=near,
    )


def parse_policy(data: bytes | str) -> Policy:
    """Parse a policy body; raise PolicyError (specific code) when a sender would reject it.

    Error codes: ``policy-encoding``, ``policy-bom``, ``policy-empty``, ``policy-syntax``,
    ``policy-non-ascii-key``, ``policy-version-missing``, ``policy-version-invalid``,
    ``policy-mode-missing``, ``policy-mode-invalid``, ``policy-max-age-missing``,
    ``policy-max-age-invalid``, ``policy-mx-missing``, ``policy-mx-invalid``,
    ``policy-mx-ip-literal``, ``policy-mx-ulabel``.
    Note codes: ``policy-lf-endings``, ``policy-blank-line``, ``policy-duplicate-key``,
    ``policy-unknown-key``, ``policy-extension-invalid``, ``policy-mx-trailing-dot``,
    ``policy-mx-ip-address``, ``policy-mx-underscore`` (the last two in MX_WARNING_NOTES:
    mx lines senders accept that cover no MX host, or only for some senders).
    """
    lines, notes = _split_lines(_decode(data))
    if not any(line.strip(" \t") for line in lines):
        raise PolicyError(
            "policy-empty",
            Text("the policy file is empty"),
            RFC,
            "version: STSv1\r\nmode: testing\r\nmx: <your MX host>\r\nmax_age: 604800",
        )
    singles: dict[str, str] = {}
    mx: list[str] = []
    extensions: list[tuple[str, str]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip(" \t"):
            # Not in the ABNF, but harmless in practice: senders skip blank lines.
            notes.append(PolicyNote("policy-blank-line", Text("line {line} is blank", line=n), RFC))
            continue
        key, colon, raw_value = line.partition(":")
        # RFC 8461 §3.2: sts-policy-field-delim = ":" *WSP, and a field may end with *WSP.
        value = raw_value.strip(" \t")
        if not colon:
            raise PolicyError(
                "policy-syntax",
                Text(
                    "line {line} has no ':' between key and value: {text!r}",
                    line=n,
                    text=line[:60],
                ),
                RFC,
                Text("write each line as 'key: value', e.g. 'mode: testing'"),
            )
        if not key.isascii():
            chars = ", ".join(f"U+{ord(c):04X}" for c in dict.fromkeys(key) if not c.isascii())
            raise PolicyError(
                "policy-non-ascii-key",
                Text(
                    "line {line}: key {key!r} contains non-ASCII characters ({chars})",
                    line=n,
                    key=key,
                    chars=chars,
                ),
                RFC,
                Text("retype the key in plain ASCII"),
            )
        # RFC 8461 §3.2: keys are sts-policy-ext-name, directly followed by ':' (no WSP).
        if not EXT_NAME.fullmatch(key):
            bare = key.strip(" \t")
            if EXT_NAME.fullmatch(bare):
                message = Text(
                    "line {line}: no whitespace is allowed before the key or before ':'", line=n
                )
                fix: str = f"{bare}: {value}"
            else:
                message = Text(
                    "line {line}: {key!r} is not a key (1-32 letters, digits, '_', '-', '.', "
                    "starting with a letter or digit)",
                    line=n,
                    key=key,
                )
                fix = Text("write each line as 'key: value', e.g. 'mode: testing'")
            raise PolicyError("policy-syntax", message, RFC, fix)
        if key == "mx":
            # RFC 8461 §3.2: "mx" is the one key that may repeat.
            pattern, mx_note = _check_mx(value, n)
            mx.append(pattern)
            if mx_note is not None:
                notes.append(mx_note)
            if value.endswith("."):
                notes.append(
                    PolicyNote(
                        "policy-mx-trailing-dot",
                        Text(
                            "line {line}: 'mx: {value}' ends with a dot; it is ignored when "
                            "matching",
                            line=n,
                            value=value,
                        ),
                        "RFC 8461 §4.1",
                    )
                )
        elif key in singles or any(k == key for k, _ in extensions):
            notes.append(
                PolicyNote(
                    "policy-duplicate-key",
                    Text(
                        "line {line}: {key!r} repeats; the first occurrence is used",
                        line=n,
                        key=key,
                    ),
                    RFC,
                )
            )
        elif key in ("version", "mode", "max_age"):
            singles[key] = _check_single(key, value, n)
        elif value and not _BAD_EXT_CHAR.search(value):
            # RFC 8461 §3.2: "If a parser encounters a field with an unknown key it MUST ignore it."
            extensions.append((key, value))
            notes.append(
                PolicyNote(
                    "policy-unknown-key",
                    Text("line {line}: unknown key {key!r} ignored", line=n, key=key),
                    RFC,
                )
            )
        else:
            notes.append(
                PolicyNote(
                    "policy-extension-invalid",
                    Text(
                        "line {line}: unknown key {key!r} has an empty value or control "
                        "characters; ignored",
                        line=n,
                        key=key,
                    ),
                    RFC,
                )
            )
    for key, example in (("version", "STSv1"), ("mode", "testing"), ("max_age", "604800")):
        if key not in singles:
            # RFC 8461 §3.2: version, mode and max_age are each "required once".
            raise PolicyError(
                f"policy-{key.replace('_', '-')}-missing",
                _missing_line(key, _near(key, extensions)),
                RFC,
                f"{key}: {example}",
            )
    mode = Mode(singles["mode"])
    if not mx and mode is not Mode.NONE:
        # RFC 8461 §3.2: mx is "required at least once, except when mode is "none"".
        raise PolicyError(
            "policy-mx-missing",
            _mx_missing(mode, _near("mx", extensions)),
            RFC,
            "mx: <MX host name from your MX records>",
        )
    return Policy(
        version=singles["version"],
        mode=mode,
        max_age=int(singles["max_age"]),
        mx=tuple(mx),
        extensions=tuple(extensions),
        notes=tuple(notes),
    )
