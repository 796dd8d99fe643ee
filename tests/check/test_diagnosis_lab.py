"""The diagnosis against the loopback lab: every cause of NONE and FETCH_ERROR, every per-MX
problem, and healthy domains. Real DNS, HTTPS and SMTP servers; nothing of ours is mocked."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from tests.lab import World
from tests.lab.httpsserver import Site
from tests.lab.require import require
from tests.lab.smtpserver import TLS11_AVAILABLE

from mtasts.check.checker import Checker, CheckOptions
from mtasts.check.findings import Severity, StsFetchResult
from mtasts.check.result import CheckResult
from mtasts.net.dns import Resolver

NONE, FETCH_ERROR, VALID = StsFetchResult.NONE, StsFetchResult.FETCH_ERROR, StsFetchResult.VALID
CRLF = "\r\n"


def policy_text(*lines: str) -> str:
    return CRLF.join(lines) + CRLF


OTHER_MX_ENFORCE = policy_text(
    "version: STSv1", "mode: enforce", "mx: other.test", "max_age: 86400"
)
OTHER_MX_TESTING = policy_text(
    "version: STSv1", "mode: testing", "mx: other.test", "max_age: 86400"
)


@dataclass(frozen=True)
class Case:
    name: str
    verdict: StsFetchResult
    codes: tuple[str, ...]  # must all appear
    options: dict[str, Any]
    ok: bool | None = None  # None: don't care; True: no error finding at all


def _site(**kw: Any) -> Site:
    return Site(**kw)


CASES = [
    # --- healthy -----------------------------------------------------------------------
    Case("healthy-enforce", VALID, (), {"mx_count": 2}, ok=True),
    Case("healthy-testing", VALID, ("policy-mode-testing",), {"mode": "testing"}, ok=True),
    # --- NONE ----------------------------------------------------------------------------
    Case("no-record", NONE, ("sts-record-missing",), {"record": None, "policy": None}),
    Case("record-without-policy-host", NONE, ("sts-record-missing",), {"record": None}),
    Case("two-records", NONE, ("sts-record-multiple",), {"record": "v=STSv1; id=1"}),
    Case("not-sts", NONE, ("sts-record-missing",), {"record": "hello world"}),
    Case("id-dashes", NONE, ("sts-record-id-invalid",), {"record": "v=STSv1; id=2024-01-01"}),
    Case("bad-syntax", NONE, ("sts-record-syntax",), {"record": "v=STSv1; id=1; garbage"}),
    Case("lowercase-version", NONE, ("sts-record-version",), {"record": "v=stsv1; id=1"}),
    # --- FETCH_ERROR ---------------------------------------------------------------------
    Case("policy-host-down", FETCH_ERROR, ("policy-fetch-connect-failed",), {"https": "down"}),
    Case(
        "cert-expired", FETCH_ERROR, ("policy-fetch-tls-certificate-expired",), {"https": "expired"}
    ),
    Case(
        "cert-untrusted",
        FETCH_ERROR,
        ("policy-fetch-tls-certificate-untrusted",),
        {"https": "untrusted"},
    ),
    Case(
        "cert-wrong-name",
        FETCH_ERROR,
        ("policy-fetch-tls-certificate-host-mismatch",),
        {"https": "wrong-name"},
    ),
    Case(
        "redirect",
        FETCH_ERROR,
        ("policy-fetch-http-redirect",),
        {"https": _site(status=301, location="https://example.com/", body=b"")},
    ),
    Case("http-404", FETCH_ERROR, ("policy-fetch-http-status",), {"https": _site(status=404)}),
    Case(
        "content-type",
        FETCH_ERROR,
        ("policy-fetch-content-type",),
        {"https": _site(body=b"version: STSv1\r\n", content_type="text/html")},
    ),
    Case(
        "too-large",
        FETCH_ERROR,
        ("policy-fetch-too-large",),
        {"https": _site(body=b"version: STSv1\r\n" + b"x" * 70_000)},
    ),
    Case(
        "bad-mode",
        FETCH_ERROR,
        ("policy-mode-invalid",),
        {"policy": policy_text("version: STSv1", "mode: Enforce", "mx: mx1.x", "max_age: 86400")},
    ),
    Case(
        "missing-mx",
        FETCH_ERROR,
        ("policy-mx-missing",),
        {"policy": policy_text("version: STSv1", "mode: enforce", "max_age: 86400")},
    ),
    Case(
        "bom",
        FETCH_ERROR,
        ("policy-bom",),
        {"policy": "\ufeff" + policy_text("version: STSv1", "mode: none", "max_age: 86400")},
    ),
    Case(
        "ip-literal",
        FETCH_ERROR,
        ("policy-mx-ip-literal",),
        {"policy": policy_text("version: STSv1", "mode: enforce", "mx: [192.0.2.1]", "max_age: 1")},
    ),
    Case(
        "max-age-too-big",
        FETCH_ERROR,
        ("policy-max-age-invalid",),
        {"policy": policy_text("version: STSv1", "mode: none", "max_age: 99999999999")},
    ),
    # --- VALID with problems -------------------------------------------------------------
    Case(
        "no-starttls",
        VALID,
        ("mx-starttls-missing", "policy-cannot-enforce"),
        {"mx_profile": "no-starttls"},
        ok=False,
    ),
    Case("mx-cert-expired", VALID, ("mx-certificate-expired",), {"mx_profile": "expired"}),
    Case("mx-untrusted", VALID, ("mx-certificate-untrusted",), {"mx_profile": "untrusted"}),
    Case("mx-self-signed", VALID, ("mx-certificate-untrusted",), {"mx_profile": "self-signed"}),
    Case(
        "mx-wrong-name",
        VALID,
        ("mx-certificate-host-mismatch",),
        {"mx_profile": "wrong-name"},
        ok=False,
    ),
    Case("mx-starttls-454", VALID, ("mx-starttls-missing",), {"mx_profile": "starttls-454"}),
    Case("mx-down", VALID, ("mx-unreachable",), {"mx_profile": "down"}),
    Case(
        "uncovered-enforce",
        VALID,
        ("mx-not-covered", "policy-mx-unused"),
        {
            "policy": policy_text(
                "version: STSv1", "mode: enforce", "mx: other.test", "max_age: 86400"
            )
        },
        ok=False,
    ),
    Case(
        "uncovered-testing",
        VALID,
        ("mx-not-covered", "policy-mode-testing"),
        {
            "policy": policy_text(
                "version: STSv1", "mode: testing", "mx: other.test", "max_age: 86400"
            )
        },
        ok=True,
    ),
    Case("short-max-age", VALID, ("policy-max-age-short",), {"max_age": 3600}, ok=True),
    Case("no-tlsrpt", VALID, ("tlsrpt-missing",), {"tlsrpt": None}, ok=True),
    Case("mx-tls11", VALID, ("mx-tls-version-too-old",), {"mx_profile": "tls11"}),
    # --- what senders accept although it is unusual (issue 9) -----------------------------
    Case(
        # RFC 8461 §3.2: a dotted IPv4 address is a valid RFC 5321 Domain: the policy is
        # valid, the line covers no MX host.
        "ip-looking-mx",
        VALID,
        ("policy-mx-ip-address",),
        {
            "policy": policy_text(
                "version: STSv1",
                "mode: testing",
                "mx: mx1.ip-looking-mx.diag.test",
                "mx: 192.0.2.1",
                "max_age: 86400",
            )
        },
        ok=True,
    ),
    Case(
        "space-before-delimiter",
        VALID,
        ("record-space-before-delimiter",),
        {"record": "v=STSv1 ; id=1", "tlsrpt": "v=TLSRPTv1 ;rua=mailto:a@diag.test"},
        ok=True,
    ),
    Case("quoted-record", NONE, ("sts-record-quoted",), {"record": '"\\"v=STSv1; id=1\\""'}),
    # RFC 8460 §3: published but unusable is an error; missing stays a warning (no-tlsrpt).
    Case("tlsrpt-no-rua", VALID, ("tlsrpt-rua-missing",), {"tlsrpt": "v=TLSRPTv1;"}, ok=False),
    Case(
        "tlsrpt-scheme",
        VALID,
        ("tlsrpt-rua-scheme",),
        {"tlsrpt": "v=TLSRPTv1; rua=ftp://x.example"},
        ok=False,
    ),
    Case(
        "tlsrpt-quoted",
        VALID,
        ("tlsrpt-quoted",),
        {"tlsrpt": '"\\"v=TLSRPTv1; rua=mailto:a@diag.test\\""'},
        ok=False,
    ),
]


def _check(world: World, domain: str) -> CheckResult:
    resolver = Resolver([world.nameserver], timeout=20.0)  # generous: load
    options = CheckOptions(
        ca_file=world.ca_file,
        timeout=20.0,
        https_port=world.https_port,
        smtp_port=world.smtp_port,
    )
    return asyncio.run(Checker(resolver, options).check(domain))


def _publish(world: World, case: Case) -> str:
    domain = f"{case.name}.diag.test"
    world.add_domain(domain, **case.options)
    if case.name == "two-records":
        world.zone.add(f"_mta-sts.{domain}", "TXT", "v=STSv1; id=2")
    return domain


@pytest.mark.lab
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_diagnosis(lab_world: World, case: Case) -> None:
    if case.name == "mx-tls11":
        require(TLS11_AVAILABLE, "the local OpenSSL cannot negotiate TLS 1.1 (@SECLEVEL=0)")
    result = _check(lab_world, _publish(lab_world, case))
    codes = [f.code for f in result.findings]
    assert result.sts_fetch_result is case.verdict, codes
    for code in case.codes:
        assert code in codes, (code, codes)
    if case.ok is not None:
        errors = [f.code for f in result.findings if f.severity is Severity.ERROR]
        assert result.ok is case.ok, errors
    for f in result.findings:
        assert f.message and f.rfc
        if f.severity is Severity.ERROR and f.code not in ("mx-unreachable",):
            assert f.fix, f.code


@pytest.mark.lab
def test_mx_hosts_are_probed_while_the_policy_is_fetched(lab_world: World) -> None:
    """The policy host answers only once the MX host has been greeted by this check: a
    checker that probed the MX hosts after the fetch would wait out its fetch timeout and
    find the policy unreachable."""
    domain, ehlo = "meanwhile.diag.test", "meanwhile-probe.diag.test"
    smtp = lab_world.smtp["good"]
    policy = policy_text("version: STSv1", "mode: enforce", f"mx: mx1.{domain}", "max_age: 86400")
    held = Site(body=policy.encode(), until=lambda: ehlo in smtp.stats.ehlo_names)
    lab_world.add_domain(domain, https=held)
    options = CheckOptions(
        ca_file=lab_world.ca_file,
        timeout=20.0,  # generous: load
        https_port=lab_world.https_port,
        smtp_port=lab_world.smtp_port,
        ehlo_name=ehlo,
    )
    checker = Checker(Resolver([lab_world.nameserver], timeout=20.0), options)
    result = asyncio.run(checker.check(domain))
    assert result.sts_fetch_result is VALID, [f.code for f in result.findings]
    assert result.ok, [f.code for f in result.findings]
    [host] = result.mx_hosts
    assert host.matches_policy is True and host.matched_pattern == f"mx1.{domain}"
    assert [(p.error_code, p.hostname_match) for p in host.probes] == [(None, True)]


@pytest.mark.lab
def test_an_mx_host_that_does_not_exist_is_said_so_although_its_a_lookup_fails(
    lab_world: World,
) -> None:
    """The A look-up fails, the AAAA look-up says the name does not exist: the finding gives
    the more telling outcome, NXDOMAIN (as the policy fetch does)."""
    domain = "gone-mx.diag.test"
    mx = f"mx1.{domain}"
    lab_world.add_domain(domain)
    lab_world.zone.remove(mx)
    lab_world.dns.servfail(mx, "A")
    try:
        result = _check(lab_world, domain)
    finally:
        lab_world.dns.heal(mx)
    [finding] = [f for f in result.findings if f.code == "mx-no-address"]
    assert finding.message == (
        f"MX {mx} has no A or AAAA record (NXDOMAIN); mail cannot be delivered to it."
    )


@pytest.mark.lab
def test_servfail_on_txt_is_fetch_error(lab_world: World) -> None:
    domain = "servfail.diag.test"
    lab_world.add_domain(domain)
    lab_world.dns.servfail(f"_mta-sts.{domain}")
    try:
        result = _check(lab_world, domain)
    finally:
        lab_world.dns.heal(f"_mta-sts.{domain}")
    assert result.sts_fetch_result is FETCH_ERROR
    assert "sts-record-dns-failure" in [f.code for f in result.findings]


@pytest.mark.lab
def test_valid_result_json_shape(lab_world: World) -> None:
    lab_world.add_domain("shape.diag.test", mx_count=2)
    data = _check(lab_world, "shape.diag.test").to_dict()
    assert data["sts_fetch_result"] == "VALID"
    assert data["record"]["id"] == "20240601T000000"
    assert data["policy"]["mode"] == "enforce"
    assert data["policy"]["mx"] == ["mx1.shape.diag.test", "mx2.shape.diag.test"]
    assert [h["hostname"] for h in data["mx_hosts"]] == [
        "mx1.shape.diag.test",
        "mx2.shape.diag.test",
    ]
    address = data["mx_hosts"][0]["addresses"][0]
    assert address["starttls"] is True
    assert address["tls_version"] in ("TLSv1.2", "TLSv1.3")
    cert = address["certificate"]
    assert cert["trusted"] is True and cert["hostname_match"] is True
    assert "mx1.shape.diag.test" in cert["subject_alt_names"]
    assert cert["days_left"] > 21
    assert data["tlsrpt"]["rua"] == ["mailto:tlsrpt@shape.diag.test"]


@pytest.mark.lab
def test_expiring_mx_certificate_warns(lab_world: World) -> None:
    from datetime import UTC, datetime, timedelta

    domain = "expiring.diag.test"
    lab_world.add_domain(domain)
    resolver = Resolver([lab_world.nameserver], timeout=20.0)  # generous: load
    options = CheckOptions(
        ca_file=lab_world.ca_file,
        timeout=20.0,
        https_port=lab_world.https_port,
        smtp_port=lab_world.smtp_port,
    )
    # The clock is injectable: seen from 5 days before expiry, the lab's certificates expire
    # soon, while OpenSSL (on the real clock) still accepts them.
    now = datetime.now(UTC)
    result = asyncio.run(Checker(resolver, options).check(domain))
    leaf = result.mx_hosts[0].probes[0].certificate
    assert leaf is not None
    later = leaf.not_after - timedelta(days=5)
    assert later > now
    result = asyncio.run(Checker(resolver, options, clock=lambda: later).check(domain))
    codes = [f.code for f in result.findings]
    assert "mx-certificate-expiring" in codes and "policy-certificate-expiring" in codes


@pytest.mark.lab
def test_nonexistent_domain_gives_one_clear_finding(lab_world: World) -> None:
    result = _check(lab_world, "does-not-exist.diag.test")
    assert result.sts_fetch_result is NONE
    assert [f.code for f in result.findings] == ["domain-nxdomain"]
