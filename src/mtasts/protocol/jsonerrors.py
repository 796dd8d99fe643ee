"""Why a text is not JSON (RFC 8259), said as a message an interface can translate.

Python's ``json`` module explains a refusal in English (``Expecting value: line 1 column 1
(char 0)``). The report parser (RFC 8460 §4.4: a report is JSON) shows that reason to the
people who import or send reports, so the known problems are kept here as ``Text`` with
their position; an unknown one (a future Python's wording) stays as Python wrote it.
"""

from __future__ import annotations

import json

from mtasts.protocol.errors import Text

# The problems CPython's decoder (json/decoder.py, _json.c) names, 3.11 to 3.13.
PROBLEMS: dict[str, Text] = {
    "Expecting value": Text("Expecting value"),
    "Expecting ',' delimiter": Text("Expecting ',' delimiter"),
    "Expecting ':' delimiter": Text("Expecting ':' delimiter"),
    "Expecting property name enclosed in double quotes": Text(
        "Expecting property name enclosed in double quotes"
    ),
    "Unterminated string starting at": Text("Unterminated string starting at"),
    "Invalid control character at": Text("Invalid control character at"),
    "Invalid \\escape": Text("Invalid \\escape"),
    "Invalid \\uXXXX escape": Text("Invalid \\uXXXX escape"),
    "Extra data": Text("Extra data"),
    "Illegal trailing comma before end of object": Text(
        "Illegal trailing comma before end of object"
    ),
    "Illegal trailing comma before end of array": Text(
        "Illegal trailing comma before end of array"
    ),
}


def json_problem(exc: BaseException) -> str:
    """``str(exc)`` for an error of ``json.loads``, as a ``Text`` when its problem is known
    (a ``Text`` raised by a hook such as ``parse_constant`` is kept as it is)."""
    if isinstance(exc, json.JSONDecodeError):
        problem = PROBLEMS.get(exc.msg)
        if problem is None:
            return str(exc)
        # json.JSONDecodeError's own format: '%s: line %d column %d (char %d)'
        return Text(
            "{problem}: line {line} column {column} (char {char})",
            problem=problem,
            line=exc.lineno,
            column=exc.colno,
            char=exc.pos,
        )
    if exc.args and isinstance(exc.args[0], Text) and len(exc.args) == 1:
        return exc.args[0]
    return str(exc)
