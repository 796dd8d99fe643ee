# ruff: noqa: E501 (the tables hold the exact messages, one line each)
"""What a user reads: the exact message, RFC section and fix of each error and note of the
`_mta-sts` record (RFC 8461 §3.1), the `_smtp._tls` record (RFC 8460 §3), the policy file
(RFC 8461 §3.2) and mx patterns (RFC 8461 §3.2, §4.1), and every message template in the
Spanish catalogue (a template changed in the code but not in the catalogue would be said
in English to a Spanish reader)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import idna
import pytest

from mtasts import i18n
from mtasts.protocol.errors import ProtocolError, RecordError, Text
from mtasts.protocol.mx import sender_accepted_pattern, to_alabel, validate_mx_pattern
from mtasts.protocol.policy import parse_policy
from mtasts.protocol.record import StsRecord, parse_sts_record, select_sts_record
from mtasts.protocol.tlsrpt import TlsRptRecord, parse_tlsrpt_record, select_tlsrpt_record

# (code, message, rfc, fix) of the error each call raises
ERRORS: list[tuple[Callable[[], object], tuple[str, str, str, str | None]]] = [
    (
        lambda: parse_sts_record('"v=STSv1; id=1"', domain="example.com."),
        (
            "record-quoted",
            "'\"v=STSv1; id=1\"' contains literal double quotes ('\"'): they are part of the TXT value, so it does not begin with 'v=STSv1;'; remove the quotes from the value in your DNS tool (zone files quote TXT data, the value itself has none)",
            "RFC 8461 §3.1",
            '_mta-sts.example.com. TXT "v=STSv1; id=1"',
        ),
    ),
    (
        lambda: parse_sts_record("V=STSv1; id=abc"),
        (
            "record-version",
            "the record must begin with exactly 'v=STSv1' (case-sensitive, nothing before it), found 'V=STSv1; id=abc'",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=abc"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1 id=abc"),
        (
            "record-syntax",
            "expected ';' after 'v=STSv1', found ' id=abc': 'v=STSv1 id=abc'",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=abc"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1 "),
        (
            "record-syntax",
            "whitespace after 'v=STSv1' is only allowed around a ';': 'v=STSv1 '",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=20240101T000000"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1;; id=abc"),
        (
            "record-syntax",
            "empty field: two ';' in a row: 'v=STSv1;; id=abc'",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=abc"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1; id=abc "),
        (
            "record-syntax",
            "whitespace at the end is only allowed after a ';': 'v=STSv1; id=abc '",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=abc"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1; id"),
        (
            "record-syntax",
            "field 'id' has no '=' (fields are name=value): 'v=STSv1; id'",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=20240101T000000"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1; id="),
        (
            "record-id-invalid",
            "id='' is invalid: it is empty; the id must be 1-32 letters or digits (A-Z, a-z, 0-9), no dashes, dots or spaces",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=20240101T000000"',
        ),
    ),
    (
        lambda: parse_sts_record('v=STSv1; id="abc"'),
        (
            "record-id-invalid",
            "id='\"abc\"' is invalid: it contains literal double quotes ('\"'), which belong around the TXT data; the id must be 1-32 letters or digits (A-Z, a-z, 0-9), no dashes, dots or spaces",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=abc"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1; id=" + "a" * 33),
        (
            "record-id-invalid",
            "id='aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' is invalid: it is 33 characters long; the id must be 1-32 letters or digits (A-Z, a-z, 0-9), no dashes, dots or spaces",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1; id=2024-01.01 x", domain="example.com"),
        (
            "record-id-invalid",
            "id='2024-01.01 x' is invalid: it contains ' ', '-', '.'; the id must be 1-32 letters or digits (A-Z, a-z, 0-9), no dashes, dots or spaces",
            "RFC 8461 §3.1",
            '_mta-sts.example.com. TXT "v=STSv1; id=20240101x"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1; ID=abc"),
        (
            "record-id-missing",
            "the record has no id=<1-32 letters or digits> field (found 'ID': field names are case-sensitive)",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=abc"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1"),
        (
            "record-id-missing",
            "the record has no id=<1-32 letters or digits> field",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=20240101T000000"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1; id=a; id=b"),
        (
            "record-id-duplicate",
            "the record has 2 id fields (a, b); publish exactly one",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=a"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1; id=a; e x=1"),
        (
            "record-extension-invalid",
            "field e x='1' is invalid: names are 1-32 letters, digits, '_', '-', '.'; values are visible ASCII without '=', ';' or spaces",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=a"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1; e x=1; ID = q"),
        (
            "record-extension-invalid",
            "field e x='1' is invalid: names are 1-32 letters, digits, '_', '-', '.'; values are visible ASCII without '=', ';' or spaces",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=q"',
        ),
    ),
    (
        lambda: select_sts_record([]),
        (
            "record-missing",
            "no TXT record beginning with 'v=STSv1;' at _mta-sts.<domain>",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=20240101T000000"',
        ),
    ),
    (
        lambda: select_sts_record([], domain="example.com."),
        (
            "record-missing",
            "no TXT record beginning with 'v=STSv1;' at _mta-sts.example.com",
            "RFC 8461 §3.1",
            '_mta-sts.example.com. TXT "v=STSv1; id=20240101T000000"',
        ),
    ),
    (
        lambda: select_sts_record(["v=STSv1; id=a", "v=STSv1; id=b"]),
        (
            "record-multiple",
            "2 records begin with 'v=STSv1;' ('v=STSv1; id=a'; 'v=STSv1; id=b'); senders then ignore MTA-STS: keep exactly one",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=a"',
        ),
    ),
    (
        lambda: select_sts_record(['"v=STSv1; id=1"', "other"]),
        (
            "record-quoted",
            "'\"v=STSv1; id=1\"' contains literal double quotes ('\"'): they are part of the TXT value, so it does not begin with 'v=STSv1;'; remove the quotes from the value in your DNS tool (zone files quote TXT data, the value itself has none)",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=1"',
        ),
    ),
    (
        lambda: select_sts_record([" v=STSv1; id=1"]),
        (
            "record-version",
            "' v=STSv1; id=1' starts with whitespace: nothing may come before 'v=STSv1'; senders ignore it and see no policy",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=1"',
        ),
    ),
    (
        lambda: select_sts_record(["\tv=STSv1; id=1"]),
        (
            "record-version",
            "'\\tv=STSv1; id=1' starts with whitespace: nothing may come before 'v=STSv1'; senders ignore it and see no policy",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=1"',
        ),
    ),
    (
        lambda: select_sts_record(["V=STSv1; id=1"]),
        (
            "record-version",
            "'V=STSv1; id=1' does not begin with exactly 'v=STSv1': the version tag is case-sensitive; senders ignore it and see no policy",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=1"',
        ),
    ),
    (
        lambda: select_sts_record(["v=STSv1 ; id=1", "other"]),
        (
            "record-version",
            "'v=STSv1 ; id=1' has whitespace before the first ';': when several TXT records come back, senders discard every record not beginning exactly with 'v=STSv1;'; senders ignore it and see no policy",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=1"',
        ),
    ),
    (
        lambda: select_sts_record(["v=STSv1\x0b; id=1", "other"]),
        (
            "record-version",
            "'v=STSv1\\x0b; id=1': 'v=STSv1' must be followed directly by ';' and the fields; senders ignore it and see no policy",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=1"',
        ),
    ),
    (
        lambda: select_sts_record(["v=STSv1\x0b; id=1"]),
        (
            "record-version",
            "'v=STSv1\\x0b; id=1': 'v=STSv1' must be followed directly by ';' and the fields; senders ignore it and see no policy",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=1"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record('"v=TLSRPTv1; rua=mailto:a@b.example"', domain="example.com."),
        (
            "tlsrpt-quoted",
            "'\"v=TLSRPTv1; rua=mailto:a@b.example\"' contains literal double quotes ('\"'): they are part of the TXT value, so it does not begin with 'v=TLSRPTv1;'; remove the quotes from the value in your DNS tool (zone files quote TXT data, the value itself has none)",
            "RFC 8460 §3",
            '_smtp._tls.example.com. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.com"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=tlsrptv1; rua=mailto:a@b.example"),
        (
            "tlsrpt-version",
            "the record must begin with exactly 'v=TLSRPTv1' (case-sensitive, nothing before it), found 'v=tlsrptv1; rua=mail'",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1 rua=mailto:a@b.example"),
        (
            "tlsrpt-syntax",
            "expected ';' after 'v=TLSRPTv1', found ' rua=mailto:a@b.exam': 'v=TLSRPTv1 rua=mailto:a@b.example'",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; rua="),
        (
            "tlsrpt-rua-invalid",
            "rua='' has an empty URI (a stray ',' or nothing after 'rua=')",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; rua=mailto:a@b.example,"),
        (
            "tlsrpt-rua-invalid",
            "rua='mailto:a@b.example,' has an empty URI (a stray ',' or nothing after 'rua=')",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; rua=mailto:a@b.example!10m", domain="example.com"),
        (
            "tlsrpt-rua-invalid",
            "'mailto:a@b.example!10m': '!' must be percent-encoded as %21 (TLS-RPT has no DMARC-style size limit)",
            "RFC 8460 §3",
            '_smtp._tls.example.com. TXT "v=TLSRPTv1; rua=mailto:a@b.example%2110m"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; rua=https://r.example/x,mailto:a@b.example!10m"),
        (
            "tlsrpt-rua-invalid",
            "'mailto:a@b.example!10m': '!' must be percent-encoded as %21 (TLS-RPT has no DMARC-style size limit)",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=https://r.example/x,mailto:a@b.example%2110m"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record('v=TLSRPTv1; rua="mailto:a@b.example"'),
        (
            "tlsrpt-rua-invalid",
            "'\"mailto:a@b.example\"' contains literal double quotes ('\"'); remove them from the TXT value",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:a@b.example"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record('v=TLSRPTv1; rua=""'),
        (
            "tlsrpt-rua-invalid",
            "'\"\"' contains literal double quotes ('\"'); remove them from the TXT value",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; rua=mailto:a%zz@b.example"),
        (
            "tlsrpt-rua-invalid",
            "'mailto:a%zz@b.example' is not a URI: spaces, quotes, non-ASCII and '%' without two hex digits must be percent-encoded",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; rua=a@b.example"),
        (
            "tlsrpt-rua-invalid",
            "'a@b.example' has no scheme; write mailto:<address> or https://<host>/<path>",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:a@b.example"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; rua=reports"),
        (
            "tlsrpt-rua-invalid",
            "'reports' has no scheme; write mailto:<address> or https://<host>/<path>",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; rua=http://r.example/x"),
        (
            "tlsrpt-rua-scheme",
            "'http://r.example/x' uses the scheme 'http'; only mailto: and https: are allowed",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=https://r.example/x"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; rua=ftp://r.example/x"),
        (
            "tlsrpt-rua-scheme",
            "'ftp://r.example/x' uses the scheme 'ftp'; only mailto: and https: are allowed",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; rua=mailto:b.example"),
        (
            "tlsrpt-rua-invalid",
            "'mailto:b.example' has no mail address; write mailto:tlsrpt@example.com",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; rua=mailto:@b.example"),
        (
            "tlsrpt-rua-invalid",
            "'mailto:@b.example' has no mail address; write mailto:tlsrpt@example.com",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; rua=mailto:a@"),
        (
            "tlsrpt-rua-invalid",
            "'mailto:a@' has no mail address; write mailto:tlsrpt@example.com",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; rua=https:r.example/x"),
        (
            "tlsrpt-rua-invalid",
            "'https:r.example/x' has no host; write https://reports.example.com/tlsrpt",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; rua=https://[r.example/x"),
        (
            "tlsrpt-rua-invalid",
            "'https://[r.example/x' has no host; write https://reports.example.com/tlsrpt",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; rua=mailto:a@b.example; e x=1"),
        (
            "tlsrpt-extension-invalid",
            "field e x='1' is invalid: names are 1-32 letters, digits, '_', '-', '.'; values are visible ASCII without '=', ';' or spaces",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; RUA=mailto:a@b.example"),
        (
            "tlsrpt-rua-missing",
            "the record has no rua=<mailto: or https: URI> field (found 'RUA': field names are case-sensitive)",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1"),
        (
            "tlsrpt-rua-missing",
            "the record has no rua=<mailto: or https: URI> field",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; rua=mailto:a@b.example; rua=https://r.example/x"),
        (
            "tlsrpt-rua-duplicate",
            "the record has 2 rua fields; put all URIs in one, comma-separated",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:a@b.example,https://r.example/x"',
        ),
    ),
    (
        lambda: select_tlsrpt_record([]),
        (
            "tlsrpt-missing",
            "no TXT record beginning with 'v=TLSRPTv1;' at _smtp._tls.<domain>",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: select_tlsrpt_record([], domain="example.com."),
        (
            "tlsrpt-missing",
            "no TXT record beginning with 'v=TLSRPTv1;' at _smtp._tls.example.com",
            "RFC 8460 §3",
            '_smtp._tls.example.com. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.com"',
        ),
    ),
    (
        lambda: select_tlsrpt_record(
            ["v=TLSRPTv1; rua=mailto:a@b.example", "v=TLSRPTv1; rua=mailto:c@d.example"]
        ),
        (
            "tlsrpt-multiple",
            "2 records begin with 'v=TLSRPTv1;' ('v=TLSRPTv1; rua=mailto:a@b.example'; 'v=TLSRPTv1; rua=mailto:c@d.example'); senders then send no reports: keep one",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: select_tlsrpt_record(['"v=TLSRPTv1; rua=mailto:a@b.example"', "x"]),
        (
            "tlsrpt-quoted",
            "'\"v=TLSRPTv1; rua=mailto:a@b.example\"' contains literal double quotes ('\"'): they are part of the TXT value, so it does not begin with 'v=TLSRPTv1;'; remove the quotes from the value in your DNS tool (zone files quote TXT data, the value itself has none)",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: select_tlsrpt_record([" v=TLSRPTv1; rua=mailto:a@b.example"]),
        (
            "tlsrpt-version",
            "' v=TLSRPTv1; rua=mailto:a@b.example' starts with whitespace: nothing may come before 'v=TLSRPTv1'; senders ignore it and send no reports",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: TlsRptRecord(
            rua=("mailto:a@b.example",), extensions=(("rua", "x"),), raw=""
        ).serialize(),
        (
            "tlsrpt-rua-invalid",
            "'x' has no scheme; write mailto:<address> or https://<host>/<path>",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    (
        lambda: StsRecord(id="1", extensions=(("id", "2"),), raw="").serialize(),
        (
            "record-id-duplicate",
            "the record has 2 id fields (1, 2); publish exactly one",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=1"',
        ),
    ),
    (
        lambda: parse_policy(b"\xff\xfev\x00"),
        (
            "policy-encoding",
            "byte 0xff at offset 0 is not UTF-8 (it looks like UTF-16)",
            "RFC 8461 §3.2",
            "save the policy as UTF-8 (plain ASCII is best)",
        ),
    ),
    (
        lambda: parse_policy(b"version: STSv1\xe9"),
        (
            "policy-encoding",
            "byte 0xe9 at offset 14 is not UTF-8",
            "RFC 8461 §3.2",
            "save the policy as UTF-8 (plain ASCII is best)",
        ),
    ),
    (
        lambda: parse_policy("\ufeffversion: STSv1"),
        (
            "policy-bom",
            "the policy starts with a UTF-8 byte order mark (EF BB BF)",
            "RFC 8461 §3.2",
            "save the policy as UTF-8 without BOM",
        ),
    ),
    (
        lambda: parse_policy("version: STSv1\rmode: testing"),
        (
            "policy-syntax",
            "line 1 ends with a bare CR (old Mac line ending); lines must end with CRLF",
            "RFC 8461 §3.2",
            "save the policy with CRLF line endings",
        ),
    ),
    (
        lambda: parse_policy(" \t\r\n"),
        (
            "policy-empty",
            "the policy file is empty",
            "RFC 8461 §3.2",
            "version: STSv1\r\nmode: testing\r\nmx: <your MX host>\r\nmax_age: 604800",
        ),
    ),
    (
        lambda: parse_policy("version STSv1"),
        (
            "policy-syntax",
            "line 1 has no ':' between key and value: 'version STSv1'",
            "RFC 8461 §3.2",
            "write each line as 'key: value', e.g. 'mode: testing'",
        ),
    ),
    (
        lambda: parse_policy("vérsion: STSv1"),
        (
            "policy-non-ascii-key",
            "line 1: key 'vérsion' contains non-ASCII characters (U+00E9)",
            "RFC 8461 §3.2",
            "retype the key in plain ASCII",
        ),
    ),
    (
        lambda: parse_policy(" version: STSv1"),
        (
            "policy-syntax",
            "line 1: no whitespace is allowed before the key or before ':'",
            "RFC 8461 §3.2",
            "version: STSv1",
        ),
    ),
    (
        lambda: parse_policy("ver sion: STSv1"),
        (
            "policy-syntax",
            "line 1: 'ver sion' is not a key (1-32 letters, digits, '_', '-', '.', starting with a letter or digit)",
            "RFC 8461 §3.2",
            "write each line as 'key: value', e.g. 'mode: testing'",
        ),
    ),
    (
        lambda: parse_policy("version: STSV1"),
        (
            "policy-version-invalid",
            "line 1: version: 'STSV1' must be 'STSv1' (the value is case-sensitive)",
            "RFC 8461 §3.2",
            "version: STSv1",
        ),
    ),
    (
        lambda: parse_policy("version: 1"),
        (
            "policy-version-invalid",
            "line 1: version: '1' must be 'STSv1'",
            "RFC 8461 §3.2",
            "version: STSv1",
        ),
    ),
    (
        lambda: parse_policy("version: STSv1\nmode: Enforce"),
        (
            "policy-mode-invalid",
            "line 2: mode: 'Enforce' must be one of enforce, testing, none (values are case-sensitive)",
            "RFC 8461 §3.2",
            "mode: enforce",
        ),
    ),
    (
        lambda: parse_policy("version: STSv1\nmode: strict"),
        (
            "policy-mode-invalid",
            "line 2: mode: 'strict' must be one of enforce, testing, none",
            "RFC 8461 §3.2",
            "mode: testing",
        ),
    ),
    (
        lambda: parse_policy("version: STSv1\nmode: none\nmax_age: 1w"),
        (
            "policy-max-age-invalid",
            "line 3: max_age: '1w' must be a number of seconds (1-10 digits, no unit or sign)",
            "RFC 8461 §3.2",
            "max_age: 604800",
        ),
    ),
    (
        lambda: parse_policy("version: STSv1\nmode: none\nmax_age: 31557601"),
        (
            "policy-max-age-invalid",
            "line 3: max_age: '31557601' exceeds the maximum of 31557600 seconds (about one year)",
            "RFC 8461 §3.2",
            "max_age: 31557600",
        ),
    ),
    (
        lambda: parse_policy("mode: none\nmax_age: 1"),
        (
            "policy-version-missing",
            "the policy has no 'version:' line",
            "RFC 8461 §3.2",
            "version: STSv1",
        ),
    ),
    (
        lambda: parse_policy("Version: STSv1\nmode: none\nmax_age: 1"),
        (
            "policy-version-missing",
            "the policy has no 'version:' line (found 'Version': keys are case-sensitive, write 'version')",
            "RFC 8461 §3.2",
            "version: STSv1",
        ),
    ),
    (
        lambda: parse_policy("version: STSv1\nmax_age: 1"),
        ("policy-mode-missing", "the policy has no 'mode:' line", "RFC 8461 §3.2", "mode: testing"),
    ),
    (
        lambda: parse_policy("version: STSv1\nmode: none\nmax-age: 1"),
        (
            "policy-max-age-missing",
            "the policy has no 'max_age:' line (found 'max-age': keys are case-sensitive, write 'max_age')",
            "RFC 8461 §3.2",
            "max_age: 604800",
        ),
    ),
    (
        lambda: parse_policy("version: STSv1\nmode: enforce\nmax_age: 1"),
        (
            "policy-mx-missing",
            "mode is enforce but the policy has no 'mx:' line; list each MX host name (or a '*.' pattern covering it) on its own line",
            "RFC 8461 §3.2",
            "mx: <MX host name from your MX records>",
        ),
    ),
    (
        lambda: parse_policy("version: STSv1\nmode: testing\nMX: mx.example\nmax_age: 1"),
        (
            "policy-mx-missing",
            "mode is testing but the policy has no 'mx:' line (found 'MX': keys are case-sensitive, write 'mx'); list each MX host name (or a '*.' pattern covering it) on its own line",
            "RFC 8461 §3.2",
            "mx: <MX host name from your MX records>",
        ),
    ),
    (
        lambda: parse_policy("version: STSv1\nmode: testing\nmx: [192.0.2.1]\nmax_age: 1"),
        (
            "policy-mx-ip-literal",
            "line 3: '[192.0.2.1]' is an IP address; mx patterns must be the host names of your MX records",
            "RFC 8461 §3.2",
            None,
        ),
    ),
    (
        lambda: parse_policy("version: STSv1\nmode: testing\nmx: bücher.example\nmax_age: 1"),
        (
            "policy-mx-ulabel",
            "line 3: 'bücher.example' contains non-ASCII characters; write internationalised names as A-labels (Punycode, xn--...)",
            "RFC 8461 §3.2",
            "mx: xn--bcher-kva.example",
        ),
    ),
    (
        lambda: parse_policy("version: STSv1\nmode: testing\nmx: *.bücher.example\nmax_age: 1"),
        (
            "policy-mx-ulabel",
            "line 3: '*.bücher.example' contains non-ASCII characters; write internationalised names as A-labels (Punycode, xn--...)",
            "RFC 8461 §3.2",
            "mx: *.xn--bcher-kva.example",
        ),
    ),
    (
        lambda: parse_policy("version: STSv1\nmode: testing\nmx: a.*.example\nmax_age: 1"),
        (
            "policy-mx-invalid",
            "line 3: 'a.*.example': '*' is only allowed as the whole left-most label, as in '*.example.com'",
            "RFC 8461 §3.2",
            None,
        ),
    ),
    (
        lambda: parse_policy("version: STSv1\nmode: testing\nmx: -a.example\nmax_age: 1"),
        (
            "policy-mx-invalid",
            "line 3: '-a.example' is not a valid mx pattern: label '-a' must be 1-63 letters, digits or hyphens, not starting or ending with a hyphen",
            "RFC 8461 §3.2",
            None,
        ),
    ),
    (
        lambda: parse_policy("version: STSv1\nmode: testing\nmx: a..example\nmax_age: 1"),
        (
            "policy-mx-invalid",
            "line 3: 'a..example' is not a valid mx pattern: it has an empty label (a leading dot or '..')",
            "RFC 8461 §3.2",
            None,
        ),
    ),
    (
        lambda: parse_policy("version: STSv1\nmode: testing\nmx: xn--zz.example\nmax_age: 1"),
        (
            "policy-mx-invalid",
            "line 3: 'xn--zz.example' is not a valid mx pattern: label 'xn--zz' is not a valid A-label (Punycode)",
            "RFC 8461 §3.2",
            None,
        ),
    ),
    (
        lambda: parse_policy(
            "version: STSv1\nmode: testing\nmx: " + "a." * 127 + "com\nmax_age: 1"
        ),
        (
            "policy-mx-invalid",
            "line 3: 'a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.com' is not a valid mx pattern: the name is 257 characters long (at most 253)",
            "RFC 8461 §3.2",
            None,
        ),
    ),
    (
        lambda: parse_policy("version: STSv1\nmode: testing\nmx: \nmax_age: 1"),
        (
            "policy-mx-invalid",
            "line 3: '' is not a valid mx pattern: the name is empty",
            "RFC 8461 §3.2",
            None,
        ),
    ),
    (
        lambda: validate_mx_pattern("bücher.example"),
        (
            "mx-ulabel",
            "'bücher.example' contains non-ASCII characters; write internationalised names as A-labels (Punycode, xn--...)",
            "RFC 8461 §3.2",
            "mx: xn--bcher-kva.example",
        ),
    ),
    (
        lambda: select_sts_record(["v=STSv1; id=a-b", "other"], domain="example.com"),
        (
            "record-id-invalid",
            "id='a-b' is invalid: it contains '-'; the id must be 1-32 letters or digits (A-Z, a-z, 0-9), no dashes, dots or spaces",
            "RFC 8461 §3.1",
            '_mta-sts.example.com. TXT "v=STSv1; id=ab"',
        ),
    ),
    (
        lambda: select_sts_record(["v=STSv1 ; id=a-b"], domain="example.com"),
        (
            "record-id-invalid",
            "id='a-b' is invalid: it contains '-'; the id must be 1-32 letters or digits (A-Z, a-z, 0-9), no dashes, dots or spaces",
            "RFC 8461 §3.1",
            '_mta-sts.example.com. TXT "v=STSv1; id=ab"',
        ),
    ),
    (
        lambda: select_sts_record(["V=STSv1; id=1", "other"], domain="example.com"),
        (
            "record-version",
            "'V=STSv1; id=1' does not begin with exactly 'v=STSv1': the version tag is case-sensitive; senders ignore it and see no policy",
            "RFC 8461 §3.1",
            '_mta-sts.example.com. TXT "v=STSv1; id=1"',
        ),
    ),
    (
        lambda: select_sts_record(['"v=STSv1; id=1"'], domain="example.com"),
        (
            "record-quoted",
            "'\"v=STSv1; id=1\"' contains literal double quotes ('\"'): they are part of the TXT value, so it does not begin with 'v=STSv1;'; remove the quotes from the value in your DNS tool (zone files quote TXT data, the value itself has none)",
            "RFC 8461 §3.1",
            '_mta-sts.example.com. TXT "v=STSv1; id=1"',
        ),
    ),
    (
        lambda: select_sts_record([], domain="EXAMPLE.BOX."),
        (
            "record-missing",
            "no TXT record beginning with 'v=STSv1;' at _mta-sts.EXAMPLE.BOX",
            "RFC 8461 §3.1",
            '_mta-sts.EXAMPLE.BOX. TXT "v=STSv1; id=20240101T000000"',
        ),
    ),
    (
        lambda: select_tlsrpt_record([], domain="EXAMPLE.BOX."),
        (
            "tlsrpt-missing",
            "no TXT record beginning with 'v=TLSRPTv1;' at _smtp._tls.EXAMPLE.BOX",
            "RFC 8460 §3",
            '_smtp._tls.EXAMPLE.BOX. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@EXAMPLE.BOX"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1; id=2024-ABC"),
        (
            "record-id-invalid",
            "id='2024-ABC' is invalid: it contains '-'; the id must be 1-32 letters or digits (A-Z, a-z, 0-9), no dashes, dots or spaces",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=2024ABC"',
        ),
    ),
    (
        lambda: StsRecord(id="1", extensions=(("a", "b; c=d"),), raw="").serialize(),
        (
            "record-syntax",
            "extension fields (('a', 'b; c=d'),) are not name=value pairs of the record grammar (or repeat 'id')",
            "RFC 8461 §3.1",
            None,
        ),
    ),
    (
        lambda: TlsRptRecord(
            rua=("mailto:a@b.example",), extensions=(("a", "b; c=d"),), raw=""
        ).serialize(),
        (
            "tlsrpt-syntax",
            "extension fields (('a', 'b; c=d'),) are not name=value pairs of the record grammar (or repeat 'rua')",
            "RFC 8460 §3",
            None,
        ),
    ),
    (
        lambda: parse_sts_record("V=STSv1; id=20240101T000000", domain="example.com"),
        (
            "record-version",
            "the record must begin with exactly 'v=STSv1' (case-sensitive, nothing before it), found 'V=STSv1; id=20240101'",
            "RFC 8461 §3.1",
            '_mta-sts.example.com. TXT "v=STSv1; id=20240101T000000"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; rua=mailto:tlsrpt@example.com@"),
        (
            "tlsrpt-rua-invalid",
            "'mailto:tlsrpt@example.com@' has no mail address; write mailto:tlsrpt@example.com",
            "RFC 8460 §3",
            '_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@<domain>"',
        ),
    ),
    # the fix names the domain on every path
    (
        lambda: select_sts_record(["v=STSv1; id=a", "v=STSv1; id=b"], domain="example.com"),
        (
            "record-multiple",
            "2 records begin with 'v=STSv1;' ('v=STSv1; id=a'; 'v=STSv1; id=b'); senders then ignore MTA-STS: keep exactly one",
            "RFC 8461 §3.1",
            '_mta-sts.example.com. TXT "v=STSv1; id=a"',
        ),
    ),
    (
        lambda: select_sts_record(['"v=STSv1; id=1"', "other"], domain="example.com"),
        (
            "record-quoted",
            "'\"v=STSv1; id=1\"' contains literal double quotes ('\"'): they are part of the TXT value, so it does not begin with 'v=STSv1;'; remove the quotes from the value in your DNS tool (zone files quote TXT data, the value itself has none)",
            "RFC 8461 §3.1",
            '_mta-sts.example.com. TXT "v=STSv1; id=1"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1 id=abc", domain="example.com"),
        (
            "record-syntax",
            "expected ';' after 'v=STSv1', found ' id=abc': 'v=STSv1 id=abc'",
            "RFC 8461 §3.1",
            '_mta-sts.example.com. TXT "v=STSv1; id=abc"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1; ID=abc", domain="example.com"),
        (
            "record-id-missing",
            "the record has no id=<1-32 letters or digits> field (found 'ID': field names are case-sensitive)",
            "RFC 8461 §3.1",
            '_mta-sts.example.com. TXT "v=STSv1; id=abc"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1; id=a; id=b", domain="example.com"),
        (
            "record-id-duplicate",
            "the record has 2 id fields (a, b); publish exactly one",
            "RFC 8461 §3.1",
            '_mta-sts.example.com. TXT "v=STSv1; id=a"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1; id=a; e x=1", domain="example.com"),
        (
            "record-extension-invalid",
            "field e x='1' is invalid: names are 1-32 letters, digits, '_', '-', '.'; values are visible ASCII without '=', ';' or spaces",
            "RFC 8461 §3.1",
            '_mta-sts.example.com. TXT "v=STSv1; id=a"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1; id=a-b", domain="example.com"),
        (
            "record-id-invalid",
            "id='a-b' is invalid: it contains '-'; the id must be 1-32 letters or digits (A-Z, a-z, 0-9), no dashes, dots or spaces",
            "RFC 8461 §3.1",
            '_mta-sts.example.com. TXT "v=STSv1; id=ab"',
        ),
    ),
    (
        lambda: select_tlsrpt_record(
            ["v=TLSRPTv1; rua=mailto:a@b.example", "v=TLSRPTv1; rua=mailto:c@d.example"],
            domain="example.com",
        ),
        (
            "tlsrpt-multiple",
            "2 records begin with 'v=TLSRPTv1;' ('v=TLSRPTv1; rua=mailto:a@b.example'; 'v=TLSRPTv1; rua=mailto:c@d.example'); senders then send no reports: keep one",
            "RFC 8460 §3",
            '_smtp._tls.example.com. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.com"',
        ),
    ),
    (
        lambda: select_tlsrpt_record(
            ['"v=TLSRPTv1; rua=mailto:a@b.example"', "x"], domain="example.com"
        ),
        (
            "tlsrpt-quoted",
            "'\"v=TLSRPTv1; rua=mailto:a@b.example\"' contains literal double quotes ('\"'): they are part of the TXT value, so it does not begin with 'v=TLSRPTv1;'; remove the quotes from the value in your DNS tool (zone files quote TXT data, the value itself has none)",
            "RFC 8460 §3",
            '_smtp._tls.example.com. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.com"',
        ),
    ),
    (
        lambda: select_tlsrpt_record([" v=TLSRPTv1; rua=mailto:a@b.example"], domain="example.com"),
        (
            "tlsrpt-version",
            "' v=TLSRPTv1; rua=mailto:a@b.example' starts with whitespace: nothing may come before 'v=TLSRPTv1'; senders ignore it and send no reports",
            "RFC 8460 §3",
            '_smtp._tls.example.com. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.com"',
        ),
    ),
    (
        lambda: select_tlsrpt_record(["v=TLSRPTv1 ;rua=mailto:a@b.example!"], domain="example.com"),
        (
            "tlsrpt-rua-invalid",
            "'mailto:a@b.example!': '!' must be percent-encoded as %21 (TLS-RPT has no DMARC-style size limit)",
            "RFC 8460 §3",
            '_smtp._tls.example.com. TXT "v=TLSRPTv1; rua=mailto:a@b.example%21"',
        ),
    ),
    (
        lambda: select_tlsrpt_record(["v=TLSRPTv1;rua=mailto:a@b.example!"], domain="example.com"),
        (
            "tlsrpt-rua-invalid",
            "'mailto:a@b.example!': '!' must be percent-encoded as %21 (TLS-RPT has no DMARC-style size limit)",
            "RFC 8460 §3",
            '_smtp._tls.example.com. TXT "v=TLSRPTv1; rua=mailto:a@b.example%21"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=tlsrptv1; rua=mailto:a@b.example", domain="example.com"),
        (
            "tlsrpt-version",
            "the record must begin with exactly 'v=TLSRPTv1' (case-sensitive, nothing before it), found 'v=tlsrptv1; rua=mail'",
            "RFC 8460 §3",
            '_smtp._tls.example.com. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.com"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1 rua=mailto:a@b.example", domain="example.com"),
        (
            "tlsrpt-syntax",
            "expected ';' after 'v=TLSRPTv1', found ' rua=mailto:a@b.exam': 'v=TLSRPTv1 rua=mailto:a@b.example'",
            "RFC 8460 §3",
            '_smtp._tls.example.com. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.com"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; rua=", domain="example.com"),
        (
            "tlsrpt-rua-invalid",
            "rua='' has an empty URI (a stray ',' or nothing after 'rua=')",
            "RFC 8460 §3",
            '_smtp._tls.example.com. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.com"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record(
            "v=TLSRPTv1; rua=mailto:a@b.example; e x=1", domain="example.com"
        ),
        (
            "tlsrpt-extension-invalid",
            "field e x='1' is invalid: names are 1-32 letters, digits, '_', '-', '.'; values are visible ASCII without '=', ';' or spaces",
            "RFC 8460 §3",
            '_smtp._tls.example.com. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.com"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record("v=TLSRPTv1; RUA=mailto:a@b.example", domain="example.com"),
        (
            "tlsrpt-rua-missing",
            "the record has no rua=<mailto: or https: URI> field (found 'RUA': field names are case-sensitive)",
            "RFC 8460 §3",
            '_smtp._tls.example.com. TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.com"',
        ),
    ),
    (
        lambda: parse_tlsrpt_record(
            "v=TLSRPTv1; rua=mailto:a@b.example; rua=https://r.example/x", domain="example.com"
        ),
        (
            "tlsrpt-rua-duplicate",
            "the record has 2 rua fields; put all URIs in one, comma-separated",
            "RFC 8460 §3",
            '_smtp._tls.example.com. TXT "v=TLSRPTv1; rua=mailto:a@b.example,https://r.example/x"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1; ID=z; id=a; e x=1", domain="example.com"),
        (
            "record-extension-invalid",
            "field e x='1' is invalid: names are 1-32 letters, digits, '_', '-', '.'; values are visible ASCII without '=', ';' or spaces",
            "RFC 8461 §3.1",
            '_mta-sts.example.com. TXT "v=STSv1; id=a"',
        ),
    ),
    (
        lambda: select_sts_record(["v=STSv1X; id=1", "other"]),
        (
            "record-version",
            "'v=STSv1X; id=1': 'v=STSv1' must be followed directly by ';' and the fields; senders ignore it and see no policy",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=1"',
        ),
    ),
    (
        lambda: parse_sts_record("v=STSv1; id=" + "a" * 31 + "-"),
        (
            "record-id-invalid",
            "id='aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-' is invalid: it contains '-'; the id must be 1-32 letters or digits (A-Z, a-z, 0-9), no dashes, dots or spaces",
            "RFC 8461 §3.1",
            '_mta-sts.<domain>. TXT "v=STSv1; id=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"',
        ),
    ),
]

# (code, message, rfc) of the notes of what each call accepts
NOTES: list[tuple[Callable[[], Any], list[tuple[str, str, str]]]] = [
    (
        lambda: select_sts_record(["v=STSv1 ; id=1"]).notes,
        [
            (
                "record-space-before-delimiter",
                "'v=STSv1 ; id=1' has whitespace before the first ';'. The grammar allows it (*WSP \";\" *WSP) and a lone record is judged by the grammar, but literal-minded senders look for 'v=STSv1;' and may drop it; write 'v=STSv1;' with no space.",
                "RFC 8461 §3.1",
            )
        ],
    ),
    (
        lambda: select_tlsrpt_record(["v=TLSRPTv1 ;rua=mailto:a@b.example"]).notes,
        [
            (
                "tlsrpt-space-before-delimiter",
                "'v=TLSRPTv1 ;rua=mailto:a@b.example' has whitespace before the first ';'. The grammar allows it (*WSP \";\" *WSP) and a lone record is judged by the grammar, but literal-minded senders look for 'v=TLSRPTv1;' and may drop it; write 'v=TLSRPTv1;' with no space.",
                "RFC 8460 §3",
            )
        ],
    ),
    (
        lambda: parse_policy("version: STSv1\nmode: testing\nmx: 192.0.2.1\nmax_age: 1").notes,
        [
            (
                "policy-lf-endings",
                "lines end with LF only; the ABNF allows it, the text says CRLF (erratum 6253): CRLF is the safe choice",
                "RFC 8461 §3.2",
            ),
            (
                "policy-mx-ip-address",
                "line 3: '192.0.2.1' looks like an IP address, but MX records name hosts, never addresses (RFC 5321 §5.1): this line covers no MX host",
                "RFC 8461 §3.2",
            ),
        ],
    ),
    (
        lambda: (
            parse_policy(
                "version: STSv1\nmode: testing\nmx: 192.0.2.1\nmx: mx_1.example.\nmax_age: 1\n\nmode: enforce\nx: y\nz:\nw: a\x01b\nx: again"
            ).notes
        ),
        [
            (
                "policy-lf-endings",
                "lines end with LF only; the ABNF allows it, the text says CRLF (erratum 6253): CRLF is the safe choice",
                "RFC 8461 §3.2",
            ),
            (
                "policy-mx-ip-address",
                "line 3: '192.0.2.1' looks like an IP address, but MX records name hosts, never addresses (RFC 5321 §5.1): this line covers no MX host",
                "RFC 8461 §3.2",
            ),
            (
                "policy-mx-underscore",
                "line 4: 'mx_1.example.' has an underscore, which host names may not contain (RFC 5321 §4.1.2): senders that compare names as text match it to an MX host of exactly that name, senders that validate names match nothing with it",
                "RFC 8461 §3.2",
            ),
            (
                "policy-mx-trailing-dot",
                "line 4: 'mx: mx_1.example.' ends with a dot; it is ignored when matching",
                "RFC 8461 §4.1",
            ),
            ("policy-blank-line", "line 6 is blank", "RFC 8461 §3.2"),
            (
                "policy-duplicate-key",
                "line 7: 'mode' repeats; the first occurrence is used",
                "RFC 8461 §3.2",
            ),
            ("policy-unknown-key", "line 8: unknown key 'x' ignored", "RFC 8461 §3.2"),
            (
                "policy-extension-invalid",
                "line 9: unknown key 'z' has an empty value or control characters; ignored",
                "RFC 8461 §3.2",
            ),
            (
                "policy-extension-invalid",
                "line 10: unknown key 'w' has an empty value or control characters; ignored",
                "RFC 8461 §3.2",
            ),
            (
                "policy-duplicate-key",
                "line 11: 'x' repeats; the first occurrence is used",
                "RFC 8461 §3.2",
            ),
        ],
    ),
]


def raised(make: Callable[[], object]) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        make()
    return info.value


@pytest.mark.parametrize(("make", "expected"), ERRORS)
def test_errors_say_exactly_what_is_wrong_and_how_to_fix_it(
    make: Callable[[], object], expected: tuple[str, str, str, str | None]
) -> None:
    error = raised(make)
    assert (error.code, error.message, error.rfc, error.fix) == expected


@pytest.mark.parametrize(("make", "expected"), NOTES)
def test_notes_say_exactly_what_was_accepted(
    make: Callable[[], Any], expected: list[tuple[str, str, str]]
) -> None:
    assert [(n.code, n.message, n.rfc) for n in make()] == expected


def spanish_texts() -> list[tuple[str, Text]]:
    """Every Text of the tables above: messages, fixes and the reasons inside them."""
    found: list[tuple[str, Text]] = []

    def add(where: str, value: object) -> None:
        if isinstance(value, Text):
            found.append((where, value))
            for name, field in value.fields.items():
                add(f"{where}.{name}", field)

    for make, _ in ERRORS:
        error = raised(make)
        add(error.code, error.message)
        add(f"{error.code} fix", error.fix)
    for make, _ in NOTES:
        for note in make():
            add(note.code, note.message)
    return found


def test_every_message_is_said_in_spanish() -> None:
    texts = spanish_texts()
    assert len(texts) > len(ERRORS)  # the tables above, and the reasons inside them
    with i18n.use("es"):
        untranslated = [(where, str(t)) for where, t in texts if i18n.say(t) == str(t)]
    assert untranslated == []


def test_an_invalid_u_label_host_says_why() -> None:
    # RFC 8461 §4.1: U-labels are compared as their A-labels, which this one has none of.
    name = "a\u200d.example"
    with pytest.raises(idna.IDNAError) as idna_error:
        idna.encode(name, uts46=True)
    error = raised(lambda: to_alabel(name))
    assert (error.code, error.message, error.rfc, error.fix) == (
        "mx-invalid",
        f"{name!r} is not a valid host name: {idna_error.value}",
        "RFC 8461 §4.1",
        None,
    )


def test_a_u_label_mx_pattern_offers_its_a_label() -> None:
    # RFC 8461 §3.2: IDNs in mx patterns MUST be A-labels.
    error = raised(lambda: validate_mx_pattern("bücher.example"))
    assert (error.code, error.fix) == ("mx-ulabel", "mx: xn--bcher-kva.example")


UNDERSCORE = (
    "has an underscore, which host names may not contain (RFC 5321 §4.1.2): senders that "
    "compare names as text match it to an MX host of exactly that name, senders that "
    "validate names match nothing with it"
)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (
            "m_x.example.com",
            ("m_x.example.com", "mx-underscore", f"'m_x.example.com' {UNDERSCORE}"),
        ),
        (
            "*.M_x.example.com.",
            ("*.m_x.example.com", "mx-underscore", f"'*.M_x.example.com.' {UNDERSCORE}"),
        ),
        (
            "192.0.2.1.",
            (
                "192.0.2.1",
                "mx-ip-address",
                "'192.0.2.1.' looks like an IP address, but MX records name hosts, never "
                "addresses (RFC 5321 §5.1): this line covers no MX host",
            ),
        ),
        ("mx.example.com", None),  # a valid pattern: nothing for senders to forgive
        ("1.2.3.04", None),  # not a dotted IPv4 address
        ("*.*_x.example", None),  # '*' inside: not a Domain at all
    ],
)
def test_patterns_senders_accept(pattern: str, expected: tuple[str, str, str] | None) -> None:
    # RFC 8461 §3.2: ["*."] Domain; a dotted IPv4 address or a name with '_' is such a
    # Domain for senders, yet covers no MX host (or only for senders comparing text).
    assert sender_accepted_pattern(pattern) == expected


def test_mailto_header_fields_are_not_the_address() -> None:
    # RFC 8460 §3 takes mailto: URIs (RFC 6068): the address is before "?", the header
    # fields after it may hold anything, an "@" too.
    uri = "mailto:tlsrpt@example.com?subject=report@"
    assert parse_tlsrpt_record(f"v=TLSRPTv1; rua={uri}").rua == (uri,)


def test_a_message_keeps_its_template_and_fields_through_pickling() -> None:
    # `check --jobs` workers send their findings back pickled: the reader's language is
    # applied afterwards, so the template and fields must survive.
    text = Text("line {line}: {reason}", line=3, reason=Text("it is empty"))
    again = pickle.loads(pickle.dumps(text))
    assert isinstance(again, Text)
    assert (again, again.template, again.fields) == (text, text.template, text.fields)
    with i18n.use("es"):
        assert i18n.say(again) == i18n.say(text) != str(text)


def test_an_error_shows_its_code_and_section() -> None:
    error = RecordError("record-missing", "no record", "RFC 8461 §3.1")
    assert repr(error) == "RecordError('record-missing', 'no record', rfc='RFC 8461 §3.1')"
