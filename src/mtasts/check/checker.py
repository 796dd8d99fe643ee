"""The diagnosis engine: checks domains the way a sending MTA does, concurrently, with
every network step bounded by a timeout."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mtasts import i18n
from mtasts.check.diagnosis import Diagnosis, mx_records
from mtasts.check.findings import Finding, Severity, sort_findings
from mtasts.check.names import normalize_domain
from mtasts.check.result import CheckResult, MxHostResult
from mtasts.net import event_loop
from mtasts.net.addresses import ProbePolicy
from mtasts.net.certs import preload_parser
from mtasts.net.dns import DnsStatus, MxAnswer, Resolver
from mtasts.net.fetch import fetch_policy
from mtasts.net.starttls import probe_mx
from mtasts.protocol.policy import Policy

log = logging.getLogger("mtasts.check")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CheckOptions:
    """How to check. Ports are options so the lab can run on unprivileged ports."""

    ca_file: str | None = None
    timeout: float = 10.0
    probe_mx: bool = True
    https_port: int = 443
    smtp_port: int = 25
    ehlo_name: str = "mtasts-check.invalid"
    # Checks a tenant triggers (hosting, monitoring): connect only to addresses this
    # allows, cap the fan-out, and show no server's words. None: unrestricted, for the
    # operator's own `mtasts check`.
    probe_policy: ProbePolicy | None = None


class Checker:
    """Checks domains with one resolver and one set of options; safe to share across tasks."""

    def __init__(
        self,
        resolver: Resolver,
        options: CheckOptions | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.resolver = resolver
        self.options = options or CheckOptions()
        self.clock = clock
        preload_parser()  # every check describes the certificates it meets

    async def check_many(
        self, domains: Sequence[str], concurrency: int = 32
    ) -> AsyncIterator[tuple[int, CheckResult]]:
        """Check ``domains`` with at most ``concurrency`` at once; yields (index, result)
        as each finishes."""
        sem = asyncio.Semaphore(max(1, concurrency))

        async def one(i: int, d: str) -> tuple[int, CheckResult]:
            async with sem:
                try:
                    return i, await self.check(d)
                except Exception as exc:  # one broken domain must not end a bulk run
                    result = CheckResult(domain=d, checked_at=self.clock())
                    result.findings.append(
                        Finding(
                            "check-internal-error",
                            Severity.ERROR,
                            d,
                            f"The check failed unexpectedly: {type(exc).__name__}: {exc}",
                            "-",
                            fix="Please report this as a bug in mtasts, with the domain.",
                        )
                    )
                    return i, result

        tasks = [asyncio.create_task(one(i, d)) for i, d in enumerate(domains)]
        try:
            for fut in asyncio.as_completed(tasks):
                yield await fut
        finally:
            for t in tasks:
                t.cancel()

    async def check_parallel(
        self, domains: Sequence[str], concurrency: int = 32, jobs: int = 1
    ) -> AsyncIterator[tuple[int, CheckResult]]:
        """Like check_many, spread over ``jobs`` worker processes (a bulk check is bound by
        the CPU cost of DNS parsing and TLS handshakes, so one process uses one core).
        Workers use the real clock."""
        if jobs <= 1 or len(domains) < 2:
            async for item in self.check_many(domains, concurrency):
                yield item
            return
        per_job = max(1, concurrency // jobs)
        indexed = list(enumerate(domains))
        batches = [indexed[i : i + per_job] for i in range(0, len(indexed), per_job)]
        import multiprocessing  # only here: a one-process run does not load it
        from concurrent.futures import ProcessPoolExecutor

        loop = asyncio.get_running_loop()
        spawn = multiprocessing.get_context("spawn")  # no fork of a process with threads
        with ProcessPoolExecutor(jobs, mp_context=spawn) as pool:
            args = (
                list(self.resolver.nameservers),
                self.resolver.timeout,
                self.options,
                i18n.current(),  # a spawned worker speaks the language of its parent
            )
            futures = [
                loop.run_in_executor(pool, _check_batch, *args, batch, per_job) for batch in batches
            ]
            for fut in asyncio.as_completed(futures):
                for item in await fut:
                    yield item

    async def check(self, domain_text: str) -> CheckResult:
        now = self.clock()
        try:
            domain = normalize_domain(domain_text)
        except ValueError as exc:
            result = CheckResult(domain=domain_text.strip(), checked_at=now)
            result.findings.append(
                Finding(
                    "domain-invalid",
                    Severity.ERROR,
                    domain_text,
                    str(exc),
                    "RFC 5890 §2.3",
                    fix="Give the mail domain (the part after @), e.g. example.com.",
                )
            )
            return result
        opts = self.options
        result = CheckResult(domain=domain, checked_at=now)
        # The MX hosts are probed while the policy is fetched: which hosts senders try does
        # not depend on the policy, only whether each one matches it.
        record_answer, fetch, (mx_answer, probed), result.tlsrpt_answer = await asyncio.gather(
            self.resolver.txt(f"_mta-sts.{domain}"),
            fetch_policy(
                domain,
                resolver=self.resolver,
                ca_file=opts.ca_file,
                timeout=opts.timeout,
                port=opts.https_port,
                probe_policy=opts.probe_policy,
            ),
            self._mx(domain),
            self.resolver.txt(f"_smtp._tls.{domain}"),
        )
        if opts.probe_policy is not None and fetch.error_code is not None:
            log.debug("policy fetch for %s: %s (%s)", domain, fetch.error_code, fetch.error)
        result.fetch = fetch.redacted() if opts.probe_policy is not None else fetch
        result.record_answer, result.mx_answer = record_answer, mx_answer
        diagnosis = Diagnosis(result, now, redact=opts.probe_policy is not None)
        if mx_answer.status is DnsStatus.NXDOMAIN and not record_answer.records:
            diagnosis.mx_hosts()  # the domain does not exist: that one finding says it all
            return result
        diagnosis.judge_record_and_policy()
        result.mx_hosts = _matched(probed, diagnosis.mx_hosts())
        diagnosis.judge_mx()
        diagnosis.judge_tlsrpt()
        result.findings = sort_findings(result.findings)
        return result

    async def check_policy(self, domain: str, policy: Policy) -> CheckResult:
        """Judge a proposed ``policy`` against the live MX set: MX coverage, STARTTLS,
        TLS >= 1.2 and certificates on every MX address (RFC 8461 §4, §5), as senders
        would once it is published. Used to guard a switch to ``enforce``."""
        now = self.clock()
        result = CheckResult(domain=domain, checked_at=now, policy=policy)
        result.mx_answer, probed = await self._mx(domain)
        diagnosis = Diagnosis(result, now, redact=self.options.probe_policy is not None)
        result.mx_hosts = _matched(probed, diagnosis.mx_hosts())
        diagnosis.judge_mx()
        result.findings = sort_findings(result.findings)
        return result

    async def _mx(self, domain: str) -> tuple[MxAnswer, list[MxHostResult]]:
        """The MX look-up of ``domain``, and its hosts resolved and probed (not yet matched
        against any policy)."""
        answer = await self.resolver.mx(domain)
        hosts = [
            MxHostResult(hostname=host, preference=pref, matched_pattern=None, matches_policy=None)
            for pref, host in mx_records(answer, domain)
        ]
        await self._inspect_hosts(hosts)
        return answer, hosts

    async def _inspect_hosts(self, hosts: list[MxHostResult]) -> None:
        """Resolve and probe ``hosts`` (most preferred first); under a probe policy only
        the first ``max_mx_hosts``, the others are marked ``skipped``."""
        policy = self.options.probe_policy
        inspected = hosts if policy is None else hosts[: max(0, policy.max_mx_hosts)]
        for h in hosts[len(inspected) :]:
            h.skipped = True
        if inspected:
            await asyncio.gather(*(self._inspect_host(h) for h in inspected))

    async def _inspect_host(self, host: MxHostResult) -> None:
        host.addresses = await self.resolver.addresses(host.hostname)
        opts = self.options
        policy = opts.probe_policy
        targets = list(host.addresses.addresses)
        if policy is not None:
            # Check every address; probe the very text checked (an IP literal, so no
            # second lookup can rebind it), at most max_addresses_per_host of them.
            verdicts = [policy.check(ip) for ip in targets]
            host.refused = [v for v in verdicts if not v.allowed]
            allowed = _both_families(dict.fromkeys(v.address for v in verdicts if v.allowed))
            targets = allowed[: max(0, policy.max_addresses_per_host)]
            host.unprobed = allowed[len(targets) :]
        if not opts.probe_mx:
            return
        probes = await asyncio.gather(
            *(
                probe_mx(
                    host.hostname,
                    ip,
                    port=opts.smtp_port,
                    ca_file=opts.ca_file,
                    timeout=opts.timeout,
                    ehlo_name=opts.ehlo_name,
                )
                for ip in targets
            )
        )
        if policy is not None:
            for p in probes:
                if p.error_code is not None:  # the raw detail stays in the server log
                    log.debug("probe %s %s: %s (%s)", p.host, p.address, p.error_code, p.error)
            probes = [p.redacted() for p in probes]
        host.probes = list(probes)


def _matched(probed: list[MxHostResult], judged: list[MxHostResult]) -> list[MxHostResult]:
    """The probed hosts, each with the policy match the diagnosis gave it (both lists come
    from the same MX answer, in the same order)."""
    for host, verdict in zip(probed, judged, strict=True):
        host.matched_pattern, host.matches_policy = verdict.matched_pattern, verdict.matches_policy
    return probed


def _both_families(addresses: Iterable[str]) -> list[str]:
    """IPv4 and IPv6 addresses taken in turn (order kept within each family), so that a
    cap on addresses per host still checks both kinds of path senders may take."""
    items = list(addresses)
    v4 = [a for a in items if ":" not in a]
    v6 = [a for a in items if ":" in a]
    out: list[str] = []
    for pair in itertools.zip_longest(v4, v6):
        out += [a for a in pair if a is not None]
    return out


def _check_batch(
    nameservers: list[str],
    timeout: float,
    options: CheckOptions,
    language: str,
    batch: list[tuple[int, str]],
    concurrency: int,
) -> list[tuple[int, CheckResult]]:
    """Runs in a worker process of Checker.check_parallel."""
    i18n.set_language(language)

    async def run() -> list[tuple[int, CheckResult]]:
        checker = Checker(Resolver(nameservers, timeout=timeout), options)
        domains = [d for _, d in batch]
        return [(batch[i][0], r) async for i, r in checker.check_many(domains, concurrency)]

    with event_loop() as runner:
        return runner.run(run())
