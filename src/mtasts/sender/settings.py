"""Settings of `mtasts policyd`: defaults, then a TOML file, then `MTASTS_POLICYD_*`
variables, then command-line options.

The defaults make it a drop-in for postfix-mta-sts-resolver: the same port and map name,
so ``smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix`` stays as it is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mtasts.config import ConfigError, default_data_dir, layered_values, reason
from mtasts.i18n import _
from mtasts.sender.socketmap import split_listen

TESTING_ANSWERS = ("notfound", "may")


@dataclass(frozen=True)
class PolicydSettings:
    listen: str = "127.0.0.1:8461"  # HOST:PORT or unix:PATH (PMR's default port)
    map_names: tuple[str, ...] = ()  # socketmap names answered; () = any (PMR: "postfix")
    # the same default as every other command: never the directory it happens to run in
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str = ""  # "" = SQLite file policyd.db in data_dir
    nameservers: tuple[str, ...] = ()  # () = the system resolver
    ca_file: str = ""  # CA bundle for policy fetches; "" = the system store
    https_port: int = 443  # where policies are fetched (the lab uses another port)
    fetch_timeout: float = 10.0  # seconds for the TXT lookup and the policy fetch
    cache_size: int = 100_000  # domains kept in memory (least recently used dropped)
    recheck_interval: float = 3600.0  # seconds between TXT id checks of a cached policy
    refresh_before: float = 0.2  # refresh this share of max_age before expiry (jittered)
    negative_ttl: float = 300.0  # at most this long for "no policy" (bounded by DNS TTL)
    backoff_min: float = 30.0  # first retry delay after a failed fetch
    backoff_max: float = 3600.0  # longest retry delay
    mx_ttl_max: float = 300.0  # how long MX names bound to a wildcard are reused at most
    testing_answer: str = "notfound"  # "may": answer testing domains with `may` (logged)
    postfix_sts_attributes: bool = False  # Postfix >= 3.10 TLSRPT / mx_host_pattern attributes
    max_connections: int = 1024
    idle_timeout: float = 300.0  # close a socketmap connection idle for this long
    max_request: int = 1024  # bytes of one socketmap request
    metrics_listen: str = ""  # HOST:PORT of the Prometheus /metrics listener; "" = off
    refresh_tick: float = 30.0  # seconds between scans for due proactive refreshes

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'policyd.db'}"


def load_policyd_settings(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> PolicydSettings:
    """Defaults < file (``path`` or $MTASTS_POLICYD_CONFIG) < environment < ``overrides``
    (None values are ignored). Raise ConfigError naming the bad setting."""
    env = os.environ if env is None else env
    values = layered_values(PolicydSettings, path, env, "MTASTS_POLICYD_", overrides, "policyd")
    settings = replace(PolicydSettings(), **values)
    _validate(settings)
    return settings


def _validate(s: PolicydSettings) -> None:
    for key in ("listen", "metrics_listen"):
        value = getattr(s, key)
        if not value or (key == "listen" and value.startswith("unix:")):
            continue
        try:
            split_listen(value)
        except ValueError as exc:
            raise ConfigError(_("{key}: {error}").format(key=key, error=reason(exc))) from exc
    if s.testing_answer not in TESTING_ANSWERS:
        raise ConfigError(
            _("testing_answer: expected one of {answers}").format(answers=TESTING_ANSWERS)
        )
    if not 0 <= s.refresh_before < 1:
        raise ConfigError(_("refresh_before: expected a share of max_age in [0, 1)"))
    for key in ("cache_size", "max_connections", "max_request"):
        if getattr(s, key) < 1:
            raise ConfigError(_("{key}: must be at least 1").format(key=key))
    if s.backoff_min <= 0 or s.backoff_max < s.backoff_min:
        raise ConfigError(_("backoff_min must be > 0 and backoff_max >= backoff_min"))
