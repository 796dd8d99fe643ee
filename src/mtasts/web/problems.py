"""What is wrong with a request, in the reader's language: pydantic's validation errors
and the HTTP status phrases of the framework's own refusals (issue 13).

Pydantic explains a bad value in English only (``Input should be a valid integer``). In
English its words are kept exactly; in another language the problem is said from the
error's stable ``type`` and ``ctx`` (``int_parsing``, ``greater_than_equal`` with
``ge``...), never translated from its English ``msg``. Field names (``loc``) are code and
stay as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from mtasts.i18n import DEFAULT, N_, _, current

# pydantic-core error types (https://docs.pydantic.dev/latest/errors/validation_errors/)
# -> what is wrong, said of the field; ``{name}`` fields come from the error's ctx.
PROBLEMS: Mapping[str, str] = {
    "missing": N_("is required"),
    "int_parsing": N_("must be a whole number"),
    "int_type": N_("must be a whole number"),
    "int_from_float": N_("must be a whole number"),
    "float_parsing": N_("must be a number"),
    "float_type": N_("must be a number"),
    "bool_parsing": N_("must be true or false"),
    "bool_type": N_("must be true or false"),
    "string_type": N_("must be text"),
    "string_too_short": N_("must have at least {min_length} characters"),
    "string_too_long": N_("must have at most {max_length} characters"),
    "string_pattern_mismatch": N_("does not have the expected form"),
    "too_short": N_("must have at least {min_length} entries"),
    "too_long": N_("must have at most {max_length} entries"),
    "greater_than": N_("must be greater than {gt}"),
    "greater_than_equal": N_("must be at least {ge}"),
    "less_than": N_("must be less than {lt}"),
    "less_than_equal": N_("must be at most {le}"),
    "enum": N_("must be one of {expected}"),
    "literal_error": N_("must be one of {expected}"),
    "list_type": N_("must be a list"),
    "dict_type": N_("must be an object"),
    "model_type": N_("must be an object"),
    "model_attributes_type": N_("must be an object"),
    "json_invalid": N_("is not valid JSON"),
    "extra_forbidden": N_("is not expected here"),
}
BAD_VALUE = N_("has a bad value")

# The phrases of the statuses the framework answers by itself (RFC 9110 §15).
PHRASES: Mapping[int, str] = {
    400: N_("Bad Request"),
    401: N_("Unauthorized"),
    403: N_("Forbidden"),
    404: N_("Not Found"),
    405: N_("Method Not Allowed"),
    406: N_("Not Acceptable"),
    408: N_("Request Timeout"),
    409: N_("Conflict"),
    411: N_("Length Required"),
    413: N_("Content Too Large"),
    414: N_("URI Too Long"),
    415: N_("Unsupported Media Type"),
    422: N_("Unprocessable Content"),
    429: N_("Too Many Requests"),
    500: N_("Internal Server Error"),
    503: N_("Service Unavailable"),
}


def problem(error: Mapping[str, Any]) -> str:
    """What is wrong with one field: pydantic's ``msg`` in English, else said from the
    error's ``type`` and ``ctx``."""
    if current() == DEFAULT:
        return str(error.get("msg"))
    template = PROBLEMS.get(str(error.get("type")), BAD_VALUE)
    ctx = error.get("ctx") or {}
    fields = {k: str(v) for k, v in ctx.items()}
    if "expected" in fields:  # pydantic lists choices as "'a', 'b' or 'c'"
        fields["expected"] = fields["expected"].replace(" or ", _(" or "))
    try:
        return _(template).format(**fields)
    except (KeyError, IndexError, ValueError):  # a ctx without the field: say less
        return _(BAD_VALUE)


def problems(errors: Iterable[Mapping[str, Any]], skip: Sequence[object]) -> list[tuple[str, str]]:
    """(field, problem) of each error; ``skip`` leaves out locations that are not field
    names (``body``, ``query``, ``path``)."""
    return [
        (".".join(str(p) for p in e.get("loc", ()) if p not in skip), problem(e)) for e in errors
    ]


def phrase(status: int, said: str | None = None) -> str:
    """The phrase of ``status`` in the current language (in English, Python's own, which
    differs between versions: 413 "Request Entity Too Large" became "Content Too Large");
    ``said`` (a framework's detail) as it is when it is not that standard phrase."""
    try:
        standard = HTTPStatus(status).phrase
    except ValueError:
        standard = str(status)
    if said and said != standard:
        return said
    if current() == DEFAULT or status not in PHRASES:
        return standard
    return _(PHRASES[status])
