"""Real `_mta-sts` and `_smtp._tls` values published by domain owners (public DNS-as-code
repositories), read from the shared corpus: never a crash, every value the RFC allows is
accepted, every refusal names the exact problem (RFC 8461 §3.1, RFC 8460 §3)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from tests.lab.require import require

from mtasts.protocol.errors import RecordError, TlsRptRecordError
from mtasts.protocol.record import select_sts_record
from mtasts.protocol.tlsrpt import select_tlsrpt_record

# The shared corpus sits next to the project (../shared/corpus relative to the project root);
# MTASTS_CORPUS names another place (a clone elsewhere, e.g. in /tmp, reads the same one).
_BESIDE = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
CORPUS = Path(os.environ.get("MTASTS_CORPUS") or _BESIDE) / "dns-records"

# An oracle written from the ABNF, independent of the parsers under test.
_WSP_DELIM = r"[ \t]*;[ \t]*"
_EXT = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}=[\x21-\x3a\x3c\x3e-\x7e]+"
STS_ABNF = re.compile(
    rf"v=STSv1(?:{_WSP_DELIM}(?:id=[A-Za-z0-9]{{1,32}}|{_EXT}))+(?:{_WSP_DELIM})?"
)
_URI = r"(?:mailto:[^\s,;!\"@]+@[^\s,;!\"]+|https://[^\s,;!\"]+)"
TLSRPT_ABNF = re.compile(
    rf"v=TLSRPTv1(?:{_WSP_DELIM}(?:rua={_URI}(?:[ \t]*,[ \t]*{_URI})*|{_EXT}))+(?:{_WSP_DELIM})?"
)


def _load(name: str) -> list[dict[str, Any]]:
    path = CORPUS / name
    require(path.is_file(), f"the shared corpus is not at {path} (set MTASTS_CORPUS)")
    items: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return items


def _problem(text: str, version: str) -> tuple[str, str]:
    """(code suffix, words the refusal must contain) for a value the ABNF refuses."""
    if text.lstrip().startswith('"'):
        return "quoted", "literal double quotes"
    if text[:1].isspace():
        return "version", "starts with whitespace"
    rest = text[len(version) :]
    if rest[:1] in (" ", "\t") and not rest.lstrip(" \t").startswith(";"):
        return "syntax", "expected ';'"
    if rest.strip(" \t;") == "":
        return "rua-missing" if version == "v=TLSRPTv1" else "id-missing", "no "
    raise AssertionError(f"the test does not know what is wrong with {text!r}")


def test_the_sts_corpus() -> None:
    items = _load("sts_records.json")
    assert len(items) >= 70
    accepted = refused = 0
    for item in items:
        text = item["text"]
        if STS_ABNF.fullmatch(text) and text.count("id=") == 1:
            record = select_sts_record([text])  # RFC-valid: accepted
            assert record.id and record.raw == text
            accepted += 1
            continue
        suffix, words = _problem(text, "v=STSv1")
        with pytest.raises(RecordError) as info:
            select_sts_record([text], domain="example.com")
        assert info.value.code == f"record-{suffix}", (text, info.value)
        assert words in info.value.message, (text, info.value.message)
        assert info.value.fix and "TXT" in info.value.fix
        refused += 1
    assert accepted and refused  # the corpus holds both kinds


def test_the_tlsrpt_corpus() -> None:
    items = _load("tlsrpt_records.json")
    assert len(items) >= 70
    accepted = refused = 0
    for item in items:
        text = item["text"]
        if TLSRPT_ABNF.fullmatch(text) and text.count("rua=") == 1:
            record = select_tlsrpt_record([text])
            assert record.rua and record.raw == text
            accepted += 1
            continue
        suffix, words = _problem(text, "v=TLSRPTv1")
        with pytest.raises(TlsRptRecordError) as info:
            select_tlsrpt_record([text], domain="example.com")
        assert info.value.code == f"tlsrpt-{suffix}", (text, info.value)
        assert words in info.value.message, (text, info.value.message)
        refused += 1
    assert accepted and refused


@pytest.mark.parametrize("name", ["sts_records.json", "tlsrpt_records.json"])
def test_the_corpus_never_crashes_next_to_other_records(name: str) -> None:
    """With several TXT records at the name, each value is either chosen or named."""
    for item in _load(name):
        records = ["v=spf1 -all", item["text"]]
        try:
            if name.startswith("sts"):
                select_sts_record(records)
            else:
                select_tlsrpt_record(records)
        except (RecordError, TlsRptRecordError) as exc:
            assert exc.code and exc.message and exc.fix
