"""Checks that a customer published the three CNAMEs that delegate MTA-STS to us."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

from mtasts.config import Settings
from mtasts.i18n import N_, _
from mtasts.net.dns import DnsStatus, Resolver


@dataclass(frozen=True)
class DnsRecord:
    """A record the owner publishes in their zone."""

    name: str
    type: str
    value: str
    purpose: str

    @property
    def zone_line(self) -> str:
        if self.type == "TXT":
            return f'{self.name}. 3600 IN TXT "{self.value}"'
        return f"{self.name}. 3600 IN {self.type} {self.value}."

    def to_dict(self) -> dict[str, str]:
        return {**asdict(self), "zone_line": self.zone_line}


def delegation_records(settings: Settings, domain: str) -> list[DnsRecord]:
    """The CNAMEs of the delegation layout (design.md): none of the targets carries an
    underscore, since some DNS hosts reject those in CNAME targets."""
    z = settings.zone_name
    return [
        DnsRecord(
            f"_mta-sts.{domain}",
            "CNAME",
            f"{domain}.policy.{z}",
            _("the MTA-STS TXT record with the current policy id (RFC 8461 §3.1)"),
        ),
        DnsRecord(
            f"mta-sts.{domain}",
            "CNAME",
            settings.policy_host,
            _("the HTTPS host that serves the policy file (RFC 8461 §3.3)"),
        ),
        DnsRecord(
            f"_smtp._tls.{domain}",
            "CNAME",
            f"{domain}.tlsrpt.{z}",
            _("the TLS-RPT record telling senders where to send reports (RFC 8460 §3)"),
        ),
    ]


@dataclass(frozen=True)
class RecordCheck:
    record: DnsRecord
    ok: bool
    found: str  # what DNS holds there now, in words
    problem: str  # "" when ok
    fix: str  # "" when ok
    temporary: bool = False  # the lookup failed (a DNS failure, not a wrong record)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.record.name,
            "type": self.record.type,
            "expected": self.record.value,
            "ok": self.ok,
            "found": self.found,
            "problem": self.problem,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Verification:
    domain: str
    checks: tuple[RecordCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def temporary(self) -> bool:
        """A DNS failure, not a wrong record: try again later."""
        return any(c.temporary for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """As the API shows it: each record's check and a one-line summary."""
        missing = [c.record.name for c in self.checks if not c.ok]
        summary = (
            _(_ALL_IN_PLACE.get(len(self.checks), _ALL_N_IN_PLACE)).format(count=len(self.checks))
            if not missing
            else _("Still missing or wrong: {names}.").format(names=", ".join(missing))
        )
        return {
            "domain": self.domain,
            "ok": not missing,
            "summary": summary,
            "records": [c.to_dict() for c in self.checks],
        }


# the delegation CNAMEs, and a claim's challenge with them
_ALL_IN_PLACE = {
    3: N_("All three records are in place."),
    4: N_("All four records are in place."),
}
_ALL_N_IN_PLACE = N_("All {count} records are in place.")


def lookup_failed(record: DnsRecord, status: DnsStatus) -> RecordCheck:
    """A lookup of ``record`` that failed: a temporary state, verify again later."""
    return RecordCheck(
        record,
        False,
        _("lookup failed ({status})").format(status=status),  # not the resolver's detail
        _(
            "The {type} lookup of {name} failed; the domain's name servers did not answer properly."
        ).format(type=record.type, name=record.name),
        _("Make sure every authoritative name server of the domain answers, then verify again."),
        temporary=True,
    )


async def _check_one(resolver: Resolver, record: DnsRecord) -> RecordCheck:
    answer = await resolver.cname(record.name)
    paste = _("Publish: {line}").format(line=record.zone_line)
    if answer.status is DnsStatus.OK:
        target = answer.records[0].rstrip(".").lower() if answer.records else ""
        if target == record.value:
            return RecordCheck(record, True, f"CNAME {target}", "", "")
        return RecordCheck(
            record,
            False,
            f"CNAME {target}",
            _("{name} points to {target}, not to {expected}.").format(
                name=record.name, target=target, expected=record.value
            ),
            _("Replace the CNAME with: {line}").format(line=record.zone_line),
        )
    if answer.status.temporary or answer.status is DnsStatus.ERROR:
        return lookup_failed(record, answer.status)
    # NXDOMAIN or NODATA: nothing there, or other types (a TXT or A where the CNAME belongs)
    if answer.status is DnsStatus.NODATA:
        others = await _other_records(resolver, record.name)
        if others:
            return RecordCheck(
                record,
                False,
                "; ".join(others),
                _(
                    "{name} has {types} records instead of the CNAME; a name with a CNAME can "
                    "hold no other record (RFC 1034 §3.6.2)."
                ).format(name=record.name, types=", ".join(o.split()[0] for o in others)),
                _("Delete the records at {name}, then publish: {line}").format(
                    name=record.name, line=record.zone_line
                ),
            )
    return RecordCheck(
        record,
        False,
        _("nothing"),
        _("{name} has no CNAME record.").format(name=record.name),
        paste,
    )


async def _other_records(resolver: Resolver, name: str) -> list[str]:
    found = []
    for rdtype in ("TXT", "A", "AAAA"):
        answer = await resolver.query(name, rdtype)
        found += [f"{rdtype} {r}" for r in answer.records]
    return found


async def verify_delegation(resolver: Resolver, settings: Settings, domain: str) -> Verification:
    """Resolve the three names and say, per record, what is missing or wrong."""
    records = delegation_records(settings, domain)
    checks = await asyncio.gather(*(_check_one(resolver, r) for r in records))
    return Verification(domain, tuple(checks))
