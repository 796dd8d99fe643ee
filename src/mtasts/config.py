"""Settings of `mtasts serve`: defaults, then a TOML file, then `MTASTS_*` variables.

Every field can be set in the file (``key = value``) or as ``MTASTS_<KEY>`` (upper case);
lists in the environment are comma-separated. See README "Configuration".

Where the store is, for every command alike (one rule, README "Where the data lives"):
``--data-dir``/``--database-url``, else ``MTASTS_DATA_DIR``/``MTASTS_DATABASE_URL``, else
the config file (``--config`` or ``MTASTS_CONFIG``), else ``$XDG_DATA_HOME/mtasts``
(``~/.local/share/mtasts``): never the directory a command happens to run in.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mtasts.i18n import DEFAULT, LANGUAGES, _, current, say
from mtasts.net.addresses import IPNetwork, parse_networks
from mtasts.net.dns import parse_nameserver

DEFAULT_ZONE = "sts.example.net"
LEGACY_DATA_DIR = Path("mtasts-data")  # the default before: relative to where one stood


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the store lives when nothing says otherwise: ``$XDG_DATA_HOME/mtasts``, else
    ``~/.local/share/mtasts``; the same whichever directory a command runs in."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME", "")
    if not os.path.isabs(base):  # XDG: a relative path is invalid and ignored
        try:
            base = str(Path.home() / ".local" / "share")
        except RuntimeError:  # no home directory at all
            return LEGACY_DATA_DIR
    return Path(base) / "mtasts"


class ConfigError(ValueError):
    """A setting has a bad value; the message names the setting and what is expected.
    It is written in the language of the command that reads the settings (issue 13)."""


def reason(exc: BaseException) -> str:
    """The message of ``exc`` in the current language: a ``Text`` it carries is said (the
    net layer's reasons), anything else is ``str(exc)``."""
    if len(exc.args) == 1 and isinstance(exc.args[0], str):
        return say(exc.args[0])
    return str(exc)


def _number(kind: type[int] | type[float], value: Any, expected: str) -> int | float:
    """``int(value)`` / ``float(value)``. Python's own refusal ("invalid literal for int()
    with base 10") is English only: another language says ``expected`` instead."""
    try:
        return kind(value)
    except (TypeError, ValueError):
        if current() == DEFAULT:
            raise
        raise ValueError(expected) from None


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)  # see the module docstring
    database_url: str = ""  # default: SQLite in data_dir
    listen: str = "127.0.0.1:8000"  # HTTP: API, policy host, /tls/ask, /healthz, /metrics
    # "HOST:PORT" addresses of the authoritative DNS server (IPv6 as "[::1]:53"); () = off.
    # A wildcard (0.0.0.0, [::]) answers each UDP query from the address it was sent to.
    dns_listen: tuple[str, ...] = ()
    zone: str = DEFAULT_ZONE  # the service zone customers' CNAMEs point into
    policy_host_addresses: tuple[str, ...] = ("127.0.0.1",)  # A/AAAA of policy-host.<zone>
    nameservers: tuple[str, ...] = ()  # for MX lookups and verification; () = system
    zone_ns: tuple[str, ...] = ()  # NS names of the zone; () = ns1.<zone>
    # Addresses (glue) of the in-zone NS names: "IP" = this server's as the internet sees
    # it (NAT, anycast), "NAME=IP" = another NS name's (e.g. a secondary at ns2.<zone>);
    # () = the dns_listen addresses for every in-zone NS name
    zone_ns_addresses: tuple[str, ...] = ()
    txt_ttl: int = 300  # TTL of the _mta-sts and TLS-RPT TXT records (seconds)
    # secondaries (RFC 5936 AXFR, RFC 1995 IXFR, RFC 1996 NOTIFY): "IP[:PORT]" of each;
    # transfers are refused to everyone else and need the TSIG key when one is set
    dns_secondaries: tuple[str, ...] = ()
    dns_tsig_name: str = ""  # "" = transfers and NOTIFY unsigned
    dns_tsig_secret: str = ""  # base64
    dns_tsig_algorithm: str = "hmac-sha256"
    hostmaster: str = ""  # SOA RNAME; "" = hostmaster.<zone>
    tlsrpt_mailto: str = ""  # "" = tlsrpt@<zone> when the zone receives mail, else no mailto:
    public_url: str = ""  # base of the https: TLS-RPT rua; "" = https://policy-host.<zone>
    sync_interval: float = 2.0  # seconds between checks for changes by other processes
    verify_interval: float = 300.0  # seconds between re-verifications of pending domains
    claim_ttl: float = 604_800.0  # seconds a claim may stay unproven before it is removed
    txt_delay: float = -1.0  # RFC 8461 §8.1 lag of the TXT id; < 0 = 2 x sync_interval + 1
    ca_file: str = ""  # CA bundle for guarded-enforce checks; "" = system store
    check_timeout: float = 10.0
    smtp_port: int = 25  # for guarded-enforce STARTTLS probes (the lab uses other ports)
    # Networks (CIDR) that probes triggered by tenants (guarded enforce, monitoring) may
    # reach although they are not public: internal relays, a test lab. () = public only.
    probe_allowed_networks: tuple[str, ...] = ()
    # TLS reports by mail (RFC 8460 §5.3)
    smtp_listen: str = ""  # "HOST:PORT" of the report receiver; "" = off
    smtp_hostname: str = ""  # name in the banner and certificate; "" = policy-host.<zone>
    smtp_tls_cert: str = ""  # PEM files for STARTTLS; "" = a self-signed pair in data_dir
    smtp_tls_key: str = ""
    keep_unsigned_reports: bool = True  # keep reports without valid DKIM, flagged
    zone_mx: str = ""  # MX of the zone (for tlsrpt@<zone>); "" = policy-host.<zone> if smtp_listen
    # TLS report ingestion bounds (memory and disk; README "Configuration")
    report_max_bytes: int = 4 * 1024 * 1024  # a report's JSON (inflated) and its payload
    report_max_message_bytes: int = 8 * 1024 * 1024  # a report e-mail (SMTP SIZE/DATA)
    report_max_stored_bytes: int = 2 * 1024 * 1024  # a report as stored (gzip'd)
    report_spool_bytes: int = 256 * 1024  # bodies and mails above this wait on disk
    report_parse_slots: int = 2  # reports parsed at once (HTTPS and SMTP together)
    report_parse_queue: int = 8  # reports waiting for a slot; beyond: 503 / 451
    report_parse_wait: float = 5.0  # seconds a report may wait for a slot
    report_quota_reports: int = 200  # reports per hosted domain per UTC day
    report_quota_bytes: int = 20 * 1024 * 1024  # bytes stored per hosted domain per day
    report_quota_org_reports: int = 50  # the same, per sending organisation of a domain
    report_quota_org_bytes: int = 10 * 1024 * 1024
    # dashboard: the key signing session cookies; "" = a random one kept in data_dir
    # (several hosts behind one name must share it: set it, or share the file)
    session_secret: str = ""
    # reverse proxies (CIDR list) whose X-Forwarded-For / X-Forwarded-Proto are believed;
    # () = none: the client address is the TCP peer (deploy/mtasts.toml lists Caddy's)
    trusted_proxies: tuple[str, ...] = ()
    db_timeout: float = 5.0  # seconds: connect, statement, pool wait, SQLite busy wait
    # monitoring and alerts
    monitor_interval: float = 3600.0  # seconds between checks of each domain; 0 = off
    # longest wait between looks for due checks (new domains are scheduled then); the monitor
    # also wakes at the next due check, so intervals below the tick are honoured
    monitor_tick: float = 30.0
    monitor_concurrency: int = 100  # checks in flight at once (they wait on the network)
    https_port: int = 443  # where checks fetch policies (the lab uses other ports)
    renotify_interval: float = 86400.0  # seconds before an open alert is sent again
    mx_auto_refresh: bool = False  # testing mode: add a new MX to the policy by itself
    tlsrpt_failure_threshold: float = 0.05  # alert above this share of failed sessions
    sender_silent_days: int = 3  # alert when a regular sender sent nothing for this long
    alert_email: str = ""  # also send every alert here (owners always get theirs)
    # language of the alerts about the service's own parts (e.g. the certificate of a hosted
    # mta-sts.<d>), told to alert_email only: "en" or "es"; an owner's alerts follow the
    # owner's own language (users.language)
    alert_language: str = "en"
    alert_from: str = ""  # "" = mtasts@<zone>
    alert_smtp_relay: str = ""  # "HOST:PORT" of the relay for alert mail; "" = no mail
    alert_smtp_user: str = ""
    alert_smtp_password: str = ""
    alert_smtp_starttls: bool = True
    alert_webhook_url: str = ""  # POST JSON here; "" = no webhook
    alert_webhook_secret: str = ""  # HMAC-SHA256 key for the X-Mtasts-Signature header
    # limits against floods and slow clients (issue 11); "0 = auto" counts follow the
    # open files limit (raised to its hard limit at start)
    http_header_timeout: float = 15.0  # seconds to send a request's headers, then closed
    http_body_timeout: float = 120.0  # seconds to send a request's body after its headers
    http_keepalive_timeout: float = 5.0  # idle seconds between requests on a connection
    http_max_connections: int = 0  # when full, the oldest incomplete one is shed; 0 = auto
    smtp_command_timeout: float = 300.0  # RFC 5321 §4.5.3.2: seconds per command or DATA
    smtp_session_timeout: float = 600.0  # seconds a whole SMTP session may last
    smtp_max_per_source: int = 10  # concurrent sessions per IPv4 /32 or IPv6 /64
    smtp_max_sessions: int = 0  # concurrent sessions; when full the oldest idle is shed
    dns_rrl_rate: float = 20.0  # UDP responses a second per /24 or /56; 0 = no limit
    dns_rrl_window: float = 2.0  # seconds of rate a source may spend at once (burst)
    dns_rrl_slip: int = 2  # every Nth limited query gets a truncated answer; 0 = none
    dns_tcp_idle_timeout: float = 10.0  # RFC 7766 §6.2.3
    dns_tcp_max_connections: int = 256
    # RFC 2136 publisher: push the zone's records to an existing primary
    update_server: str = ""  # "IP[:PORT]"; "" = off
    tsig_name: str = ""
    tsig_secret: str = ""  # base64
    tsig_algorithm: str = "hmac-sha256"

    @property
    def zone_name(self) -> str:
        return self.zone.rstrip(".").lower()

    @property
    def policy_host(self) -> str:
        """The name the customer's `mta-sts.<d>` CNAME points to."""
        return f"policy-host.{self.zone_name}"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'mtasts.db'}"

    @property
    def effective_txt_delay(self) -> float:
        return self.txt_delay if self.txt_delay >= 0 else 2 * self.sync_interval + 1

    @property
    def effective_mailto(self) -> str:
        return self.tlsrpt_mailto or f"tlsrpt@{self.zone_name}"

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"https://{self.policy_host}").rstrip("/")

    @property
    def effective_alert_from(self) -> str:
        return self.alert_from or f"mtasts@{self.zone_name}"

    @property
    def effective_zone_mx(self) -> str:
        """The host senders deliver mailed reports to; "" = no MX published."""
        mx = self.zone_mx or (self.policy_host if self.smtp_listen else "")
        return mx.rstrip(".").lower()

    @property
    def effective_smtp_hostname(self) -> str:
        return self.smtp_hostname or self.policy_host

    @property
    def effective_zone_ns(self) -> tuple[str, ...]:
        return self.zone_ns or (f"ns1.{self.zone_name}",)

    @property
    def receives_mail(self) -> bool:
        """Whether the mailto: of the TLS-RPT rua can be delivered: the report receiver
        runs (``smtp_listen``), the zone has an MX (``zone_mx``) or the operator named a
        mailbox of their own (``tlsrpt_mailto``)."""
        return bool(self.smtp_listen or self.zone_mx or self.tlsrpt_mailto)

    def tlsrpt_rua(self, domain: str) -> tuple[str, ...]:
        """RFC 8460 §3: where senders send reports about ``domain``. The mailto: only when
        mail to it can be delivered (:attr:`receives_mail`): an undeliverable rua makes
        every sender's report bounce; the https: rua alone is valid (§3)."""
        https = f"{self.effective_public_url}/tlsrpt/{domain}"
        if not self.receives_mail:
            return (https,)
        return (f"mailto:{self.effective_mailto}", https)

    def tlsrpt_txt(self, domain: str) -> str:
        return f"v=TLSRPTv1; rua={','.join(self.tlsrpt_rua(domain))}"

    def listen_host_port(self) -> tuple[str, int]:
        return split_hostport(self.listen, "listen")

    def dns_listen_addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every ``dns_listen`` entry, in order; [] when DNS is off."""
        out = []
        for entry in self.dns_listen_entries():
            host, port = split_hostport(entry, "dns_listen")
            out.append((_ip(host, "dns_listen"), port))
        return out

    def zone_ns_glue(self, *, strict: bool = False) -> dict[str, tuple[str, ...]]:
        """The addresses of each NS name inside the zone (lower case, no final dot).

        A resolver that learns an NS name's address from the zone sends every later
        query there (RFC 1034 §4.3.2 glue, then the authoritative A/AAAA), so these must
        be addresses of name servers of the zone: the ``NAME=IP`` entries of
        ``zone_ns_addresses`` for that name, else its ``IP`` entries (this server as the
        internet sees it), else the specific ``dns_listen`` addresses. With ``strict``, an
        in-zone NS name left without an address is a ConfigError (mtasts serve refuses
        to start: the zone would be lost to every resolver that lacks the glue)."""
        zone = self.zone_name
        own: list[str] = []
        named: dict[str, list[str]] = {}
        for entry in self.zone_ns_addresses:
            name, sep, ip = entry.strip().rpartition("=")
            if sep:
                key = name.strip().rstrip(".").lower()
                named.setdefault(key, []).append(_ip(ip, "zone_ns_addresses"))
            else:
                own.append(_ip(ip, "zone_ns_addresses"))
        listen = [
            h for h, _ in self.dns_listen_addresses() if not ipaddress.ip_address(h).is_unspecified
        ]
        mine = own or listen
        out: dict[str, tuple[str, ...]] = {}
        for ns in self.effective_zone_ns:
            name = ns.strip().rstrip(".").lower()
            if not name.endswith("." + zone):
                continue  # out of zone: its own zone gives its addresses
            addresses = tuple(named.get(name) or mine)
            if strict and not addresses:
                wild = ", ".join(self.dns_listen_entries()) or _("off")
                raise ConfigError(
                    _(
                        "zone_ns: {name} is inside the zone {zone}, so the zone must give its "
                        "address, but dns_listen ({listen}) names no specific address to "
                        "publish: set zone_ns_addresses to this server's public address(es), "
                        'e.g. zone_ns_addresses = ["203.0.113.53"], or "{name}=IP" for a '
                        "name served elsewhere"
                    ).format(name=name, zone=zone, listen=wild)
                )
            out[name] = addresses
        for name in named:
            if name not in out:
                raise ConfigError(
                    _(
                        "zone_ns_addresses: {name} is not an NS name inside the zone "
                        "(zone_ns: {zone_ns})"
                    ).format(name=name, zone_ns=", ".join(self.effective_zone_ns))
                )
        return out

    def dns_listen_entries(self) -> list[str]:
        """The ``dns_listen`` entries as given ("HOST:PORT"); a comma-separated string
        (one option, one variable) counts as several."""
        entries = (self.dns_listen,) if isinstance(self.dns_listen, str) else self.dns_listen
        return [p.strip() for e in entries for p in e.split(",") if p.strip()]


def _ip(text: str, key: str) -> str:
    """``text`` as a normalised IP address; ConfigError naming ``key`` otherwise."""
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        raise ConfigError(
            _("{key}: {text} is not an IPv4 or IPv6 address").format(key=key, text=repr(text))
        ) from None


def split_hostport(text: str, key: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            _("{key}: expected HOST:PORT, e.g. 127.0.0.1:8000, got {text}").format(
                key=key, text=repr(text)
            )
        )
    return host.strip("[]") or "127.0.0.1", int(port)


@functools.cache
def proxy_networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """``trusted_proxies`` as networks (``127.0.0.1`` = ``127.0.0.1/32``); ConfigError
    names the bad entry."""
    try:
        return parse_networks(cidrs)
    except ValueError as exc:
        raise ConfigError(
            _("trusted_proxies: {error}; e.g. 127.0.0.1/32 or ::1/128").format(error=reason(exc))
        ) from None


def _coerce(key: str, kind: Any, value: Any) -> Any:
    try:
        if kind is Path or kind == "Path":
            return Path(str(value))
        if kind in (bool, "bool"):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(_("expected true or false"))
        if kind in (int, "int"):
            return _number(int, value, _("expected a whole number"))
        if kind in (float, "float"):
            return _number(float, value, _("expected a number"))
        if str(kind).startswith("tuple"):
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list | tuple):
                raise TypeError(_("expected a list"))
            return tuple(str(v) for v in value)
        if not isinstance(value, str):
            raise TypeError(_("expected a string"))
        return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            _("{key}: {error} (got {value})").format(key=key, error=exc, value=repr(value))
        ) from exc


def layered_values(
    cls: type,
    path: Path | None,
    env: Mapping[str, str],
    prefix: str,
    overrides: Mapping[str, Any],
    table: str | None = None,
) -> dict[str, Any]:
    """The values of dataclass ``cls``'s fields set by a TOML file (``path``, else
    ``$<prefix>CONFIG``; only its ``[table]`` when it has one), then ``<prefix><NAME>``
    variables, then ``overrides`` (None values ignored); each coerced to its field's type.
    ConfigError names the bad file or setting."""
    known = {f.name: f.type for f in fields(cls)}
    values: dict[str, Any] = {}
    path = path or (Path(env[f"{prefix}CONFIG"]) if env.get(f"{prefix}CONFIG") else None)
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(
                _("cannot read config file {path}: {error}").format(path=path, error=exc)
            ) from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                _("config file {path} is not valid TOML: {error}").format(path=path, error=exc)
            ) from exc
        if table is not None:
            data = data.get(table, data)  # a [table], or top-level keys
        for key, value in data.items():
            if key not in known:
                raise ConfigError(
                    _("{path}: unknown setting {key} (known: {known})").format(
                        path=path, key=repr(key), known=", ".join(known)
                    )
                )
            values[key] = _coerce(key, known[key], value)
    for key, kind in known.items():
        env_key = f"{prefix}{key.upper()}"
        if env_key in env:
            values[key] = _coerce(env_key, kind, env[env_key])
    for key, value in overrides.items():
        if value is not None:
            values[key] = _coerce(key, known[key], value)
    return values


def load_settings(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Defaults < file (``path`` or $MTASTS_CONFIG) < environment < ``overrides``
    (command-line options; None values are ignored)."""
    env = os.environ if env is None else env
    values = layered_values(Settings, path, env, "MTASTS_", overrides)
    values.setdefault("data_dir", default_data_dir(env))
    settings = replace(Settings(), **values)
    settings.listen_host_port()
    if settings.dns_listen_addresses():
        settings.zone_ns_glue(strict=True)  # also checks the listen addresses
    elif settings.zone_ns_addresses:
        settings.zone_ns_glue()
    for entry in settings.dns_secondaries:
        try:
            parse_nameserver(entry)
        except ValueError:
            raise ConfigError(
                _(
                    "dns_secondaries: {entry} is not IP[:PORT] (e.g. 192.0.2.53 or "
                    "[2001:db8::53]:53)"
                ).format(entry=repr(entry))
            ) from None
    if bool(settings.dns_tsig_name) != bool(settings.dns_tsig_secret):
        raise ConfigError(_("dns_tsig_name and dns_tsig_secret: set both, or neither"))
    if settings.dns_tsig_secret:
        try:
            base64.b64decode(settings.dns_tsig_secret, validate=True)
        except binascii.Error:
            raise ConfigError(
                _("dns_tsig_secret: not base64 (e.g. openssl rand -base64 32)")
            ) from None
    if settings.txt_ttl < 0:
        raise ConfigError(
            _("txt_ttl: expected seconds >= 0, got {value}").format(value=repr(settings.txt_ttl))
        )
    if settings.smtp_listen:
        split_hostport(settings.smtp_listen, "smtp_listen")
    if settings.alert_smtp_relay:
        split_hostport(settings.alert_smtp_relay, "alert_smtp_relay")
    if settings.alert_language not in LANGUAGES:
        raise ConfigError(
            _("alert_language: expected one of {languages}, got {value}").format(
                languages=", ".join(LANGUAGES), value=repr(settings.alert_language)
            )
        )
    proxy_networks(settings.trusted_proxies)
    if not settings.db_timeout > 0:
        raise ConfigError(
            _("db_timeout: expected seconds > 0, got {value}").format(
                value=repr(settings.db_timeout)
            )
        )
    if settings.monitor_concurrency < 1 or not settings.monitor_tick > 0:
        raise ConfigError(_("monitor_concurrency must be at least 1 and monitor_tick above 0"))
    try:
        parse_networks(settings.probe_allowed_networks)
    except ValueError as exc:
        raise ConfigError(_("probe_allowed_networks: {error}").format(error=reason(exc))) from None
    for f in fields(Settings):
        if f.name.startswith("report_") and getattr(settings, f.name) < (
            0 if f.name in ("report_parse_queue", "report_parse_wait") else 1
        ):
            raise ConfigError(
                _("{key}: must be positive, got {value}").format(
                    key=f.name, value=repr(getattr(settings, f.name))
                )
            )

    return settings


