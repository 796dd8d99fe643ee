"""policyd's answers and cache rules against the lab (real DNS and HTTPS servers on
loopback). Time is an injected clock, so cache expiry is tested without waiting."""

from __future__ import annotations

import asyncio
import logging
import random
from itertools import count
from pathlib import Path

import pytest

from mtasts.net.dns import Resolver
from mtasts.sender.cache import PolicyStore, open_store
from mtasts.sender.metrics import MetricsServer
from mtasts.sender.policyd import NO_MATCH, PolicyDaemon
from mtasts.sender.settings import PolicydSettings
from mtasts.sender.socketmap import Kind, netstring
from tests.lab import World
from tests.lab.httpsserver import Site

_ids = count(1)
DAY = 86_400


class Clock:
    def __init__(self) -> None:
        import time

        self.t = time.time()

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def fresh(prefix: str) -> str:
    return f"{prefix}{next(_ids)}.policyd.test"


def policy_text(*mx: str, mode: str = "enforce", max_age: int = DAY) -> str:
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), f"max_age: {max_age}"]
    return "\r\n".join(lines) + "\r\n"


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_daemon(
    world: World, clock: Clock, store: PolicyStore | None = None, **options: object
) -> PolicyDaemon:
    settings = PolicydSettings(
        nameservers=(world.nameserver,),
        ca_file=world.ca_file,
        https_port=world.https_port,
        fetch_timeout=20.0,  # generous: load
        **options,  # type: ignore[arg-type]
    )
    resolver = Resolver([world.nameserver], timeout=20.0)
    return PolicyDaemon(settings, resolver, store, clock=clock, rng=random.Random(1))


def ask(daemon: PolicyDaemon, key: str, name: str = "postfix") -> str:
    async def run() -> str:
        reply = await daemon.lookup(key, name)
        await daemon.drain()
        return f"{reply.kind} {reply.data}"

    return asyncio.run(run())


# --- answers (RFC 8461 §5) -------------------------------------------------------------


def test_enforce_lists_exactly_the_policy_hosts(lab_world: World, clock: Clock) -> None:
    d = fresh("enf")
    lab_world.add_domain(d, mx_count=2)
    daemon = make_daemon(lab_world, clock)
    assert ask(daemon, d) == f"OK secure match=mx1.{d}:mx2.{d} servername=hostname"
    # a cache hit gives the same answer without a new resolution
    assert ask(daemon, d.upper() + ".") == f"OK secure match=mx1.{d}:mx2.{d} servername=hostname"
    assert daemon.metrics.cache_hits == 1
    assert daemon.metrics.fetches["VALID"] == 1


def test_wildcard_bound_to_current_mx_of_one_label(lab_world: World, clock: Clock) -> None:
    """RFC 8461 §4.1: `*.d` covers exactly one label. PMR answers `match=.d`, which
    Postfix applies at any depth; policyd binds the pattern to the MX names it matches."""
    d = fresh("wild")
    lab_world.add_domain(d, policy=policy_text(f"*.{d}"))
    lab_world.zone.add(d, "MX", f"20 deep.mx9.{d}.")  # two labels deep: not covered
    lab_world.zone.add(f"deep.mx9.{d}", "A", lab_world.smtp_ip("good"))
    daemon = make_daemon(lab_world, clock)
    answer = ask(daemon, d)
    assert answer == f"OK secure match=mx1.{d} servername=hostname"
    assert f"match=.{d}" not in answer and f":.{d}" not in answer


def test_wildcard_matching_no_mx_matches_no_certificate(lab_world: World, clock: Clock) -> None:
    d = fresh("deep")
    lab_world.add_domain(d, policy=policy_text(f"*.{d}"))
    lab_world.zone.set(d, "MX", [f"10 a.b.{d}."])
    daemon = make_daemon(lab_world, clock)
    assert ask(daemon, d) == f"OK secure match={NO_MATCH} servername=hostname"


