"""A claim's challenge, checked against the lab DNS: what a claimant publishes, what the
check says it found, and what it asks for (tests/hosting/test_claims_lab.py goes through
the whole claim; these look at each answer of ``check_challenge`` itself)."""

from __future__ import annotations

import asyncio
import base64

import pytest
from tests.lab import DnsServer

from mtasts.config import Settings
from mtasts.hosting.claims import (
    CHALLENGE_LABEL,
    CHALLENGE_PREFIX,
    TOKEN_BYTES,
    challenge_record,
    check_challenge,
    claim_records,
    new_challenge,
    verify_claim,
)
from mtasts.hosting.delegation import RecordCheck
from mtasts.i18n import set_language
from mtasts.net.dns import Resolver

pytestmark = pytest.mark.lab

TOKEN = "a" * 32


def _check(lab_dns: DnsServer, domain: str, token: str = TOKEN) -> RecordCheck:
    resolver = Resolver([lab_dns.address], timeout=3.0)
    return asyncio.run(check_challenge(resolver, domain, token))


def test_the_challenge_record_names_the_claim_s_token() -> None:
    r = challenge_record("claim.example", TOKEN)
    assert (r.name, r.type, r.value) == (
        "_mtasts-challenge.claim.example",
        "TXT",
        f"mtasts-claim={TOKEN}",
    )
    assert (CHALLENGE_LABEL, CHALLENGE_PREFIX) == ("_mtasts-challenge", "mtasts-claim=")
    assert r.zone_line == f'_mtasts-challenge.claim.example. 3600 IN TXT "mtasts-claim={TOKEN}"'
    assert r.purpose == (
        "proves that this account controls the domain (needed to verify, and again to take "
        "the domain over from another account); you may delete it once the domain is active"
    )
    set_language("es")
    try:
        assert challenge_record("claim.example", TOKEN).purpose.startswith("demuestra")
    finally:
        set_language("en")


def test_tokens_are_160_random_bits_in_lower_case_base32() -> None:
    tokens = {new_challenge() for _ in range(50)}
    assert len(tokens) == 50
    for t in tokens:
        assert len(t) == 32 and t == t.lower() and t.isalnum()
        assert len(base64.b32decode(t.upper())) == TOKEN_BYTES == 20


def test_claim_records_are_the_delegation_and_the_challenge() -> None:
    records = claim_records(Settings(zone="sts.lab.test"), "claim.example", TOKEN)
    assert [(r.name, r.type) for r in records] == [
        ("_mta-sts.claim.example", "CNAME"),
        ("mta-sts.claim.example", "CNAME"),
        ("_smtp._tls.claim.example", "CNAME"),
        ("_mtasts-challenge.claim.example", "TXT"),
    ]


def test_the_claim_s_own_token_among_others_proves_it(lab_dns: DnsServer) -> None:
    domain = "own-token.challenge.lab.test"
    name = f"_mtasts-challenge.{domain}"
    lab_dns.zone.add(name, "TXT", f"mtasts-claim={'b' * 32}")
    lab_dns.zone.add(name, "TXT", f'" mtasts-claim={TOKEN} "')  # spaces around: still it
    check = _check(lab_dns, domain)
    assert check.ok and not check.temporary
    assert (check.found, check.problem, check.fix) == ("TXT with this claim's token", "", "")
    assert check.record == challenge_record(domain, TOKEN)


def test_other_tokens_are_counted_not_shown(lab_dns: DnsServer) -> None:
    domain = "other-tokens.challenge.lab.test"
    name = f"_mtasts-challenge.{domain}"
    lab_dns.zone.add(name, "TXT", f"mtasts-claim={'c' * 32}")
    one = _check(lab_dns, domain)
    assert one.ok is False and one.temporary is False
    assert one.found == "1 other TXT value"
    assert one.problem == f"{name} has no TXT record with this claim's token."
    assert one.fix == f'Publish: {name}. 3600 IN TXT "mtasts-claim={TOKEN}"'
    lab_dns.zone.add(name, "TXT", f"mtasts-claim={'d' * 32}")
    two = _check(lab_dns, domain)
    assert two.found == "2 other TXT values" and "c" * 32 not in str(two)
    # the token must be the whole value, not part of it
    lab_dns.zone.add(name, "TXT", f"mtasts-claim={TOKEN}x")
    assert _check(lab_dns, domain).found == "3 other TXT values"


def test_nothing_published_asks_for_the_record(lab_dns: DnsServer) -> None:
    domain = "nothing.challenge.lab.test"
    lab_dns.zone.add(f"mta-sts.{domain}", "A", "192.0.2.1")  # the domain exists: NODATA
    for d in (domain, "absent.challenge.lab.test"):  # and NXDOMAIN
        check = _check(lab_dns, d)
        assert check.ok is False and check.temporary is False
        assert check.found == "nothing"
        assert check.problem == f"_mtasts-challenge.{d} has no TXT record with this claim's token."
        assert check.fix.startswith(f"Publish: _mtasts-challenge.{d}. 3600 IN TXT")


@pytest.mark.parametrize("fault", ["servfail", "refuse"])
def test_a_failed_lookup_is_temporary(lab_dns: DnsServer, fault: str) -> None:
    domain = f"{fault}.challenge.lab.test"
    name = f"_mtasts-challenge.{domain}"
    lab_dns.zone.add(name, "TXT", f"mtasts-claim={TOKEN}")
    getattr(lab_dns, fault)(name)
    try:
        check = _check(lab_dns, domain)
    finally:
        lab_dns.heal(name)
    assert not check.ok and check.temporary
    assert check.found.startswith("lookup failed (")
    assert _check(lab_dns, domain).ok


def test_verify_claim_checks_the_delegation_and_the_challenge(lab_dns: DnsServer) -> None:
    domain = "verify.challenge.lab.test"
    settings = Settings(zone="sts.lab.test")
    resolver = Resolver([lab_dns.address], timeout=3.0)
    v = asyncio.run(verify_claim(resolver, settings, domain, TOKEN))
    assert v.domain == domain and not v.ok
    assert [c.record.type for c in v.checks] == ["CNAME", "CNAME", "CNAME", "TXT"]
    for r in claim_records(settings, domain, TOKEN):
        value = r.value if r.type == "TXT" else r.value + "."
        lab_dns.zone.add(r.name, r.type, value)
    v = asyncio.run(verify_claim(resolver, settings, domain, TOKEN))
    assert v.ok, [c.problem for c in v.checks]
    other = asyncio.run(verify_claim(resolver, settings, domain, "e" * 32))
    assert not other.ok and [c.ok for c in other.checks] == [True, True, True, False]
