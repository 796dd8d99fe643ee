from datetime import UTC, datetime

from mtasts import generate
from mtasts.protocol.policy import Mode, parse_policy
from mtasts.protocol.record import parse_sts_record
from mtasts.protocol.tlsrpt import parse_tlsrpt_record

NOW = datetime(2026, 11, 28, 17, 46, 3, tzinfo=UTC)


def _txt_value(zone_line: str) -> str:
    return zone_line.split(" TXT ", 1)[1].strip('"')


def test_policy_from_mx_dedupes_and_normalises() -> None:
    policy = generate.policy_from_mx(["MX1.Example.com.", "mx2.example.com", "mx1.example.com"])
    assert policy.mx == ("mx1.example.com", "mx2.example.com")
    assert policy.mode is Mode.TESTING
    assert policy.max_age == generate.DEFAULT_MAX_AGE


def test_publication_is_valid_for_our_own_parsers() -> None:
    pub = generate.publication(
        "example.com", ["mx1.example.com"], NOW, mode=Mode.ENFORCE, max_age=86400
    )
    assert pub.policy_id == "20261128T174603"
    record = parse_sts_record(_txt_value(pub.sts_record))
    assert record.id == pub.policy_id
    assert pub.sts_record.startswith("_mta-sts.example.com. ")
    policy = parse_policy(pub.policy.serialize().encode())
    assert policy.mode is Mode.ENFORCE and policy.mx == ("mx1.example.com",)
    assert policy.max_age == 86400
    tlsrpt = parse_tlsrpt_record(_txt_value(pub.tlsrpt_record))
    assert tlsrpt.rua == ("mailto:tlsrpt@example.com",)
    assert pub.policy_url == "https://mta-sts.example.com/.well-known/mta-sts.txt"


def test_custom_rua_kept_in_order() -> None:
    pub = generate.publication(
        "example.org", ["mx.example.org"], NOW, rua=["https://r.example/x", "mailto:a@b.example"]
    )
    assert parse_tlsrpt_record(_txt_value(pub.tlsrpt_record)).rua == (
        "https://r.example/x",
        "mailto:a@b.example",
    )


def test_snippets_serve_text_plain_without_redirect() -> None:
    nginx = generate.nginx_snippet("example.com")
    assert "server_name mta-sts.example.com;" in nginx
    assert 'default_type "text/plain; charset=utf-8";' in nginx
    assert "return 301" not in nginx and "rewrite" not in nginx
    caddy = generate.caddy_snippet("example.com")
    assert caddy.startswith("mta-sts.example.com {")
    assert 'Content-Type "text/plain; charset=utf-8"' in caddy
    assert "redir" not in caddy