def test_wildcard_follows_mx_changes_and_exact_patterns_stay(
    lab_world: World, clock: Clock
) -> None:
    d = fresh("mixed")
    lab_world.add_domain(d, policy=policy_text(f"*.{d}", f"backup.other-{d}"))
    daemon = make_daemon(lab_world, clock)
    assert ask(daemon, d) == f"OK secure match=backup.other-{d}:mx1.{d} servername=hostname"
    lab_world.zone.set(d, "MX", [f"10 new.{d}."])
    clock.advance(daemon.settings.mx_ttl_max + 1)  # the bound MX names are due again
    assert ask(daemon, d) == f"OK secure match=backup.other-{d}:new.{d} servername=hostname"


def test_wildcard_with_failing_mx_lookup_is_temp(lab_world: World, clock: Clock) -> None:
    d = fresh("mxfail")
    lab_world.add_domain(d, policy=policy_text(f"*.{d}"))
    daemon = make_daemon(lab_world, clock)
    assert ask(daemon, d).startswith("OK secure")
    lab_world.dns.servfail(d)
    try:
        clock.advance(daemon.settings.mx_ttl_max + 1)
        assert ask(daemon, d).startswith("TEMP MX lookup")
    finally:
        lab_world.dns.heal(d)
    assert ask(daemon, d) == f"OK secure match=mx1.{d} servername=hostname"


def test_testing_and_none_are_notfound(lab_world: World, clock: Clock) -> None:
    t, n = fresh("testing"), fresh("none")
    lab_world.add_domain(t, mode="testing")
    lab_world.add_domain(n, mode="none")
    daemon = make_daemon(lab_world, clock)
    assert ask(daemon, t) == "NOTFOUND "
    assert ask(daemon, n) == "NOTFOUND "
    may = make_daemon(lab_world, clock, testing_answer="may")
    assert ask(may, t) == "OK may"
    assert ask(may, n) == "NOTFOUND "


def test_postfix_310_attributes(lab_world: World, clock: Clock) -> None:
    d = fresh("attrs")
    lab_world.add_domain(d, policy=policy_text(f"*.{d}", max_age=604800))
    daemon = make_daemon(lab_world, clock, postfix_sts_attributes=True)
    assert ask(daemon, d) == (
        f"OK secure match=mx1.{d} servername=hostname policy_type=sts policy_domain={d} "
        f"policy_ttl=604800 mx_host_pattern=*.{d} {{ policy_string = version: STSv1 }} "
        f"{{ policy_string = mode: enforce }} {{ policy_string = mx: *.{d} }} "
        f"{{ policy_string = max_age: 604800 }}"
    )


def test_strict_where_pmr_is_lenient(lab_world: World, clock: Clock) -> None:
    """Two `mode` lines: the first counts (PMR keeps the last); an invalid id: no policy
    (PMR accepts it)."""
    two_modes, bad_id = fresh("twomodes"), fresh("badid")
    text = "version: STSv1\r\nmode: enforce\r\nmode: testing\r\n"
    lab_world.add_domain(two_modes, policy=text + f"mx: mx1.{two_modes}\r\nmax_age: 86400\r\n")
    lab_world.add_domain(bad_id, record="v=STSv1; id=not_valid!")
    daemon = make_daemon(lab_world, clock)
    assert ask(daemon, two_modes) == f"OK secure match=mx1.{two_modes} servername=hostname"
    assert ask(daemon, bad_id) == "NOTFOUND "
    entry = daemon.cache.peek(bad_id)
    assert entry is not None and entry.outcome is not None
    assert entry.outcome.code == "sts-record-id-invalid"


def test_keys_without_policy_and_map_names(lab_world: World, clock: Clock) -> None:
    daemon = make_daemon(lab_world, clock, map_names=("postfix",))
    before = lab_world.dns.stats.udp_queries
    for key in (".policyd.test", "[127.0.0.1]", "localhost", "bad_name.test", "a..b"):
        assert ask(daemon, key) == "NOTFOUND "
    assert lab_world.dns.stats.udp_queries == before  # none of them was looked up
    assert ask(daemon, "example.test", name="other").startswith("PERM unknown map name")