def store_notice(settings: Settings, *, expected: bool, cwd: Path | None = None) -> str | None:
    """A warning for a command about to create a new SQLite store, or None.

    ``expected``: the command works on an existing store (tokens, users, reports), so a
    missing one most likely means other settings than the running service's. A store in
    ``./mtasts-data`` (the former default) is named in any case.
    """
    if settings.database_url:
        return None
    db = settings.data_dir / "mtasts.db"
    if db.exists():
        return None
    legacy = (cwd or Path.cwd()) / LEGACY_DATA_DIR / "mtasts.db"
    hint = ""
    if legacy.exists():
        hint = " " + _(
            "There is a store in {path} (the former default): pass --data-dir {path} or set "
            "MTASTS_DATA_DIR to use it."
        ).format(path=legacy.parent)
    if not (expected or hint):
        return None
    return _(
        "no store at {path}: creating a new, empty one.{hint} A running `mtasts serve` uses "
        "the store its --config, --data-dir or MTASTS_DATA_DIR names: give this command the "
        "same."
    ).format(path=db.absolute(), hint=hint)


__all__ = [
    "DEFAULT_ZONE",
    "ConfigError",
    "Settings",
    "default_data_dir",
    "load_settings",
    "proxy_networks",
    "split_hostport",
    "store_notice",
]
