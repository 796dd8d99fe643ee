"""Why a text is not JSON (RFC 8259), as the report parser says it (RFC 8460 §4.4): the
problems CPython names are kept as Text with their position; anything else as it was."""

from __future__ import annotations

import json

import pytest

from mtasts.protocol.errors import Text
from mtasts.protocol.jsonerrors import json_problem


def _decode_error(text: str) -> json.JSONDecodeError:
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads(text)
    return caught.value


def test_a_known_problem_keeps_its_position() -> None:
    said = json_problem(_decode_error("[1,\n 2 3]"))
    assert isinstance(said, Text)
    assert said == "Expecting ',' delimiter: line 2 column 4 (char 7)"
    assert said.fields["problem"] == "Expecting ',' delimiter"


def test_an_unknown_problem_stays_as_python_wrote_it() -> None:
    # a wording a future Python may use: no template to translate it with
    exc = json.JSONDecodeError("Unexpected thing", "[}", 1)
    said = json_problem(exc)
    assert said == "Unexpected thing: line 1 column 2 (char 1)" and not isinstance(said, Text)


def test_a_lone_text_raised_by_a_hook_is_kept() -> None:
    reason = Text("the number {n} is out of range", n="1e999")
    assert json_problem(ValueError(reason)) is reason


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("plain words"),  # not a Text: said as it is
        ValueError(Text("a reason"), 2),  # a Text with more: the error as a whole
        OverflowError(7),  # not even a string
        RecursionError(),  # no words at all
    ],
    ids=["plain", "text-and-more", "number", "empty"],
)
def test_any_other_error_is_its_own_words(exc: BaseException) -> None:
    said = json_problem(exc)
    assert said == str(exc) and type(said) is str