def test_concurrent_lookups_share_one_resolution(lab_world: World, clock: Clock) -> None:
    d = fresh("herd")
    lab_world.add_domain(d)
    daemon = make_daemon(lab_world, clock)

    async def run() -> set[str]:
        replies = await asyncio.gather(*(daemon.lookup(d) for _ in range(20)))
        return {r.data for r in replies}

    assert asyncio.run(run()) == {f"secure match=mx1.{d} servername=hostname"}
    assert daemon.metrics.fetches["VALID"] == 1


# --- the cache (RFC 8461 §5.1) -------------------------------------------------------------


def test_no_policy_is_cached_negatively_within_the_dns_ttl(lab_world: World, clock: Clock) -> None:
    d = fresh("neg")
    lab_world.add_domain(d, record=None)
    lab_world.zone.add(f"_mta-sts.{d}", "TXT", "v=STSv1; id=bad!", ttl=30)  # invalid
    daemon = make_daemon(lab_world, clock, negative_ttl=300)
    assert ask(daemon, d) == "NOTFOUND "
    lab_world.zone.set(f"_mta-sts.{d}", "TXT", ["v=STSv1; id=fixed1"])
    clock.advance(20)
    assert ask(daemon, d) == "NOTFOUND "  # still the negative entry
    clock.advance(11)  # past the record's TTL of 30 s, long before negative_ttl
    assert ask(daemon, d) == f"OK secure match=mx1.{d} servername=hostname"


def test_missing_record_cached_for_negative_ttl(lab_world: World, clock: Clock) -> None:
    d = fresh("norec")
    lab_world.add_domain(d, record=None)
    daemon = make_daemon(lab_world, clock, negative_ttl=60)
    assert ask(daemon, d) == "NOTFOUND "
    lab_world.zone.add(f"_mta-sts.{d}", "TXT", "v=STSv1; id=now1")
    clock.advance(59)
    assert ask(daemon, d) == "NOTFOUND "
    clock.advance(2)
    assert ask(daemon, d).startswith("OK secure")


def test_missing_record_cached_within_the_soa_negative_ttl(lab_world: World, clock: Clock) -> None:
    d = fresh("negsoa")
    lab_world.add_domain(d, record=None)
    lab_world.zone.add(d, "SOA", f"ns1.{d}. hostmaster.{d}. 1 3600 600 86400 20", ttl=60)
    daemon = make_daemon(lab_world, clock, negative_ttl=300)
    assert ask(daemon, d) == "NOTFOUND "  # NXDOMAIN for _mta-sts.<d>, with the SOA
    lab_world.zone.add(f"_mta-sts.{d}", "TXT", "v=STSv1; id=soa1")
    clock.advance(19)
    assert ask(daemon, d) == "NOTFOUND "
    clock.advance(2)  # past the SOA's MINIMUM of 20 s, long before negative_ttl
    assert ask(daemon, d) == f"OK secure match=mx1.{d} servername=hostname"


def test_fetch_error_without_cache_backs_off(lab_world: World, clock: Clock) -> None:
    d = fresh("expired")
    lab_world.add_domain(d, https="expired")
    daemon = make_daemon(lab_world, clock, backoff_min=60, backoff_max=600)
    assert ask(daemon, d) == "NOTFOUND "
    assert daemon.metrics.fetches["FETCH_ERROR"] == 1
    assert ask(daemon, d) == "NOTFOUND "  # within the backoff: no new fetch
    clock.advance(30)
    assert ask(daemon, d) == "NOTFOUND "
    assert daemon.metrics.fetches["FETCH_ERROR"] == 1
    clock.advance(31)  # past the first delay (60 s, jittered down to at least 48 s)
    assert ask(daemon, d) == "NOTFOUND "
    assert daemon.metrics.fetches["FETCH_ERROR"] == 2
    entry = daemon.cache.peek(d)
    assert entry is not None and entry.failures == 2
    assert entry.retry_at - clock() > 60  # the delay doubled
    assert daemon.metrics.failures["policy-fetch-tls-certificate-expired"] == 2


