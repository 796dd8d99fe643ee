"""Typed errors of the protocol layer: every rule broken has a stable code, an RFC
reference and, where one exists, a fix. Parsers raise only these."""

from __future__ import annotations


class Text(str):
    """An English message that keeps its template and fields, so an interface can say it
    in the reader's language (``mtasts.i18n.say``). The protocol layer itself stays pure:
    no language, no catalogue; the English text is the string itself. Fields may be Text
    too (a reason inside a sentence) and are said in the same language."""

    template: str
    fields: dict[str, object]

    def __new__(cls, template: str, /, **fields: object) -> Text:
        self = super().__new__(cls, template.format(**fields) if fields else template)
        self.template = template
        self.fields = fields
        return self

    def __reduce__(self) -> tuple[object, tuple[str, dict[str, object]]]:
        return _text, (self.template, self.fields)  # pickled into --jobs workers


def _text(template: str, fields: dict[str, object]) -> Text:
    return Text(template, **fields)


class ProtocolError(ValueError):
    """A rule of RFC 8461 / RFC 8460 is broken by some input.

    ``code`` is stable (used in findings and JSON output), ``rfc`` names the section,
    ``fix`` says what to change, when that can be said without more context.
    """

    def __init__(self, code: str, message: str, rfc: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.rfc = rfc
        self.fix = fix

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r}, rfc={self.rfc!r})"


class RecordError(ProtocolError):
    """The `_mta-sts` TXT record is missing, ambiguous or malformed (RFC 8461 §3.1)."""


class PolicyError(ProtocolError):
    """The policy file is malformed (RFC 8461 §3.2)."""


class MxPatternError(ProtocolError):
    """An `mx` pattern or host name is not a valid DNS name pattern (RFC 8461 §3.2, §4.1)."""


class TlsRptRecordError(ProtocolError):
    """The `_smtp._tls` TXT record is missing, ambiguous or malformed (RFC 8460 §3)."""


class ReportError(ProtocolError):
    """A TLS report (RFC 8460 §4) cannot be used: not JSON, not an object, a required
    field missing or of the wrong type, a negative count, or a limit exceeded."""


class LimitExceeded(ReportError):
    """A TLS report (or the message carrying it) exceeds a size, nesting or count limit:
    it is refused before it can cost unbounded memory or time. ``limit`` is the cap."""

    def __init__(
        self, code: str, message: str, rfc: str, fix: str | None = None, *, limit: int
    ) -> None:
        super().__init__(code, message, rfc, fix)
        self.limit = limit