def test_cached_policy_stays_in_force_until_max_age_when_fetches_fail(
    lab_world: World, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    d = fresh("sticky")
    lab_world.add_domain(d, max_age=DAY)
    daemon = make_daemon(lab_world, clock)
    good = f"OK secure match=mx1.{d} servername=hostname"
    assert ask(daemon, d) == good
    # The domain breaks its policy host and announces a new id.
    lab_world.https.site(f"mta-sts.{d}", Site(status=500, body=b"oops"))
    lab_world.zone.set(f"_mta-sts.{d}", "TXT", ["v=STSv1; id=broken2"])
    clock.advance(daemon.settings.recheck_interval + 1)
    with caplog.at_level(logging.INFO, logger="mtasts.policyd"):
        assert ask(daemon, d) == good  # answered from the cache; the check runs behind
        assert daemon.metrics.fetches["FETCH_ERROR"] == 1
        assert ask(daemon, d) == good
    assert any(
        "FETCH_ERROR policy-fetch-http-status" in r.getMessage()
        and "stays in force" in r.getMessage()
        for r in caplog.records
    )
    clock.advance(DAY)  # max_age after the fetch: the policy has expired
    assert ask(daemon, d) == "NOTFOUND "


def test_new_txt_id_fetches_the_new_policy(lab_world: World, clock: Clock) -> None:
    d = fresh("newid")
    lab_world.add_domain(d, mx_count=1)
    daemon = make_daemon(lab_world, clock)
    assert ask(daemon, d) == f"OK secure match=mx1.{d} servername=hostname"
    lab_world.https.policy(d, policy_text(f"mx1.{d}", f"mx2.{d}"))
    clock.advance(daemon.settings.recheck_interval + 1)
    ask(daemon, d)  # the TXT check runs; the id is unchanged, so no fetch
    assert ask(daemon, d) == f"OK secure match=mx1.{d} servername=hostname"
    assert daemon.metrics.fetches["VALID"] == 1
    lab_world.zone.set(f"_mta-sts.{d}", "TXT", ["v=STSv1; id=second2"])
    clock.advance(daemon.settings.recheck_interval + 1)
    ask(daemon, d)
    assert ask(daemon, d) == f"OK secure match=mx1.{d}:mx2.{d} servername=hostname"
    assert daemon.metrics.fetches["VALID"] == 2


def test_proactive_refresh_before_expiry(lab_world: World, clock: Clock) -> None:
    d = fresh("refresh")
    lab_world.add_domain(d, max_age=DAY)
    daemon = make_daemon(lab_world, clock, refresh_before=0.2, recheck_interval=10 * DAY)
    assert ask(daemon, d).startswith("OK")
    entry = daemon.cache.peek(d)
    assert entry is not None and entry.cached is not None
    first_expiry = entry.cached.expires_at
    # jittered between 10% and 20% of max_age before expiry
    assert first_expiry - 0.2 * DAY <= entry.refresh_at <= first_expiry - 0.1 * DAY
    clock.advance(0.75 * DAY)
    assert asyncio.run(daemon.refresh_due()) == 0
    clock.advance(0.15 * DAY)
    assert asyncio.run(daemon.refresh_due()) == 1
    assert daemon.metrics.refreshes == 1
    assert entry.cached.expires_at == pytest.approx(clock() + DAY)


def test_cache_is_bounded(lab_world: World, clock: Clock) -> None:
    names = [fresh("lru") for _ in range(3)]
    for n in names:
        lab_world.add_domain(n)
    daemon = make_daemon(lab_world, clock, cache_size=2)
    for n in names:
        assert ask(daemon, n).startswith("OK")
    assert len(daemon.cache) == 2
    assert daemon.cache.peek(names[0]) is None
    assert daemon.cache.evictions == 1


def _persisted(world: World, clock: Clock, url: str) -> None:
    stores = [open_store(url) for _ in range(3)]
    try:
        _persisted_in(world, clock, list(stores))
    finally:
        for store in stores:
            store.close()


def _persisted_in(world: World, clock: Clock, stores: list[PolicyStore]) -> None:
    d = fresh("persist")
    world.add_domain(d)
    first = make_daemon(world, clock, stores[0])
    assert ask(first, d) == f"OK secure match=mx1.{d} servername=hostname"
    # The domain vanishes from DNS; a restarted daemon still enforces the policy
    # until max_age (RFC 8461 §5.1).
    world.zone.remove(f"_mta-sts.{d}")
    second = make_daemon(world, clock, stores[1])
    assert second.load() >= 1
    assert ask(second, d) == f"OK secure match=mx1.{d} servername=hostname"
    clock.advance(DAY + 1)
    third = make_daemon(world, clock, stores[2])
    third.load()
    assert third.cache.peek(d) is None  # expired policies are not loaded


def test_persisted_in_sqlite(lab_world: World, clock: Clock, tmp_path: Path) -> None:
    _persisted(lab_world, clock, f"sqlite:///{tmp_path / 'policyd.db'}")


def test_persisted_in_postgresql(lab_world: World, clock: Clock, postgres_url: str) -> None:
    _persisted(lab_world, clock, postgres_url)


# --- explains -------------------------------------------------------------------------------


def test_each_outcome_change_logged_once(
    lab_world: World, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    d = fresh("logonce")
    lab_world.add_domain(d, https="expired")
    daemon = make_daemon(lab_world, clock, backoff_min=1, backoff_max=1)
    with caplog.at_level(logging.INFO, logger="mtasts.policyd"):
        for _ in range(3):
            assert ask(daemon, d) == "NOTFOUND "
            clock.advance(2)
        assert daemon.metrics.fetches["FETCH_ERROR"] == 3
        lab_world.https.certificate(lab_world.ca.issue([f"mta-sts.{d}"]), (f"mta-sts.{d}",))
        assert ask(daemon, d).startswith("OK secure")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"{d}:")]
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"{d}: FETCH_ERROR policy-fetch-tls-certificate-expired: ")
    assert lines[1].startswith(f"{d}: VALID policy-enforce: ")


def test_explain(lab_world: World, clock: Clock) -> None:
    d = fresh("explain")
    lab_world.add_domain(d, https="untrusted")
    daemon = make_daemon(lab_world, clock)
    ex = asyncio.run(daemon.explain(d))
    assert ex.reply.kind is Kind.NOTFOUND
    assert ex.entry is not None and ex.entry.outcome is not None
    assert ex.entry.outcome.code == "policy-fetch-tls-certificate-untrusted"
    assert any(f.code == "policy-fetch-tls-certificate-untrusted" for f in ex.findings)


def test_metrics_endpoint(lab_world: World, clock: Clock) -> None:
    d = fresh("metrics")
    lab_world.add_domain(d)
    daemon = make_daemon(lab_world, clock)

    async def run() -> tuple[bytes, bytes]:
        await daemon.lookup(d)
        await daemon.lookup(d)
        await daemon.lookup(".test")
        server = MetricsServer(lambda: daemon.metrics.render(daemon.gauges()))
        host, _, port = (await server.start("127.0.0.1:0")).rpartition(":")
        out = []
        for path in ("/metrics", "/"):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            out.append(await reader.read())
            writer.close()
        await server.stop()
        return out[0], out[1]

    metrics, other = asyncio.run(run())
    assert metrics.startswith(b"HTTP/1.1 200 OK")
    text = metrics.decode()
    assert 'mtasts_policyd_answers_total{kind="OK"} 2' in text
    assert 'mtasts_policyd_answers_total{kind="NOTFOUND"} 1' in text
    assert "mtasts_policyd_cache_hits_total 1" in text
    assert 'mtasts_policyd_fetches_total{result="VALID"} 1' in text
    assert "mtasts_policyd_cache_entries 1" in text
    assert other.startswith(b"HTTP/1.1 404")


def test_daemon_over_socketmap(lab_world: World, tmp_path: Path) -> None:
    """The whole daemon as Postfix meets it: socketmap on loopback, pipelined lookups."""
    from mtasts.sender.serve import build_daemon, start
    from mtasts.sender.serve import open_store as open_settings_store

    d = fresh("wire")
    lab_world.add_domain(d)
    settings = PolicydSettings(
        listen="127.0.0.1:0",
        data_dir=tmp_path,
        nameservers=(lab_world.nameserver,),
        ca_file=lab_world.ca_file,
        https_port=lab_world.https_port,
        fetch_timeout=20.0,  # generous: load
    )

    async def run() -> list[bytes]:
        store = open_settings_store(settings)
        daemon = build_daemon(settings, store)
        running = await start(settings, daemon)
        host, _, port = running.socketmap.address.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            netstring(f"postfix {d}".encode())
            + netstring(b"postfix .policyd.test")
            + netstring(f"postfix {d}".encode())
        )
        replies = []
        for _ in range(3):
            head = await reader.readuntil(b":")
            replies.append((await reader.readexactly(int(head[:-1]) + 1))[:-1])
        writer.close()
        await running.stop()
        store.close()
        return replies

    secure = f"OK secure match=mx1.{d} servername=hostname".encode()
    assert asyncio.run(run()) == [secure, b"NOTFOUND ", secure]
    assert (tmp_path / "policyd.db").exists()


def test_the_metrics_listener_holds_a_bounded_number_of_connections() -> None:
    """Each scraper connection is held until its request head or HEAD_TIMEOUT; above
    max_connections, a new one is closed at once, so idle connections cannot use up the
    daemon's descriptors. Counted, not timed."""

    async def run() -> tuple[int, int, bytes, bytes]:
        server = MetricsServer(lambda: "up 1\n", max_connections=3)
        host, _, port = (await server.start("127.0.0.1:0")).rpartition(":")
        idle = [await asyncio.open_connection(host, int(port)) for _ in range(3)]
        async with asyncio.timeout(60):  # a generous deadline, not a window
            while server.open < 3:  # noqa: ASYNC110 - the server's own count: all three taken
                await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection(host, int(port))
        extra = await reader.read()  # closed unanswered
        writer.close()
        held = server.open
        for _, w in idle:  # the idle ones go; a scraper is served again
            w.close()
        async with asyncio.timeout(60):
            while server.open:  # noqa: ASYNC110 - the server's own count
                await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        served = await reader.read()
        writer.close()
        await server.stop()
        return held, server.refused, extra, served

    held, refused, extra, served = asyncio.run(run())
    assert held == 3 and refused == 1 and extra == b""
    assert served.startswith(b"HTTP/1.1 200 OK") and served.endswith(b"up 1\n")


def test_a_log_line_stays_one_line_whatever_the_network_sent() -> None:
    """What a server sent (here an HTTP status text with a line feed and a terminal escape)
    cannot forge a second log line: control characters are written as \\xNN."""
    import io
    import logging

    from mtasts.sender.cli import log_handler

    out = io.StringIO()
    logger = logging.getLogger("mtasts.policyd.test-one-line")
    logger.propagate = False
    logger.addHandler(log_handler(out))
    try:
        logger.warning(
            "%s: FETCH_ERROR %s", "x.test", "answers 500 OK\n2026-11-30 forged line\x1b[31m"
        )
    finally:
        logger.handlers.clear()
    text = out.getvalue()
    assert text.count("\n") == 1, text
    assert text.endswith("x.test: FETCH_ERROR answers 500 OK\\x0a2026-11-30 forged line\\x1b[31m\n")
